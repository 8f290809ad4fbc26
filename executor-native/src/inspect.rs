//! `silk-executor-native --inspect PATH`: what the binary prints about a package and the exit
//! code of each class of error. The `silk` CLI (`silk package inspect`) runs this in a child
//! process so that no untrusted native code is ever loaded into the CLI itself.
//!
//! On success the binary prints one JSON object on stdout and exits 0:
//! `{"abi_version":1,"name":"fixtures","task_list":"<the task list JSON, as a string>"}`, with
//! `"task_list":null` when the package does not export one. The task list is passed through as a
//! string (its format is in `silk_tdl::abi`) so that what a package exports can never change the
//! shape of this object. On error it prints `error: <message>` on stderr and exits with
//! [`exit_code`].

use silk_ipc::{InspectError, PackageInfo};

/// Exit code: the file cannot be read.
pub const EXIT_IO: u8 = 1;
/// Exit code: the file is not a silk package (not loadable, or no `silk_abi_version`).
pub const EXIT_NOT_A_PACKAGE: u8 = 3;
/// Exit code: a silk package of another ABI version.
pub const EXIT_ABI_VERSION: u8 = 4;
/// Exit code: a silk package that breaks the ABI (missing symbol, invalid name or task list).
pub const EXIT_INVALID_PACKAGE: u8 = 5;

/// The exit code of `--inspect` for `e`.
#[must_use]
pub fn exit_code(e: &InspectError) -> u8 {
    match e {
        InspectError::Read { .. } => EXIT_IO,
        InspectError::NotAPackage { .. } => EXIT_NOT_A_PACKAGE,
        InspectError::AbiVersion { .. } => EXIT_ABI_VERSION,
        InspectError::Invalid { .. } => EXIT_INVALID_PACKAGE,
    }
}

/// The JSON object `--inspect` prints for `info` (one line, no trailing newline).
#[must_use]
pub fn to_json(info: &PackageInfo) -> String {
    serde_json::json!({
        "name": info.name,
        "abi_version": info.abi_version,
        "task_list": info.task_list,
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::OpenError;

    #[test]
    fn json_escapes_the_task_list() {
        let info = PackageInfo {
            name: "p".into(),
            abi_version: 1,
            task_list: Some("{\"a\":\"\\\n\u{1}é\"}".into()),
        };
        let printed: serde_json::Value = serde_json::from_str(&to_json(&info)).unwrap();
        assert_eq!(
            printed,
            serde_json::json!({"name": "p", "abi_version": 1, "task_list": "{\"a\":\"\\\n\u{1}é\"}"})
        );
        let none = PackageInfo {
            task_list: None,
            ..info
        };
        assert_eq!(
            to_json(&none),
            r#"{"abi_version":1,"name":"p","task_list":null}"#
        );
    }

    #[test]
    fn exit_codes_by_class() {
        let path = PathBuf::from("x");
        let missing = |symbol| {
            InspectError::from(OpenError::MissingSymbol {
                path: path.clone(),
                symbol,
                message: "m".into(),
            })
        };
        let load = InspectError::from(OpenError::Load {
            path: path.clone(),
            message: "m".into(),
        });
        assert_eq!(exit_code(&load), EXIT_NOT_A_PACKAGE);
        assert_eq!(load.to_string(), "x: cannot load: m");
        assert_eq!(exit_code(&missing("silk_abi_version")), EXIT_NOT_A_PACKAGE);
        let abi = OpenError::AbiVersion {
            path: path.clone(),
            found: 9,
        };
        // The shared class says what the native error said.
        assert_eq!(InspectError::from(abi.clone()).to_string(), abi.to_string());
        assert_eq!(exit_code(&abi.into()), EXIT_ABI_VERSION);
        let free = missing("silk_package_free");
        assert_eq!(exit_code(&free), EXIT_INVALID_PACKAGE);
        assert_eq!(free.to_string(), "x: missing symbol `silk_package_free`: m");
        let name = OpenError::InvalidName {
            path: path.clone(),
            message: "m".into(),
        };
        assert_eq!(
            InspectError::from(name.clone()).to_string(),
            name.to_string()
        );
        let list = OpenError::TaskListNotUtf8 { path: path.clone() };
        assert_eq!(
            InspectError::from(list.clone()).to_string(),
            list.to_string()
        );
        assert_eq!(
            exit_code(&InspectError::Read {
                path,
                message: "m".into()
            }),
            EXIT_IO
        );
    }
}
