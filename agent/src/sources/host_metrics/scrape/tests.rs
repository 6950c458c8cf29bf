//! Tests of whole scrapes: on this machine (both conventions, the process collector) and on
//! fake host roots with fixture `/proc` files (exact figures, `root_path`, garbage input).

use super::*;
use opentelemetry_proto::tonic::common::v1::any_value;
use opentelemetry_proto::tonic::metrics::v1::{metric, number_data_point, NumberDataPoint};
use sonde_config::ProcessRank;

#[derive(Debug, PartialEq)]
enum Kind {
    Counter,
    UpDown,
    Gauge,
}

/// A scraper for `cfg`, its filters compiled.
fn scraper(cfg: &HostMetricsConfig) -> Scraper {
    Scraper::new(cfg, Filters::new(cfg).unwrap())
}

fn metric<'a>(rm: &'a ResourceMetrics, name: &str) -> Option<&'a Metric> {
    rm.scope_metrics
        .iter()
        .flat_map(|s| &s.metrics)
        .find(|m| m.name == name)
}

fn kind_and_points(m: &Metric) -> (Kind, &[NumberDataPoint]) {
    match &m.data {
        Some(metric::Data::Sum(s)) => {
            assert_eq!(
                s.aggregation_temporality, 2,
                "{} must be cumulative",
                m.name
            );
            let k = if s.is_monotonic {
                Kind::Counter
            } else {
                Kind::UpDown
            };
            (k, &s.data_points)
        }
        Some(metric::Data::Gauge(g)) => (Kind::Gauge, &g.data_points),
        other => panic!("{}: unexpected data {other:?}", m.name),
    }
}

fn as_f64(p: &NumberDataPoint) -> f64 {
    match p.value {
        Some(number_data_point::Value::AsDouble(v)) => v,
        Some(number_data_point::Value::AsInt(v)) => v as f64,
        None => panic!("point without value"),
    }
}

fn attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a any_value::Value> {
    attrs
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref()?.value.as_ref())
}

fn attr_str<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a str> {
    match attr(attrs, key) {
        Some(any_value::Value::StringValue(s)) => Some(s),
        _ => None,
    }
}

/// Asserts that `name` is present with `unit` and `kind`, that every point carries exactly
/// `keys`, and that sums start at `start`. Returns the points.
fn check<'a>(
    rm: &'a ResourceMetrics,
    name: &str,
    unit: &str,
    kind: Kind,
    keys: &[&str],
    start: u64,
) -> &'a [NumberDataPoint] {
    let m = metric(rm, name).unwrap_or_else(|| panic!("missing metric {name}"));
    assert_eq!(m.unit, unit, "unit of {name}");
    assert!(!m.description.is_empty(), "description of {name}");
    let (k, points) = kind_and_points(m);
    assert_eq!(k, kind, "instrument of {name}");
    assert!(!points.is_empty(), "{name} has no points");
    for p in points {
        let mut got: Vec<&str> = p.attributes.iter().map(|kv| kv.key.as_str()).collect();
        got.sort_unstable();
        let mut want = keys.to_vec();
        want.sort_unstable();
        assert_eq!(got, want, "attribute keys of {name}");
        assert!(p.time_unix_nano > 0);
        let want_start = if kind == Kind::Gauge { 0 } else { start };
        assert_eq!(p.start_time_unix_nano, want_start, "start time of {name}");
        if kind == Kind::Counter {
            assert!(as_f64(p) >= 0.0, "{name} is negative");
        }
    }
    points
}

fn values_of(points: &[NumberDataPoint], key: &str) -> Vec<String> {
    let mut v: Vec<String> = points
        .iter()
        .filter_map(|p| attr_str(&p.attributes, key))
        .map(str::to_owned)
        .collect();
    v.sort_unstable();
    v.dedup();
    v
}

fn fractions_in_unit_interval(points: &[NumberDataPoint]) {
    for p in points {
        let v = as_f64(p);
        assert!((0.0..=1.0).contains(&v), "utilization {v} out of [0, 1]");
    }
}

fn host_resource_ok(rm: &ResourceMetrics) {
    let attrs = &rm.resource.as_ref().expect("resource").attributes;
    assert!(attr_str(attrs, "host.name").is_some_and(|n| !n.is_empty()));
    let arch = attr_str(attrs, "host.arch").expect("host.arch");
    assert!(
        !arch.contains('_'),
        "host.arch {arch} is not in semconv form"
    );
    assert_eq!(attr_str(attrs, "os.type"), Some("linux"));
    let scope = rm.scope_metrics[0].scope.as_ref().expect("scope");
    assert_eq!(scope.name, "sonde/host_metrics");
    assert_eq!(scope.version, env!("CARGO_PKG_VERSION"));
}

