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
use tracing::Subscriber;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
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

/// A log filter: `Targets` for the plain `LEVEL` / `TARGET=LEVEL` lists nearly everyone writes,
/// `EnvFilter` for the rest of its syntax (span and field directives). The two agree on the plain
/// lists; `Targets` is the smaller and cheaper of them, so an agent started with the usual
/// `info` or `warn` never runs (or maps in) `EnvFilter`'s machinery.
#[allow(clippy::large_enum_variant)] // made once at start-up and consumed at once
enum LogFilter {
    Targets(Targets),
    Env(EnvFilter),
}

impl LogFilter {
    fn parse(spec: &str) -> Option<Self> {
        if is_plain(spec) {
            spec.parse().ok().map(Self::Targets)
        } else {
            EnvFilter::try_new(spec).ok().map(Self::Env)
        }
    }

    fn apply<S, L>(self, layer: L) -> Box<dyn Layer<S> + Send + Sync>
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
        L: Layer<S> + Send + Sync + 'static,
    {
        match self {
            Self::Targets(t) => Box::new(layer.with_filter(t)),
            Self::Env(e) => Box::new(layer.with_filter(e)),
        }
    }
}

/// A comma-separated list of `LEVEL` or `TARGET=LEVEL`, targets being module paths.
fn is_plain(spec: &str) -> bool {
    let level = |l: &str| l.parse::<LevelFilter>().is_ok();
    let target = |t: &str| {
        !t.is_empty()
            && t.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | ':' | '-'))
    };
    !spec.is_empty()
        && spec.split(',').all(|d| match d.split_once('=') {
            Some((t, l)) => target(t) && level(l),
            None => level(d),
        })
}

fn filter(cfg: &LogConfig) -> LogFilter {
    std::env::var("SONDE_LOG")
        .ok()
        .and_then(|s| LogFilter::parse(&s))
        .or_else(|| LogFilter::parse(&cfg.level))
        .unwrap_or(LogFilter::Targets(
            Targets::new().with_default(LevelFilter::INFO),
        ))
}

/// What the OTLP layers take: the agent's own events and spans, never the exporter stack's.
fn otlp_filter() -> Targets {
    Targets::new()
        .with_default(LevelFilter::INFO)
        .with_targets([
            ("sonde", LevelFilter::DEBUG),
            ("sonde_exporters", LevelFilter::DEBUG),
        ])
        .with_targets(
            [
                "hyper",
                "hyper_util",
                "reqwest",
                "h2",
                "tower",
                "opentelemetry",
                "opentelemetry_sdk",
                "opentelemetry_otlp",
                "opentelemetry_http",
            ]
            .map(|t| (t, LevelFilter::OFF)),
        )
}

pub fn init(cfg: &LogConfig, telemetry: &TelemetryConfig) -> TelemetryGuard {
    let json = match cfg.format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let fmt = if json {
        filter(cfg).apply(fmt.json().flatten_event(true).with_current_span(false))
    } else {
        filter(cfg).apply(fmt.with_ansi(std::io::stderr().is_terminal()))
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tracing::Level;
    use tracing_subscriber::layer::Context;

    /// Records the target and level of every event it is shown.
    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<(String, Level)>>>);

    impl<S: Subscriber> Layer<S> for Capture {
        fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
            let m = event.metadata();
            if let Ok(mut seen) = self.0.lock() {
                seen.push((m.target().to_string(), *m.level()));
            }
        }
    }

    /// One event per level from each of a few targets.
    fn emit() {
        macro_rules! all_levels {
            ($target:literal) => {
                tracing::error!(target: $target, "e");
                tracing::warn!(target: $target, "w");
                tracing::info!(target: $target, "i");
                tracing::debug!(target: $target, "d");
                tracing::trace!(target: $target, "t");
            };
        }
        all_levels!("sonde");
        all_levels!("sonde::pipeline::worker");
        all_levels!("sonde_exporters::otlp");
        all_levels!("hyper_util::client");
        all_levels!("h2");
    }

    fn seen_with(filter: LogFilter) -> Vec<(String, Level)> {
        let capture = Capture::default();
        let subscriber = tracing_subscriber::registry().with(filter.apply(capture.clone()));
        tracing::subscriber::with_default(subscriber, emit);
        let seen = capture.0.lock().map(|s| s.clone()).unwrap_or_default();
        seen
    }

    #[test]
    fn plain_lists_take_the_targets_filter_and_it_lets_through_what_env_filter_would() {
        for spec in [
            "info",
            "WARN",
            "2",
            "off",
            "sonde=debug",
            "info,sonde=trace,hyper_util=off",
            "error,sonde::pipeline=debug,h2=warn",
            "sonde_exporters=trace,sonde=info",
        ] {
            let plain = LogFilter::parse(spec).expect("parses");
            assert!(matches!(plain, LogFilter::Targets(_)), "{spec}");
            let env = LogFilter::Env(EnvFilter::try_new(spec).expect("EnvFilter parses"));
            let (a, b) = (seen_with(plain), seen_with(env));
            assert_eq!(a, b, "{spec}");
        }
        // The cases are not vacuous: something passes and something is held back.
        let some = seen_with(LogFilter::parse("error,sonde::pipeline=debug").expect("parses"));
        // `error` from each of the five targets, and info..debug from the pipeline's.
        assert_eq!(some.len(), 5 + 3, "{some:?}");
    }

    #[test]
    fn the_rest_of_the_env_filter_syntax_still_works() {
        for spec in [
            "sonde[run]=debug",
            "info,sonde[{port}]=trace",
            "[{port=4317}]=trace",
        ] {
            assert!(!is_plain(spec), "{spec}");
            assert!(
                matches!(LogFilter::parse(spec), Some(LogFilter::Env(_))),
                "{spec}"
            );
        }
        for spec in ["", "loud", "sonde=loud", "sonde=debug=info"] {
            assert!(!is_plain(spec), "{spec}");
        }
        assert!(LogFilter::parse("sonde=loud").is_none());
    }

    #[test]
    fn the_otlp_layers_never_see_the_exporter_stack() {
        let capture = Capture::default();
        let subscriber =
            tracing_subscriber::registry().with(capture.clone().with_filter(otlp_filter()));
        tracing::subscriber::with_default(subscriber, emit);
        let seen = capture.0.lock().map(|s| s.clone()).unwrap_or_default();
        assert!(seen.iter().all(|(t, _)| t.starts_with("sonde")), "{seen:?}");
        assert!(seen.contains(&("sonde::pipeline::worker".into(), Level::DEBUG)));
        assert!(!seen.iter().any(|(_, l)| *l == Level::TRACE));
    }
}
