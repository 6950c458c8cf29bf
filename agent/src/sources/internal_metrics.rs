//! `type = "internal_metrics"`: the agent's own counters and gauges — the same numbers
//! `/metrics` serves — as OTLP metrics every `interval`, so they can be exported like any other
//! metric. Names and labels are those of `/metrics`; counters become monotonic cumulative sums
//! starting when the agent started, gauges stay gauges.
//!
//! Backpressure: like host metrics, a sample that finds the buffers full is dropped and counted.

use super::{periodic, SourceContext, SourceTask};
use crate::host::HostFacts;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{
    metric, number_data_point, AggregationTemporality, Gauge, Histogram, HistogramDataPoint,
    Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;
use sonde_config::InternalMetricsConfig;
use sonde_core::metrics::{agent_start, Registry, Sample, Value};
use sonde_core::process::ProcessFigures;
use sonde_core::BuildError;
use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

fn nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

fn kv(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.to_string(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.to_string())),
        }),
        ..Default::default()
    }
}

/// Builds one request from a snapshot of the registry and the process figures.
pub fn encode(
    samples: &[Sample],
    process: ProcessFigures,
    host: &str,
    now: SystemTime,
) -> ExportMetricsServiceRequest {
    let times = Times {
        start: nanos(agent_start()),
        now: nanos(now),
    };
    let mut metrics = registry_metrics(samples, times);
    metrics.extend(process_metrics(&process, times));
    request(metrics, host)
}

/// The times every point carries: the agent's start (of cumulative points) and the sample's.
#[derive(Clone, Copy)]
struct Times {
    start: u64,
    now: u64,
}

