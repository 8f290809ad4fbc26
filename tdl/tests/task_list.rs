//! The task list `package!` builds at compile time from the `#[task]` signatures, and the native
//! `silk_package_tasks` export that hands it out (the wasm export is covered by the executor's
//! tests on the staged packages).

use silk_tdl::{TaskContext, TdlError, task};

/// One input, one output.
#[task]
fn fibonacci(_ctx: TaskContext, n: u64) -> Result<u64, TdlError> {
    Ok(n)
}

/// No inputs, no outputs, a name with characters JSON must escape.
#[task(name = "ns::\"quoted\"")]
fn quoted(_ctx: &TaskContext) -> Result<(), TdlError> {
    Ok(())
}

/// Two inputs, a tuple of two outputs.
#[task]
fn split(
    _ctx: TaskContext,
    words: Vec<String>,
    r#type: Option<u8>,
) -> Result<(Vec<String>, std::collections::HashMap<String, u64>), TdlError> {
    let _ = r#type;
    Ok((words, std::collections::HashMap::new()))
}

silk_tdl::package! { name: "listed", tasks: [fibonacci, quoted, split] }

const EXPECTED: &str = concat!(
    r#"{"version":1,"tasks":["#,
    r#"{"name":"fibonacci","inputs":[{"name":"n","type":"u64"}],"outputs":["u64"]},"#,
    r#"{"name":"ns::\"quoted\"","inputs":[],"outputs":[]},"#,
    r#"{"name":"split","inputs":[{"name":"words","type":"Vec<String>"},{"name":"type","type":"Option<u8>"}],"#,
    r#""outputs":["Vec<String>","std::collections::HashMap<String, u64>"]}"#,
    "]}"
);

#[test]
fn task_list_of_the_package() {
    assert_eq!(SILK_PACKAGE_TASK_LIST, EXPECTED);
    assert_eq!(
        <split as silk_tdl::Task>::SIGNATURE,
        r#"{"name":"split","inputs":[{"name":"words","type":"Vec<String>"},{"name":"type","type":"Option<u8>"}],"outputs":["Vec<String>","std::collections::HashMap<String, u64>"]}"#
    );
}

#[test]
fn native_export_hands_out_the_static_list() {
    let list = silk_package_tasks();
    // SAFETY: the export returns a view of a static string of this test binary.
    let bytes = unsafe { list.as_slice() };
    assert_eq!(bytes, EXPECTED.as_bytes());
    assert_eq!(
        list.ptr,
        SILK_PACKAGE_TASK_LIST.as_ptr(),
        "static, not a copy"
    );
}