fn two_scrapes(
    cfg: &HostMetricsConfig,
) -> (ExportMetricsServiceRequest, ExportMetricsServiceRequest) {
    let mut s = scraper(cfg);
    let first = s.scrape();
    // Let some CPU time pass so the second scrape has a delta to divide.
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(50);
    while std::time::Instant::now() < deadline {
        std::hint::black_box(0u64);
    }
    let second = s.scrape();
    (first, second)
}

#[test]
fn real_scrape_semconv_names_units_kinds_and_values() {
    let cfg = HostMetricsConfig::default();
    let (first, second) = two_scrapes(&cfg);
    assert_eq!(first.resource_metrics.len(), 1);
    let rm1 = &first.resource_metrics[0];
    let rm = &second.resource_metrics[0];
    host_resource_ok(rm);
    let boot = scraper(&cfg).units.boot_ns;
    assert!(boot > 0);

    // Utilization needs a previous scrape.
    assert!(metric(rm1, "system.cpu.utilization").is_none());
    let cpu = check(
        rm,
        "system.cpu.time",
        "s",
        Kind::Counter,
        &["cpu.mode"],
        boot,
    );
    assert_eq!(
        values_of(cpu, "cpu.mode"),
        [
            "idle",
            "interrupt",
            "iowait",
            "nice",
            "steal",
            "system",
            "user"
        ]
    );
    assert!(cpu
        .iter()
        .all(|p| matches!(p.value, Some(number_data_point::Value::AsDouble(_)))));
    let util = check(
        rm,
        "system.cpu.utilization",
        "1",
        Kind::Gauge,
        &["cpu.mode"],
        boot,
    );
    fractions_in_unit_interval(util);
    let total: f64 = util.iter().map(as_f64).sum();
    assert!(
        (total - 1.0).abs() < 1e-9,
        "cpu utilization sums to {total}"
    );
    let n = check(
        rm,
        "system.cpu.logical.count",
        "{cpu}",
        Kind::UpDown,
        &[],
        boot,
    );
    assert!(as_f64(&n[0]) >= 1.0);

    let usage = check(
        rm,
        "system.memory.usage",
        "By",
        Kind::UpDown,
        &["system.memory.state"],
        boot,
    );
    assert_eq!(
        values_of(usage, "system.memory.state"),
        ["buffers", "cached", "free", "used"]
    );
    assert!(usage
        .iter()
        .all(|p| matches!(p.value, Some(number_data_point::Value::AsInt(_)))));
    let used: f64 = usage
        .iter()
        .filter(|p| attr_str(&p.attributes, "system.memory.state") == Some("used"))
        .map(as_f64)
        .sum();
    assert!(used > 0.0);
    let limit = check(rm, "system.memory.limit", "By", Kind::UpDown, &[], boot);
    let sum: f64 = usage.iter().map(as_f64).sum();
    assert_eq!(sum, as_f64(&limit[0]), "memory states partition the total");
    let util = check(
        rm,
        "system.memory.utilization",
        "1",
        Kind::Gauge,
        &["system.memory.state"],
        boot,
    );
    fractions_in_unit_interval(util);
    check(
        rm,
        "system.memory.linux.available",
        "By",
        Kind::UpDown,
        &[],
        boot,
    );
    check(
        rm,
        "system.memory.linux.slab.usage",
        "By",
        Kind::UpDown,
        &["system.memory.linux.slab.state"],
        boot,
    );

    for name in [
        "system.cpu.load_average.1m",
        "system.cpu.load_average.5m",
        "system.cpu.load_average.15m",
    ] {
        check(rm, name, "{thread}", Kind::Gauge, &[], boot);
    }

    check(
        rm,
        "system.paging.faults",
        "{fault}",
        Kind::Counter,
        &["system.paging.fault.type"],
        boot,
    );
    check(
        rm,
        "system.paging.operations",
        "{operation}",
        Kind::Counter,
        &["system.paging.fault.type", "system.paging.direction"],
        boot,
    );
    if let Some(m) = metric(rm, "system.paging.usage") {
        assert_eq!(m.unit, "By");
        let util = check(
            rm,
            "system.paging.utilization",
            "1",
            Kind::Gauge,
            &["system.device", "system.paging.state"],
            boot,
        );
        fractions_in_unit_interval(util);
    }

    let net = check(
        rm,
        "system.network.io",
        "By",
        Kind::Counter,
        &["network.interface.name", "network.io.direction"],
        boot,
    );
    assert!(values_of(net, "network.interface.name").contains(&"lo".to_owned()));
    assert_eq!(
        values_of(net, "network.io.direction"),
        ["receive", "transmit"]
    );
    check(
        rm,
        "system.network.packet.count",
        "{packet}",
        Kind::Counter,
        &["system.device", "network.io.direction"],
        boot,
    );
    check(
        rm,
        "system.network.packet.dropped",
        "{packet}",
        Kind::Counter,
        &["network.interface.name", "network.io.direction"],
        boot,
    );
    check(
        rm,
        "system.network.errors",
        "{error}",
        Kind::Counter,
        &["network.interface.name", "network.io.direction"],
        boot,
    );
    assert!(metric(rm, "system.network.connections").is_none());

    if std::fs::read_to_string("/proc/diskstats").is_ok_and(|t| {
        procfs::parse_diskstats(&t)
            .iter()
            .any(|d| glob::Filters::new(&cfg).unwrap().disk.includes(d.name))
    }) {
        let dirs = ["disk.io.direction", "system.device"];
        let io = check(rm, "system.disk.io", "By", Kind::Counter, &dirs, boot);
        assert!(values_of(io, "system.device")
            .iter()
            .all(|d| !d.starts_with("loop")));
        check(
            rm,
            "system.disk.operations",
            "{operation}",
            Kind::Counter,
            &dirs,
            boot,
        );
        check(
            rm,
            "system.disk.operation_time",
            "s",
            Kind::Counter,
            &dirs,
            boot,
        );
        check(
            rm,
            "system.disk.merged",
            "{operation}",
            Kind::Counter,
            &dirs,
            boot,
        );
        check(
            rm,
            "system.disk.io_time",
            "s",
            Kind::Counter,
            &["system.device"],
            boot,
        );
    }

    // File systems: the ones in the host's mount table that pass the default filter.
    let mounts = ["/proc/1/mounts", "/proc/self/mounts"]
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .map(|t| procfs::parse_mounts(&t))
        .unwrap_or_default();
    let filters = glob::Filters::new(&cfg).unwrap();
    let included = |m: &procfs::Mount| filters.filesystem.includes(&m.mount_point, &m.fs_type);
    if mounts.iter().any(included) {
        let fs_keys = [
            "system.device",
            "system.filesystem.mode",
            "system.filesystem.mountpoint",
            "system.filesystem.state",
            "system.filesystem.type",
        ];
        let fs = check(
            rm,
            "system.filesystem.usage",
            "By",
            Kind::UpDown,
            &fs_keys,
            boot,
        );
        for mp in values_of(fs, "system.filesystem.mountpoint") {
            let m = mounts
                .iter()
                .find(|m| m.mount_point == mp)
                .expect("mount in table");
            assert!(included(m), "{mp} should have been filtered out");
        }
        assert_eq!(
            values_of(fs, "system.filesystem.state"),
            ["free", "reserved", "used"]
        );
        let util = check(
            rm,
            "system.filesystem.utilization",
            "1",
            Kind::Gauge,
            &fs_keys,
            boot,
        );
        fractions_in_unit_interval(util);
        let limit_keys = [fs_keys[0], fs_keys[1], fs_keys[2], fs_keys[4]];
        check(
            rm,
            "system.filesystem.limit",
            "By",
            Kind::UpDown,
            &limit_keys,
            boot,
        );
    }

    let procs = check(
        rm,
        "system.process.count",
        "{process}",
        Kind::UpDown,
        &["process.state"],
        boot,
    );
    assert_eq!(
        values_of(procs, "process.state"),
        ["defunct", "running", "sleeping", "stopped"]
    );
    assert!(procs.iter().map(as_f64).sum::<f64>() >= 1.0);
    check(
        rm,
        "system.process.created",
        "{process}",
        Kind::Counter,
        &[],
        boot,
    );

    let up = check(rm, "system.uptime", "s", Kind::Gauge, &[], boot);
    assert!(as_f64(&up[0]) > 0.0);

    // Start times are the same on both scrapes, series by series.
    let starts = |rm: &ResourceMetrics| -> Vec<(String, u64)> {
        rm.scope_metrics[0]
            .metrics
            .iter()
            .filter_map(|m| match &m.data {
                Some(metric::Data::Sum(s)) => {
                    Some((m.name.clone(), s.data_points[0].start_time_unix_nano))
                }
                _ => None,
            })
            .collect()
    };
    let (a, b) = (starts(rm1), starts(rm));
    assert!(!a.is_empty());
    for (name, start) in &a {
        assert!(
            b.contains(&(name.clone(), *start)),
            "start time of {name} moved"
        );
    }
    // Counters do not go backwards between two scrapes.
    let t1 = as_f64(&check(rm1, "system.uptime", "s", Kind::Gauge, &[], boot)[0]);
    assert!(as_f64(&up[0]) >= t1);
}

