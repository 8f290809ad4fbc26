//! Bounded label values. Package names come from task graphs (any client may name any package),
//! so metrics keyed by package label only names the service admits (an EM: packages it has a
//! file for), at most [`MAX_PACKAGES`] of them, and fold the rest into [`OTHER`]: made-up names
//! can neither grow the label set nor crowd real packages out of it. Each value's metric handles
//! are built once, when the value is first seen; hot paths keep a per-thread [`LocalCache`] of
//! them and take no lock per task.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Most distinct package names a service labels metrics with.
pub const MAX_PACKAGES: usize = 64;
/// The label value of everything past the bound.
pub const OTHER: &str = "other";

type Make<T> = dyn Fn(&str) -> T + Send + Sync;
type Admit = dyn Fn(&str) -> bool + Send + Sync;

/// Handles per label value, at most `cap` admitted values plus [`OTHER`].
pub struct Bounded<T> {
    cap: usize,
    make: Box<Make<T>>,
    admit: Box<Admit>,
    known: Mutex<HashMap<String, Arc<T>>>,
}

impl<T> std::fmt::Debug for Bounded<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bounded")
            .field("cap", &self.cap)
            .finish_non_exhaustive()
    }
}

impl<T> Bounded<T> {
    /// At most `cap` values, each one `admit` accepts; `make` builds the handles of one value
    /// (called once per value).
    pub fn new(
        cap: usize,
        admit: impl Fn(&str) -> bool + Send + Sync + 'static,
        make: impl Fn(&str) -> T + Send + Sync + 'static,
    ) -> Self {
        Self {
            cap,
            make: Box::new(make),
            admit: Box::new(admit),
            known: Mutex::new(HashMap::new()),
        }
    }

    /// The handles of `value`, or of [`OTHER`] when it is not admitted or `cap` values are
    /// known.
    pub fn get(&self, value: &str) -> Arc<T> {
        self.resolve(value).0
    }

    /// As [`Self::get`], and whether the answer is final for `value` (false when `value` was
    /// not admitted: a package file may appear later).
    fn resolve(&self, value: &str) -> (Arc<T>, bool) {
        let mut known = crate::storage::lock(&self.known);
        if let Some(h) = known.get(value) {
            return (h.clone(), true);
        }
        // `OTHER` is never counted against the bound, so it always fits.
        let (key, fixed) = if value == OTHER {
            (value, true)
        } else if !(self.admit)(value) {
            (OTHER, false)
        } else if known.len() - usize::from(known.contains_key(OTHER)) < self.cap {
            (value, true)
        } else {
            (OTHER, true)
        };
        if let Some(h) = known.get(key) {
            return (h.clone(), fixed);
        }
        let h = Arc::new((self.make)(key));
        known.insert(key.to_owned(), h.clone());
        (h, fixed)
    }
}

/// A thread's own map from label value to handles, in front of a shared [`Bounded`]: after the
/// first task of a package, a lookup is one hash of the name and no lock.
#[derive(Debug)]
pub struct LocalCache<T> {
    map: HashMap<String, Arc<T>>,
}

impl<T> Default for LocalCache<T> {
    fn default() -> Self {
        Self {
            map: HashMap::new(),
        }
    }
}

impl<T> LocalCache<T> {
    /// The handles of `value`.
    pub fn get(&mut self, shared: &Bounded<T>, value: &str) -> Arc<T> {
        if let Some(h) = self.map.get(value) {
            return h.clone();
        }
        // Only admitted names are remembered (within the bound, and those folded past it).
        let (h, fixed) = shared.resolve(value);
        if fixed {
            self.map.insert(value.to_owned(), h.clone());
        }
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_past_the_bound_fold_into_other() {
        let made = Arc::new(Mutex::new(Vec::new()));
        let log = made.clone();
        let set = Bounded::new(
            2,
            |v: &str| v != "junk",
            move |v: &str| {
                log.lock().unwrap().push(v.to_owned());
                v.to_owned()
            },
        );
        let mut cache = LocalCache::default();
        assert_eq!(*cache.get(&set, "junk"), OTHER, "not admitted");
        assert!(!cache.map.contains_key("junk"), "asked again next time");
        assert_eq!(*cache.get(&set, "a"), "a");
        assert_eq!(*cache.get(&set, "b"), "b");
        assert_eq!(*cache.get(&set, "c"), OTHER);
        assert_eq!(*cache.get(&set, "d"), OTHER);
        assert_eq!(*cache.get(&set, "a"), "a");
        assert_eq!(*set.get(OTHER), OTHER);
        assert_eq!(*made.lock().unwrap(), [OTHER, "a", "b"]);
    }
}
