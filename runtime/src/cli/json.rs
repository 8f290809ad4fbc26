//! JSON ↔ task values. On the command line a task's inputs are a JSON array (one element per
//! input) and its outputs are printed as one; on the wire each value is MessagePack.

use serde_json::Value as Json;

/// A value that cannot be expressed in the other format.
#[derive(Debug, thiserror::Error)]
pub enum JsonError {
    /// The input text is not JSON.
    #[error("inputs are not valid JSON: {0}")]
    Parse(String),
    /// The inputs are not a JSON array.
    #[error("inputs must be a JSON array with one element per task input, got {0}")]
    NotAnArray(&'static str),
    /// An output is not valid MessagePack or has no JSON form.
    #[error("output {position}: {message}")]
    Output {
        /// Which output.
        position: usize,
        /// What is wrong.
        message: String,
    },
    /// The output frame is malformed.
    #[error("malformed output frame: {0}")]
    Frame(#[from] silk_tdl::frame::FrameError),
}

fn kind(v: &Json) -> &'static str {
    match v {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}

/// Turns a JSON array of inputs into an input frame.
///
/// # Errors
/// [`JsonError::Parse`] or [`JsonError::NotAnArray`].
pub fn inputs_to_frame(text: &str) -> Result<Vec<u8>, JsonError> {
    let json: Json = serde_json::from_str(text).map_err(|e| JsonError::Parse(e.to_string()))?;
    let Json::Array(items) = json else {
        return Err(JsonError::NotAnArray(kind(&json)));
    };
    let mut frame = silk_tdl::frame::FrameWriter::new();
    for item in &items {
        // serde_json values always encode as MessagePack; the frame only refuses >4 GiB values.
        frame
            .push(item)
            .map_err(|e| JsonError::Parse(e.to_string()))?;
    }
    Ok(frame.finish())
}

/// Turns an output frame into a JSON array.
///
/// # Errors
/// [`JsonError::Frame`] or [`JsonError::Output`].
pub fn frame_to_json(frame: &[u8]) -> Result<Json, JsonError> {
    let values = silk_tdl::frame::decode(frame)?;
    let mut out = Vec::with_capacity(values.len());
    for (position, bytes) in values.into_iter().enumerate() {
        let mut reader = bytes;
        let value = rmpv::decode::read_value(&mut reader).map_err(|e| JsonError::Output {
            position,
            message: format!("not MessagePack: {e}"),
        })?;
        if !reader.is_empty() {
            return Err(JsonError::Output {
                position,
                message: format!("{} trailing bytes", reader.len()),
            });
        }
        out.push(to_json(value).map_err(|message| JsonError::Output { position, message })?);
    }
    Ok(Json::Array(out))
}

fn to_json(v: rmpv::Value) -> Result<Json, String> {
    use rmpv::Value as M;
    Ok(match v {
        M::Nil => Json::Null,
        M::Boolean(b) => Json::Bool(b),
        M::Integer(i) => {
            if let Some(u) = i.as_u64() {
                Json::from(u)
            } else if let Some(s) = i.as_i64() {
                Json::from(s)
            } else {
                return Err("integer out of range".into());
            }
        }
        M::F32(f) => float(f64::from(f)),
        M::F64(f) => float(f),
        M::String(s) => match s.into_str() {
            Some(s) => Json::String(s),
            None => return Err("string is not UTF-8".into()),
        },
        M::Binary(b) => Json::Array(b.into_iter().map(Json::from).collect()),
        M::Array(items) => Json::Array(items.into_iter().map(to_json).collect::<Result<_, _>>()?),
        M::Map(entries) => {
            let mut map = serde_json::Map::new();
            for (k, v) in entries {
                let key = match k {
                    M::String(s) => s.into_str().ok_or("map key is not UTF-8")?,
                    other => to_json(other)?.to_string(),
                };
                map.insert(key, to_json(v)?);
            }
            Json::Object(map)
        }
        M::Ext(tag, _) => return Err(format!("MessagePack extension type {tag} has no JSON form")),
    })
}

/// Finite floats as numbers; NaN and infinities (which JSON lacks) as strings.
fn float(f: f64) -> Json {
    serde_json::Number::from_f64(f).map_or_else(|| Json::String(f.to_string()), Json::Number)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_round_trip_through_frames() {
        let frame = inputs_to_frame(r#"[10, "x", [1.5, 2], {"a": true}, null]"#).unwrap();
        let json = frame_to_json(&frame).unwrap();
        assert_eq!(
            json,
            serde_json::json!([10, "x", [1.5, 2], {"a": true}, null])
        );
    }

    #[test]
    fn bad_inputs() {
        assert!(matches!(inputs_to_frame("{"), Err(JsonError::Parse(_))));
        assert!(matches!(
            inputs_to_frame("{}"),
            Err(JsonError::NotAnArray("an object"))
        ));
        assert!(matches!(
            inputs_to_frame("3"),
            Err(JsonError::NotAnArray("a number"))
        ));
    }

    #[test]
    fn outputs_of_every_msgpack_kind() {
        let vals: Vec<Vec<u8>> = vec![
            rmp_serde::to_vec(&-3i64).unwrap(),
            rmp_serde::to_vec(&serde_bytes_like()).unwrap(),
            rmp_serde::to_vec(&f64::NAN).unwrap(),
            rmp_serde::to_vec(&std::collections::BTreeMap::from([(1u8, 2u8)])).unwrap(),
        ];
        let json = frame_to_json(&silk_tdl::frame::encode(&vals).unwrap()).unwrap();
        assert_eq!(json, serde_json::json!([-3, [1, 2], "NaN", {"1": 2}]));
        let bad = silk_tdl::frame::encode([[0x92u8, 0x01]]).unwrap(); // array of 2 holding 1
        assert!(matches!(
            frame_to_json(&bad),
            Err(JsonError::Output { position: 0, .. })
        ));
    }

    fn serde_bytes_like() -> rmpv::Value {
        rmpv::Value::Binary(vec![1, 2])
    }
}