#[test]
fn real_scrape_collector_names_and_attributes() {
    let cfg = HostMetricsConfig {
        conventions: Conventions::Collector,
        ..Default::default()
    };
    let (_, second) = two_scrapes(&cfg);
    let rm = &second.resource_metrics[0];
    host_resource_ok(rm);
    let boot = scraper(&cfg).units.boot_ns;

    let cpu = check(rm, "system.cpu.time", "s", Kind::Counter, &["state"], boot);
    assert_eq!(
        values_of(cpu, "state"),
        [
            "idle",
            "interrupt",
            "nice",
            "softirq",
            "steal",
            "system",
            "user",
            "wait"
        ]
    );
    // Optional in the Collector: not emitted.
    assert!(metric(rm, "system.cpu.utilization").is_none());
    assert!(metric(rm, "system.memory.utilization").is_none());
    check(
        rm,
        "system.cpu.logical.count",
        "{cpu}",
        Kind::UpDown,
        &[],
        boot,
    );

    let mem = check(
        rm,
        "system.memory.usage",
        "By",
        Kind::UpDown,
        &["state"],
        boot,
    );
    assert_eq!(
        values_of(mem, "state"),
        [
            "buffered",
            "cached",
            "free",
            "slab_reclaimable",
            "slab_unreclaimable",
            "used"
        ]
    );
    assert!(mem.iter().map(as_f64).sum::<f64>() > 0.0);

    check(
        rm,
        "system.cpu.load_average.15m",
        "{thread}",
        Kind::Gauge,
        &[],
        boot,
    );

    let ops = check(
        rm,
        "system.paging.operations",
        "{operations}",
        Kind::Counter,
        &["direction", "type"],
        boot,
    );
    assert_eq!(values_of(ops, "direction"), ["page_in", "page_out"]);
    assert_eq!(values_of(ops, "type"), ["major", "minor"]);
    check(
        rm,
        "system.paging.faults",
        "{faults}",
        Kind::Counter,
        &["type"],
        boot,
    );

    let dd = ["device", "direction"];
    let net = check(rm, "system.network.io", "By", Kind::Counter, &dd, boot);
    assert_eq!(values_of(net, "direction"), ["receive", "transmit"]);
    check(
        rm,
        "system.network.packets",
        "{packets}",
        Kind::Counter,
        &dd,
        boot,
    );
    check(
        rm,
        "system.network.dropped",
        "{packets}",
        Kind::Counter,
        &dd,
        boot,
    );
    check(
        rm,
        "system.network.errors",
        "{errors}",
        Kind::Counter,
        &dd,
        boot,
    );
    let conns = check(
        rm,
        "system.network.connections",
        "{connections}",
        Kind::UpDown,
        &["protocol", "state"],
        boot,
    );
    assert_eq!(conns.len(), procfs::TCP_STATES.len());
    assert!(metric(rm, "system.network.packet.count").is_none());

    if let Some(m) = metric(rm, "system.disk.io") {
        assert_eq!(m.unit, "By");
        check(
            rm,
            "system.disk.operations",
            "{operations}",
            Kind::Counter,
            &dd,
            boot,
        );
        check(
            rm,
            "system.disk.io_time",
            "s",
            Kind::Counter,
            &["device"],
            boot,
        );
        check(
            rm,
            "system.disk.weighted_io_time",
            "s",
            Kind::Counter,
            &["device"],
            boot,
        );
        check(
            rm,
            "system.disk.pending_operations",
            "{operations}",
            Kind::UpDown,
            &["device"],
            boot,
        );
        check(
            rm,
            "system.disk.merged",
            "{operations}",
            Kind::Counter,
            &dd,
            boot,
        );
    }

    let fs_keys = ["device", "mode", "mountpoint", "state", "type"];
    check(
        rm,
        "system.filesystem.usage",
        "By",
        Kind::UpDown,
        &fs_keys,
        boot,
    );
    check(
        rm,
        "system.filesystem.inodes.usage",
        "{inodes}",
        Kind::UpDown,
        &fs_keys,
        boot,
    );
    assert!(metric(rm, "system.filesystem.utilization").is_none());

    let procs = check(
        rm,
        "system.processes.count",
        "{processes}",
        Kind::UpDown,
        &["status"],
        boot,
    );
    let statuses = values_of(procs, "status");
    assert!(statuses.contains(&"running".to_owned()) && statuses.contains(&"blocked".to_owned()));
    check(
        rm,
        "system.processes.created",
        "{processes}",
        Kind::Counter,
        &[],
        boot,
    );
    check(rm, "system.uptime", "s", Kind::Gauge, &[], boot);
}

