//! Says why a task input did not decode, in the terms the storage service uses when it checks a
//! job's inputs at submit: which input (position and parameter name), the type the task
//! expected, and what was given (`expected i64, got the string "7"`), instead of the decoder's
//! own words (`wrong msgpack marker FixStr(1)`). Both executors get this: the native and the
//! wasm glue decode inputs with the same [`input`](crate::task::input). Reads only the value's
//! first marker and a bounded prefix of it, so the message stays short whatever was sent.

/// Longest string value quoted in a message; longer ones are described by their length.
const QUOTED_STRING: usize = 40;
/// Longest decoder detail kept for a container whose contents did not decode.
const DETAIL: usize = 200;

/// The message of a failed input decode: `input 0 (`a`) of add: expected i64, got the string
/// "7"`. For an array or a map, the decoder's reason follows in parentheses (it names the
/// element that is wrong), cut to a few hundred bytes.
pub(crate) fn input_error(
    task: &str,
    position: usize,
    param: &str,
    ty: &str,
    bytes: &[u8],
    error: &rmp_serde::decode::Error,
) -> String {
    let given = describe(bytes);
    let mut out = format!("input {position} (`{param}`) of {task}: expected {ty}, got {given}");
    if matches!(bytes.first(), Some(&m) if is_container(m)) {
        let detail = match error {
            rmp_serde::decode::Error::TypeMismatch(marker) => {
                format!("an element is {}", marker_kind(marker.to_u8()))
            }
            other => other.to_string(),
        };
        out.push_str(" (");
        out.push_str(cut(&detail, DETAIL));
        if detail.len() > DETAIL {
            out.push('…');
        }
        out.push(')');
    }
    out
}

/// Whether `marker` starts an array or a map.
fn is_container(marker: u8) -> bool {
    matches!(marker, 0x80..=0x9f | 0xdc..=0xdf)
}

/// What a MessagePack value is, in the words of the submit-time check: its kind and, for
/// scalars and short strings, the value itself.
pub(crate) fn describe(bytes: &[u8]) -> String {
    let Some((&marker, rest)) = bytes.split_first() else {
        return "nothing (an empty value)".into();
    };
    let uint = |n: usize| be(rest, n).map_or_else(truncated, |v| format!("the integer {v}"));
    let int = |n: usize| {
        be(rest, n).map_or_else(truncated, |v| {
            // Sign-extend the `n`-byte big-endian two's complement value.
            let shift = 64 - 8 * n as u32;
            format!("the integer {}", ((v << shift) as i64) >> shift)
        })
    };
    match marker {
        0x00..=0x7f => format!("the integer {marker}"),
        0xe0..=0xff => format!("the integer {}", marker as i8),
        0xc0 => "null".into(),
        0xc2 => "the boolean false".into(),
        0xc3 => "the boolean true".into(),
        0xcc => uint(1),
        0xcd => uint(2),
        0xce => uint(4),
        0xcf => uint(8),
        0xd0 => int(1),
        0xd1 => int(2),
        0xd2 => int(4),
        0xd3 => int(8),
        0xca => be(rest, 4).map_or_else(truncated, |v| {
            format!("the float {}", f32::from_bits(v as u32))
        }),
        0xcb => be(rest, 8).map_or_else(truncated, |v| format!("the float {}", f64::from_bits(v))),
        0xa0..=0xbf => string(usize::from(marker & 0x1f), rest),
        0xd9..=0xdb => {
            let n = 1 << (marker - 0xd9);
            match be(rest, n) {
                Some(len) => string(len as usize, &rest[n..]),
                None => truncated(),
            }
        }
        0xc4..=0xc6 => {
            let n = 1 << (marker - 0xc4);
            be(rest, n).map_or_else(truncated, |len| format!("{len} bytes (binary)"))
        }
        0x90..=0x9f => format!("an array of {}", marker & 0x0f),
        0xdc => be(rest, 2).map_or_else(truncated, |n| format!("an array of {n}")),
        0xdd => be(rest, 4).map_or_else(truncated, |n| format!("an array of {n}")),
        0x80..=0x8f => format!("a map of {}", marker & 0x0f),
        0xde => be(rest, 2).map_or_else(truncated, |n| format!("a map of {n}")),
        0xdf => be(rest, 4).map_or_else(truncated, |n| format!("a map of {n}")),
        0xd4..=0xd8 | 0xc7..=0xc9 => "a MessagePack extension".into(),
        0xc1 => "the invalid MessagePack byte 0xc1".into(),
    }
}

