//! The host-metrics scraper: one blocking call reads the host's figures and returns them as one
//! OTLP metrics request.
//!
//! Model: [`Scraper::new`] fixes everything that does not change while the agent runs (which
//! collectors, which conventions, the file paths under `root_path`, the host resource, the boot
//! time); [`Scraper::scrape`] reads the kernel's text files under `<root_path>/proc`, parses them
//! with the pure functions of [`procfs`], and turns the figures into metrics under the configured
//! [`Conventions`] ([`system`], [`devices`], [`process`]). State kept between scrapes: the
//! previous CPU times (for utilization), per-process CPU ticks (for top-N ranking), a user-name
//! cache and one reused read buffer.
//!
//! Everything is read from `/proc` directly, so `root_path` (`/hostfs` in a container) applies to
//! every figure and a scrape reads only what the enabled collectors need; the resource comes
//! from [`crate::host::HostFacts`] of the same root.
//!
//! Invariants: a scrape never panics on what it reads — a figure that cannot be read or parsed is
//! left out, and the first failure of each collector is logged (later ones are not). Every
//! cumulative sum carries the same start time on every scrape: the boot time (from `btime`) for
//! kernel counters, the process start for per-process ones. This module must never block on
//! anything but local file reads and `statvfs`, and is run on a blocking thread by its caller.

mod devices;
pub mod glob;
mod otlp;
mod process;
mod procfs;
mod system;

use crate::host::HostFacts;
use devices::FsUsage;
pub use glob::Filters;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{Metric, ResourceMetrics, ScopeMetrics};
use opentelemetry_proto::tonic::resource::v1::Resource;
use otlp::{kv_str, Emitter};
use process::{ProcessTable, Units};
use procfs::CpuTimes;
use sonde_config::{Conventions, HostCollector, HostMetricsConfig, ProcessConfig};
use std::borrow::Cow;
use std::fmt::Display;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

const SCOPE_NAME: &str = "sonde/host_metrics";

/// Reads a whole file into `buf` (reused across reads) and returns it as text. `/proc` text is
/// ASCII except for names (process names, mount paths), where invalid UTF-8 is replaced.
fn read_text<'b>(path: &Path, buf: &'b mut Vec<u8>) -> io::Result<Cow<'b, str>> {
    buf.clear();
    File::open(path)?.read_to_end(buf)?;
    Ok(String::from_utf8_lossy(buf))
}

/// Reads `path` and hands its text to `parse`.
fn with_text<T>(path: &Path, buf: &mut Vec<u8>, parse: impl FnOnce(&str) -> T) -> io::Result<T> {
    let text = read_text(path, buf)?;
    Ok(parse(&text))
}

fn unix_nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn collector_name(c: HostCollector) -> &'static str {
    match c {
        HostCollector::Cpu => "cpu",
        HostCollector::Memory => "memory",
        HostCollector::Load => "load",
        HostCollector::Disk => "disk",
        HostCollector::Filesystem => "filesystem",
        HostCollector::Network => "network",
        HostCollector::Paging => "paging",
        HostCollector::Processes => "processes",
        HostCollector::Uptime => "uptime",
        HostCollector::Process => "process",
    }
}

fn bit(c: HostCollector) -> u32 {
    1 << (c as u32)
}

/// Logs the first failure of each collector at `warn`; later ones are dropped, so a figure that
/// is missing on this host does not print once per scrape.
fn note_failure(logged: &mut u32, c: HostCollector, what: &Path, error: &dyn Display) {
    if *logged & bit(c) != 0 {
        return;
    }
    *logged |= bit(c);
    tracing::warn!(
        collector = collector_name(c),
        path = %what.display(),
        error = %error,
        "host metrics: figure unavailable, skipped; further failures of this collector are not logged"
    );
}

/// The files a scrape reads, resolved under `root_path` once.
struct Paths {
    stat: PathBuf,
    meminfo: PathBuf,
    loadavg: PathBuf,
    uptime: PathBuf,
    vmstat: PathBuf,
    swaps: PathBuf,
    diskstats: PathBuf,
    net_dev: PathBuf,
    tcp: PathBuf,
    tcp6: PathBuf,
    /// The host's mount table as init sees it, then our own as a fallback.
    mounts: [PathBuf; 2],
}

