//! `type = "stdout"`: prints batches for a person (`format = "text"`, one line per data point,
//! span or log record) or for a pipe (`format = "json"`, one OTLP/JSON export request per line,
//! as the OTLP specification encodes it: hex ids, 64-bit integers as strings, lowerCamelCase).
//!
//! This is one of the places that decodes the protobuf structs: it needs the fields.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{metric, number_data_point};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;
use sonde_config::{StdoutConfig, StdoutFormat};
use sonde_core::{Batch, BoxFuture, ExportError, ExportOutcome, Exporter, Signal};
use std::fmt::Write as _;
use std::pin::Pin;
use std::time::{Duration, UNIX_EPOCH};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::Mutex;

type Sink = Pin<Box<dyn AsyncWrite + Send>>;

pub struct StdoutExporter {
    format: StdoutFormat,
    out: Mutex<Sink>,
}

impl StdoutExporter {
    pub fn new(cfg: &StdoutConfig) -> Self {
        Self::with_writer(cfg, tokio::io::stdout())
    }

    /// Writes to `w` instead of the process's stdout (tests).
    pub fn with_writer(cfg: &StdoutConfig, w: impl AsyncWrite + Send + 'static) -> Self {
        Self {
            format: cfg.format,
            out: Mutex::new(Box::pin(w)),
        }
    }
}

impl Exporter for StdoutExporter {
    fn export<'a>(&'a self, batch: &'a Batch) -> BoxFuture<'a, Result<ExportOutcome, ExportError>> {
        Box::pin(async move {
            // A payload that does not decode was validated at the edge, so this is a bug or
            // corruption: drop it rather than retry it forever.
            let text = render(self.format, batch).map_err(|e| {
                ExportError::permanent(format!("cannot decode {} batch: {e}", batch.signal))
            })?;
            let mut out = self.out.lock().await;
            let written = async {
                out.write_all(text.as_bytes()).await?;
                out.flush().await
            };
            written.await.map_err(write_error)?;
            Ok(ExportOutcome::default())
        })
    }

    fn shutdown(&self) -> BoxFuture<'_, Result<(), ExportError>> {
        Box::pin(async move { self.out.lock().await.flush().await.map_err(write_error) })
    }
}

/// A closed stdout (its reader is gone: `sonde run | head`) never comes back, so retrying would
/// only hold the batch, then the buffer, then the sources: the batch is dropped (and counted).
/// Anything else (a full disk behind a redirect, say) may pass, so it is retried.
fn write_error(e: std::io::Error) -> ExportError {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        ExportError::permanent(format!("stdout is closed: {e}"))
    } else {
        ExportError::retryable(format!("writing to stdout: {e}"))
    }
}

/// Renders a batch in `format`, newline-terminated.
pub fn render(format: StdoutFormat, batch: &Batch) -> Result<String, prost::DecodeError> {
    let p = &batch.payload[..];
    let mut s = String::new();
    match (format, batch.signal) {
        (StdoutFormat::Json, Signal::Traces) => {
            json_line(&mut s, &ExportTraceServiceRequest::decode(p)?)
        }
        (StdoutFormat::Json, Signal::Metrics) => {
            json_line(&mut s, &ExportMetricsServiceRequest::decode(p)?)
        }
        (StdoutFormat::Json, Signal::Logs) => {
            json_line(&mut s, &ExportLogsServiceRequest::decode(p)?)
        }
        (StdoutFormat::Text, Signal::Traces) => {
            text_traces(&mut s, &ExportTraceServiceRequest::decode(p)?)
        }
        (StdoutFormat::Text, Signal::Metrics) => {
            text_metrics(&mut s, &ExportMetricsServiceRequest::decode(p)?)
        }
        (StdoutFormat::Text, Signal::Logs) => {
            text_logs(&mut s, &ExportLogsServiceRequest::decode(p)?)
        }
    }
    Ok(s)
}

fn json_line<T: serde::Serialize>(s: &mut String, req: &T) {
    match serde_json::to_string(req) {
        Ok(j) => s.push_str(&j),
        Err(e) => {
            let _ = write!(s, "{{\"error\":{:?}}}", e.to_string());
        }
    }
    s.push('\n');
}

fn time(nanos: u64) -> String {
    if nanos == 0 {
        return "-".into();
    }
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_nanos(nanos)).to_string()
}

/// `service.name`, or `host.name`, to say where a line comes from.
fn origin(resource: &Option<Resource>) -> String {
    let attrs = resource
        .as_ref()
        .map(|r| r.attributes.as_slice())
        .unwrap_or_default();
    for k in ["service.name", "host.name"] {
        if let Some(v) = attrs.iter().find(|a| a.key == k) {
            return value(&v.value);
        }
    }
    "-".into()
}

