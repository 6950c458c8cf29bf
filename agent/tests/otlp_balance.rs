//! Load balancing over several endpoints behind the real export worker: round-robin keeps
//! delivering when a sink dies mid-run, and `balance = "trace_id"` lands every trace whole on
//! one sink.

#![allow(clippy::unwrap_used)] // test code: a failure here is a test failure

mod support;

use sonde::pipeline::buffer::Wait;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};
use support::{exporter_config, pipe, span_batch, spans, wait_for, FaultServer};

fn endpoints(sinks: &[FaultServer]) -> String {
    let list: Vec<String> = sinks
        .iter()
        .map(|s| format!("\"{}\"", s.url("http")))
        .collect();
    format!("endpoints = [{}]", list.join(", "))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_loses_nothing_when_a_sink_dies_and_moves_traffic_to_the_live_ones() {
    for proto in ["grpc", "http/protobuf"] {
        let mut sinks = vec![
            FaultServer::start(0, vec![]).await,
            FaultServer::start(0, vec![]).await,
            FaultServer::start(0, vec![]).await,
        ];
        let cfg = exporter_config(&format!(
            "protocol = \"{proto}\"\n{}\nconcurrency = 2\nbatch = {{ max_items = 1, max_age = \"5ms\" }}\nretry = {{ initial_backoff = \"10ms\", max_backoff = \"100ms\" }}\ncircuit_breaker = {{ failure_threshold = 2, open_duration = \"30s\" }}",
            endpoints(&sinks)
        ));
        let p = pipe(&cfg);
        let total_batches = 60;
        for i in 0..total_batches / 2 {
            p.tx.push(span_batch(&format!("b{i}"), 10, 3), Wait::Forever)
                .await
                .unwrap();
        }
        let delivered =
            |sinks: &[FaultServer]| sinks.iter().map(|s| s.received().len()).sum::<usize>();
        wait_for(
            Duration::from_secs(10),
            "half the batches delivered",
            || delivered(&sinks) >= total_batches / 2,
        )
        .await;
        assert!(
            sinks.iter().all(|s| !s.received().is_empty()),
            "{proto}: round-robin used every sink"
        );
        sinks[1].kill().await;
        let killed_at = Instant::now();
        for i in total_batches / 2..total_batches {
            p.tx.push(span_batch(&format!("b{i}"), 10, 3), Wait::Forever)
                .await
                .unwrap();
        }
        let m = p.drain().await;
        let mut names = BTreeSet::new();
        for s in &sinks {
            for (_, name) in spans(&s.received()) {
                names.insert(name);
            }
        }
        assert_eq!(
            names.len(),
            total_batches * 10,
            "{proto}: every span delivered"
        );
        for live in [0, 2] {
            let after = sinks[live]
                .received()
                .iter()
                .filter(|r| r.at > killed_at)
                .count();
            assert!(
                after > 0,
                "{proto}: live sink {live} got nothing after the kill"
            );
        }
        assert_eq!(
            m.counter_sum("sonde_exporter_dropped_items_total", &[]),
            0,
            "{proto}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_id_balance_lands_every_trace_whole_on_one_sink() {
    let sinks = vec![
        FaultServer::start(0, vec![]).await,
        FaultServer::start(0, vec![]).await,
        FaultServer::start(0, vec![]).await,
    ];
    let cfg = exporter_config(&format!(
        "{}\nbalance = \"trace_id\"\nbatch = {{ max_items = 1, max_age = \"5ms\" }}",
        endpoints(&sinks)
    ));
    let p = pipe(&cfg);
    // 20 batches of 50 spans over 25 traces; batches with equal-length prefixes share trace IDs,
    // so a trace's spans arrive in several batches.
    for i in 0..20 {
        p.tx.push(span_batch(&format!("b{i}"), 50, 25), Wait::Forever)
            .await
            .unwrap();
    }
    p.drain().await;
    let mut homes: BTreeMap<Vec<u8>, BTreeSet<usize>> = BTreeMap::new();
    let mut count = 0;
    for (i, s) in sinks.iter().enumerate() {
        for (trace, _) in spans(&s.received()) {
            homes.entry(trace).or_default().insert(i);
            count += 1;
        }
    }
    assert_eq!(count, 1000);
    assert_eq!(homes.len(), 50, "25 traces for each of two prefix lengths");
    for (trace, sinks) in &homes {
        assert_eq!(
            sinks.len(),
            1,
            "trace {trace:?} was split over sinks {sinks:?}"
        );
    }
    let used: BTreeSet<usize> = homes.values().flatten().copied().collect();
    assert_eq!(used.len(), 3, "50 traces spread over all three sinks");
}