#[test]
fn process_collector_emits_one_resource_per_top_process() {
    for (conv, by) in [
        (Conventions::Semconv, ProcessRank::Cpu),
        (Conventions::Collector, ProcessRank::Memory),
    ] {
        let cfg = HostMetricsConfig {
            collectors: vec![HostCollector::Process],
            conventions: conv,
            process: ProcessConfig { top_n: 3, by },
            ..Default::default()
        };
        let (_, second) = two_scrapes(&cfg);
        // No host resource (only `process` is on, so it has no metrics), and up to three
        // processes.
        let rms = &second.resource_metrics;
        assert!((1..=3).contains(&rms.len()), "{} resources", rms.len());
        let mut rss = Vec::new();
        for rm in rms {
            host_resource_ok(rm);
            let attrs = &rm.resource.as_ref().expect("resource").attributes;
            let Some(any_value::Value::IntValue(pid)) = attr(attrs, "process.pid") else {
                panic!("no process.pid")
            };
            assert!(*pid > 0);
            assert!(attr(attrs, "process.parent_pid").is_some());
            assert!(attr_str(attrs, "process.executable.name").is_some());
            let (start, bytes) = match metric(rm, "process.memory.usage").map(|m| &m.data) {
                Some(Some(metric::Data::Sum(s))) => (
                    s.data_points[0].start_time_unix_nano,
                    as_f64(&s.data_points[0]),
                ),
                _ => panic!("no process.memory.usage"),
            };
            assert!(start > 0);
            rss.push(bytes);
            let mode = if conv == Conventions::Semconv {
                "cpu.mode"
            } else {
                "state"
            };
            check(rm, "process.cpu.time", "s", Kind::Counter, &[mode], start);
            check(rm, "process.memory.virtual", "By", Kind::UpDown, &[], start);
            if conv == Conventions::Semconv {
                check(
                    rm,
                    "process.thread.count",
                    "{thread}",
                    Kind::UpDown,
                    &[],
                    start,
                );
            } else {
                assert!(metric(rm, "process.thread.count").is_none());
            }
        }
        // Ranked by memory: largest resident set first, from the same read as the figure.
        // (CPU ranking depends on what else runs on the machine: see the fixture test.)
        if by == ProcessRank::Memory {
            assert!(
                rss.windows(2).all(|w| w[0] >= w[1]),
                "not ranked by RSS: {rss:?}"
            );
        }
    }
}

