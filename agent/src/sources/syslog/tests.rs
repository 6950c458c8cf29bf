//! The source end to end inside the process: real sockets, the real router and a memory buffer.

use super::*;
use crate::pipeline::buffer::{channel, BufferReceiver};
use crate::pipeline::router::Route;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use prost::Message as _;
use sonde_config::{BufferConfig, ByteSize, Listen};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::time::{timeout, Instant};

struct Running {
    rx: BufferReceiver,
    metrics: Registry,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
    udp: Option<SocketAddr>,
    tcp: Option<SocketAddr>,
}

async fn start(cfg: SyslogSourceConfig, buffer: BufferConfig) -> Running {
    let metrics = Registry::default();
    let (tx, rx) = channel("e", &buffer, &metrics);
    let router = Router::new(vec![Route {
        exporter: "e".into(),
        inputs: None,
        signals: vec![Signal::Logs],
        buffer: tx,
        bulkhead: None,
    }]);
    let shutdown = CancellationToken::new();
    let cx = crate::sources::context(
        "sys",
        router,
        metrics.clone(),
        shutdown.clone(),
        std::env::temp_dir(),
    );
    let bound = Bound::bind(&cfg, &cx).await.unwrap();
    let (udp, tcp) = bound.local_addrs();
    let task = tokio::spawn(bound.run());
    Running {
        rx,
        metrics,
        shutdown,
        task,
        udp,
        tcp,
    }
}

fn any() -> Listen {
    Listen::At("127.0.0.1:0".parse().unwrap())
}

impl Running {
    /// Receives batches until `n` records came, acknowledging each; returns their bodies.
    async fn bodies(&mut self, n: usize) -> Vec<String> {
        let mut out = vec![];
        let deadline = Instant::now() + Duration::from_secs(10);
        while out.len() < n {
            let q = timeout(deadline - Instant::now(), self.rx.recv())
                .await
                .expect("records in time")
                .expect("buffer open");
            let req = ExportLogsServiceRequest::decode(&q.batch.payload[..]).unwrap();
            for r in &req.resource_logs[0].scope_logs[0].log_records {
                match r.body.as_ref().and_then(|b| b.value.as_ref()) {
                    Some(Value::StringValue(s)) => out.push(s.clone()),
                    other => panic!("body {other:?}"),
                }
            }
            q.ack();
        }
        out
    }

    fn counter(&self, name: &str, filter: &[(&str, &str)]) -> u64 {
        self.metrics.counter_sum(name, filter)
    }