/// A string value: quoted when short and UTF-8, else its length.
fn string(len: usize, rest: &[u8]) -> String {
    match rest.get(..len).map(std::str::from_utf8) {
        Some(Ok(s)) if s.len() <= QUOTED_STRING => format!("the string {s:?}"),
        _ => format!("a string of {len} bytes"),
    }
}

/// The kind of value a marker starts, for a mismatch inside a container.
fn marker_kind(marker: u8) -> &'static str {
    match marker {
        0x00..=0x7f | 0xe0..=0xff | 0xcc..=0xd3 => "an integer",
        0xc0 => "null",
        0xc2 | 0xc3 => "a boolean",
        0xca | 0xcb => "a float",
        0xa0..=0xbf | 0xd9..=0xdb => "a string",
        0xc4..=0xc6 => "binary",
        0x90..=0x9f | 0xdc | 0xdd => "an array",
        0x80..=0x8f | 0xde | 0xdf => "a map",
        0xd4..=0xd8 | 0xc7..=0xc9 => "a MessagePack extension",
        0xc1 => "an invalid MessagePack byte",
    }
}

/// The first `n` (1, 2, 4 or 8) bytes of `bytes` as a big-endian number.
fn be(bytes: &[u8], n: usize) -> Option<u64> {
    let b = bytes.get(..n)?;
    Some(b.iter().fold(0u64, |acc, &x| (acc << 8) | u64::from(x)))
}

fn truncated() -> String {
    "a truncated MessagePack value".into()
}

/// `s` cut to at most `max` bytes, on a character boundary.
fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mp<T: serde::Serialize>(v: &T) -> Vec<u8> {
        rmp_serde::to_vec(v).unwrap()
    }

    #[test]
    fn describes_like_the_submit_check() {
        assert_eq!(describe(&mp(&"7")), r#"the string "7""#);
        assert_eq!(describe(&mp(&300)), "the integer 300");
        assert_eq!(describe(&mp(&-7)), "the integer -7");
        assert_eq!(describe(&mp(&-300)), "the integer -300");
        assert_eq!(
            describe(&mp(&i64::MIN)),
            format!("the integer {}", i64::MIN)
        );
        assert_eq!(
            describe(&mp(&u64::MAX)),
            format!("the integer {}", u64::MAX)
        );
        assert_eq!(describe(&mp(&1.5f64)), "the float 1.5");
        assert_eq!(describe(&mp(&2.5f32)), "the float 2.5");
        assert_eq!(describe(&mp(&true)), "the boolean true");
        assert_eq!(describe(&mp(&())), "null");
        assert_eq!(describe(&mp(&vec![1, 2, 3])), "an array of 3");
        assert_eq!(describe(&mp(&vec![0u8; 20])), "an array of 20");
        let m: std::collections::BTreeMap<&str, i32> = [("a", 1)].into();
        assert_eq!(describe(&mp(&m)), "a map of 1");
        assert_eq!(describe(&[0xc4, 3, 1, 2, 3]), "3 bytes (binary)");
        assert_eq!(describe(&[]), "nothing (an empty value)");
        assert_eq!(describe(&[0xcd, 1]), "a truncated MessagePack value");
        assert_eq!(describe(&[0xc1]), "the invalid MessagePack byte 0xc1");
    }

    #[test]
    fn long_strings_are_described_by_length() {
        let long = "x".repeat(1000);
        assert_eq!(describe(&mp(&long)), "a string of 1000 bytes");
        // A length that claims more than is there is not read past the end.
        assert_eq!(describe(&[0xdb, 0xff, 0xff, 0xff, 0xff, b'a']), {
            "a string of 4294967295 bytes"
        });
    }
}