impl Paths {
    fn new(root: &Path) -> Self {
        let proc = root.join("proc");
        Self {
            stat: proc.join("stat"),
            meminfo: proc.join("meminfo"),
            loadavg: proc.join("loadavg"),
            uptime: proc.join("uptime"),
            vmstat: proc.join("vmstat"),
            swaps: proc.join("swaps"),
            diskstats: proc.join("diskstats"),
            net_dev: proc.join("net/dev"),
            tcp: proc.join("net/tcp"),
            tcp6: proc.join("net/tcp6"),
            mounts: [proc.join("1/mounts"), proc.join("self/mounts")],
        }
    }
}

/// Reads the host's figures; see the module docs.
pub struct Scraper {
    conventions: Conventions,
    /// Enabled collectors, one bit each.
    enabled: u32,
    root: PathBuf,
    paths: Paths,
    filters: Filters,
    process: ProcessConfig,
    host_attributes: Vec<KeyValue>,
    units: Units,
    prev_cpu: Option<CpuTimes>,
    processes: ProcessTable,
    buf: Vec<u8>,
    /// Collectors whose first failure has been logged, one bit each.
    logged: u32,
}

impl Scraper {
    /// A scraper for `cfg`, with its filters compiled once by the source ([`Filters::new`]).
    pub fn new(cfg: &HostMetricsConfig, filters: Filters) -> Scraper {
        let root = cfg.root_path.clone();
        let paths = Paths::new(&root);
        let mut buf = Vec::new();
        let started = unix_nanos(SystemTime::now());
        // Kernel counters count from boot; without btime, from now (still stable per series).
        let boot_ns = with_text(&paths.stat, &mut buf, procfs::parse_stat)
            .ok()
            .and_then(|s| s.btime)
            .map(|b| b.saturating_mul(1_000_000_000))
            .unwrap_or(started);
        // USER_HZ: the unit of /proc CPU times. It is 100 on every mainstream Linux architecture;
        // rustix reads the real value from the auxiliary vector without `unsafe` in this crate.
        let ticks_per_second = match rustix::param::clock_ticks_per_second() {
            0 => 100,
            n => n,
        };
        let page_size = u64::try_from(rustix::param::page_size()).unwrap_or(4096);
        Scraper {
            conventions: cfg.conventions,
            enabled: cfg.collectors.iter().fold(0, |acc, c| acc | bit(*c)),
            host_attributes: host_attributes(&root),
            processes: ProcessTable::new(&root),
            root,
            paths,
            filters,
            process: cfg.process.clone(),
            units: Units {
                ticks_per_second,
                page_size,
                boot_ns,
            },
            prev_cpu: None,
            buf,
            logged: 0,
        }
    }

    fn on(&self, c: HostCollector) -> bool {
        self.enabled & bit(c) != 0
    }

    /// One scrape. Blocking (reads `/proc`, calls `statvfs`). Never panics on odd `/proc`
    /// content: a figure that cannot be read is skipped.
    pub fn scrape(&mut self) -> ExportMetricsServiceRequest {
        let now = unix_nanos(SystemTime::now());
        let mut out = Emitter::new(now, self.units.boot_ns);

        let stat = if self.on(HostCollector::Cpu) || self.on(HostCollector::Processes) {
            match with_text(&self.paths.stat, &mut self.buf, procfs::parse_stat) {
                Ok(s) => Some(s),
                Err(e) => {
                    let c = if self.on(HostCollector::Cpu) {
                        HostCollector::Cpu
                    } else {
                        HostCollector::Processes
                    };
                    note_failure(&mut self.logged, c, &self.paths.stat, &e);
                    None
                }
            }
        } else {
            None
        };
        if self.on(HostCollector::Cpu) {
            if let Some(s) = &stat {
                if s.cpu.is_none() {
                    note_failure(
                        &mut self.logged,
                        HostCollector::Cpu,
                        &self.paths.stat,
                        &"no aggregate cpu line",
                    );
                }
                system::cpu(
                    &mut out,
                    self.conventions,
                    s.cpu.as_ref(),
                    self.prev_cpu.as_ref(),
                    s.logical_cpus,
                    self.units.ticks_per_second as f64,
                );
                self.prev_cpu = s.cpu;
            }
        }
        if self.on(HostCollector::Memory) {
            self.memory(&mut out);
        }
        if self.on(HostCollector::Load) {
            match with_text(&self.paths.loadavg, &mut self.buf, procfs::parse_loadavg) {
                Ok(Some(avg)) => system::load(&mut out, avg),
                Ok(None) => note_failure(
                    &mut self.logged,
                    HostCollector::Load,
                    &self.paths.loadavg,
                    &"unparsable",
                ),
                Err(e) => note_failure(
                    &mut self.logged,
                    HostCollector::Load,
                    &self.paths.loadavg,
                    &e,
                ),
            }
        }
        if self.on(HostCollector::Paging) {
            self.paging(&mut out);
        }
        if self.on(HostCollector::Disk) {
            self.disk(&mut out);
        }
        if self.on(HostCollector::Filesystem) {
            self.filesystem(&mut out);
        }
        if self.on(HostCollector::Network) {
            self.network(&mut out);
        }
        let mut per_process = Vec::new();
        if self.on(HostCollector::Processes) || self.on(HostCollector::Process) {
            per_process = self.processes(&mut out, stat.as_ref(), now);
        }
        if self.on(HostCollector::Uptime) {
            match with_text(&self.paths.uptime, &mut self.buf, procfs::parse_uptime) {
                Ok(Some(s)) => system::uptime(&mut out, s),
                Ok(None) => note_failure(
                    &mut self.logged,
                    HostCollector::Uptime,
                    &self.paths.uptime,
                    &"unparsable",
                ),
                Err(e) => note_failure(
                    &mut self.logged,
                    HostCollector::Uptime,
                    &self.paths.uptime,
                    &e,
                ),
            }
        }

        let mut resource_metrics = Vec::with_capacity(1 + per_process.len());
        let host_metrics = out.finish();
        if !host_metrics.is_empty() {
            resource_metrics.push(self.resource_metrics(Vec::new(), host_metrics));
        }
        for p in per_process {
            resource_metrics.push(self.resource_metrics(p.attributes, p.metrics));
        }
        ExportMetricsServiceRequest { resource_metrics }
    }