fn value(v: &Option<AnyValue>) -> String {
    let mut s = String::new();
    write_value(&mut s, v.as_ref().and_then(|v| v.value.as_ref()));
    s
}

fn write_value(s: &mut String, v: Option<&any_value::Value>) {
    use any_value::Value::*;
    let _ = match v {
        None => write!(s, "null"),
        Some(StringValue(x)) => write!(s, "{x}"),
        Some(StringValueStrindex(i)) => write!(s, "strindex:{i}"),
        Some(BoolValue(x)) => write!(s, "{x}"),
        Some(IntValue(x)) => write!(s, "{x}"),
        Some(DoubleValue(x)) => write!(s, "{x}"),
        Some(BytesValue(x)) => write!(s, "0x{}", hex::encode(x)),
        Some(ArrayValue(a)) => {
            s.push('[');
            for (i, x) in a.values.iter().enumerate() {
                if i > 0 {
                    s.push_str(", ");
                }
                write_value(s, x.value.as_ref());
            }
            s.push(']');
            Ok(())
        }
        Some(KvlistValue(kv)) => {
            write_attrs(s, &kv.values);
            Ok(())
        }
    };
}

fn write_attrs(s: &mut String, attrs: &[KeyValue]) {
    if attrs.is_empty() {
        return;
    }
    s.push('{');
    for (i, a) in attrs.iter().enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        let _ = write!(s, "{}=", a.key);
        write_value(s, a.value.as_ref().and_then(|v| v.value.as_ref()));
    }
    s.push('}');
}

fn text_metrics(s: &mut String, req: &ExportMetricsServiceRequest) {
    for rm in &req.resource_metrics {
        let from = origin(&rm.resource);
        for sm in &rm.scope_metrics {
            for m in &sm.metrics {
                let unit = if m.unit.is_empty() {
                    String::new()
                } else {
                    format!(" {}", m.unit)
                };
                let mut point = |t: u64, attrs: &[KeyValue], val: String| {
                    let _ = write!(s, "{} {from} {}", time(t), m.name);
                    write_attrs(s, attrs);
                    let _ = writeln!(s, " {val}{unit}");
                };
                let num = |v: &Option<number_data_point::Value>| match v {
                    Some(number_data_point::Value::AsInt(i)) => i.to_string(),
                    Some(number_data_point::Value::AsDouble(d)) => d.to_string(),
                    None => "null".into(),
                };
                match &m.data {
                    Some(metric::Data::Gauge(g)) => {
                        for p in &g.data_points {
                            point(p.time_unix_nano, &p.attributes, num(&p.value));
                        }
                    }
                    Some(metric::Data::Sum(g)) => {
                        for p in &g.data_points {
                            point(p.time_unix_nano, &p.attributes, num(&p.value));
                        }
                    }
                    Some(metric::Data::Histogram(h)) => {
                        for p in &h.data_points {
                            let v = format!(
                                "count={} sum={} bounds={:?} counts={:?}",
                                p.count,
                                p.sum.unwrap_or(f64::NAN),
                                p.explicit_bounds,
                                p.bucket_counts
                            );
                            point(p.time_unix_nano, &p.attributes, v);
                        }
                    }
                    Some(metric::Data::ExponentialHistogram(h)) => {
                        for p in &h.data_points {
                            let v = format!(
                                "count={} sum={} scale={}",
                                p.count,
                                p.sum.unwrap_or(f64::NAN),
                                p.scale
                            );
                            point(p.time_unix_nano, &p.attributes, v);
                        }
                    }
                    Some(metric::Data::Summary(q)) => {
                        for p in &q.data_points {
                            let qs: Vec<String> = p
                                .quantile_values
                                .iter()
                                .map(|q| format!("p{}={}", q.quantile * 100.0, q.value))
                                .collect();
                            let v = format!("count={} sum={} {}", p.count, p.sum, qs.join(" "));
                            point(p.time_unix_nano, &p.attributes, v);
                        }
                    }
                    None => {}
                }
            }
        }
    }
}

fn id(b: &[u8]) -> String {
    if b.is_empty() {
        "-".into()
    } else {
        hex::encode(b)
    }
}

