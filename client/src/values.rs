//! Job values on the wire: each value is MessagePack ([`rmpv::Value`] here), a list of values is
//! a frame (`u32 LE` count, then `u32 LE` length + bytes per value; see `silk_tdl::frame`).
//! Also small constructors for the composite [`TypeDesc`]s.

use silk_tdl::frame;

use super::error::ClientError;
use silk_core::graph::TypeDesc;

/// Frames `values` as job inputs.
///
/// # Errors
/// [`ClientError::InvalidArgument`] if a value cannot be encoded or the frame would be too
/// large.
pub fn encode_values(values: &[rmpv::Value]) -> Result<Vec<u8>, ClientError> {
    let encoded = values
        .iter()
        .map(|v| {
            let mut out = Vec::new();
            rmpv::encode::write_value(&mut out, v)
                .map(|()| out)
                .map_err(|e| ClientError::InvalidArgument(format!("job input: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    frame::encode(encoded).map_err(|e| ClientError::InvalidArgument(format!("job inputs: {e}")))
}

/// Decodes a frame of MessagePack values (e.g. job outputs).
///
/// # Errors
/// [`ClientError::Decode`] for a malformed frame or value.
pub fn decode_values(bytes: &[u8]) -> Result<Vec<rmpv::Value>, ClientError> {
    let parts = frame::decode(bytes).map_err(|e| ClientError::decode("values frame", e))?;
    parts
        .into_iter()
        .enumerate()
        .map(|(i, mut part)| {
            let value = rmpv::decode::read_value(&mut part)
                .map_err(|e| ClientError::decode("value", format!("value {i}: {e}")))?;
            if part.is_empty() {
                Ok(value)
            } else {
                Err(ClientError::decode(
                    "value",
                    format!("value {i}: trailing bytes"),
                ))
            }
        })
        .collect()
}

/// `{"list": element}`.
#[must_use]
pub fn list(element: TypeDesc) -> TypeDesc {
    TypeDesc::List(Box::new(element))
}

/// `{"map": {"key": key, "value": value}}`.
#[must_use]
pub fn map(key: TypeDesc, value: TypeDesc) -> TypeDesc {
    TypeDesc::Map {
        key: Box::new(key),
        value: Box::new(value),
    }
}

/// `{"struct": name}`.
#[must_use]
pub fn structure(name: &str) -> TypeDesc {
    TypeDesc::Struct(name.to_owned())
}

#[cfg(test)]
mod tests {
    use rmpv::Value;

    use super::*;

    #[test]
    fn values_round_trip_through_a_frame() {
        let values = vec![
            Value::from(42),
            Value::from("hi"),
            Value::Binary(vec![1, 2]),
            Value::Array(vec![Value::from(1.5), Value::Nil]),
        ];
        let bytes = encode_values(&values).unwrap();
        assert_eq!(&bytes[..4], &4u32.to_le_bytes());
        assert_eq!(decode_values(&bytes).unwrap(), values);
        assert!(
            decode_values(&encode_values(&[]).unwrap())
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn malformed_frames_are_errors() {
        assert!(matches!(
            decode_values(&[1, 0]),
            Err(ClientError::Decode { .. })
        ));
        // One value holding two MessagePack values: trailing bytes.
        let bad = frame::encode([vec![0x01, 0x02]]).unwrap();
        assert!(matches!(
            decode_values(&bad),
            Err(ClientError::Decode { .. })
        ));
    }

    #[test]
    fn type_helpers_serialize_as_documented() {
        let t = map(TypeDesc::String, list(structure("Complex")));
        assert_eq!(
            serde_json::to_value(&t).unwrap(),
            serde_json::json!({"map": {"key": "string", "value": {"list": {"struct": "Complex"}}}})
        );
    }
}
