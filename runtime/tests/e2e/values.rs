//! Task values for end-to-end tests: MessagePack values in and out of frames.

use rmpv::Value;

/// The frame of `values`.
pub fn frame(values: &[Value]) -> Vec<u8> {
    let encoded: Vec<Vec<u8>> = values
        .iter()
        .map(|v| {
            let mut out = Vec::new();
            rmpv::encode::write_value(&mut out, v).unwrap();
            out
        })
        .collect();
    silk_tdl::frame::encode(encoded).unwrap()
}

/// The values of a frame.
pub fn unframe(frame: &[u8]) -> Vec<Value> {
    silk_tdl::frame::decode(frame)
        .unwrap()
        .into_iter()
        .map(|mut b| rmpv::decode::read_value(&mut b).unwrap())
        .collect()
}

/// A string value.
pub fn s(v: &str) -> Value {
    Value::from(v)
}

/// An integer value.
pub fn i(v: i64) -> Value {
    Value::from(v)
}

/// A float64 value.
pub fn f(v: f64) -> Value {
    Value::F64(v)
}

/// A complex number as the `complex` package sends it: `[re, im]`.
pub fn c(re: f64, im: f64) -> Value {
    Value::Array(vec![f(re), f(im)])
}

/// A list value.
pub fn list(items: Vec<Value>) -> Value {
    Value::Array(items)
}