    /// The host's resource plus `extra` attributes, with one scope.
    fn resource_metrics(&self, extra: Vec<KeyValue>, metrics: Vec<Metric>) -> ResourceMetrics {
        let mut attributes = self.host_attributes.clone();
        attributes.extend(extra);
        ResourceMetrics {
            resource: Some(Resource {
                attributes,
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(InstrumentationScope {
                    name: SCOPE_NAME.to_owned(),
                    version: env!("CARGO_PKG_VERSION").to_owned(),
                    ..Default::default()
                }),
                metrics,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }
    }

    fn memory(&mut self, out: &mut Emitter) {
        let c = HostCollector::Memory;
        match with_text(&self.paths.meminfo, &mut self.buf, procfs::parse_meminfo) {
            Ok(m) => {
                if !system::memory(out, self.conventions, &m) {
                    note_failure(
                        &mut self.logged,
                        c,
                        &self.paths.meminfo,
                        &"no MemTotal/MemFree",
                    );
                }
            }
            Err(e) => note_failure(&mut self.logged, c, &self.paths.meminfo, &e),
        }
    }

    fn paging(&mut self, out: &mut Emitter) {
        let c = HostCollector::Paging;
        let swaps = match with_text(&self.paths.swaps, &mut self.buf, procfs::parse_swaps) {
            Ok(s) => s,
            Err(e) => {
                note_failure(&mut self.logged, c, &self.paths.swaps, &e);
                Vec::new()
            }
        };
        let vm = match with_text(&self.paths.vmstat, &mut self.buf, procfs::parse_vmstat) {
            Ok(v) => Some(v),
            Err(e) => {
                note_failure(&mut self.logged, c, &self.paths.vmstat, &e);
                None
            }
        };
        system::paging(out, self.conventions, &swaps, vm.as_ref());
    }

    fn disk(&mut self, out: &mut Emitter) {
        let (conv, filter) = (self.conventions, &self.filters.disk);
        let read = with_text(&self.paths.diskstats, &mut self.buf, |text| {
            let mut disks = procfs::parse_diskstats(text);
            disks.retain(|d| filter.includes(d.name));
            devices::disk(out, conv, &disks);
        });
        if let Err(e) = read {
            note_failure(
                &mut self.logged,
                HostCollector::Disk,
                &self.paths.diskstats,
                &e,
            );
        }
    }

    fn network(&mut self, out: &mut Emitter) {
        let c = HostCollector::Network;
        let (conv, filter) = (self.conventions, &self.filters.network);
        let read = with_text(&self.paths.net_dev, &mut self.buf, |text| {
            let mut devs = procfs::parse_net_dev(text);
            devs.retain(|d| filter.includes(d.name));
            devices::network(out, conv, &devs);
        });
        if let Err(e) = read {
            note_failure(&mut self.logged, c, &self.paths.net_dev, &e);
        }
        if conv == Conventions::Collector {
            let mut counts = [0u64; procfs::TCP_STATES.len()];
            let mut any = false;
            for (path, required) in [(&self.paths.tcp, true), (&self.paths.tcp6, false)] {
                match count_tcp_states(path, &mut counts) {
                    Ok(()) => any = true,
                    // No IPv6 on this host: nothing to count.
                    Err(e) if !required && e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => note_failure(&mut self.logged, c, path, &e),
                }
            }
            if any {
                devices::tcp_connections(out, &counts);
            }
        }
    }

    fn filesystem(&mut self, out: &mut Emitter) {
        let c = HostCollector::Filesystem;
        let mut mounts = None;
        for path in &self.paths.mounts {
            match with_text(path, &mut self.buf, procfs::parse_mounts) {
                Ok(m) => {
                    mounts = Some(m);
                    break;
                }
                Err(e) => note_failure(&mut self.logged, c, path, &e),
            }
        }
        let Some(mut mounts) = mounts else { return };
        mounts.retain(|m| self.filters.filesystem.includes(&m.mount_point, &m.fs_type));
        let mut usages = Vec::with_capacity(mounts.len());
        for m in &mounts {
            // The mount table names host paths; we see them under root_path.
            let path = self.root.join(m.mount_point.trim_start_matches('/'));
            match rustix::fs::statvfs(&path) {
                Ok(v) => usages.push(FsUsage {
                    mount: m,
                    block_size: v.f_frsize,
                    blocks: v.f_blocks,
                    blocks_free: v.f_bfree,
                    blocks_available: v.f_bavail,
                    files: v.f_files,
                    files_free: v.f_ffree,
                }),
                Err(e) => note_failure(&mut self.logged, c, &path, &e),
            }
        }
        devices::filesystem(out, self.conventions, &usages);
    }

    fn processes(
        &mut self,
        out: &mut Emitter,
        stat: Option<&procfs::Stat>,
        now: u64,
    ) -> Vec<process::ProcessMetrics> {
        let counting = self.on(HostCollector::Processes);
        let c = if counting {
            HostCollector::Processes
        } else {
            HostCollector::Process
        };
        if let Err(e) = self.processes.refresh() {
            note_failure(&mut self.logged, c, &self.root.join("proc"), &e);
            return Vec::new();
        }
        if let Some((path, e)) = self.processes.error.take() {
            note_failure(&mut self.logged, c, &path, &e);
        }
        if self.processes.is_empty() {
            // A host always runs something: an empty table means an unreadable /proc.
            let proc = self.root.join("proc");
            note_failure(&mut self.logged, c, &proc, &"no readable process");
            return Vec::new();
        }
        if counting {
            self.processes.emit_counts(out, self.conventions, stat);
        }
        if !self.on(HostCollector::Process) {
            return Vec::new();
        }
        let top = self
            .processes
            .top(&self.process, self.conventions, self.units, now);
        if let Some((path, e)) = self.processes.error.take() {
            note_failure(&mut self.logged, HostCollector::Process, &path, &e);
        }
        top
    }
}

/// Adds the TCP connections of one `/proc/net/tcp*` file to `counts`, a line at a time so a
/// host with many connections does not cost a large buffer.
fn count_tcp_states(path: &Path, counts: &mut [u64; procfs::TCP_STATES.len()]) -> io::Result<()> {
    let mut reader = BufReader::new(File::open(path)?);
    let mut line = Vec::with_capacity(256);
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            return Ok(());
        }
        if let Some(i) = std::str::from_utf8(&line)
            .ok()
            .and_then(procfs::tcp_line_state)
        {
            if let Some(n) = counts.get_mut(i) {
                *n += 1;
            }
        }
    }
}

/// The host resource: host.name, host.id, host.arch, os.type, os.description.
fn host_attributes(root: &Path) -> Vec<KeyValue> {
    let facts = HostFacts::read(root);
    let mut attrs = Vec::with_capacity(5);
    if let Some(name) = &facts.name {
        attrs.push(kv_str("host.name", name));
    }
    if let Some(id) = &facts.id {
        attrs.push(kv_str("host.id", id));
    }
    attrs.push(kv_str("host.arch", &facts.arch));
    attrs.push(kv_str("os.type", "linux"));
    if let Some(d) = &facts.os_description {
        attrs.push(kv_str("os.description", d));
    }
    attrs
}

#[cfg(test)]
mod tests;
