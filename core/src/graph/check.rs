//! Checks a MessagePack value against a declared [`TypeDesc`] — what storage does to every job
//! input at submit, so a value of the wrong type is refused with its position, the type
//! expected and what was given, before any task runs. Accepts what the task packages' decoders
//! accept: any integer marker in range for integers, integers for floats, bin or UTF-8 str for
//! strings and bytes, an array of bytes for bytes; a struct is not looked into. Streams: memory
//! does not grow with the value; recursion follows the type's depth, not the value's.

use super::TypeDesc;
use crate::msgpack::{Item, Reader};

/// Checks that `bytes` are one value of type `ty`; the error says where and why not.
///
/// # Errors
/// A readable reason: the path inside the value (`[3]`, `{"key"}`), the type expected, what was
/// found.
pub fn check_value(ty: &TypeDesc, bytes: &[u8]) -> Result<(), String> {
    let mut r = Reader::new(bytes);
    check(ty, &mut r)?;
    match r.left() {
        0 => Ok(()),
        n => Err(format!("{n} byte(s) after the value")),
    }
}

fn check(ty: &TypeDesc, r: &mut Reader<'_>) -> Result<(), String> {
    use TypeDesc as T;
    let item = r.item()?;
    let ok = match (ty, &item) {
        (T::Int8 | T::Int16 | T::Int32 | T::Int64, Item::Uint(n)) => {
            i64::try_from(*n).is_ok_and(|n| fits(ty, n))
        }
        (T::Int8 | T::Int16 | T::Int32 | T::Int64, Item::Int(n)) => fits(ty, *n),
        (T::Float32 | T::Float64, Item::Float(_) | Item::Uint(_) | Item::Int(_))
        | (T::Bool, Item::Bool(_))
        | (T::Bytes, Item::Bin(_) | Item::Str(_)) => true,
        (T::String, Item::Str(s) | Item::Bin(s)) => std::str::from_utf8(s).is_ok(),
        (T::Bytes, Item::Array(n)) => {
            for i in 0..*n {
                match r.item()? {
                    Item::Uint(0..=255) => {}
                    other => {
                        return Err(format!(
                            "[{i}]: expected a byte (0 to 255), got {}",
                            describe(&other)
                        ));
                    }
                }
            }
            true
        }
        (T::List(element), Item::Array(n)) => {
            for i in 0..*n {
                check(element, r).map_err(|e| format!("[{i}]{}", sep(&e)))?;
            }
            true
        }
        (T::Map { key, value }, Item::Map(n)) => {
            for i in 0..*n {
                check(key, r).map_err(|e| format!("key {i}{}", sep(&e)))?;
                check(value, r).map_err(|e| format!("value of key {i}{}", sep(&e)))?;
            }
            true
        }
        (T::Struct(_), _) => {
            skip_rest(&item, r)?;
            true
        }
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(format!("expected {ty}, got {}", describe(&item)))
    }
}

/// `": e"` for a nested error, so paths read `[3]: expected int64, got …`.
fn sep(e: &str) -> String {
    if e.starts_with('[') || e.starts_with("key") || e.starts_with("value") {
        e.to_owned()
    } else {
        format!(": {e}")
    }
}

/// Whether integer `n` is in range of integer type `ty`.
fn fits(ty: &TypeDesc, n: i64) -> bool {
    match ty {
        TypeDesc::Int8 => i8::try_from(n).is_ok(),
        TypeDesc::Int16 => i16::try_from(n).is_ok(),
        TypeDesc::Int32 => i32::try_from(n).is_ok(),
        _ => true,
    }
}

/// Reads past the elements of a container whose header `item` was just read (nothing for a
/// scalar), without recursion.
fn skip_rest(item: &Item<'_>, r: &mut Reader<'_>) -> Result<(), String> {
    let mut owed = match item {
        Item::Array(n) => *n,
        Item::Map(n) => n.saturating_mul(2),
        _ => 0,
    };
    while owed > 0 {
        owed -= 1;
        match r.item()? {
            Item::Array(n) => owed = owed.saturating_add(n),
            Item::Map(n) => owed = owed.saturating_add(n.saturating_mul(2)),
            _ => {}
        }
    }
    Ok(())
}

