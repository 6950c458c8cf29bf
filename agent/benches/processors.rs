//! The processors' own cost, in process: each processor alone and the chains, on the requests of
//! the `otlp_load` generator (1000 realistic spans each), against the cost of the pass-through
//! (a wire walk that validates and counts, which is what the receiver does to every request).
//! Reported as nanoseconds per span of CPU (criterion measures the wall time of this one thread).
//!
//! ```text
//! cargo bench -p sonde --bench processors
//! ```
//!
//! The end-to-end figure (OTLP in → processors → OTLP out, CPU seconds per million spans, beside
//! rotel) is `bench/otlp_receiver.py --agents sonde-otlp-none,sonde-proc-chain3,…`.

#[path = "support/requests.rs"]
mod requests;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sonde::processors::{self, ProcessorNode};
use sonde_config::{ProcessorConfig, ProcessorKind};
use sonde_core::metrics::Registry;
use sonde_core::{wire, Batch, Signal};
use std::sync::Arc;

const SPANS: usize = 1000;

fn node(name: &str, toml: &str) -> ProcessorNode {
    let text = format!(
        "[sources.otlp]\ntype = \"otlp\"\n[processors.{name}]\ninputs = [\"otlp\"]\n{toml}\n\
         [exporters.out]\ntype = \"stdout\"\ninputs = [\"{name}\"]\n"
    );
    let cfg = sonde::load_config(&text, "bench").expect("a valid bench config");
    let p: &ProcessorConfig = &cfg.processors[name];
    let cx = processors::context(
        name,
        &cfg.agent,
        Registry::default(),
        tokio_util::sync::CancellationToken::new(),
    );
    processors::build(p, &cx).expect("the processor builds")
}

fn bench(c: &mut Criterion) {
    let payload = requests::request(SPANS, 1).bytes;
    let batch = Batch::from_trusted(
        Signal::Traces,
        payload.clone(),
        SPANS as u64,
        Arc::from("otlp"),
    );
    let mut g = c.benchmark_group("processors");
    g.throughput(Throughput::Elements(SPANS as u64));
    g.bench_function("pass-through (wire validate)", |b| {
        b.iter(|| wire::validate(Signal::Traces, &payload).expect("valid"))
    });
    let resource = node(
        "resource",
        "type = \"resource\"\ndetectors = [\"env\", \"host\", \"os\"]\n\
         set = { \"deployment.environment.name\" = \"prod\" }\ninsert = { \"service.namespace\" = \"shop\" }",
    );
    let filter = node(
        "filter",
        "type = \"filter\"\nspans = ['attributes[\"http.route\"] == \"/ping\"', 'name == \"GET /healthz\"']",
    );
    let redact = node(
        "redact",
        "type = \"redact\"\npatterns = [\"email\", \"credit_card\", \"ipv4\"]",
    );
    let sample = node("sample", "type = \"sample\"\npercentage = 100.0");
    for (name, chain) in [
        ("resource", vec![&resource]),
        ("filter", vec![&filter]),
        ("redact", vec![&redact]),
        ("sample", vec![&sample]),
        ("chain3", vec![&resource, &filter, &redact]),
        ("chain4", vec![&resource, &filter, &redact, &sample]),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| {
                let mut out = Some(batch.clone());
                for p in &chain {
                    out = out.and_then(|b| p.process(b));
                }
                out
            })
        });
    }
    g.finish();
    let _ = ProcessorKind::TYPES;
}

criterion_group!(benches, bench);
criterion_main!(benches);
