//! Peak-memory checks of the end-to-end tests: a [`Baseline`] of each service's peak resident
//! memory (`VmHWM`) taken once the cluster is warm, then an assertion that a hostile job raised
//! none of them by more than a budget.

use super::Cluster;

const MIB: u64 = 1 << 20;

/// Peak resident memory of some services of a [`Cluster`] at one moment.
#[derive(Debug)]
pub struct Baseline {
    peaks: Vec<(String, u64)>,
}

impl Baseline {
    /// The current peaks of `services` (`storage`, `scheduler`, `em<i>`).
    pub fn of(cluster: &Cluster, services: &[&str]) -> Self {
        let peaks = services
            .iter()
            .map(|s| ((*s).to_owned(), cluster.peak_rss_bytes(s)))
            .collect();
        Self { peaks }
    }

    /// Asserts that no service's peak grew past its baseline by more than `budget` bytes
    /// (`what` says how the budget was reckoned, for the message). Prints every peak.
    pub fn assert_grew_at_most(&self, cluster: &Cluster, budget: u64, what: &str) {
        let mut over = Vec::new();
        for (service, baseline) in &self.peaks {
            let peak = cluster.peak_rss_bytes(service);
            eprintln!(
                "{service}: peak {} MiB, baseline {} MiB, budget {} MiB ({what})",
                peak / MIB,
                baseline / MIB,
                budget / MIB
            );
            if peak > baseline + budget {
                over.push(format!(
                    "{service} peaked at {} MiB, over its baseline {} MiB + {} MiB ({what})",
                    peak / MIB,
                    baseline / MIB,
                    budget / MIB
                ));
            }
        }
        assert!(over.is_empty(), "{}", over.join("; "));
    }
}
