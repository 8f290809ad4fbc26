//! What a task says when an input does not decode: the input's position and name, the task, the
//! type it expected and what it was given — the same terms as the submit-time check of job
//! inputs — whatever the type, and bounded whatever was sent.

use silk_tdl::frame::FrameWriter;
use silk_tdl::{Task, TaskContext, TdlError, task};

#[derive(serde::Deserialize)]
struct Point {
    x: f64,
    y: f64,
}

#[task]
fn add(_ctx: TaskContext, a: i64, b: i64) -> Result<i64, TdlError> {
    Ok(a + b)
}

#[task]
fn sum(_ctx: TaskContext, xs: Vec<f64>) -> Result<f64, TdlError> {
    Ok(xs.iter().sum())
}

#[task]
fn norm(_ctx: TaskContext, p: Point, label: String) -> Result<f64, TdlError> {
    let _ = label;
    Ok(p.x.hypot(p.y))
}

#[task]
fn small(_ctx: TaskContext, n: u8) -> Result<u8, TdlError> {
    Ok(n)
}

silk_tdl::package! { name: "errors", tasks: [add, sum, norm, small] }

fn frame<T: serde::Serialize>(values: &[T]) -> Vec<u8> {
    let mut w = FrameWriter::new();
    for v in values {
        w.push(v).unwrap();
    }
    w.finish()
}

/// The message of the `Deserialization` error `T` returns for `inputs`.
fn error<T: Task>(inputs: &[u8]) -> String {
    match T::call(TaskContext::standalone(), inputs) {
        Err(TdlError::Deserialization(m)) => m,
        other => panic!("not a Deserialization error: {other:?}"),
    }
}

#[test]
fn a_scalar_of_the_wrong_type_is_named() {
    let inputs = frame(&[rmpv::Value::from(1), rmpv::Value::from("7")]);
    assert_eq!(
        error::<add>(&inputs),
        r#"input 1 (`b`) of add: expected i64, got the string "7""#
    );
    let inputs = frame(&[rmpv::Value::from(1.5), rmpv::Value::from(2)]);
    assert_eq!(
        error::<add>(&inputs),
        "input 0 (`a`) of add: expected i64, got the float 1.5"
    );
    assert_eq!(
        error::<small>(&frame(&[300])),
        "input 0 (`n`) of small: expected u8, got the integer 300"
    );
    assert_eq!(
        error::<small>(&frame(&[-1])),
        "input 0 (`n`) of small: expected u8, got the integer -1"
    );
    assert_eq!(
        error::<small>(&frame(&[()])),
        "input 0 (`n`) of small: expected u8, got null"
    );
}

#[test]
fn a_container_names_what_inside_is_wrong() {
    let inputs = frame(&[vec![rmpv::Value::from(1.0), rmpv::Value::from("x")]]);
    let e = error::<sum>(&inputs);
    assert!(
        e.starts_with("input 0 (`xs`) of sum: expected Vec<f64>, got an array of 2 ("),
        "{e}"
    );
    eprintln!("{e}");
    assert!(e.contains("string"), "says the element is a string: {e}");
    assert!(!e.contains("marker"), "no decoder jargon: {e}");

    let e = error::<sum>(&frame(&["1,2"]));
    assert_eq!(
        e,
        r#"input 0 (`xs`) of sum: expected Vec<f64>, got the string "1,2""#
    );

    let inputs = frame(&[vec![rmpv::Value::from(1.0)], vec![rmpv::Value::from("p")]]);
    let e = error::<norm>(&inputs);
    eprintln!("{e}");
    assert!(
        e.starts_with("input 0 (`p`) of norm: expected Point, got an array of 1 ("),
        "{e}"
    );
}

#[test]
fn messages_stay_short_whatever_was_sent() {
    let huge = "y".repeat(1 << 20);
    let e = error::<add>(&frame(&[huge.as_str(), "1"]));
    assert_eq!(
        e,
        format!(
            "input 0 (`a`) of add: expected i64, got a string of {} bytes",
            1 << 20
        )
    );
    let inputs = frame(&[vec![huge.clone(), huge]]);
    let e = error::<sum>(&inputs);
    eprintln!("{e}");
    assert!(e.len() < 400, "{} bytes: {e}", e.len());
}
