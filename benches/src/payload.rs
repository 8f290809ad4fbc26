//! The benches' payloads: upstream spider's 100-path instrument payload, and strings of a given
//! size for the payload sweep.

use rmpv::Value;
use silk_tdl::frame::FrameWriter;

const PREFIXES: [&str; 5] = [
    "/var/log",
    "/usr/local/bin",
    "/etc/spider",
    "/home/user/projects",
    "/opt/data/cache",
];
const SUFFIXES: [&str; 5] = ["log", "txt", "bin", "json", "tmp"];

/// Upstream's payload: path `i` is `<prefix>/file_<(i*31) mod 10000:04>_<i:05>.<suffix>`, the
/// prefix chosen by `i mod 5`, the suffix by `(i / 5) mod 5`.
#[must_use]
pub fn upstream_paths() -> Vec<String> {
    (0..100)
        .map(|i| {
            format!(
                "{}/file_{:04}_{:05}.{}",
                PREFIXES[i % 5],
                (i * 31) % 10000,
                i,
                SUFFIXES[(i / 5) % 5]
            )
        })
        .collect()
}

/// An input frame holding one MessagePack value.
///
/// # Panics
/// If the value cannot be encoded (it always can).
#[must_use]
pub fn frame_of(value: &Value) -> Vec<u8> {
    let mut w = FrameWriter::new();
    w.push(value).expect("a MessagePack value encodes");
    w.finish()
}

/// The input frame of `sleep_and_echo`: the 100 paths as one list.
#[must_use]
pub fn sleep_and_echo_inputs() -> Vec<u8> {
    frame_of(&Value::Array(
        upstream_paths().into_iter().map(Value::from).collect(),
    ))
}

/// The input frame of `echo_bytes` with an ASCII string of `n` bytes.
#[must_use]
pub fn echo_inputs(n: usize) -> Vec<u8> {
    let text: String = (0..n).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
    frame_of(&Value::from(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_upstreams_formula() {
        let p = upstream_paths();
        assert_eq!(p[0], "/var/log/file_0000_00000.log");
        assert_eq!(p[7], "/etc/spider/file_0217_00007.txt");
        assert_eq!(p[99], "/opt/data/cache/file_3069_00099.tmp");
        assert!(echo_inputs(64).len() > 64);
    }
}