/// A `/proc/<pid>/stat` line with the fields the scraper reads.
fn pid_stat(pid: u32, state: char, ticks: u64, starttime: u64, rss_pages: u64) -> String {
    format!(
        "{pid} (p{pid}) {state} 1 1 1 0 -1 0 0 0 0 0 {ticks} 0 0 0 20 0 1 0 {starttime} 4096 \
         {rss_pages} 0\n"
    )
}

fn top_pids(req: &ExportMetricsServiceRequest) -> Vec<i64> {
    req.resource_metrics
        .iter()
        .filter_map(
            |rm| match attr(&rm.resource.as_ref()?.attributes, "process.pid") {
                Some(any_value::Value::IntValue(pid)) => Some(*pid),
                _ => None,
            },
        )
        .collect()
}

#[test]
fn cpu_ranking_uses_the_change_since_the_previous_scrape() {
    let dir = fake_root("cpu 1 1 1 1");
    let write = |pid: u32, line: String| {
        let d = dir.path().join(format!("proc/{pid}"));
        std::fs::create_dir_all(&d).expect("mkdir");
        std::fs::write(d.join("stat"), line).expect("write stat");
        std::fs::write(d.join("comm"), format!("p{pid}\n")).expect("write comm");
    };
    // 4242 has the most CPU time in total (400 ticks), 5000 little (100) but more memory.
    write(5000, pid_stat(5000, 'S', 100, 700, 10));
    let cfg = |by| HostMetricsConfig {
        root_path: dir.path().to_owned(),
        collectors: vec![HostCollector::Process],
        process: ProcessConfig { top_n: 1, by },
        ..Default::default()
    };
    let mut by_cpu = scraper(&cfg(ProcessRank::Cpu));
    assert_eq!(
        top_pids(&by_cpu.scrape()),
        [4242],
        "first scrape: total CPU time"
    );
    assert_eq!(
        top_pids(&scraper(&cfg(ProcessRank::Memory)).scrape()),
        [5000]
    );

    // Since then 5000 used 200 ticks and 4242 none: 5000 ranks first.
    write(5000, pid_stat(5000, 'S', 300, 700, 10));
    assert_eq!(top_pids(&by_cpu.scrape()), [5000]);

    // 4242 is now a new process with a reused pid (another start time): its 250 ticks are all
    // recent, and beat 5000's 0 since the previous scrape.
    write(4242, pid_stat(4242, 'R', 250, 900, 1));
    assert_eq!(top_pids(&by_cpu.scrape()), [4242]);

    // top_n = 0: no process resources at all.
    let none = HostMetricsConfig {
        process: ProcessConfig {
            top_n: 0,
            by: ProcessRank::Cpu,
        },
        ..cfg(ProcessRank::Cpu)
    };
    assert!(scraper(&none).scrape().resource_metrics.is_empty());
}

