//! The `[traces]` table of every service's config file (and `silk dev --otlp-endpoint`): where
//! to send OpenTelemetry spans over OTLP/gRPC, which cluster name goes into trace ids, what share
//! of jobs to trace and how long one export may take. Absent: no tracing at all.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Settings of the span export. See `docs/config.md`, table `[traces]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TracesConfig {
    /// The collector's OTLP/gRPC endpoint, `http://host:port` or `https://host:port` (4317 is
    /// the usual port). Required.
    pub otlp_endpoint: Endpoint,
    /// Mixed into every trace id: every service of one cluster must carry the same value, and
    /// clusters (or databases started afresh) that send to one collector different ones.
    #[serde(default = "default_cluster")]
    pub cluster: String,
    /// Share of jobs traced, from 0 to 1. The choice is a function of the trace id, so every
    /// service makes the same one for a job.
    #[serde(default)]
    pub sample_ratio: Ratio,
    /// Longest one export call may take.
    #[serde(default = "default_export_timeout_ms")]
    pub export_timeout_ms: u64,
    /// Most finished spans waiting for export; past it new spans are dropped (never waited
    /// for).
    #[serde(default = "default_max_queued_spans")]
    pub max_queued_spans: usize,
    /// PEM CA certificate(s) an `https://` collector's certificate must chain to (required for
    /// `https://`).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

fn default_cluster() -> String {
    "silk".into()
}

fn default_export_timeout_ms() -> u64 {
    10_000
}

fn default_max_queued_spans() -> usize {
    8192
}

impl TracesConfig {
    /// Export to `endpoint` with every other key at its default.
    #[must_use]
    pub fn new(endpoint: Endpoint) -> Self {
        Self {
            otlp_endpoint: endpoint,
            cluster: default_cluster(),
            sample_ratio: Ratio::default(),
            export_timeout_ms: default_export_timeout_ms(),
            max_queued_spans: default_max_queued_spans(),
            ca_file: None,
        }
    }
}

/// A collector URL: `http://` or `https://`, a host, an optional port, no path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Endpoint(String);

/// Why an endpoint or ratio was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// Not an `http(s)://host[:port]` URL.
    #[error("otlp_endpoint {url:?}: {reason} (expected http://host:port or https://host:port)")]
    Endpoint {
        /// The value.
        url: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// A sampling ratio outside 0..=1.
    #[error("sample_ratio {0}: expected a number from 0 to 1")]
    Ratio(String),
}

impl Endpoint {
    /// The URL.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether the collector is reached over TLS.
    #[must_use]
    pub fn is_https(&self) -> bool {
        self.0.starts_with("https://")
    }
}

impl TryFrom<String> for Endpoint {
    type Error = ConfigError;

    fn try_from(url: String) -> Result<Self, ConfigError> {
        let bad = |reason| ConfigError::Endpoint {
            url: url.clone(),
            reason,
        };
        let uri: tonic::transport::Uri = url.parse().map_err(|_| bad("not a URL"))?;
        match uri.scheme_str() {
            Some("http" | "https") => {}
            Some(_) => return Err(bad("the scheme must be http or https")),
            None => return Err(bad("no scheme")),
        }
        let host = uri.host().unwrap_or_default();
        if host.is_empty() {
            return Err(bad("no host"));
        }
        if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
            return Err(bad("credentials in the URL are not supported"));
        }
        if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
            return Err(bad("OTLP/gRPC takes no path"));
        }
        Ok(Self(url))
    }
}

impl std::str::FromStr for Endpoint {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, ConfigError> {
        Self::try_from(s.to_owned())
    }
}

impl From<Endpoint> for String {
    fn from(e: Endpoint) -> Self {
        e.0
    }
}

/// A share from 0 to 1 (default 1: every job).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(try_from = "f64", into = "f64")]
pub struct Ratio(f64);

impl Ratio {
    /// The share.
    #[must_use]
    pub fn get(self) -> f64 {
        self.0
    }
}

impl Default for Ratio {
    fn default() -> Self {
        Self(1.0)
    }
}

impl PartialEq for Ratio {
    fn eq(&self, other: &Self) -> bool {
        self.0.to_bits() == other.0.to_bits()
    }
}

impl Eq for Ratio {}

impl TryFrom<f64> for Ratio {
    type Error = ConfigError;

    fn try_from(v: f64) -> Result<Self, ConfigError> {
        if (0.0..=1.0).contains(&v) {
            Ok(Self(v))
        } else {
            Err(ConfigError::Ratio(v.to_string()))
        }
    }
}

impl From<Ratio> for f64 {
    fn from(r: Ratio) -> Self {
        r.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct File {
        traces: Option<TracesConfig>,
    }

    fn parse(text: &str) -> Result<File, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_and_every_key() {
        assert!(parse("").unwrap().traces.is_none());
        let t = parse("[traces]\notlp_endpoint = \"http://collector:4317\"\n")
            .unwrap()
            .traces
            .unwrap();
        assert_eq!(
            t,
            TracesConfig::new("http://collector:4317".parse().unwrap())
        );
        assert_eq!(t.sample_ratio.get(), 1.0);
        let t = parse(
            "[traces]\notlp_endpoint = \"https://c.example:4317\"\ncluster = \"eu\"\nsample_ratio = 0.25\nexport_timeout_ms = 500\nmax_queued_spans = 10\nca_file = \"/ca.pem\"\n",
        )
        .unwrap()
        .traces
        .unwrap();
        assert!(t.otlp_endpoint.is_https());
        assert_eq!((t.cluster.as_str(), t.sample_ratio.get()), ("eu", 0.25));
        assert_eq!((t.export_timeout_ms, t.max_queued_spans), (500, 10));
    }

    #[test]
    fn bad_values_are_refused_with_the_key() {
        for (text, needle) in [
            ("otlp_endpoint = \"collector:4317\"", "otlp_endpoint"),
            ("otlp_endpoint = \"ftp://c:4317\"", "scheme must be http"),
            ("otlp_endpoint = \"http://c:4317/v1/traces\"", "no path"),
            ("otlp_endpoint = \"not a url\"", "otlp_endpoint"),
            (
                "otlp_endpoint = \"http://user:pw@c:4317\"",
                "credentials in the URL",
            ),
            (
                "otlp_endpoint = \"http://c:4317\"\nsample_ratio = 1.5",
                "sample_ratio",
            ),
            (
                "otlp_endpoint = \"http://c:4317\"\nendpoint = \"x\"",
                "unknown field `endpoint`",
            ),
            ("cluster = \"x\"", "missing field `otlp_endpoint`"),
        ] {
            let e = parse(&format!("[traces]\n{text}\n")).unwrap_err();
            assert!(e.contains(needle), "{text}: {e}");
        }
    }
}
