//! Type descriptors of task inputs and outputs. They are checked for exact equality between a
//! producer's output and a consumer's input when a graph is validated.
//!
//! JSON form: `"int8"` … `"int64"`, `"float32"`, `"float64"`, `"bool"`, `"bytes"`, `"string"`,
//! `{"list": T}`, `{"map": {"key": K, "value": V}}` (K: an integer type, `"string"`, `"bytes"` or
//! `"bool"`), `{"struct": "Name"}`.

use serde::{Deserialize, Serialize};

/// The type of one task input or output.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum TypeDesc {
    /// Signed 8-bit integer.
    Int8,
    /// Signed 16-bit integer.
    Int16,
    /// Signed 32-bit integer.
    Int32,
    /// Signed 64-bit integer.
    Int64,
    /// 32-bit float.
    Float32,
    /// 64-bit float.
    Float64,
    /// Boolean.
    Bool,
    /// Byte string.
    Bytes,
    /// UTF-8 string.
    String,
    /// A list of one element type.
    List(Box<TypeDesc>),
    /// A map.
    Map {
        /// Key type.
        key: Box<TypeDesc>,
        /// Value type.
        value: Box<TypeDesc>,
    },
    /// A named struct (matched by name).
    Struct(std::string::String),
}

impl TypeDesc {
    /// Why this type is not valid, if it is not (a bad map key or an empty struct name, at any
    /// depth).
    #[must_use]
    pub fn problem(&self) -> Option<std::string::String> {
        match self {
            Self::List(t) => t.problem(),
            Self::Map { key, value } => {
                if !matches!(
                    **key,
                    Self::Int8
                        | Self::Int16
                        | Self::Int32
                        | Self::Int64
                        | Self::String
                        | Self::Bytes
                        | Self::Bool
                ) {
                    return Some(format!(
                        "map key type {key} is not an integer, string, bytes or bool"
                    ));
                }
                value.problem()
            }
            Self::Struct(name) if name.trim().is_empty() => Some("struct name is empty".into()),
            _ => None,
        }
    }
}

impl std::fmt::Display for TypeDesc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Int8 => f.write_str("int8"),
            Self::Int16 => f.write_str("int16"),
            Self::Int32 => f.write_str("int32"),
            Self::Int64 => f.write_str("int64"),
            Self::Float32 => f.write_str("float32"),
            Self::Float64 => f.write_str("float64"),
            Self::Bool => f.write_str("bool"),
            Self::Bytes => f.write_str("bytes"),
            Self::String => f.write_str("string"),
            Self::List(t) => write!(f, "list<{t}>"),
            Self::Map { key, value } => write!(f, "map<{key}, {value}>"),
            Self::Struct(name) => write!(f, "struct {name}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_forms() {
        let t: TypeDesc =
            serde_json::from_str(r#"{"map": {"key": "string", "value": {"list": "float64"}}}"#)
                .unwrap();
        assert_eq!(t.to_string(), "map<string, list<float64>>");
        assert_eq!(
            serde_json::to_string(&TypeDesc::Int64).unwrap(),
            r#""int64""#
        );
        assert_eq!(
            serde_json::from_str::<TypeDesc>(r#"{"struct": "Complex"}"#).unwrap(),
            TypeDesc::Struct("Complex".into())
        );
        assert!(serde_json::from_str::<TypeDesc>(r#""int128""#).is_err());
    }

    #[test]
    fn problems() {
        let bad_key = TypeDesc::Map {
            key: Box::new(TypeDesc::Float64),
            value: Box::new(TypeDesc::Bool),
        };
        assert!(
            TypeDesc::List(Box::new(bad_key))
                .problem()
                .unwrap()
                .contains("map key type float64")
        );
        assert!(TypeDesc::Struct(" ".into()).problem().is_some());
        assert!(
            TypeDesc::List(Box::new(TypeDesc::Bytes))
                .problem()
                .is_none()
        );
    }
}
