//! The OTLP exporter behind the real export worker, against a scripted server on loopback:
//! refused connections, 503 with Retry-After, UNAVAILABLE with RetryInfo, 400, a hanging server,
//! partial success, and the circuit breaker opening and closing.

#![allow(clippy::unwrap_used)] // test code: a failure here is a test failure

mod support;

use sonde::pipeline::buffer::Wait;
use sonde_core::metrics::Registry;
use std::time::Duration;
use support::{exporter_config, free_port, pipe, span_batch, spans, wait_for, FaultServer, Reply};

const FAST: &str = r#"
concurrency = 1
timeout = "2s"
batch = { max_items = 1, max_age = "10ms" }
retry = { initial_backoff = "10ms", max_backoff = "50ms", max_elapsed = "20s" }
"#;

fn dropped(m: &Registry, reason: &str) -> u64 {
    m.counter_sum("sonde_exporter_dropped_items_total", &[("reason", reason)])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_connections_are_retried_until_the_server_comes_up() {
    let port = free_port();
    let cfg = exporter_config(&format!(
        "endpoint = \"http://127.0.0.1:{port}\"\ncircuit_breaker = {{ failure_threshold = 0 }}\n{FAST}"
    ));
    let p = pipe(&cfg);
    for i in 0..3 {
        p.tx.push(span_batch(&format!("b{i}"), 4, 2), Wait::Forever)
            .await
            .unwrap();
    }
    let m = p.metrics.clone();
    wait_for(
        Duration::from_secs(10),
        "failed connection attempts",
        || {
            m.counter_sum(
                "sonde_otlp_exporter_failed_requests_total",
                &[("reason", "transport")],
            ) >= 3
        },
    )
    .await;
    let server = FaultServer::start(port, vec![]).await;
    let m = p.drain().await;
    assert_eq!(spans(&server.received()).len(), 12);
    assert_eq!(
        dropped(&m, "retries_exhausted") + dropped(&m, "rejected"),
        0
    );
    assert!(m.counter_sum("sonde_exporter_retries_total", &[]) >= 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_503_with_retry_after_waits_as_told() {
    let server = FaultServer::start(0, vec![Reply::Http(503, Some(1))]).await;
    let cfg = exporter_config(&format!(
        "protocol = \"http/protobuf\"\nendpoint = \"{}\"\n{FAST}",
        server.url("http")
    ));
    let p = pipe(&cfg);
    p.tx.push(span_batch("a", 5, 1), Wait::Forever)
        .await
        .unwrap();
    let m = p.drain().await;
    let got = server.received();
    assert_eq!(got.len(), 2, "one refused request, one retry");
    assert_eq!(got[0].path, "/v1/traces");
    let gap = got[1].at - got[0].at;
    assert!(
        gap >= Duration::from_millis(950),
        "retried after {gap:?}, Retry-After said 1s"
    );
    assert_eq!(spans(&got[1..]).len(), 5);
    assert_eq!(
        m.counter_sum(
            "sonde_otlp_exporter_failed_requests_total",
            &[("reason", "http_503")]
        ),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_unavailable_with_retry_info_waits_as_told() {
    let server = FaultServer::start(0, vec![Reply::Grpc(14, Some(800))]).await;
    let cfg = exporter_config(&format!("endpoint = \"{}\"\n{FAST}", server.url("http")));
    let p = pipe(&cfg);
    p.tx.push(span_batch("a", 5, 1), Wait::Forever)
        .await
        .unwrap();
    let m = p.drain().await;
    let got = server.received();
    assert_eq!(got.len(), 2);
    assert!(got[0].grpc);
    assert_eq!(
        got[0].path,
        "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
    );
    let gap = got[1].at - got[0].at;
    assert!(
        gap >= Duration::from_millis(780),
        "retried after {gap:?}, RetryInfo said 800ms"
    );
    assert_eq!(spans(&got[1..]).len(), 5);
    assert_eq!(
        m.counter_sum(
            "sonde_otlp_exporter_failed_requests_total",
            &[("reason", "grpc_unavailable")]
        ),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resource_exhausted_without_retry_info_is_dropped() {
    let server = FaultServer::start(0, vec![Reply::Grpc(8, None)]).await;
    let cfg = exporter_config(&format!("endpoint = \"{}\"\n{FAST}", server.url("http")));
    let p = pipe(&cfg);
    p.tx.push(span_batch("a", 4, 1), Wait::Forever)
        .await
        .unwrap();
    p.tx.push(span_batch("b", 3, 1), Wait::Forever)
        .await
        .unwrap();
    let m = p.drain().await;
    assert_eq!(dropped(&m, "rejected"), 4);
    let got = server.received();
    assert_eq!(got.len(), 2, "the refused batch is not retried");
    let names: Vec<String> = spans(&got[1..]).into_iter().map(|s| s.1).collect();
    assert_eq!(names, ["b-0", "b-1", "b-2"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_400_drops_and_counts_the_batch_without_blocking_the_next() {
    let server = FaultServer::start(0, vec![Reply::Http(400, None)]).await;
    let cfg = exporter_config(&format!(
        "protocol = \"http/protobuf\"\nendpoint = \"{}\"\n{FAST}",
        server.url("http")
    ));
    let p = pipe(&cfg);
    p.tx.push(span_batch("poison", 5, 1), Wait::Forever)
        .await
        .unwrap();
    p.tx.push(span_batch("good", 3, 1), Wait::Forever)
        .await
        .unwrap();
    let m = p.drain().await;
    let got = server.received();
    assert_eq!(got.len(), 2, "the refused batch is not retried");
    assert_eq!(dropped(&m, "rejected"), 5);
    assert_eq!(spans(&got[1..]).len(), 3);
    assert_eq!(m.counter_sum("sonde_exporter_sent_items_total", &[]), 3);
    assert_eq!(m.counter_sum("sonde_exporter_retries_total", &[]), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_server_times_out_and_the_batch_is_sent_again() {
    let server = FaultServer::start(0, vec![Reply::Hang]).await;
    let cfg = exporter_config(
        &format!("endpoint = \"{}\"\n{FAST}\n", server.url("http"))
            .replace("timeout = \"2s\"", "timeout = \"300ms\""),
    );
    let p = pipe(&cfg);
    p.tx.push(span_batch("a", 6, 1), Wait::Forever)
        .await
        .unwrap();
    let m = p.drain().await;
    let got = server.received();
    assert_eq!(got.len(), 2);
    assert!(got[1].at - got[0].at >= Duration::from_millis(290));
    assert_eq!(spans(&got[1..]).len(), 6);
    assert_eq!(
        m.counter_sum(
            "sonde_otlp_exporter_failed_requests_total",
            &[("reason", "timeout")]
        ),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_success_is_counted_and_not_retried() {
    let server = FaultServer::start(0, vec![Reply::Partial(2, "duplicate spans")]).await;
    let cfg = exporter_config(&format!("endpoint = \"{}\"\n{FAST}", server.url("http")));
    let p = pipe(&cfg);
    p.tx.push(span_batch("a", 5, 1), Wait::Forever)
        .await
        .unwrap();
    let m = p.drain().await;
    assert_eq!(server.received().len(), 1);
    assert_eq!(m.counter_sum("sonde_exporter_rejected_items_total", &[]), 2);
    assert_eq!(m.counter_sum("sonde_exporter_sent_items_total", &[]), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_circuit_opens_holds_calls_then_a_probe_closes_it() {
    let server = FaultServer::start(0, vec![Reply::Http(503, None), Reply::Http(503, None)]).await;
    let url = server.url("http");
    let cfg = exporter_config(&format!(
        "protocol = \"http/protobuf\"\nendpoint = \"{url}\"\ncircuit_breaker = {{ failure_threshold = 2, open_duration = \"700ms\" }}\n{FAST}"
    ));
    let p = pipe(&cfg);
    p.tx.push(span_batch("a", 5, 1), Wait::Forever)
        .await
        .unwrap();
    let m = p.drain().await;
    let got = server.received();
    assert_eq!(
        got.len(),
        3,
        "two failures, then one probe after the open period"
    );
    let gap = got[2].at - got[1].at;
    assert!(
        gap >= Duration::from_millis(650),
        "the open circuit let a call through after {gap:?}"
    );
    assert_eq!(spans(&got[2..]).len(), 5);
    let labels = [("exporter", "x"), ("endpoint", url.as_str())];
    assert_eq!(
        m.counter_sum("sonde_otlp_exporter_circuit_opened_total", &labels),
        1
    );
    assert!(m.counter_sum("sonde_otlp_exporter_refused_calls_total", &[]) >= 1);
    let state = m.gauge("sonde_otlp_exporter_circuit_state", "", &labels);
    assert_eq!(state.get(), 0, "closed again after the probe succeeded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_and_compression_reach_the_server() {
    for (proto, compression) in [
        ("grpc", "gzip"),
        ("grpc", "zstd"),
        ("http/protobuf", "gzip"),
        ("http/protobuf", "zstd"),
        ("http/protobuf", "none"),
    ] {
        let server = FaultServer::start(0, vec![]).await;
        let cfg = exporter_config(&format!(
            "protocol = \"{proto}\"\nendpoint = \"{}\"\ncompression = \"{compression}\"\nheaders = {{ authorization = \"Bearer s3cr3t\", x-tenant = \"t1\" }}\n{FAST}",
            server.url("http")
        ));
        let p = pipe(&cfg);
        p.tx.push(span_batch("a", 7, 2), Wait::Forever)
            .await
            .unwrap();
        p.drain().await;
        let got = server.received();
        assert_eq!(got.len(), 1, "{proto} {compression}");
        assert_eq!(spans(&got).len(), 7, "{proto} {compression}");
        let h = &got[0].headers;
        assert_eq!(h["authorization"], "Bearer s3cr3t");
        assert_eq!(h["x-tenant"], "t1");
        let enc = if proto == "grpc" {
            "grpc-encoding"
        } else {
            "content-encoding"
        };
        match compression {
            "none" => assert!(h.get(enc).is_none()),
            c => assert_eq!(h[enc], c, "{proto}"),
        }
    }
}
