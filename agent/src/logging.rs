//! The agent's own log output on stderr — human-readable on a terminal, JSON elsewhere (or as
//! configured), level from `SONDE_LOG` (EnvFilter syntax) over `agent.log.level` — and, when
//! `agent.telemetry.endpoint` is set, its own spans and logs over OTLP/HTTP.
//!
//! The OTLP exporters run on the SDK's own threads with a blocking HTTP client, so they work
//! before and after the async runtime and never block it. Their own crates' logs are kept out of
//! the OTLP layers so that exporting telemetry never produces more telemetry.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::logs::SdkLoggerProvider;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use sonde_config::{LogConfig, LogFormat, TelemetryConfig};
use std::io::IsTerminal;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// Keeps the OTLP providers alive; flushes them on drop.
#[derive(Default)]
pub struct TelemetryGuard {
    tracer: Option<SdkTracerProvider>,
    logger: Option<SdkLoggerProvider>,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(t) = self.tracer.take() {
            let _ = t.shutdown();
        }
        if let Some(l) = self.logger.take() {
            let _ = l.shutdown();
        }
    }
}

fn filter(cfg: &LogConfig) -> EnvFilter {
    std::env::var("SONDE_LOG")
        .ok()
        .and_then(|s| EnvFilter::try_new(s).ok())
        .or_else(|| EnvFilter::try_new(&cfg.level).ok())
        .unwrap_or_else(|| EnvFilter::new("info"))
}

/// What the OTLP layers take: the agent's own events and spans, never the exporter stack's.
fn otlp_filter() -> EnvFilter {
    EnvFilter::new("info,sonde=debug,sonde_exporters=debug,hyper=off,hyper_util=off,reqwest=off,h2=off,tower=off,opentelemetry=off,opentelemetry_sdk=off,opentelemetry_otlp=off,opentelemetry_http=off")
}

pub fn init(cfg: &LogConfig, telemetry: &TelemetryConfig) -> TelemetryGuard {
    let json = match cfg.format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let fmt: Box<dyn Layer<_> + Send + Sync> = if json {
        Box::new(
            fmt.json()
                .flatten_event(true)
                .with_current_span(false)
                .with_filter(filter(cfg)),
        )
    } else {
        Box::new(
            fmt.with_ansi(std::io::stderr().is_terminal())
                .with_filter(filter(cfg)),
        )
    };

    let mut guard = TelemetryGuard::default();
    let mut problems = Vec::new();
    let resource = || {
        Resource::builder()
            .with_service_name("sonde")
            .with_attribute(opentelemetry::KeyValue::new(
                "service.version",
                env!("CARGO_PKG_VERSION"),
            ))
            .build()
    };
    if let Some(base) = &telemetry.endpoint {
        let base = base.trim_end_matches('/');
        if telemetry.traces {
            match opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_endpoint(format!("{base}/v1/traces"))
                .with_timeout(telemetry.timeout.get())
                .with_headers(Default::default())
                .build()
            {
                Ok(exporter) => {
                    guard.tracer = Some(
                        SdkTracerProvider::builder()
                            .with_batch_exporter(exporter)
                            .with_resource(resource())
                            .build(),
                    )
                }
                Err(e) => problems.push(format!("traces: {e}")),
            }
        }
        if telemetry.logs {
            match opentelemetry_otlp::LogExporter::builder()
                .with_http()
                .with_endpoint(format!("{base}/v1/logs"))
                .with_timeout(telemetry.timeout.get())
                .build()
            {
                Ok(exporter) => {
                    guard.logger = Some(
                        SdkLoggerProvider::builder()
                            .with_batch_exporter(exporter)
                            .with_resource(resource())
                            .build(),
                    )
                }
                Err(e) => problems.push(format!("logs: {e}")),
            }
        }
    }
    let traces = guard.tracer.as_ref().map(|p| {
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer("sonde"))
            .with_filter(otlp_filter())
    });
    let logs = guard.logger.as_ref().map(|p| {
        opentelemetry_appender_tracing::layer::OpenTelemetryTracingBridge::new(p)
            .with_filter(otlp_filter())
    });
    // A second init (tests) is harmless: keep the first subscriber.
    let _ = tracing_subscriber::registry()
        .with(fmt)
        .with(traces)
        .with(logs)
        .try_init();
    for p in problems {
        tracing::error!(problem = %p, "agent.telemetry: cannot export the agent's own telemetry");
    }
    guard
}