/// What a value is, for an error: its kind and, for short scalars, the value.
fn describe(item: &Item<'_>) -> String {
    match item {
        Item::Nil => "null".into(),
        Item::Bool(b) => format!("the boolean {b}"),
        Item::Uint(n) => format!("the integer {n}"),
        Item::Int(n) => format!("the integer {n}"),
        Item::Float(f) => format!("the float {f}"),
        Item::Str(s) => match std::str::from_utf8(s) {
            Ok(s) if s.len() <= 40 => format!("the string {s:?}"),
            _ => format!("a string of {} bytes", s.len()),
        },
        Item::Bin(b) => format!("{} bytes", b.len()),
        Item::Ext(tag) => format!("a MessagePack extension (type {tag})"),
        Item::Array(n) => format!("an array of {n}"),
        Item::Map(n) => format!("a map of {n}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mp<T: serde::Serialize>(v: &T) -> Vec<u8> {
        rmp_serde::to_vec(v).unwrap()
    }

    fn ty(json: &str) -> TypeDesc {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn accepts_what_decoders_accept() {
        let int64 = ty(r#""int64""#);
        assert_eq!(check_value(&int64, &mp(&7)), Ok(()));
        assert_eq!(check_value(&int64, &mp(&-7)), Ok(()));
        assert_eq!(check_value(&ty(r#""float64""#), &mp(&2)), Ok(()));
        assert_eq!(check_value(&ty(r#""float32""#), &mp(&2.5)), Ok(()));
        assert_eq!(check_value(&ty(r#""string""#), &mp(&"hi")), Ok(()));
        assert_eq!(check_value(&ty(r#""bytes""#), &mp(&vec![1u8, 255])), Ok(()));
        let lists = ty(r#"{"list": {"list": "int8"}}"#);
        assert_eq!(check_value(&lists, &mp(&vec![vec![1, -2], vec![]])), Ok(()));
        let map = ty(r#"{"map": {"key": "string", "value": "bool"}}"#);
        let m: std::collections::BTreeMap<&str, bool> = [("a", true)].into();
        assert_eq!(check_value(&map, &mp(&m)), Ok(()));
        let any = ty(r#"{"struct": "Complex"}"#);
        assert_eq!(check_value(&any, &mp(&(1.0, vec![[1, 2]]))), Ok(()));
    }

    #[test]
    fn says_where_and_what() {
        let e = check_value(&ty(r#""int64""#), &mp(&"7")).unwrap_err();
        assert_eq!(e, r#"expected int64, got the string "7""#);
        let e = check_value(&ty(r#""int8""#), &mp(&300)).unwrap_err();
        assert_eq!(e, "expected int8, got the integer 300");
        let e = check_value(&ty(r#"{"list": "float64"}"#), &mp(&(1.0, "x"))).unwrap_err();
        assert_eq!(e, r#"[1]: expected float64, got the string "x""#);
        let e = check_value(
            &ty(r#"{"list": {"list": "bool"}}"#),
            &mp(&vec![vec![true], vec![false, true, true]]),
        );
        assert_eq!(e, Ok(()));
        let e = check_value(&ty(r#"{"list": {"list": "bool"}}"#), &mp(&vec![vec![1]])).unwrap_err();
        assert_eq!(e, "[0][0]: expected bool, got the integer 1");
        let e = check_value(&ty(r#""bytes""#), &mp(&vec![1, 256])).unwrap_err();
        assert_eq!(e, "[1]: expected a byte (0 to 255), got the integer 256");
        assert!(
            check_value(&ty(r#""int64""#), &[0x01, 0x02])
                .unwrap_err()
                .contains("after the value")
        );
        assert!(
            check_value(&ty(r#"{"list": "int64"}"#), &[0xdd, 0xff, 0xff, 0xff, 0xff])
                .unwrap_err()
                .contains("truncated")
        );
        assert!(
            check_value(&ty(r#""int64""#), &[0xc0])
                .unwrap_err()
                .contains("got null")
        );
    }
}
