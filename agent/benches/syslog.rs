//! The syslog source's per-message cost, in process: parsing a 200-byte message and encoding its
//! OTLP log record into a batch (the work a listener does per message once the bytes are read),
//! for RFC 5424 (with structured data) and RFC 3164. Criterion reports messages per second of
//! this one thread; a batch of 1000 messages is finished (the protobuf request completed) per
//! iteration.
//!
//! ```text
//! nice -n 10 cargo bench -p sonde --bench syslog -- --measurement-time 5
//! ```

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::resource::v1::Resource;
use sonde::sources::file::encode::Encoder;
use sonde::sources::syslog::record::{Origin, RecordWriter};
use std::time::SystemTime;

const MESSAGES: usize = 1000;

/// A message of exactly 200 bytes: `head` padded with a numbered body.
fn message(head: &str, i: usize) -> Vec<u8> {
    let mut m = format!("{head}request {i} served in 12ms");
    while m.len() < 200 {
        m.push('.');
    }
    m.truncate(200);
    m.into_bytes()
}

fn bench(c: &mut Criterion) {
    let rfc5424: Vec<Vec<u8>> = (0..MESSAGES)
        .map(|i| {
            message(
                r#"<165>1 2026-12-07T22:14:15.003Z web-01.example.com nginx 8710 ACCESS [req@32473 id="42" route="/api"] "#,
                i,
            )
        })
        .collect();
    let rfc3164: Vec<Vec<u8>> = (0..MESSAGES)
        .map(|i| message("<34>Dec  7 22:14:15 web-01 nginx[8710]: ", i))
        .collect();
    let resource = Resource::default();
    let scope = InstrumentationScope::default();
    let mut g = c.benchmark_group("syslog_parse_encode");
    g.throughput(Throughput::Elements(MESSAGES as u64));
    for (name, msgs) in [("rfc5424_200B", &rfc5424), ("rfc3164_200B", &rfc3164)] {
        let mut enc = Encoder::new(&resource, &scope, 256 * 1024);
        let mut w = RecordWriter::default();
        g.bench_function(name, |b| {
            b.iter(|| {
                let now = SystemTime::now();
                for m in msgs {
                    let origin = Origin {
                        peer: Some("192.0.2.10"),
                        cut: None,
                    };
                    w.write(&mut enc, m, origin, now);
                }
                enc.finish()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
