//! OTLP/JSON requests: decoded once into the `opentelemetry-proto` structs (the OTLP JSON
//! mapping: lowerCamelCase keys, hex trace and span ids, 64-bit integers as strings or numbers,
//! enums as integers, unknown keys ignored) and encoded to protobuf, which is what travels on.
//! The protobuf is then validated like any other request (id lengths and all).
//!
//! Errors name the JSON path where decoding stopped, e.g.
//! `resourceSpans[0].scopeSpans[0].spans[1].traceId: Invalid character 'z' at position 0`.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use serde::de::DeserializeOwned;
use sonde_core::Signal;

/// Transcodes an OTLP/JSON export request of `signal` to its protobuf encoding.
pub fn to_protobuf(signal: Signal, json: &[u8]) -> Result<Vec<u8>, String> {
    match signal {
        Signal::Traces => transcode::<ExportTraceServiceRequest>(json),
        Signal::Metrics => transcode::<ExportMetricsServiceRequest>(json),
        Signal::Logs => transcode::<ExportLogsServiceRequest>(json),
    }
}

fn transcode<T: DeserializeOwned + prost::Message>(json: &[u8]) -> Result<Vec<u8>, String> {
    // serde would also read a struct from an array; an export request is a JSON object.
    if json.trim_ascii_start().first() != Some(&b'{') {
        return Err("invalid OTLP/JSON: the body must be a JSON object".into());
    }
    let mut de = serde_json::Deserializer::from_slice(json);
    let req: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        if path == "." {
            format!("invalid OTLP/JSON: {}", e.inner())
        } else {
            format!("invalid OTLP/JSON at `{path}`: {}", e.inner())
        }
    })?;
    de.end()
        .map_err(|e| format!("invalid OTLP/JSON: trailing data: {e}"))?;
    Ok(req.encode_to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;
    use sonde_core::wire;

    const TRACE: &str = r#"{"resourceSpans":[{"resource":{"attributes":[
        {"key":"service.name","value":{"stringValue":"checkout"}}]},
        "scopeSpans":[{"scope":{"name":"lib"},"spans":[{
          "traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174",
          "name":"GET /cart","kind":2,"startTimeUnixNano":"1700000000000000000",
          "endTimeUnixNano":1700000000500000000,
          "attributes":[{"key":"http.status_code","value":{"intValue":"200"}},
                        {"key":"retry","value":{"boolValue":true}}],
          "status":{"code":1},"someFutureField":{"x":1}}]}]}]}"#;

    #[test]
    fn a_json_trace_request_becomes_the_same_protobuf() {
        let pb = to_protobuf(Signal::Traces, TRACE.as_bytes()).unwrap();
        assert_eq!(wire::validate(Signal::Traces, &pb), Ok(1));
        let req = ExportTraceServiceRequest::decode(&pb[..]).unwrap();
        let span = &req.resource_spans[0].scope_spans[0].spans[0];
        assert_eq!(
            hex::encode(&span.trace_id),
            "5b8efff798038103d269b633813fc60c"
        );
        assert_eq!(hex::encode(&span.span_id), "eee19b7ec3c1b174");
        assert_eq!(span.name, "GET /cart");
        assert_eq!(span.kind, 2);
        assert_eq!(span.start_time_unix_nano, 1_700_000_000_000_000_000);
        assert_eq!(span.end_time_unix_nano, 1_700_000_000_500_000_000);
        assert_eq!(span.attributes.len(), 2);
    }

    #[test]
    fn the_stdout_exporters_json_reads_back() {
        // What `format = "json"` prints is what this receiver reads.
        let pb = to_protobuf(Signal::Traces, TRACE.as_bytes()).unwrap();
        let req = ExportTraceServiceRequest::decode(&pb[..]).unwrap();
        let json = serde_json::to_vec(&req).unwrap();
        assert_eq!(to_protobuf(Signal::Traces, &json).unwrap(), pb);
    }

    #[test]
    fn bad_hex_ids_are_refused_with_their_path() {
        let bad = TRACE.replace(
            "5b8efff798038103d269b633813fc60c",
            "zz8efff798038103d269b633813fc60c",
        );
        let e = to_protobuf(Signal::Traces, bad.as_bytes()).unwrap_err();
        assert!(
            e.contains("resourceSpans[0].scopeSpans[0].spans[0].traceId"),
            "{e}"
        );
        // Well-formed hex of the wrong length decodes, and the wire check refuses it.
        let short = TRACE.replace("5b8efff798038103d269b633813fc60c", "5b8e");
        let pb = to_protobuf(Signal::Traces, short.as_bytes()).unwrap();
        let e = wire::validate(Signal::Traces, &pb).unwrap_err();
        assert!(e.to_string().contains("2 bytes, expected 16"), "{e}");
    }

    #[test]
    fn invalid_json_is_refused() {
        for bad in ["", "{", "[]", "{\"resourceSpans\": 5}", "{} trailing"] {
            assert!(
                to_protobuf(Signal::Traces, bad.as_bytes()).is_err(),
                "{bad}"
            );
        }
        assert_eq!(to_protobuf(Signal::Logs, b"{}").unwrap(), Vec::<u8>::new());
    }

    #[test]
    fn metrics_and_logs_decode() {
        let m = r#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[
            {"name":"requests","sum":{"aggregationTemporality":2,"isMonotonic":true,
              "dataPoints":[{"asInt":"5","timeUnixNano":"1"},{"asDouble":1.5}]}},
            {"name":"latency","histogram":{"aggregationTemporality":2,"dataPoints":[
              {"count":"3","sum":2.5,"bucketCounts":["1","2"],"explicitBounds":[1.0]}]}}]}]}]}"#;
        let pb = to_protobuf(Signal::Metrics, m.as_bytes()).unwrap();
        assert_eq!(wire::validate(Signal::Metrics, &pb), Ok(3));
        let l = r#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[
            {"timeUnixNano":"1","severityNumber":9,"severityText":"INFO",
             "body":{"stringValue":"hello"},"traceId":"","spanId":""}]}]}]}"#;
        let pb = to_protobuf(Signal::Logs, l.as_bytes()).unwrap();
        assert_eq!(wire::validate(Signal::Logs, &pb), Ok(1));
    }
}
