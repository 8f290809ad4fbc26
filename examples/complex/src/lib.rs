//! The `complex` example package: arithmetic on vectors of complex numbers.
//!
//! A complex number travels as a two-element array `[re, im]`, so on the command line:
//!
//! ```text
//! silk task run --package target/packages/libcomplex.so --task add --inputs '[[[1,2]], [[10,20]]]'
//! [[[11.0,22.0]]]
//! ```

use serde::{Deserialize, Serialize};
use silk_tdl::{TaskContext, TdlError, task};

/// A complex number `re + im·i`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Complex {
    /// Real part.
    pub re: f64,
    /// Imaginary part.
    pub im: f64,
}

impl Complex {
    /// `re + im·i`.
    #[must_use]
    pub const fn new(re: f64, im: f64) -> Self {
        Self { re, im }
    }

    fn mul(self, o: Self) -> Self {
        Self::new(
            self.re * o.re - self.im * o.im,
            self.re * o.im + self.im * o.re,
        )
    }
}

fn same_len(task: &str, a: &[Complex], b: &[Complex]) -> Result<(), TdlError> {
    if a.len() == b.len() {
        Ok(())
    } else {
        Err(TdlError::Execution(format!(
            "{task}: length mismatch: {} vs {}",
            a.len(),
            b.len()
        )))
    }
}

/// Element-wise `a + b`.
#[task]
pub fn add(_ctx: TaskContext, a: Vec<Complex>, b: Vec<Complex>) -> Result<Vec<Complex>, TdlError> {
    same_len("add", &a, &b)?;
    Ok(a.iter()
        .zip(&b)
        .map(|(x, y)| Complex::new(x.re + y.re, x.im + y.im))
        .collect())
}

/// Element-wise `a - b`.
#[task]
pub fn sub(_ctx: TaskContext, a: Vec<Complex>, b: Vec<Complex>) -> Result<Vec<Complex>, TdlError> {
    same_len("sub", &a, &b)?;
    Ok(a.iter()
        .zip(&b)
        .map(|(x, y)| Complex::new(x.re - y.re, x.im - y.im))
        .collect())
}

/// `Σ aᵢ·bᵢ` (no conjugation).
#[task]
pub fn dot_product(
    _ctx: TaskContext,
    a: Vec<Complex>,
    b: Vec<Complex>,
) -> Result<Complex, TdlError> {
    same_len("dot_product", &a, &b)?;
    Ok(a.iter()
        .zip(&b)
        .fold(Complex::new(0.0, 0.0), |acc, (x, y)| {
            let p = x.mul(*y);
            Complex::new(acc.re + p.re, acc.im + p.im)
        }))
}

/// The cross product of two 3-vectors.
#[task]
pub fn cross_product(
    _ctx: TaskContext,
    a: Vec<Complex>,
    b: Vec<Complex>,
) -> Result<Vec<Complex>, TdlError> {
    if a.len() != 3 || b.len() != 3 {
        return Err(TdlError::Execution(format!(
            "cross_product: needs two vectors of length 3, got lengths {} and {}",
            a.len(),
            b.len()
        )));
    }
    let d = |x: Complex, y: Complex, z: Complex, w: Complex| {
        let (p, q) = (x.mul(y), z.mul(w));
        Complex::new(p.re - q.re, p.im - q.im)
    };
    Ok(vec![
        d(a[1], b[2], a[2], b[1]),
        d(a[2], b[0], a[0], b[2]),
        d(a[0], b[1], a[1], b[0]),
    ])
}

/// Always fails with a custom error.
#[task]
pub fn always_fail(_ctx: TaskContext) -> Result<(), TdlError> {
    Err(TdlError::Custom(
        "complex::always_fail: intentional failure".into(),
    ))
}

silk_tdl::package! {
    name: "complex",
    tasks: [add, sub, dot_product, cross_product, always_fail],
}
