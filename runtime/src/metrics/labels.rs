//! Bounded label values. Package names come from task graphs (any client may name any package),
//! so metrics keyed by package keep at most [`MAX_PACKAGES`] distinct values and fold the rest
//! into [`OTHER`]. Each value's metric handles are built once, when the value is first seen;
//! hot paths keep a per-thread [`LocalCache`] of them and take no lock per task.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Most distinct package names a service labels metrics with.
pub const MAX_PACKAGES: usize = 64;
/// The label value of everything past the bound.
pub const OTHER: &str = "other";

type Make<T> = dyn Fn(&str) -> T + Send + Sync;

/// Handles per label value, at most `cap` values plus [`OTHER`].
pub struct Bounded<T> {
    cap: usize,
    make: Box<Make<T>>,
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
    /// At most `cap` values; `make` builds the handles of one value (called once per value).
    pub fn new(cap: usize, make: impl Fn(&str) -> T + Send + Sync + 'static) -> Self {
        Self {
            cap,
            make: Box::new(make),
            known: Mutex::new(HashMap::new()),
        }
    }

    /// The handles of `value`, or of [`OTHER`] once `cap` values are known.
    pub fn get(&self, value: &str) -> Arc<T> {
        let mut known = crate::storage::lock(&self.known);
        if let Some(h) = known.get(value) {
            return h.clone();
        }
        // `OTHER` is never counted against the bound, so it always fits.
        let key = if known.len() < self.cap || value == OTHER {
            value
        } else {
            OTHER
        };
        if let Some(h) = known.get(key) {
            return h.clone();
        }
        let h = Arc::new((self.make)(key));
        known.insert(key.to_owned(), h.clone());
        h
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
        let h = shared.get(value);
        // Names folded into `other` are not remembered past twice the bound.
        if self.map.len() < shared.cap.saturating_mul(2) {
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
        let set = Bounded::new(2, move |v: &str| {
            log.lock().unwrap().push(v.to_owned());
            v.to_owned()
        });
        let mut cache = LocalCache::default();
        assert_eq!(*cache.get(&set, "a"), "a");
        assert_eq!(*cache.get(&set, "b"), "b");
        assert_eq!(*cache.get(&set, "c"), OTHER);
        assert_eq!(*cache.get(&set, "d"), OTHER);
        assert_eq!(*cache.get(&set, "a"), "a");
        assert_eq!(*set.get(OTHER), OTHER);
        assert_eq!(*made.lock().unwrap(), ["a", "b", OTHER]);
    }
}