/// Writes a fake host root with fixture /proc files.
fn fake_root(cpu_line: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path();
    let write = |rel: &str, text: &str| {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, text).expect("write fixture");
    };
    write(
        "proc/stat",
        &format!("{cpu_line}\ncpu0 1 1 1 1\ncpu1 1 1 1 1\nbtime 1700000000\nprocesses 42\nprocs_running 2\nprocs_blocked 0\n"),
    );
    write(
        "proc/meminfo",
        "MemTotal: 1000 kB\nMemFree: 400 kB\nMemAvailable: 700 kB\nBuffers: 100 kB\n\
         Cached: 200 kB\nShmem: 10 kB\nSReclaimable: 50 kB\nSUnreclaim: 30 kB\n",
    );
    write("proc/loadavg", "1.50 0.75 0.25 2/100 999\n");
    write("proc/uptime", "123.5 200.0\n");
    write(
        "proc/diskstats",
        "   8 0 sda 10 1 80 5 20 2 160 7 0 9 12\n   7 0 loop0 1 1 1 1 1 1 1 1 0 1 1\nbroken\n",
    );
    write(
        "proc/net/dev",
        "Inter-|\n face |\n  eth0: 1000 10 1 2 0 0 0 0 2000 20 3 4 0 0 0 0\n  lo: 5 1 0 0 0 0 0 0 5 1 0 0 0 0 0 0\n",
    );
    write(
        "proc/vmstat",
        "pgfault 100\npgmajfault 10\npgpgin 5\npgpgout 6\npswpin 1\npswpout 2\n",
    );
    write(
        "proc/swaps",
        "Filename Type Size Used Priority\n/dev/sdb1 partition 1000 250 -2\n",
    );
    // statvfs of "/" under the fake root is the temp dir's file system.
    write(
        "proc/1/mounts",
        "/dev/sda1 / ext4 rw,relatime 0 0\nproc /proc proc rw 0 0\n",
    );
    write(
        "proc/net/tcp",
        "  sl local rem st\n 0: a b 0A x\n 1: a b 01 x\n 2: a b 01 x\n",
    );
    write(
        "proc/4242/stat",
        "4242 (fixture) R 1 1 1 0 -1 0 0 0 0 0 300 100 0 0 20 0 4 0 500 8192 3 0\n",
    );
    write(
        "proc/4243/stat",
        "4243 (zombie) Z 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 600 0 0 0\n",
    );
    write("proc/4244/stat", "garbage\n");
    write("proc/4242/comm", "fixture\n");
    write("proc/4242/cmdline", "/usr/bin/fixture\0--flag\0");
    write("proc/4242/io", "read_bytes: 11\nwrite_bytes: 22\n");
    write("etc/hostname", "fixture-host\n");
    write("etc/machine-id", "abc123\n");
    write("etc/os-release", "PRETTY_NAME=\"Fixture OS 1\"\n");
    dir
}