fn text_traces(s: &mut String, req: &ExportTraceServiceRequest) {
    for rs in &req.resource_spans {
        let from = origin(&rs.resource);
        for ss in &rs.scope_spans {
            for sp in &ss.spans {
                let dur_ms = sp
                    .end_time_unix_nano
                    .saturating_sub(sp.start_time_unix_nano) as f64
                    / 1e6;
                let (code, message) = sp
                    .status
                    .as_ref()
                    .map_or((0, ""), |st| (st.code, st.message.as_str()));
                let _ = write!(
                    s,
                    "{} {from} span {} trace={} span={} parent={} kind={} dur={dur_ms:.3}ms status={}",
                    time(sp.start_time_unix_nano),
                    sp.name,
                    id(&sp.trace_id),
                    id(&sp.span_id),
                    id(&sp.parent_span_id),
                    sonde_core::names::span_kind(sp.kind),
                    sonde_core::names::span_status(code),
                );
                if !message.is_empty() {
                    let _ = write!(s, " status.message={message:?}");
                }
                if !sp.attributes.is_empty() {
                    s.push(' ');
                    write_attrs(s, &sp.attributes);
                }
                s.push('\n');
            }
        }
    }
}

/// The short name of an OTLP severity number, as the log data model gives it: `INFO`, `WARN2`,
/// …; `UNSPECIFIED` for 0 and `SEVERITY(n)` outside 1..=24.
fn severity_name(s: &mut String, n: i32) {
    const NAMES: [&str; 6] = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"];
    match n {
        0 => s.push_str("UNSPECIFIED"),
        1..=24 => {
            let (range, step) = ((n - 1) / 4, (n - 1) % 4);
            s.push_str(NAMES[range as usize]);
            if step > 0 {
                let _ = write!(s, "{}", step + 1);
            }
        }
        _ => {
            let _ = write!(s, "SEVERITY({n})");
        }
    }
}