    async fn stop(self) {
        self.shutdown.cancel();
        timeout(Duration::from_secs(5), self.task)
            .await
            .unwrap()
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_datagrams_become_records_and_long_ones_are_cut() {
    let cfg = SyslogSourceConfig {
        udp: any(),
        max_message_size: ByteSize(480),
        ..Default::default()
    };
    let mut s = start(cfg, BufferConfig::default()).await;
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = s.udp.unwrap();
    sock.send_to(b"<13>1 - host app - - - one", addr)
        .await
        .unwrap();
    sock.send_to(b"<13>Dec  7 10:00:00 host app: two\n", addr)
        .await
        .unwrap();
    let long = format!("<13>app: {}", "x".repeat(600));
    sock.send_to(long.as_bytes(), addr).await.unwrap();
    sock.send_to(b"not syslog", addr).await.unwrap();
    let bodies = s.bodies(4).await;
    assert_eq!(bodies[..2], ["one", "two"]);
    assert_eq!(bodies[2].len(), 480 - "<13>app: ".len());
    assert_eq!(bodies[3], "not syslog");
    assert_eq!(
        s.counter("sonde_syslog_messages_total", &[("transport", "udp")]),
        4
    );
    assert_eq!(
        s.counter(
            "sonde_syslog_truncated_messages_total",
            &[("reason", "oversized")]
        ),
        1
    );
    assert_eq!(s.counter("sonde_syslog_parse_errors_total", &[]), 1);
    assert_eq!(
        s.counter("sonde_source_received_items_total", &[("source", "sys")]),
        4
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_connections_with_either_framing_deliver_every_message() {
    let cfg = SyslogSourceConfig {
        tcp: any(),
        ..Default::default()
    };
    let mut s = start(cfg, BufferConfig::default()).await;
    let addr = s.tcp.unwrap();
    let mut counted = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut lines = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut want = vec![];
    for i in 0..500 {
        let m = format!("<13>1 - h a - - - counted {i}");
        counted
            .write_all(format!("{} {m}", m.len()).as_bytes())
            .await
            .unwrap();
        lines
            .write_all(format!("<13>a: line {i}\n").as_bytes())
            .await
            .unwrap();
        want.push(format!("counted {i}"));
        want.push(format!("line {i}"));
    }
    // A last line without its newline arrives when the connection closes.
    lines.write_all(b"<13>a: last").await.unwrap();
    want.push("last".into());
    drop(lines);
    counted.shutdown().await.unwrap();
    let mut got = s.bodies(want.len()).await;
    got.sort();
    want.sort();
    assert_eq!(got, want);
    assert_eq!(
        s.counter("sonde_syslog_messages_total", &[("transport", "tcp")]),
        1001
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_buffer_holds_a_tcp_sender_back_without_losing_messages() {
    let cfg = SyslogSourceConfig {
        tcp: any(),
        ..Default::default()
    };
    // A buffer of about one batch: the source must wait for the exporter side.
    let buffer = BufferConfig {
        max_size: ByteSize::kib(64),
        ..Default::default()
    };
    let mut s = start(cfg, buffer).await;
    let addr = s.tcp.unwrap();
    // 20 MB: more than loopback's socket buffers hold.
    const N: usize = 100_000;
    let writer = tokio::spawn(async move {
        let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
        for i in 0..N {
            let line = format!("<13>1 - h a - - - {i:0>180}\n");
            c.write_all(line.as_bytes()).await.unwrap();
        }
        c.shutdown().await.unwrap();
    });
    // Nobody reads the buffer: the writer is held back well before it is done.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!writer.is_finished(), "the sender was not held back");
    let got = s.bodies(N).await;
    timeout(Duration::from_secs(10), writer)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.len(), N);
    for (i, b) in got.iter().enumerate() {
        assert_eq!(b, &format!("{i:0>180}"));
    }
    assert_eq!(s.counter("sonde_source_dropped_items_total", &[]), 0);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connection_limit_closes_extra_connections_and_counts_them() {
    let cfg = SyslogSourceConfig {
        tcp: any(),
        max_connections: 1,
        ..Default::default()
    };
    let mut s = start(cfg, BufferConfig::default()).await;
    let addr = s.tcp.unwrap();
    let mut first = tokio::net::TcpStream::connect(addr).await.unwrap();
    first.write_all(b"<13>a: first\n").await.unwrap();
    assert_eq!(s.bodies(1).await, ["first"]);
    let mut second = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut buf = [0u8; 1];
    let closed = timeout(
        Duration::from_secs(5),
        tokio::io::AsyncReadExt::read(&mut second, &mut buf),
    )
    .await;
    assert!(matches!(closed, Ok(Ok(0)) | Ok(Err(_))), "{closed:?}");
    assert_eq!(
        s.counter(
            "sonde_syslog_refused_connections_total",
            &[("reason", "limit")]
        ),
        1
    );
    assert_eq!(
        s.metrics.gauge_value("sonde_syslog_connections", &[]),
        Some(1)
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unix_socket_receives_and_is_removed_at_the_stop() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub").join("log.sock");
    // A stale socket from an earlier run is replaced.
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    drop(std::os::unix::net::UnixDatagram::bind(&path).unwrap());
    let cfg = SyslogSourceConfig {
        unix: Some(path.clone()),
        ..Default::default()
    };
    let mut s = start(cfg, BufferConfig::default()).await;
    let c = std::os::unix::net::UnixDatagram::unbound().unwrap();
    c.send_to(b"<14>Dec  7 10:00:00 cron[1]: local", &path)
        .unwrap();
    assert_eq!(s.bodies(1).await, ["local"]);
    assert_eq!(
        s.counter("sonde_syslog_messages_total", &[("transport", "unix")]),
        1
    );
    s.stop().await;
    assert!(!path.exists());
}

#[tokio::test]
async fn a_path_that_is_not_a_socket_is_not_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("file");
    std::fs::write(&path, "keep").unwrap();
    let e = datagram::UnixListener::bind(&path).err().unwrap();
    assert!(e.to_string().contains("not a socket"), "{e}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "keep");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_datagrams_the_kernel_drops_while_the_pipeline_waits_are_counted() {
    let cfg = SyslogSourceConfig {
        udp: any(),
        ..Default::default()
    };
    let buffer = BufferConfig {
        max_size: ByteSize::kib(64),
        ..Default::default()
    };
    let mut s = start(cfg, buffer).await;
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = s.udp.unwrap();
    // Nobody reads the buffer: far more than it and the socket's receive buffer hold.
    const N: usize = 20_000;
    for i in 0..N {
        sock.send_to(format!("<13>app: {i:0>100}").as_bytes(), addr)
            .unwrap();
    }
    let mut received = 0;
    while let Ok(Some(q)) = timeout(Duration::from_secs(2), s.rx.recv()).await {
        received += q.batch.items as usize;
        q.ack();
    }
    // The kernel's count is read every second.
    let deadline = Instant::now() + Duration::from_secs(5);
    let dropped = loop {
        let d = s.counter(
            "sonde_source_dropped_items_total",
            &[("reason", "udp_receive_buffer")],
        );
        if received + d as usize >= N || Instant::now() > deadline {
            break d as usize;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        dropped > 0,
        "nothing dropped: the test did not overflow the socket"
    );
    assert_eq!(
        received + dropped,
        N,
        "{received} received, {dropped} dropped"
    );
    s.stop().await;
}
