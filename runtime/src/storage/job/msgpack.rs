//! Checks that bytes are exactly one well-formed MessagePack value without decoding them into a
//! value tree: one pass over the markers with a count of values still owed, so memory stays
//! constant whatever a task returns — a 60 MB array of nils costs a counter, not 60 million tree
//! nodes, and nesting depth costs nothing (no recursion).

/// Why bytes are not one MessagePack value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MsgpackError {
    /// The bytes end inside a value.
    #[error("truncated at byte {offset}: {owed} more value(s) expected")]
    Truncated {
        /// Where the bytes ran out.
        offset: usize,
        /// Values still owed, including the one being read.
        owed: u64,
    },
    /// The reserved marker 0xc1.
    #[error("reserved marker 0xc1 at byte {0}")]
    Reserved(usize),
    /// Bytes follow the value.
    #[error("{0} byte(s) after the value")]
    Trailing(usize),
}

/// Checks that `bytes` hold exactly one MessagePack value.
///
/// # Errors
/// [`MsgpackError`] naming the first problem.
pub fn check_one_value(bytes: &[u8]) -> Result<(), MsgpackError> {
    let mut at = 0;
    // Values still to read. Every value takes at least one byte, so a container that claims
    // more elements than bytes remain is truncated: caught before walking it.
    let mut owed: u64 = 1;
    while owed > 0 {
        let truncated = MsgpackError::Truncated { offset: at, owed };
        let &marker = bytes.get(at).ok_or(truncated.clone())?;
        at += 1;
        owed -= 1;
        let (skip, elements): (u64, u64) = match marker {
            0x00..=0x7f | 0xc0 | 0xc2 | 0xc3 | 0xe0..=0xff => (0, 0),
            0x80..=0x8f => (0, 2 * u64::from(marker & 0x0f)),
            0x90..=0x9f => (0, u64::from(marker & 0x0f)),
            0xa0..=0xbf => (u64::from(marker & 0x1f), 0),
            0xc1 => return Err(MsgpackError::Reserved(at - 1)),
            0xc4 | 0xd9 => (read_be(bytes, &mut at, 1, &truncated)?, 0),
            0xc5 | 0xda => (read_be(bytes, &mut at, 2, &truncated)?, 0),
            0xc6 | 0xdb => (read_be(bytes, &mut at, 4, &truncated)?, 0),
            0xc7 => (read_be(bytes, &mut at, 1, &truncated)? + 1, 0),
            0xc8 => (read_be(bytes, &mut at, 2, &truncated)? + 1, 0),
            0xc9 => (read_be(bytes, &mut at, 4, &truncated)? + 1, 0),
            0xca => (4, 0),
            0xcb => (8, 0),
            0xcc | 0xd0 => (1, 0),
            0xcd | 0xd1 => (2, 0),
            0xce | 0xd2 => (4, 0),
            0xcf | 0xd3 => (8, 0),
            0xd4 => (2, 0),
            0xd5 => (3, 0),
            0xd6 => (5, 0),
            0xd7 => (9, 0),
            0xd8 => (17, 0),
            0xdc => (0, read_be(bytes, &mut at, 2, &truncated)?),
            0xdd => (0, read_be(bytes, &mut at, 4, &truncated)?),
            0xde => (0, 2 * read_be(bytes, &mut at, 2, &truncated)?),
            0xdf => (0, 2 * read_be(bytes, &mut at, 4, &truncated)?),
        };
        let remaining = (bytes.len() - at) as u64;
        if skip > remaining {
            return Err(truncated);
        }
        // `skip <= remaining` fits in usize.
        at += skip as usize;
        owed += elements;
        if owed > (bytes.len() - at) as u64 {
            return Err(MsgpackError::Truncated { offset: at, owed });
        }
    }
    match bytes.len() - at {
        0 => Ok(()),
        n => Err(MsgpackError::Trailing(n)),
    }
}