fn text_logs(s: &mut String, req: &ExportLogsServiceRequest) {
    for rl in &req.resource_logs {
        let from = origin(&rl.resource);
        for sl in &rl.scope_logs {
            for r in &sl.log_records {
                let t = if r.time_unix_nano != 0 {
                    r.time_unix_nano
                } else {
                    r.observed_time_unix_nano
                };
                let _ = write!(s, "{} {from} ", time(t));
                if r.severity_text.is_empty() {
                    severity_name(s, r.severity_number);
                } else {
                    s.push_str(&r.severity_text);
                }
                let _ = write!(s, " {}", value(&r.body));
                if !r.attributes.is_empty() {
                    s.push(' ');
                    write_attrs(s, &r.attributes);
                }
                if !r.trace_id.is_empty() {
                    let _ = write!(s, " trace={} span={}", id(&r.trace_id), id(&r.span_id));
                }
                s.push('\n');
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::metrics::v1::{
        Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics,
    };
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
    use std::sync::Arc;

    fn kv(k: &str, v: any_value::Value) -> KeyValue {
        KeyValue {
            key: k.into(),
            value: Some(AnyValue { value: Some(v) }),
            ..Default::default()
        }
    }

    fn metric_batch() -> Batch {
        let req = ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                resource: Some(Resource {
                    attributes: vec![kv("host.name", any_value::Value::StringValue("box".into()))],
                    ..Default::default()
                }),
                scope_metrics: vec![ScopeMetrics {
                    metrics: vec![Metric {
                        name: "system.memory.usage".into(),
                        unit: "By".into(),
                        data: Some(metric::Data::Gauge(Gauge {
                            data_points: vec![NumberDataPoint {
                                time_unix_nano: 1_700_000_000_000_000_000,
                                attributes: vec![kv(
                                    "system.memory.state",
                                    any_value::Value::StringValue("used".into()),
                                )],
                                value: Some(number_data_point::Value::AsInt(1234)),
                                ..Default::default()
                            }],
                        })),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        Batch::new(Signal::Metrics, req.encode_to_vec().into(), Arc::from("t")).unwrap()
    }

    #[test]
    fn text_is_one_readable_line_per_point() {
        let out = render(StdoutFormat::Text, &metric_batch()).unwrap();
        assert_eq!(
            out,
            "2023-11-14T22:13:20.000Z box system.memory.usage{system.memory.state=used} 1234 By\n"
        );
    }

    #[test]
    fn json_is_otlp_json_one_request_per_line() {
        let out = render(StdoutFormat::Json, &metric_batch()).unwrap();
        assert_eq!(out.lines().count(), 1);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        let point =
            &v["resourceMetrics"][0]["scopeMetrics"][0]["metrics"][0]["gauge"]["dataPoints"][0];
        assert_eq!(
            point["asInt"], "1234",
            "64-bit integers are strings in OTLP/JSON: {out}"
        );
        assert_eq!(point["timeUnixNano"], "1700000000000000000");
        // And it reads back into the same request.
        let back: ExportMetricsServiceRequest = serde_json::from_str(&out).unwrap();
        assert_eq!(back.encode_to_vec(), metric_batch().payload.to_vec());
    }

    /// A traces batch holding `spans` under one resource and scope.
    fn span_batch(spans: Vec<Span>) -> Batch {
        let req = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        Batch::new(Signal::Traces, req.encode_to_vec().into(), Arc::from("t")).unwrap()
    }

    #[test]
    fn span_ids_are_hex_in_json_and_text() {
        let b = span_batch(vec![Span {
            trace_id: vec![0xab; 16],
            span_id: vec![0x01; 8],
            name: "GET /".into(),
            start_time_unix_nano: 1_000_000,
            end_time_unix_nano: 3_500_000,
            ..Default::default()
        }]);
        let json = render(StdoutFormat::Json, &b).unwrap();
        assert!(
            json.contains(&format!("\"traceId\":\"{}\"", "ab".repeat(16))),
            "{json}"
        );
        let text = render(StdoutFormat::Text, &b).unwrap();
        assert!(
            text.contains(
                "span GET / trace=abababababababababababababababab span=0101010101010101"
            ),
            "{text}"
        );
        assert!(text.contains("dur=2.500ms"), "{text}");
    }

    #[test]
    fn text_names_span_kinds_statuses_and_severities() {
        use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
        use opentelemetry_proto::tonic::trace::v1::Status;
        let span = |kind, status: Option<Status>| Span {
            kind,
            status,
            ..Default::default()
        };
        let b = span_batch(vec![
            span(2, None),
            span(
                3,
                Some(Status {
                    code: 2,
                    message: "connection \"refused\"".into(),
                }),
            ),
            span(
                9,
                Some(Status {
                    code: 1,
                    ..Default::default()
                }),
            ),
        ]);
        let text = render(StdoutFormat::Text, &b).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(
            lines[0].contains(" kind=server ") && lines[0].ends_with(" status=unset"),
            "{text}"
        );
        assert!(
            lines[1].contains(" kind=client ")
                && lines[1].ends_with(r#" status=error status.message="connection \"refused\"""#),
            "{text}"
        );
        assert!(
            lines[2].contains(" kind=unknown ") && lines[2].ends_with(" status=ok"),
            "{text}"
        );

        let record = |severity_number, severity_text: &str| LogRecord {
            severity_number,
            severity_text: severity_text.into(),
            body: Some(AnyValue {
                value: Some(any_value::Value::StringValue("hi".into())),
            }),
            ..Default::default()
        };
        let req = ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                scope_logs: vec![ScopeLogs {
                    log_records: vec![
                        record(0, ""),
                        record(1, ""),
                        record(9, ""),
                        record(14, ""),
                        record(24, ""),
                        record(25, ""),
                        record(17, "Oops"),
                    ],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let b = Batch::new(Signal::Logs, req.encode_to_vec().into(), Arc::from("t")).unwrap();
        let text = render(StdoutFormat::Text, &b).unwrap();
        let severities: Vec<&str> = text
            .lines()
            .map(|l| l.split(' ').nth(2).unwrap_or_default())
            .collect();
        assert_eq!(
            severities,
            [
                "UNSPECIFIED",
                "TRACE",
                "INFO",
                "WARN2",
                "FATAL4",
                "SEVERITY(25)",
                "Oops"
            ],
            "{text}"
        );
    }

    #[tokio::test]
    async fn export_writes_to_the_sink() {
        let (w, mut r) = tokio::io::duplex(1 << 16);
        let e = StdoutExporter::with_writer(
            &StdoutConfig {
                format: StdoutFormat::Text,
            },
            w,
        );
        e.export(&metric_batch()).await.unwrap();
        drop(e);
        let mut got = String::new();
        tokio::io::AsyncReadExt::read_to_string(&mut r, &mut got)
            .await
            .unwrap();
        assert!(got.contains("system.memory.usage"));
    }

    /// A closed stdout drops the batch (permanent), not retried forever; other write errors
    /// are retried.
    #[tokio::test]
    async fn a_closed_stdout_is_a_permanent_failure() {
        let (w, r) = tokio::io::duplex(64);
        drop(r);
        let e = StdoutExporter::with_writer(
            &StdoutConfig {
                format: StdoutFormat::Text,
            },
            w,
        );
        match e.export(&metric_batch()).await {
            Err(ExportError::Permanent { reason }) => {
                assert!(reason.starts_with("stdout is closed"), "{reason}")
            }
            other => panic!("expected a permanent error, got {other:?}"),
        }
        let full = std::io::Error::from_raw_os_error(28); // ENOSPC
        assert!(matches!(write_error(full), ExportError::Retryable { .. }));
    }
}
