//! The one place that knows the protocol's binary encoding (bincode 2, serde API, standard
//! config). bincode is unmaintained (RUSTSEC-2025-0141); replacing it touches only this file.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::protocol::RequestView;

/// A message that could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// Encoding failed.
    #[error("cannot encode message: {0}")]
    Encode(String),
    /// The bytes are not a valid message.
    #[error("cannot decode message: {0}")]
    Decode(String),
    /// A message was followed by unread bytes.
    #[error("message has {0} trailing bytes")]
    Trailing(usize),
}

/// Standard bincode config; `LIMIT` caps the bytes that the lengths inside one message may claim
/// in total, checked before anything is allocated for a claim.
fn config<const LIMIT: usize>() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<LIMIT>()
}

/// Decodes `bytes` with claims capped at `LIMIT`; returns the value and the bytes read.
fn decode_limited<T: DeserializeOwned, const LIMIT: usize>(
    bytes: &[u8],
) -> Result<(T, usize), CodecError> {
    bincode::serde::decode_from_slice(bytes, config::<LIMIT>())
        .map_err(|e| CodecError::Decode(e.to_string()))
}

/// Appends the encoding of `value` to `out`.
///
/// # Errors
/// [`CodecError::Encode`] if serde refuses the value.
pub fn encode_into<T: Serialize>(value: &T, out: &mut Vec<u8>) -> Result<(), CodecError> {
    bincode::serde::encode_into_std_write(value, out, config::<{ u32::MAX as usize }>())
        .map_err(|e| CodecError::Encode(e.to_string()))?;
    Ok(())
}

/// Decodes a value that must fill `bytes` exactly.
///
/// # Errors
/// [`CodecError::Decode`] for malformed bytes, [`CodecError::Trailing`] for leftovers.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    // A message cannot carry more bytes than it is long, so its lengths may claim at most the
    // first of these limits that is twice its length: a lying length fails before it is
    // allocated for (bincode allocates a string or byte buffer at its claimed length).
    const MIB: usize = 1 << 20;
    let (value, read) = match bytes.len() {
        n if n <= MIB / 2 => decode_limited::<T, MIB>(bytes),
        n if n <= 8 * MIB => decode_limited::<T, { 16 * MIB }>(bytes),
        n if n <= 64 * MIB => decode_limited::<T, { 128 * MIB }>(bytes),
        n if n <= 512 * MIB => decode_limited::<T, { 1024 * MIB }>(bytes),
        _ => decode_limited::<T, { u32::MAX as usize }>(bytes),
    }?;
    if read != bytes.len() {
        return Err(CodecError::Trailing(bytes.len() - read));
    }
    Ok(value)
}

/// Decodes a [`RequestView`] that must fill `bytes` exactly, borrowing its names and bytes from
/// `bytes` (nothing is allocated for it, so no length needs a cap beyond the message's own).
///
/// # Errors
/// [`CodecError::Decode`] for malformed bytes, [`CodecError::Trailing`] for leftovers.
pub fn decode_request_view(bytes: &[u8]) -> Result<RequestView<'_>, CodecError> {
    let (value, read) =
        bincode::serde::borrow_decode_from_slice(bytes, config::<{ u32::MAX as usize }>())
            .map_err(|e| CodecError::Decode(e.to_string()))?;
    if read != bytes.len() {
        return Err(CodecError::Trailing(bytes.len() - read));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::failure::TaskFailure;
    use crate::protocol::{Execute, Outcome, Request, Response};

    #[test]
    fn round_trips() {
        let req = Request::Execute(Execute {
            package: "p".into(),
            function: "f".into(),
            context: vec![1, 2],
            inputs: vec![0; 1000],
        });
        let mut buf = Vec::new();
        encode_into(&req, &mut buf).unwrap();
        assert!(
            buf.len() < 1020,
            "bytes are encoded compactly: {}",
            buf.len()
        );
        assert_eq!(decode::<Request>(&buf).unwrap(), req);
        for outcome in [
            Outcome::Success(vec![9]),
            Outcome::Failure(TaskFailure::Timeout { after_ms: 5 }),
        ] {
            let resp = Response::Result {
                outcome,
                elapsed_ns: 42,
            };
            let mut buf = Vec::new();
            encode_into(&resp, &mut buf).unwrap();
            assert_eq!(decode::<Response>(&buf).unwrap(), resp);
        }
    }

    #[test]
    fn borrowed_requests_encode_like_owned_ones() {
        use crate::protocol::RequestRef;
        let e = Execute {
            package: "p".into(),
            function: "f".into(),
            context: vec![1],
            inputs: vec![2; 300],
        };
        let (mut owned, mut borrowed) = (Vec::new(), Vec::new());
        encode_into(&Request::Execute(e.clone()), &mut owned).unwrap();
        encode_into(&RequestRef::Execute(&e), &mut borrowed).unwrap();
        assert_eq!(owned, borrowed);
        let (mut owned, mut borrowed) = (Vec::new(), Vec::new());
        encode_into(&Request::Shutdown, &mut owned).unwrap();
        encode_into(&RequestRef::Shutdown, &mut borrowed).unwrap();
        assert_eq!(owned, borrowed);
    }

    #[test]
    fn request_views_decode_what_requests_encode() {
        use crate::protocol::RequestView;
        let e = Execute {
            package: "pkg".into(),
            function: "fn".into(),
            context: vec![1, 2, 3],
            inputs: vec![7; 5000],
        };
        let mut buf = Vec::new();
        encode_into(&Request::Execute(e.clone()), &mut buf).unwrap();
        let RequestView::Execute(view) = decode_request_view(&buf).unwrap() else {
            panic!("an execute");
        };
        assert_eq!(view.to_execute(), e);
        assert!(
            std::ptr::eq(view.inputs.as_ptr(), &raw const buf[buf.len() - 5000]),
            "the inputs are borrowed, not copied"
        );
        buf.clear();
        encode_into(&Request::Shutdown, &mut buf).unwrap();
        assert_eq!(decode_request_view(&buf).unwrap(), RequestView::Shutdown);
        buf.push(0);
        assert!(matches!(
            decode_request_view(&buf),
            Err(CodecError::Trailing(1))
        ));
        // A package name claiming more bytes than the message has.
        let bytes = [0u8, 0xfd, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x0f];
        assert!(decode_request_view(&bytes).is_err());
        // A package name that is not UTF-8.
        let bytes = [0u8, 1, 0xff, 1, b'f', 0, 0];
        assert!(decode_request_view(&bytes).is_err());
    }

    #[test]
    fn corrupt_input_is_an_error_not_an_abort() {
        // An Execute whose package-name length claims far more bytes than exist.
        let bytes = [0u8, 0xfd, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x0f];
        assert!(decode::<Request>(&bytes).is_err());
        let mut buf = Vec::new();
        encode_into(&Request::Shutdown, &mut buf).unwrap();
        buf.push(0);
        assert!(matches!(
            decode::<Request>(&buf),
            Err(CodecError::Trailing(1))
        ));
        // Inputs claiming 2^60 bytes.
        let mut buf = vec![0u8, 1, b'p', 1, b'f', 0];
        buf.extend_from_slice(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0x10]);
        assert!(decode::<Request>(&buf).is_err());
    }
}
