//! The `hostile` package: tasks that attack the cluster through what they *return* rather than
//! through what they do inside the sandbox — outputs, error and panic messages of many MiB,
//! values that amplify when decoded, nesting deeper than any decoder's stack. Every size is an
//! input, so one package serves every limit a test sets. Built as a native `.so` and as wasm by
//! `scripts/build-packages`; the containment tests drive it through real clusters.

use serde::ser::{Serialize, SerializeSeq, Serializer};
use silk_tdl::{TaskContext, TdlError, task};

/// A length taken from an input, refused when it does not fit this platform's `usize`.
fn len(task: &str, n: u64) -> Result<usize, TdlError> {
    usize::try_from(n).map_err(|_| TdlError::Execution(format!("{task}: {n} does not fit")))
}

/// Returns a MessagePack array of `count` nils: one byte per element on the wire, one value-tree
/// node per element in a decoder that builds trees.
#[task]
pub fn nil_bomb(_ctx: TaskContext, count: u64) -> Result<Vec<()>, TdlError> {
    Ok(vec![(); len("nil_bomb", count)?])
}

/// Returns a string of `bytes` bytes (`x` repeated).
#[task]
pub fn blob(_ctx: TaskContext, bytes: u64) -> Result<String, TdlError> {
    Ok("x".repeat(len("blob", bytes)?))
}

/// Sleeps until `at_ms` milliseconds past the Unix epoch (so tasks of one job finish together),
/// then returns a string of `bytes` bytes.
#[task]
pub fn blob_at(_ctx: TaskContext, bytes: u64, at_ms: u64) -> Result<String, TdlError> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    std::thread::sleep(std::time::Duration::from_millis(at_ms.saturating_sub(now)));
    Ok("x".repeat(len("blob_at", bytes)?))
}

/// Returns the length of its input: a consumer of large inputs.
#[task]
pub fn length(_ctx: TaskContext, data: String) -> Result<u64, TdlError> {
    Ok(data.len() as u64)
}

/// Fails with an error message of `bytes` bytes.
#[task]
pub fn big_error(_ctx: TaskContext, bytes: u64) -> Result<u64, TdlError> {
    Err(TdlError::Execution("e".repeat(len("big_error", bytes)?)))
}

/// Panics with a message of `bytes` bytes.
#[task]
pub fn big_panic(_ctx: TaskContext, bytes: u64) -> Result<u64, TdlError> {
    let message = "p".repeat(len("big_panic", bytes)?);
    panic!("{message}")
}

/// `depth` one-element arrays, one inside the other, around a 0.
#[derive(Debug)]
pub struct Nested(usize);

impl Serialize for Nested {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.0 == 0 {
            return serializer.serialize_u8(0);
        }
        let mut seq = serializer.serialize_seq(Some(1))?;
        seq.serialize_element(&Nested(self.0 - 1))?;
        seq.end()
    }
}

/// Returns a value nested `depth` arrays deep (a recursive decoder's stack is the target).
/// The encoder recurses too: keep `depth` within what the task's own stack holds (~10 000).
#[task]
pub fn deep(_ctx: TaskContext, depth: u64) -> Result<Nested, TdlError> {
    Ok(Nested(len("deep", depth)?))
}

/// Returns an array header that claims `count` elements and then ends: a decoder that trusts
/// the count allocates for it.
#[task]
pub fn lying_array(_ctx: TaskContext, count: u32) -> Result<LyingArray, TdlError> {
    Ok(LyingArray(count))
}

/// An array header claiming `.0` elements, followed by none.
#[derive(Debug)]
pub struct LyingArray(u32);

impl Serialize for LyingArray {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // A sequence that announces its length and then closes early: rmp-serde writes the
        // header from the announced length and does not check the elements against it.
        let seq = serializer.serialize_seq(Some(self.0 as usize))?;
        seq.end()
    }
}

silk_tdl::package! {
    name: "hostile",
    tasks: [
        nil_bomb,
        blob,
        blob_at,
        length,
        big_error,
        big_panic,
        deep,
        lying_array,
    ],
}
