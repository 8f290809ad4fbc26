//! JSON ↔ task values. On the command line a task's inputs are a JSON array (one element per
//! input) and its outputs are printed as one; on the wire each value is MessagePack.

use serde_json::Value as Json;

use silk_core::msgpack::{Item, Reader};

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

/// Turns an output frame into the text of a JSON array, one element per value. Streams: no
/// value tree is built on either side, so memory follows the size of the output, whatever its
/// shape (a MessagePack array of millions of nils, values nested a million deep).
///
/// # Errors
/// [`JsonError::Frame`] or [`JsonError::Output`].
pub fn frame_to_json(frame: &[u8]) -> Result<String, JsonError> {
    let values = silk_tdl::frame::decode(frame)?;
    let mut out = String::with_capacity(frame.len() + 2);
    out.push('[');
    for (position, bytes) in values.into_iter().enumerate() {
        if position > 0 {
            out.push(',');
        }
        transcode(bytes, &mut out).map_err(|message| JsonError::Output { position, message })?;
    }
    out.push(']');
    Ok(out)
}

/// An open array or map while transcoding: items still to write, and how many were written.
struct Open {
    map: bool,
    left: u64,
    written: u64,
}

/// Writes the JSON form of the one MessagePack value in `bytes` to `out`.
fn transcode(bytes: &[u8], out: &mut String) -> Result<(), String> {
    let mut r = Reader::new(bytes);
    let mut open: Vec<Open> = Vec::new();
    loop {
        // Where the next item goes: after a separator, and as a key or a value.
        let is_key = match open.last_mut() {
            Some(o) => {
                let key = o.map && o.written % 2 == 0;
                if o.written > 0 {
                    out.push(if o.map && !key { ':' } else { ',' });
                }
                o.written += 1;
                o.left -= 1;
                key
            }
            None => false,
        };
        let item = r.item()?;
        if is_key {
            key(item, out)?;
        } else {
            match item {
                Item::Array(0) => out.push_str("[]"),
                Item::Map(0) => out.push_str("{}"),
                Item::Array(n) => {
                    out.push('[');
                    open.push(Open {
                        map: false,
                        left: n,
                        written: 0,
                    });
                }
                Item::Map(n) => {
                    out.push('{');
                    open.push(Open {
                        map: true,
                        left: 2 * n,
                        written: 0,
                    });
                }
                scalar => scalar_json(scalar, out)?,
            }
        }
        // Close what is complete.
        while open.last().is_some_and(|o| o.left == 0) {
            let o = open.pop().unwrap_or(Open {
                map: false,
                left: 0,
                written: 0,
            });
            out.push(if o.map { '}' } else { ']' });
        }
        if open.is_empty() {
            break;
        }
    }
    match r.left() {
        0 => Ok(()),
        n => Err(format!("{n} trailing bytes")),
    }
}

/// A JSON object key: strings as they are, other scalars as their JSON text.
fn key(item: Item<'_>, out: &mut String) -> Result<(), String> {
    let text = match item {
        Item::Str(s) => std::str::from_utf8(s)
            .map_err(|_| "map key is not UTF-8".to_owned())?
            .to_owned(),
        Item::Array(_) | Item::Map(_) => return Err("map key is an array or a map".into()),
        scalar => {
            let mut text = String::new();
            scalar_json(scalar, &mut text)?;
            text
        }
    };
    push_string(&text, out);
    Ok(())
}

fn scalar_json(item: Item<'_>, out: &mut String) -> Result<(), String> {
    use std::fmt::Write as _;
    match item {
        Item::Nil => out.push_str("null"),
        Item::Bool(b) => out.push_str(if b { "true" } else { "false" }),
        Item::Uint(n) => drop(write!(out, "{n}")),
        Item::Int(n) => drop(write!(out, "{n}")),
        Item::Float(f) => out.push_str(&float(f).to_string()),
        Item::Str(s) => {
            let s = std::str::from_utf8(s).map_err(|_| "string is not UTF-8".to_owned())?;
            push_string(s, out);
        }
        Item::Bin(b) => {
            out.push('[');
            for (i, byte) in b.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                let _ = write!(out, "{byte}");
            }
            out.push(']');
        }
        Item::Ext(tag) => return Err(format!("MessagePack extension type {tag} has no JSON form")),
        Item::Array(_) | Item::Map(_) => unreachable!("containers are opened by the caller"),
    }
    Ok(())
}

/// `s` as a JSON string literal.
fn push_string(s: &str, out: &mut String) {
    // serde_json escapes exactly as JSON requires; a `&str` always serializes.
    out.push_str(&serde_json::to_string(s).unwrap_or_default());
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
        let json: Json = serde_json::from_str(&frame_to_json(&frame).unwrap()).unwrap();
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
        let text = frame_to_json(&silk_tdl::frame::encode(&vals).unwrap()).unwrap();
        assert_eq!(text, r#"[-3,[1,2],"NaN",{"1":2}]"#);
        let bad = silk_tdl::frame::encode([[0x92u8, 0x01]]).unwrap(); // array of 2 holding 1
        assert!(matches!(
            frame_to_json(&bad),
            Err(JsonError::Output { position: 0, .. })
        ));
    }

    #[test]
    fn every_marker_and_nesting() {
        use rmpv::Value as V;
        let value = V::Array(vec![
            V::from(u64::MAX),
            V::from(i64::MIN),
            V::from(-1),
            V::from(200),
            V::from(-200),
            V::from(70_000),
            V::from(-70_000),
            V::F32(0.5),
            V::Boolean(false),
            V::from("a\"b\n"),
            V::from("s".repeat(300)),
            V::Map(vec![
                (V::from(true), V::Nil),
                (V::from(-2), V::Array(vec![])),
                (V::from("k"), V::Map(vec![])),
            ]),
            V::Array(vec![V::Array(vec![V::from(1)]), V::Nil]),
        ]);
        let mut bytes = Vec::new();
        rmpv::encode::write_value(&mut bytes, &value).unwrap();
        let text = frame_to_json(&silk_tdl::frame::encode([&bytes]).unwrap()).unwrap();
        let expected = format!(
            r#"[[{},{},-1,200,-200,70000,-70000,0.5,false,"a\"b\n","{}",{{"true":null,"-2":[],"k":{{}}}},[[1],null]]]"#,
            u64::MAX,
            i64::MIN,
            "s".repeat(300)
        );
        assert_eq!(text, expected);
        for bad in [
            vec![0x81, 0x91, 0x01, 0x02],
            vec![0xd4, 0x01, 0x00],
            vec![0xc1],
        ] {
            assert!(frame_to_json(&silk_tdl::frame::encode([&bad]).unwrap()).is_err());
        }
    }

    #[test]
    fn depth_and_width_build_no_tree() {
        let mut deep = vec![0x91; 1_000_000];
        deep.push(0xc0);
        let text = frame_to_json(&silk_tdl::frame::encode([&deep]).unwrap()).unwrap();
        assert_eq!(text.len(), 2 + 2_000_000 + 4);
        let mut wide = vec![0xdd];
        wide.extend_from_slice(&1_000_000_u32.to_be_bytes());
        wide.resize(wide.len() + 1_000_000, 0xc0);
        let text = frame_to_json(&silk_tdl::frame::encode([&wide]).unwrap()).unwrap();
        assert_eq!(text.len(), 2 + 2 + 5 * 1_000_000 - 1);
    }

    fn serde_bytes_like() -> rmpv::Value {
        rmpv::Value::Binary(vec![1, 2])
    }
}
