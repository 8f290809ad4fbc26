//! The `Task` trait that `#[task]` implements, and the helpers its expansion calls.

use crate::context::TaskContext;
use crate::error::TdlError;
use crate::frame::{self, FrameWriter};

/// A task that a package can dispatch by name. Implemented by `#[task]`; not meant to be written
/// by hand.
pub trait Task {
    /// The task's name within its package.
    const NAME: &'static str;

    /// The task's entry in the package's task list: a JSON object with its name, its inputs
    /// (parameter names and Rust types) and its output types, e.g.
    /// `{"name":"fibonacci","inputs":[{"name":"n","type":"u64"}],"outputs":["u64"]}`.
    const SIGNATURE: &'static str;

    /// Decodes the input frame, runs the task and frames its outputs.
    ///
    /// # Errors
    /// [`TdlError::Deserialization`] for bad inputs, whatever the task returns, and
    /// [`TdlError::Serialization`] when an output cannot be encoded.
    fn call(ctx: TaskContext, inputs: &[u8]) -> Result<Vec<u8>, TdlError>;
}

/// The type-erased entry of a task, as stored in a package's dispatch table.
pub type TaskFn = fn(TaskContext, &[u8]) -> Result<Vec<u8>, TdlError>;

/// Checks at compile time that no two tasks of a package share a name (used by `package!`).
///
/// # Panics
/// At compile time (in a `const` item), when two names are equal.
pub const fn assert_unique_names(names: &[&str]) {
    let mut i = 0;
    while i < names.len() {
        let mut j = i + 1;
        while j < names.len() {
            assert!(
                !str_eq(names[i], names[j]),
                "silk_tdl::package!: two tasks of this package have the same name"
            );
            j += 1;
        }
        i += 1;
    }
}

const fn str_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// The start of a task list; the version is [`TASK_LIST_VERSION`](crate::abi::TASK_LIST_VERSION).
const TASK_LIST_HEAD: &str = "{\"version\":1,\"tasks\":[";
const TASK_LIST_TAIL: &str = "]}";
const _: () = assert!(crate::abi::TASK_LIST_VERSION == 1, "update TASK_LIST_HEAD");

/// Length in bytes of the task list made of `signatures` (used by `package!`).
#[must_use]
pub const fn task_list_len(signatures: &[&str]) -> usize {
    let mut len = TASK_LIST_HEAD.len() + TASK_LIST_TAIL.len();
    let mut i = 0;
    while i < signatures.len() {
        if i > 0 {
            len += 1;
        }
        len += signatures[i].len();
        i += 1;
    }
    len
}

const fn put(out: &mut [u8], at: usize, s: &str) -> usize {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        out[at + i] = b[i];
        i += 1;
    }
    at + b.len()
}

/// The task list made of `signatures`, at compile time (used by `package!`; `N` is
/// [`task_list_len`] of the same signatures).
///
/// # Panics
/// At compile time (in a `const` item), when `N` is not that length.
#[must_use]
pub const fn task_list_bytes<const N: usize>(signatures: &[&str]) -> [u8; N] {
    assert!(
        N == task_list_len(signatures),
        "task_list_bytes: wrong length"
    );
    let mut out = [0u8; N];
    let mut at = put(&mut out, 0, TASK_LIST_HEAD);
    let mut i = 0;
    while i < signatures.len() {
        if i > 0 {
            at = put(&mut out, at, ",");
        }
        at = put(&mut out, at, signatures[i]);
        i += 1;
    }
    put(&mut out, at, TASK_LIST_TAIL);
    out
}

/// The task list as text (used by `package!`).
///
/// # Panics
/// At compile time (in a `const` item), when `bytes` is not UTF-8, which cannot happen for
/// the output of [`task_list_bytes`] (a concatenation of `str`s).
#[must_use]
pub const fn task_list_str(bytes: &'static [u8]) -> &'static str {
    match std::str::from_utf8(bytes) {
        Ok(s) => s,
        Err(_) => panic!("task list is not UTF-8"),
    }
}

/// Looks a task up in a dispatch table and calls it.
///
/// # Errors
/// [`TdlError::TaskNotFound`] for an unknown name, otherwise whatever the task returns.
pub fn dispatch(
    table: &[(&str, TaskFn)],
    name: &str,
    ctx: TaskContext,
    inputs: &[u8],
) -> Result<Vec<u8>, TdlError> {
    let (_, f) = table
        .iter()
        .find(|(n, _)| *n == name)
        .ok_or_else(|| TdlError::TaskNotFound(not_found(table, name)))?;
    f(ctx, inputs)
}

/// Most task names an unknown-task error lists.
const LISTED_TASKS: usize = 20;

/// What an unknown-task error says: the name asked for, the package's tasks and the closest
/// one when it is a likely typo.
fn not_found(table: &[(&str, TaskFn)], name: &str) -> String {
    let mut names: Vec<&str> = table.iter().map(|(n, _)| *n).collect();
    names.sort_unstable();
    let mut out = format!("{name:?}; the package's tasks: ");
    if names.is_empty() {
        out.push_str("none");
    }
    out.push_str(&names[..names.len().min(LISTED_TASKS)].join(", "));
    if names.len() > LISTED_TASKS {
        out.push_str(&format!(" and {} more", names.len() - LISTED_TASKS));
    }
    let near = names
        .iter()
        .map(|n| (edit_distance(n, name), *n))
        .filter(|&(d, n)| d <= (n.len().max(name.len()) / 3).max(1))
        .min();
    if let Some((_, n)) = near {
        out.push_str(&format!("; did you mean {n:?}?"));
    }
    out
}

/// Levenshtein distance of two short names (bytes).
fn edit_distance(a: &str, b: &str) -> usize {
    let b = b.as_bytes();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, &ca) in a.as_bytes().iter().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (diagonal + usize::from(ca != cb))
                .min(above + 1)
                .min(row[j] + 1);
            diagonal = above;
        }
    }
    row[b.len()]
}

