//! Value framing: a list of values as `u32 LE count`, then `u32 LE length + bytes` per value.
//!
//! Each value is one MessagePack blob. The same framing carries job inputs, task inputs and task
//! outputs; the framing never looks inside the values. An empty list is exactly `00 00 00 00`.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// A malformed frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The buffer ends before the header or a value does.
    #[error("frame truncated: needed {needed} bytes at offset {offset}, buffer has {len}")]
    Truncated {
        /// Bytes needed from `offset`.
        needed: usize,
        /// Where the missing bytes start.
        offset: usize,
        /// The buffer length.
        len: usize,
    },
    /// Bytes remain after the last value.
    #[error("frame has {0} trailing bytes after its last value")]
    TrailingBytes(usize),
    /// A value is longer than a frame can describe (4 GiB).
    #[error("value of {0} bytes does not fit in a frame")]
    ValueTooLarge(usize),
    /// The frame holds a different number of values than expected.
    #[error("expected {expected} values, frame has {actual}")]
    CountMismatch {
        /// What the reader expected.
        expected: usize,
        /// What the frame holds.
        actual: usize,
    },
    /// A value could not be encoded or decoded as MessagePack.
    #[error("value {position}: {message}")]
    Value {
        /// The position of the value in the frame.
        position: usize,
        /// The codec's message.
        message: String,
    },
}

/// Builds a frame one value at a time.
#[derive(Debug, Clone)]
pub struct FrameWriter {
    buf: Vec<u8>,
    count: u32,
}

impl Default for FrameWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl FrameWriter {
    /// An empty frame.
    #[must_use]
    pub fn new() -> Self {
        Self {
            buf: vec![0; 4],
            count: 0,
        }
    }

    /// Appends one already-encoded value.
    ///
    /// # Errors
    /// [`FrameError::ValueTooLarge`] if the value is 4 GiB or larger.
    pub fn push_raw(&mut self, value: &[u8]) -> Result<(), FrameError> {
        let len = u32::try_from(value.len()).map_err(|_| FrameError::ValueTooLarge(value.len()))?;
        self.buf.extend_from_slice(&len.to_le_bytes());
        self.buf.extend_from_slice(value);
        self.count += 1;
        Ok(())
    }

    /// Encodes `value` as MessagePack and appends it.
    ///
    /// # Errors
    /// [`FrameError::Value`] if serde cannot encode the value.
    pub fn push<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), FrameError> {
        let position = self.count as usize;
        let bytes = rmp_serde::to_vec(value).map_err(|e| FrameError::Value {
            position,
            message: e.to_string(),
        })?;
        self.push_raw(&bytes)
    }

    /// The finished frame.
    #[must_use]
    pub fn finish(mut self) -> Vec<u8> {
        self.buf[..4].copy_from_slice(&self.count.to_le_bytes());
        self.buf
    }
}

/// Frames already-encoded values.
///
/// # Errors
/// [`FrameError::ValueTooLarge`] if a value is 4 GiB or larger.
pub fn encode<I, B>(values: I) -> Result<Vec<u8>, FrameError>
where
    I: IntoIterator<Item = B>,
    B: AsRef<[u8]>,
{
    let mut w = FrameWriter::new();
    for v in values {
        w.push_raw(v.as_ref())?;
    }
    Ok(w.finish())
}

/// Splits a frame into its values (borrowed from `frame`).
///
/// # Errors
/// [`FrameError::Truncated`] or [`FrameError::TrailingBytes`] for a malformed frame.
pub fn decode(frame: &[u8]) -> Result<Vec<&[u8]>, FrameError> {
    let count = read_u32(frame, 0)? as usize;
    // Every value needs at least its 4-byte length, so a huge count in a small buffer is caught
    // before allocating for it.
    let mut values = Vec::with_capacity(count.min(frame.len() / 4));
    let mut offset = 4;
    for _ in 0..count {
        let len = read_u32(frame, offset)? as usize;
        offset += 4;
        let end = offset
            .checked_add(len)
            .filter(|&end| end <= frame.len())
            .ok_or(FrameError::Truncated {
                needed: len,
                offset,
                len: frame.len(),
            })?;
        values.push(&frame[offset..end]);
        offset = end;
    }
    if offset != frame.len() {
        return Err(FrameError::TrailingBytes(frame.len() - offset));
    }
    Ok(values)
}