/// Reads a `width`-byte big-endian length at `*at` and moves past it.
fn read_be(
    bytes: &[u8],
    at: &mut usize,
    width: usize,
    truncated: &MsgpackError,
) -> Result<u64, MsgpackError> {
    let field = bytes.get(*at..*at + width).ok_or(truncated.clone())?;
    *at += width;
    Ok(field.iter().fold(0, |n, &b| n << 8 | u64::from(b)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(v: &rmpv::Value) -> Vec<u8> {
        let mut out = Vec::new();
        rmpv::encode::write_value(&mut out, v).unwrap();
        out
    }

    #[test]
    fn accepts_every_kind_of_value() {
        use rmpv::Value as V;
        let values = [
            V::Nil,
            V::Boolean(true),
            V::from(5),
            V::from(-5),
            V::from(300),
            V::from(-300),
            V::from(70_000),
            V::from(u64::MAX),
            V::from(i64::MIN),
            V::F32(1.5),
            V::F64(2.5),
            V::from("short"),
            V::from("x".repeat(40)),
            V::from("x".repeat(300)),
            V::from("x".repeat(70_000)),
            V::Binary(vec![1; 3]),
            V::Binary(vec![1; 300]),
            V::Binary(vec![1; 70_000]),
            V::Ext(1, vec![1]),
            V::Ext(1, vec![1; 2]),
            V::Ext(1, vec![1; 4]),
            V::Ext(1, vec![1; 8]),
            V::Ext(1, vec![1; 16]),
            V::Ext(1, vec![1; 3]),
            V::Ext(1, vec![1; 300]),
            V::Ext(1, vec![1; 70_000]),
            V::Array(vec![V::Nil; 3]),
            V::Array(vec![V::Nil; 20]),
            V::Array(vec![V::Nil; 70_000]),
            V::Map(vec![(V::from(1), V::from("a")); 3]),
            V::Map(vec![(V::from(1), V::from("a")); 20]),
            V::Map(vec![(V::from(1), V::from("a")); 70_000]),
            V::Array(vec![V::Map(vec![(
                V::from("k"),
                V::Array(vec![V::F64(1.0)]),
            )])]),
        ];
        for v in &values {
            let bytes = encode(v);
            assert_eq!(check_one_value(&bytes), Ok(()), "{v:?}");
            // rmpv agrees on every prefix: a cut value is refused.
            for cut in [0, 1, bytes.len() / 2, bytes.len() - 1] {
                if cut < bytes.len() {
                    assert!(
                        check_one_value(&bytes[..cut]).is_err(),
                        "{v:?} cut at {cut}"
                    );
                }
            }
            let mut longer = bytes.clone();
            longer.push(0);
            assert_eq!(check_one_value(&longer), Err(MsgpackError::Trailing(1)));
        }
    }

    #[test]
    fn refuses_what_rmpv_refuses() {
        assert_eq!(check_one_value(&[0xc1]), Err(MsgpackError::Reserved(0)));
        assert!(check_one_value(&[0x92, 0x01]).is_err());
        assert!(check_one_value(&[]).is_err());
    }

    #[test]
    fn lying_lengths_are_caught_before_walking() {
        // array32 claiming u32::MAX elements, map32 likewise, str32 of 4 GiB: each a few bytes.
        for bytes in [
            vec![0xdd, 0xff, 0xff, 0xff, 0xff, 0xc0],
            vec![0xdf, 0xff, 0xff, 0xff, 0xff, 0xc0, 0xc0],
            vec![0xdb, 0xff, 0xff, 0xff, 0xff, b'a'],
        ] {
            assert!(matches!(
                check_one_value(&bytes),
                Err(MsgpackError::Truncated { .. })
            ));
        }
    }

    #[test]
    fn depth_and_width_cost_no_memory() {
        // A million nested one-element arrays: a recursive decoder overflows its stack here.
        let depth = 1_000_000;
        let mut deep = vec![0x91; depth];
        deep.push(0x00);
        assert_eq!(check_one_value(&deep), Ok(()));
        deep.pop();
        assert!(check_one_value(&deep).is_err());
        // Ten million nils in one array.
        let mut wide = vec![0xdd];
        wide.extend_from_slice(&10_000_000_u32.to_be_bytes());
        wide.resize(wide.len() + 10_000_000, 0xc0);
        assert_eq!(check_one_value(&wide), Ok(()));
    }
}
