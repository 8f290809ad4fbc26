//! Task outputs kept in memory for the tasks that still read them, under one byte budget shared
//! by every job of a storage service. A completion is in the database before any child reads it,
//! so memory is only a cache: an output that does not fit the budget, or that no unfinished
//! child reads any more, is dropped from memory and read back from the database if it is needed
//! again (a retried child, the job outputs, the commit task).

use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Bytes an output costs in memory beyond its frame: the range of each value, the frame's vector.
const OVERHEAD_PER_VALUE: u64 = 24;

/// A byte budget shared by every job of one storage service (task outputs held for their
/// readers; the memory of running jobs). Cheap to clone.
#[derive(Debug, Clone)]
pub struct OutputBudget {
    inner: Arc<Counter>,
}

#[derive(Debug)]
struct Counter {
    limit: u64,
    used: AtomicU64,
}

impl OutputBudget {
    /// A budget of `limit_bytes`.
    #[must_use]
    pub fn new(limit_bytes: u64) -> Self {
        Self {
            inner: Arc::new(Counter {
                limit: limit_bytes,
                used: AtomicU64::new(0),
            }),
        }
    }

    /// Bytes held now.
    #[must_use]
    pub fn used(&self) -> u64 {
        self.inner.used.load(Ordering::Relaxed)
    }

    /// The budget's size.
    #[must_use]
    pub fn limit(&self) -> u64 {
        self.inner.limit
    }

    /// Reserves `bytes` whether or not they fit (what is already in memory, e.g. jobs recovered
    /// after a restart); the reservation ends when the [`Charge`] drops.
    #[must_use]
    pub fn charge(&self, bytes: u64) -> Charge {
        self.inner.used.fetch_add(bytes, Ordering::Relaxed);
        Charge {
            counter: self.inner.clone(),
            bytes,
        }
    }

    /// Reserves `bytes` if they fit; the reservation ends when the [`Charge`] drops.
    #[must_use]
    pub fn try_charge(&self, bytes: u64) -> Option<Charge> {
        let counter = &self.inner;
        counter
            .used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                used.checked_add(bytes).filter(|&n| n <= counter.limit)
            })
            .ok()?;
        Some(Charge {
            counter: counter.clone(),
            bytes,
        })
    }
}

impl Default for OutputBudget {
    /// No limit: for tests and tools that build a job on its own.
    fn default() -> Self {
        Self::new(u64::MAX)
    }
}

/// Bytes reserved in an [`OutputBudget`] until dropped.
#[derive(Debug)]
pub struct Charge {
    counter: Arc<Counter>,
    bytes: u64,
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.counter.used.fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

/// A task's output values: slices of its outputs frame, which they share with the completion
/// being written to the database (one copy of the bytes in memory, not two).
#[derive(Debug, Clone, Default)]
pub struct Values {
    frame: Arc<Vec<u8>>,
    ranges: Vec<Range<usize>>,
}

impl Values {
    /// The values at `ranges` of `frame`.
    pub(super) fn new(frame: Arc<Vec<u8>>, ranges: Vec<Range<usize>>) -> Self {
        Self { frame, ranges }
    }

    /// How many values.
    #[must_use]
    pub fn len(&self) -> usize {
        self.ranges.len()
    }

    /// Whether there are none.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Value `position`.
    #[must_use]
    pub fn get(&self, position: usize) -> Option<&[u8]> {
        self.frame.get(self.ranges.get(position)?.clone())
    }

    /// Bytes they cost in memory: the frame and the ranges.
    fn cost(&self) -> u64 {
        self.ranges.len() as u64 * OVERHEAD_PER_VALUE + self.frame.len() as u64 + OVERHEAD_PER_VALUE
    }
}

/// Where one task's outputs are.
#[derive(Debug, Default)]
pub(super) enum Output {
    /// Not produced yet.
    #[default]
    Missing,
    /// In memory (and, once persisted, in the database).
    Held { values: Values, _charge: Charge },
    /// Only in the database.
    Stored,
}

impl Output {
    /// Keeps `values` in memory if the budget has room, else records them as stored.
    pub(super) fn keep(values: Values, budget: &OutputBudget) -> Self {
        match budget.try_charge(values.cost()) {
            Some(charge) => Self::Held {
                values,
                _charge: charge,
            },
            None => Self::Stored,
        }
    }

    /// Drops held values from memory (they are in the database).
    pub(super) fn evict(&mut self) {
        if matches!(self, Self::Held { .. }) {
            *self = Self::Stored;
        }
    }

    /// Whether the task's outputs exist (held or stored).
    pub(super) fn is_present(&self) -> bool {
        !matches!(self, Self::Missing)
    }

    /// Output `position`, if held in memory.
    pub(super) fn held(&self, position: usize) -> Option<&[u8]> {
        match self {
            Self::Held { values, .. } => values.get(position),
            _ => None,
        }
    }
}

/// One value of an inputs (or job outputs) frame being assembled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    /// The value's bytes.
    Value(Vec<u8>),
    /// Output `output` of regular task `task`, to read from the database.
    Stored {
        /// The task.
        task: u64,
        /// The output position.
        output: usize,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One value of `len` bytes, filling its frame.
    fn one(len: usize) -> Values {
        Values::new(Arc::new(vec![0; len]), std::iter::once(0..len).collect())
    }

    #[test]
    fn values_are_slices_of_the_frame() {
        let v = Values::new(Arc::new(vec![1, 2, 3, 4]), vec![1..2, 2..4]);
        assert_eq!(
            (v.len(), v.get(0), v.get(1), v.get(2)),
            (2, Some(&[2][..]), Some(&[3, 4][..]), None)
        );
    }

    #[test]
    fn charges_are_returned_on_drop() {
        let budget = OutputBudget::new(1000);
        let a = Output::keep(one(400), &budget);
        assert!(matches!(a, Output::Held { .. }));
        assert_eq!(budget.used(), 400 + 2 * OVERHEAD_PER_VALUE);
        let b = Output::keep(one(600), &budget);
        assert!(matches!(b, Output::Stored), "over budget");
        let mut a = a;
        a.evict();
        assert_eq!(budget.used(), 0);
        let c = Output::keep(one(600), &budget);
        assert_eq!(c.held(0).map(<[u8]>::len), Some(600));
        drop(c);
        assert_eq!(budget.used(), 0);
    }
}