impl Times {
    fn point(
        self,
        labels: &[(&'static str, String)],
        value: number_data_point::Value,
        cumulative: bool,
    ) -> NumberDataPoint {
        NumberDataPoint {
            attributes: labels.iter().map(|(k, v)| kv(k, v)).collect(),
            start_time_unix_nano: if cumulative { self.start } else { 0 },
            time_unix_nano: self.now,
            value: Some(value),
            ..Default::default()
        }
    }
}

/// The registry's samples, those of one name grouped into one metric with a point per label
/// set, in name order.
fn registry_metrics(samples: &[Sample], times: Times) -> Vec<Metric> {
    let mut by_name: BTreeMap<&str, (Option<Metric>, &str)> = BTreeMap::new();
    for s in samples {
        let entry = by_name.entry(s.name).or_insert((None, s.help));
        let metric = entry.0.get_or_insert_with(|| empty_metric(s));
        add_point(metric, s, times);
    }
    by_name.into_values().filter_map(|(m, _)| m).collect()
}

/// The metric a sample's name becomes, still without points: a counter a monotonic cumulative
/// sum, a gauge a gauge, a histogram a cumulative histogram.
fn empty_metric(s: &Sample) -> Metric {
    Metric {
        name: s.name.to_string(),
        description: s.help.to_string(),
        data: Some(match &s.value {
            Value::Counter(_) => metric::Data::Sum(Sum {
                data_points: vec![],
                aggregation_temporality: AggregationTemporality::Cumulative as i32,
                is_monotonic: true,
            }),
            Value::Gauge(_) => metric::Data::Gauge(Gauge {
                data_points: vec![],
            }),
            Value::Histogram(_) => metric::Data::Histogram(Histogram {
                data_points: vec![],
                aggregation_temporality: AggregationTemporality::Cumulative as i32,
            }),
        }),
        ..Default::default()
    }
}

/// Appends the sample's point to its metric (a sample whose kind differs from the metric's
/// first sample is left out).
fn add_point(metric: &mut Metric, s: &Sample, times: Times) {
    match (&mut metric.data, &s.value) {
        (Some(metric::Data::Sum(sum)), Value::Counter(c)) => sum.data_points.push(times.point(
            &s.labels,
            number_data_point::Value::AsInt(*c as i64),
            true,
        )),
        (Some(metric::Data::Gauge(g)), Value::Gauge(v)) => {
            g.data_points
                .push(times.point(&s.labels, number_data_point::Value::AsInt(*v), false))
        }
        (Some(metric::Data::Histogram(h)), Value::Histogram(v)) => {
            // OTLP bucket counts are per bucket, not cumulative.
            let bucket_counts = v
                .cumulative
                .iter()
                .scan(0, |prev, c| {
                    let n = c - *prev;
                    *prev = *c;
                    Some(n)
                })
                .collect();
            h.data_points.push(HistogramDataPoint {
                attributes: s.labels.iter().map(|(k, v)| kv(k, v)).collect(),
                start_time_unix_nano: times.start,
                time_unix_nano: times.now,
                count: v.count(),
                sum: Some(v.sum),
                bucket_counts,
                explicit_bounds: v.bounds.to_vec(),
                ..Default::default()
            })
        }
        _ => {}
    }
}

/// The process figures, named as Prometheus client libraries name them: CPU seconds,
/// resident memory, open descriptors.
fn process_metrics(process: &ProcessFigures, times: Times) -> [Metric; 3] {
    let gauge = |name: &str, unit: &str, help: &str, v: number_data_point::Value| Metric {
        name: name.into(),
        description: help.into(),
        unit: unit.into(),
        data: Some(metric::Data::Gauge(Gauge {
            data_points: vec![times.point(&[], v, false)],
        })),
        ..Default::default()
    };
    [
        Metric {
            name: "process_cpu_seconds_total".into(),
            description: "Total user and system CPU time spent in seconds.".into(),
            unit: "s".into(),
            data: Some(metric::Data::Sum(Sum {
                data_points: vec![times.point(
                    &[],
                    number_data_point::Value::AsDouble(process.cpu_seconds),
                    true,
                )],
                aggregation_temporality: AggregationTemporality::Cumulative as i32,
                is_monotonic: true,
            })),
            ..Default::default()
        },
        gauge(
            "process_resident_memory_bytes",
            "By",
            "Resident memory size in bytes.",
            number_data_point::Value::AsInt(process.resident_bytes as i64),
        ),
        gauge(
            "process_open_fds",
            "{file_descriptor}",
            "Number of open file descriptors.",
            number_data_point::Value::AsInt(process.open_fds as i64),
        ),
    ]
}

/// The request: one resource (the agent on `host`), one scope, the metrics.
fn request(metrics: Vec<Metric>, host: &str) -> ExportMetricsServiceRequest {
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![
                    kv("service.name", "sonde"),
                    kv("service.version", env!("CARGO_PKG_VERSION")),
                    kv("host.name", host),
                ],
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(InstrumentationScope {
                    name: "sonde/internal_metrics".into(),
                    version: env!("CARGO_PKG_VERSION").into(),
                    ..Default::default()
                }),
                metrics,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// Samples the registry the source was built with.
struct Snapshots {
    metrics: Registry,
    host: String,
}

impl periodic::Sampler for Snapshots {
    fn sample(&mut self) -> Vec<u8> {
        encode(
            &self.metrics.snapshot(),
            ProcessFigures::read(),
            &self.host,
            SystemTime::now(),
        )
        .encode_to_vec()
    }
}

/// The source's task: a snapshot of the agent's own metrics every `interval`.
pub async fn build(
    cfg: &InternalMetricsConfig,
    cx: SourceContext,
) -> Result<SourceTask, BuildError> {
    let metrics = cx.metrics.clone();
    let host = HostFacts::local().name.unwrap_or_default();
    Ok(Box::pin(periodic::run(cx, cfg.interval.get(), move || {
        Snapshots {
            metrics: metrics.clone(),
            host: host.clone(),
        }
    })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sonde_core::{wire, Signal};

    #[test]
    fn counters_become_cumulative_sums_and_gauges_gauges() {
        let r = Registry::default();
        r.counter(
            "sonde_exporter_sent_items_total",
            "sent",
            &[("exporter", "a")],
        )
        .add(5);
        r.counter(
            "sonde_exporter_sent_items_total",
            "sent",
            &[("exporter", "b")],
        )
        .add(7);
        r.gauge("sonde_buffer_bytes", "bytes", &[("exporter", "a")])
            .set(42);
        let req = encode(
            &r.snapshot(),
            ProcessFigures::read(),
            "h",
            SystemTime::now(),
        );
        let bytes = req.encode_to_vec();
        // 2 counter points + 1 gauge point + 3 process figures.
        assert_eq!(wire::validate(Signal::Metrics, &bytes), Ok(6));
        let metrics = &req.resource_metrics[0].scope_metrics[0].metrics;
        let sent = metrics
            .iter()
            .find(|m| m.name == "sonde_exporter_sent_items_total")
            .unwrap();
        let Some(metric::Data::Sum(sum)) = &sent.data else {
            panic!("not a sum")
        };
        assert!(sum.is_monotonic);
        let values: Vec<_> = sum.data_points.iter().map(|p| p.value).collect();
        assert_eq!(
            values,
            [
                Some(number_data_point::Value::AsInt(5)),
                Some(number_data_point::Value::AsInt(7))
            ]
        );
        assert!(sum.data_points.iter().all(|p| p.start_time_unix_nano > 0));
        let buf = metrics
            .iter()
            .find(|m| m.name == "sonde_buffer_bytes")
            .unwrap();
        assert!(matches!(&buf.data, Some(metric::Data::Gauge(_))));
    }
}