/// Marks the types a `#[task]` accepts as its first parameter.
#[diagnostic::on_unimplemented(
    message = "the first parameter of a #[task] function must be `silk_tdl::TaskContext`, found `{Self}`",
    label = "expected `TaskContext` or `&TaskContext`"
)]
pub trait IsTaskContext {}
impl IsTaskContext for TaskContext {}
impl IsTaskContext for &TaskContext {}

/// Compile-time check emitted by `#[task]` for its first parameter.
pub const fn assert_context<T: IsTaskContext + ?Sized>() {}

/// Splits a task's input frame, checking the count against the task's parameters.
///
/// # Errors
/// [`TdlError::Deserialization`] naming what is wrong with the frame.
pub fn split_inputs<'a>(
    task: &str,
    inputs: &'a [u8],
    expected: usize,
) -> Result<Vec<&'a [u8]>, TdlError> {
    frame::decode_exact(inputs, expected)
        .map_err(|e| TdlError::Deserialization(format!("{task}: inputs: {e}")))
}

/// Decodes one input of a task; `ty` is the parameter's type as written in the source.
///
/// # Errors
/// [`TdlError::Deserialization`] naming the input (position and parameter), the task, the type
/// expected and what was given, e.g. ``input 0 (`a`) of add: expected i64, got the string "7"``.
pub fn input<T: serde::de::DeserializeOwned>(
    task: &str,
    bytes: &[u8],
    position: usize,
    param: &str,
    ty: &str,
) -> Result<T, TdlError> {
    rmp_serde::from_slice(bytes).map_err(|e| {
        TdlError::Deserialization(crate::mismatch::input_error(
            task, position, param, ty, bytes, &e,
        ))
    })
}

/// Encodes one output of a task into its output frame.
///
/// # Errors
/// [`TdlError::Serialization`] naming the task and the output position.
pub fn output<T: serde::Serialize + ?Sized>(
    task: &str,
    w: &mut FrameWriter,
    value: &T,
    position: usize,
) -> Result<(), TdlError> {
    let bytes = rmp_serde::to_vec(value)
        .map_err(|e| TdlError::Serialization(format!("{task}: output {position}: {e}")))?;
    w.push_raw(&bytes)
        .map_err(|e| TdlError::Serialization(format!("{task}: output {position}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_names_pass() {
        assert_unique_names(&["a", "b", "ab"]);
    }

    #[test]
    #[should_panic(expected = "same name")]
    fn duplicate_names_fail() {
        assert_unique_names(&["a", "b", "a"]);
    }

    #[test]
    fn task_list_joins_signatures() {
        const SIGS: &[&str] = &["{\"a\":1}", "{\"b\":2}"];
        const BYTES: [u8; task_list_len(SIGS)] = task_list_bytes(SIGS);
        assert_eq!(
            task_list_str(&BYTES),
            r#"{"version":1,"tasks":[{"a":1},{"b":2}]}"#
        );
        const NONE: [u8; task_list_len(&[])] = task_list_bytes(&[]);
        assert_eq!(task_list_str(&NONE), r#"{"version":1,"tasks":[]}"#);
    }

    #[test]
    fn unknown_task_is_not_found() {
        let table: &[(&str, TaskFn)] = &[("x", |_, _| Ok(vec![]))];
        assert_eq!(
            dispatch(table, "y", TaskContext::standalone(), &[]),
            Err(TdlError::TaskNotFound(
                r#""y"; the package's tasks: x; did you mean "x"?"#.into()
            ))
        );
        let named: &[(&str, TaskFn)] = &[
            ("add", |_, _| Ok(vec![])),
            ("sub", |_, _| Ok(vec![])),
            ("divmod", |_, _| Ok(vec![])),
        ];
        let e = dispatch(named, "addd", TaskContext::standalone(), &[]).unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"task not found: "addd"; the package's tasks: add, divmod, sub; did you mean "add"?"#
        );
        let e = dispatch(named, "fibonacci", TaskContext::standalone(), &[]).unwrap_err();
        assert!(!e.to_string().contains("did you mean"), "{e}");
        assert_eq!(
            dispatch(table, "x", TaskContext::standalone(), &[]),
            Ok(vec![])
        );
    }
}