fn points_by(points: &[NumberDataPoint], key: &str) -> Vec<(String, f64)> {
    let mut v: Vec<(String, f64)> = points
        .iter()
        .map(|p| {
            (
                attr_str(&p.attributes, key).unwrap_or("").to_owned(),
                as_f64(p),
            )
        })
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

fn pairs(v: &[(&str, f64)]) -> Vec<(String, f64)> {
    v.iter().map(|(k, x)| ((*k).to_owned(), *x)).collect()
}

#[test]
fn fake_root_figures_are_read_under_root_path() {
    let dir = fake_root("cpu 100 0 100 800 0 0 0 0");
    let mut collectors = HostCollector::DEFAULT.to_vec();
    collectors.push(HostCollector::Process);
    let cfg = HostMetricsConfig {
        root_path: dir.path().to_owned(),
        collectors,
        process: ProcessConfig {
            top_n: 1,
            by: ProcessRank::Cpu,
        },
        ..Default::default()
    };
    let mut s = scraper(&cfg);
    let _ = s.scrape();
    // 100 more user ticks and 300 more idle ticks: utilization user 0.25, idle 0.75.
    std::fs::write(
        dir.path().join("proc/stat"),
        "cpu 200 0 100 1100 0 0 0 0\nbtime 1700000000\nprocesses 43\n",
    )
    .expect("rewrite stat");
    let req = s.scrape();
    let rm = &req.resource_metrics[0];
    let boot = 1_700_000_000 * 1_000_000_000;
    let attrs = &rm.resource.as_ref().expect("resource").attributes;
    assert_eq!(attr_str(attrs, "host.name"), Some("fixture-host"));
    assert_eq!(attr_str(attrs, "host.id"), Some("abc123"));
    assert_eq!(attr_str(attrs, "os.description"), Some("Fixture OS 1"));

    let util = check(
        rm,
        "system.cpu.utilization",
        "1",
        Kind::Gauge,
        &["cpu.mode"],
        boot,
    );
    let util = points_by(util, "cpu.mode");
    assert!(util.contains(&("user".to_owned(), 0.25)));
    assert!(util.contains(&("idle".to_owned(), 0.75)));
    let time = check(
        rm,
        "system.cpu.time",
        "s",
        Kind::Counter,
        &["cpu.mode"],
        boot,
    );
    let ticks = s.units.ticks_per_second as f64;
    assert!(points_by(time, "cpu.mode").contains(&("user".to_owned(), 200.0 / ticks)));

    let mem = check(
        rm,
        "system.memory.usage",
        "By",
        Kind::UpDown,
        &["system.memory.state"],
        boot,
    );
    assert_eq!(
        points_by(mem, "system.memory.state"),
        pairs(&[
            ("buffers", 102400.0),
            ("cached", 204800.0),
            ("free", 409600.0),
            ("used", 307200.0)
        ])
    );
    let load = check(
        rm,
        "system.cpu.load_average.1m",
        "{thread}",
        Kind::Gauge,
        &[],
        boot,
    );
    assert_eq!(as_f64(&load[0]), 1.5);
    let up = check(rm, "system.uptime", "s", Kind::Gauge, &[], boot);
    assert_eq!(as_f64(&up[0]), 123.5);

    let io = check(
        rm,
        "system.disk.io",
        "By",
        Kind::Counter,
        &["system.device", "disk.io.direction"],
        boot,
    );
    assert_eq!(
        points_by(io, "disk.io.direction"),
        pairs(&[("read", 80.0 * 512.0), ("write", 160.0 * 512.0)])
    );
    assert_eq!(values_of(io, "system.device"), ["sda"]);

    let net = check(
        rm,
        "system.network.errors",
        "{error}",
        Kind::Counter,
        &["network.interface.name", "network.io.direction"],
        boot,
    );
    assert_eq!(values_of(net, "network.interface.name"), ["eth0", "lo"]);

    let swap = check(
        rm,
        "system.paging.usage",
        "By",
        Kind::UpDown,
        &["system.device", "system.paging.state"],
        boot,
    );
    assert_eq!(
        points_by(swap, "system.paging.state"),
        pairs(&[("free", 750.0 * 1024.0), ("used", 250.0 * 1024.0)])
    );
    let faults = check(
        rm,
        "system.paging.faults",
        "{fault}",
        Kind::Counter,
        &["system.paging.fault.type"],
        boot,
    );
    assert_eq!(
        points_by(faults, "system.paging.fault.type"),
        pairs(&[("major", 10.0), ("minor", 90.0)])
    );

    let fs = check(
        rm,
        "system.filesystem.limit",
        "By",
        Kind::UpDown,
        &[
            "system.device",
            "system.filesystem.mode",
            "system.filesystem.mountpoint",
            "system.filesystem.type",
        ],
        boot,
    );
    assert_eq!(fs.len(), 1, "proc is excluded by type");
    assert_eq!(
        attr_str(&fs[0].attributes, "system.filesystem.mountpoint"),
        Some("/")
    );

    let procs = check(
        rm,
        "system.process.count",
        "{process}",
        Kind::UpDown,
        &["process.state"],
        boot,
    );
    assert_eq!(
        points_by(procs, "process.state"),
        pairs(&[
            ("defunct", 1.0),
            ("running", 1.0),
            ("sleeping", 0.0),
            ("stopped", 0.0)
        ])
    );
    let created = check(
        rm,
        "system.process.created",
        "{process}",
        Kind::Counter,
        &[],
        boot,
    );
    assert_eq!(as_f64(&created[0]), 43.0);

    // The one top process, with its resource and figures.
    assert_eq!(req.resource_metrics.len(), 2);
    let p = &req.resource_metrics[1];
    let attrs = &p.resource.as_ref().expect("resource").attributes;
    assert!(matches!(
        attr(attrs, "process.pid"),
        Some(any_value::Value::IntValue(4242))
    ));
    assert_eq!(attr_str(attrs, "process.executable.name"), Some("fixture"));
    assert_eq!(attr_str(attrs, "process.command"), Some("/usr/bin/fixture"));
    assert_eq!(
        attr_str(attrs, "process.command_line"),
        Some("/usr/bin/fixture --flag")
    );
    assert_eq!(attr_str(attrs, "host.name"), Some("fixture-host"));
    let pstart = boot + 500 * 1_000_000_000 / s.units.ticks_per_second;
    let cpu = check(
        p,
        "process.cpu.time",
        "s",
        Kind::Counter,
        &["cpu.mode"],
        pstart,
    );
    assert!(points_by(cpu, "cpu.mode").contains(&("user".to_owned(), 300.0 / ticks)));
    let rss = check(p, "process.memory.usage", "By", Kind::UpDown, &[], pstart);
    assert_eq!(as_f64(&rss[0]), 3.0 * s.units.page_size as f64);
    let dio = check(
        p,
        "process.disk.io",
        "By",
        Kind::Counter,
        &["disk.io.direction"],
        pstart,
    );
    assert_eq!(
        points_by(dio, "disk.io.direction"),
        pairs(&[("read", 11.0), ("write", 22.0)])
    );
    let threads = check(
        p,
        "process.thread.count",
        "{thread}",
        Kind::UpDown,
        &[],
        pstart,
    );
    assert_eq!(as_f64(&threads[0]), 4.0);
}

#[test]
fn fake_root_collector_conventions() {
    let dir = fake_root("cpu 100 0 100 800 5 1 2 0");
    let cfg = HostMetricsConfig {
        root_path: dir.path().to_owned(),
        conventions: Conventions::Collector,
        ..Default::default()
    };
    let req = scraper(&cfg).scrape();
    let rm = &req.resource_metrics[0];
    let boot = 1_700_000_000 * 1_000_000_000;
    let mem = check(
        rm,
        "system.memory.usage",
        "By",
        Kind::UpDown,
        &["state"],
        boot,
    );
    assert_eq!(
        points_by(mem, "state"),
        pairs(&[
            ("buffered", 102400.0),
            ("cached", 204800.0),
            ("free", 409600.0),
            ("slab_reclaimable", 51200.0),
            ("slab_unreclaimable", 30720.0),
            ("used", 225280.0),
        ])
    );
    let conns = check(
        rm,
        "system.network.connections",
        "{connections}",
        Kind::UpDown,
        &["protocol", "state"],
        boot,
    );
    let conns = points_by(conns, "state");
    assert!(conns.contains(&("ESTABLISHED".to_owned(), 2.0)));
    assert!(conns.contains(&("LISTEN".to_owned(), 1.0)));
    assert!(conns.contains(&("TIME_WAIT".to_owned(), 0.0)));
    let procs = check(
        rm,
        "system.processes.count",
        "{processes}",
        Kind::UpDown,
        &["status"],
        boot,
    );
    assert_eq!(
        points_by(procs, "status"),
        pairs(&[("blocked", 0.0), ("running", 2.0), ("zombies", 1.0)])
    );
    let pending = check(
        rm,
        "system.disk.pending_operations",
        "{operations}",
        Kind::UpDown,
        &["device"],
        boot,
    );
    assert_eq!(pending.len(), 1);
    let ops = check(
        rm,
        "system.paging.operations",
        "{operations}",
        Kind::Counter,
        &["direction", "type"],
        boot,
    );
    assert_eq!(ops.len(), 4);
    let cpu = check(rm, "system.cpu.time", "s", Kind::Counter, &["state"], boot);
    assert_eq!(cpu.len(), 8);
}

#[test]
fn empty_or_garbage_root_yields_no_metrics_and_no_panic() {
    let empty = tempfile::tempdir().expect("temp dir");
    let mut all = HostCollector::DEFAULT.to_vec();
    all.push(HostCollector::Process);
    for conv in [Conventions::Semconv, Conventions::Collector] {
        let cfg = HostMetricsConfig {
            root_path: empty.path().to_owned(),
            collectors: all.clone(),
            conventions: conv,
            ..Default::default()
        };
        let mut s = scraper(&cfg);
        for _ in 0..2 {
            let req = s.scrape();
            assert!(req.resource_metrics.is_empty());
        }
        // Every collector failed once and is now muted.
        assert_ne!(s.logged, 0);
    }

    let garbage = tempfile::tempdir().expect("temp dir");
    for f in [
        "proc/stat",
        "proc/meminfo",
        "proc/loadavg",
        "proc/uptime",
        "proc/diskstats",
        "proc/net/dev",
        "proc/net/tcp",
        "proc/vmstat",
        "proc/swaps",
        "proc/1/mounts",
        "proc/77/stat",
    ] {
        let p = garbage.path().join(f);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, b"\xff\xfe garbage: ) ( \0 1 2\n:::\n\n").expect("write");
    }
    let cfg = HostMetricsConfig {
        root_path: garbage.path().to_owned(),
        collectors: all,
        conventions: Conventions::Collector,
        ..Default::default()
    };
    let req = scraper(&cfg).scrape();
    let names: Vec<&str> = req
        .resource_metrics
        .iter()
        .flat_map(|rm| &rm.scope_metrics)
        .flat_map(|s| &s.metrics)
        .map(|m| m.name.as_str())
        .collect();
    // Only the TCP connection count survives: zero connections of each state is what a
    // file without connection lines says.
    assert_eq!(names, ["system.network.connections"]);
}