/// Splits a frame and checks it holds exactly `expected` values.
///
/// # Errors
/// As [`decode`], plus [`FrameError::CountMismatch`].
pub fn decode_exact(frame: &[u8], expected: usize) -> Result<Vec<&[u8]>, FrameError> {
    let values = decode(frame)?;
    if values.len() != expected {
        return Err(FrameError::CountMismatch {
            expected,
            actual: values.len(),
        });
    }
    Ok(values)
}

/// Decodes the MessagePack value at `position` of a decoded frame.
///
/// # Errors
/// [`FrameError::Value`] if the bytes are not a `T`.
pub fn value<T: DeserializeOwned>(bytes: &[u8], position: usize) -> Result<T, FrameError> {
    rmp_serde::from_slice(bytes).map_err(|e| FrameError::Value {
        position,
        message: e.to_string(),
    })
}

fn read_u32(buf: &[u8], offset: usize) -> Result<u32, FrameError> {
    buf.get(offset..offset + 4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or(FrameError::Truncated {
            needed: 4,
            offset,
            len: buf.len(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_frame_is_four_zero_bytes() {
        assert_eq!(FrameWriter::new().finish(), vec![0, 0, 0, 0]);
        assert_eq!(decode(&[0, 0, 0, 0]).unwrap(), Vec::<&[u8]>::new());
    }

    #[test]
    fn round_trip_typed_values() {
        let mut w = FrameWriter::new();
        w.push(&55u64).unwrap();
        w.push("hi").unwrap();
        w.push(&vec![1.5f64, -2.0]).unwrap();
        let frame = w.finish();
        let vals = decode_exact(&frame, 3).unwrap();
        assert_eq!(value::<u64>(vals[0], 0).unwrap(), 55);
        assert_eq!(value::<String>(vals[1], 1).unwrap(), "hi");
        assert_eq!(value::<Vec<f64>>(vals[2], 2).unwrap(), vec![1.5, -2.0]);
    }

    #[test]
    fn layout_is_count_then_length_prefixed_values() {
        let frame = encode([&[7u8][..], &[][..]]).unwrap();
        assert_eq!(frame, vec![2, 0, 0, 0, 1, 0, 0, 0, 7, 0, 0, 0, 0]);
    }

    #[test]
    fn malformed_frames_are_errors() {
        assert!(matches!(decode(&[]), Err(FrameError::Truncated { .. })));
        assert!(matches!(
            decode(&[1, 0, 0, 0]),
            Err(FrameError::Truncated { .. })
        ));
        assert!(matches!(
            decode(&[1, 0, 0, 0, 9, 0, 0, 0, 1]),
            Err(FrameError::Truncated { .. })
        ));
        assert!(matches!(
            decode(&[0, 0, 0, 0, 1]),
            Err(FrameError::TrailingBytes(1))
        ));
        assert!(matches!(
            decode(&[255, 255, 255, 255]),
            Err(FrameError::Truncated { .. })
        ));
        assert!(matches!(
            decode_exact(&[0, 0, 0, 0], 1),
            Err(FrameError::CountMismatch {
                expected: 1,
                actual: 0
            })
        ));
    }

    #[test]
    fn wrong_type_names_the_position() {
        let frame = encode([rmp_serde::to_vec("x").unwrap()]).unwrap();
        let vals = decode(&frame).unwrap();
        let err = value::<u64>(vals[0], 3).unwrap_err();
        assert!(err.to_string().starts_with("value 3:"), "{err}");
    }
}
