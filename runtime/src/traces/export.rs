//! The OTLP/gRPC span exporter (on the workspace's tonic) behind the SDK's batch span processor:
//! a bounded queue (`max_queued_spans`, full = the span is dropped), exported from the
//! processor's own thread, each call bounded by `export_timeout_ms`.

use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry_otlp::{WithExportConfig as _, WithTonicConfig as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{BatchConfigBuilder, BatchSpanProcessor, SpanProcessor as _};
use tonic::transport::{Certificate, ClientTlsConfig};

use super::Service;
use super::config::TracesConfig;

/// Why the exporter could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `https://` without a CA to check the collector against.
    #[error("traces: otlp_endpoint {endpoint} is https but no ca_file is set")]
    NoCa {
        /// The endpoint.
        endpoint: String,
    },
    /// The CA file could not be read.
    #[error("traces: reading ca_file {path}: {source}")]
    Ca {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The SDK refused the exporter's settings.
    #[error("traces: {0}")]
    Exporter(String),
}

/// The processor exporting `service`'s spans as `config` says.
pub(super) fn processor(
    config: &TracesConfig,
    service: Service,
) -> Result<BatchSpanProcessor, Error> {
    let endpoint = config.otlp_endpoint.as_str();
    let timeout = Duration::from_millis(config.export_timeout_ms.max(1));
    let mut builder = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .with_timeout(timeout);
    if config.otlp_endpoint.is_https() {
        let path = config.ca_file.as_ref().ok_or_else(|| Error::NoCa {
            endpoint: endpoint.to_owned(),
        })?;
        let pem = std::fs::read(path).map_err(|source| Error::Ca {
            path: path.clone(),
            source,
        })?;
        builder = builder
            .with_tls_config(ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem)));
    }
    let exporter = builder
        .build()
        .map_err(|e| Error::Exporter(e.to_string()))?;
    let queue = config.max_queued_spans.max(1);
    let batch = BatchConfigBuilder::default()
        .with_max_queue_size(queue)
        .with_max_export_batch_size(queue.min(512))
        .with_scheduled_delay(Duration::from_secs(1))
        .build();
    let mut processor = BatchSpanProcessor::builder(exporter)
        .with_batch_config(batch)
        .build();
    processor.set_resource(
        &Resource::builder_empty()
            .with_service_name(service.name())
            .with_attribute(KeyValue::new("service.namespace", config.cluster.clone()))
            .build(),
    );
    Ok(processor)
}
