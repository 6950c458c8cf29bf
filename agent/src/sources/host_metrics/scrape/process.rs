//! The process table: one pass over `<root>/proc/<pid>/stat` per scrape, shared by the
//! `processes` collector (counts by state) and the `process` collector (metrics for the top N
//! processes by CPU or memory, one resource each).
//!
//! Cost: one small read per process per scrape, plus four reads for each of the top N. Processes
//! that exit while being read are skipped silently; that is the normal race, not a failure.

use super::otlp::{kv_int, kv_str, Emitter, Instrument, Points};
use super::procfs::{parse_cmdline, parse_pid_io, passwd_user, Stat};
use super::read_text;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::metrics::v1::Metric;
use sonde_config::{Conventions, ProcessConfig, ProcessRank};
use sonde_core::process::{parse_pid_stat, PidStat};
use std::collections::HashMap;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// One process's resource attributes and metrics.
pub struct ProcessMetrics {
    pub attributes: Vec<KeyValue>,
    pub metrics: Vec<Metric>,
}

/// What the table needs to turn kernel figures into units.
#[derive(Debug, Clone, Copy)]
pub struct Units {
    pub ticks_per_second: u64,
    pub page_size: u64,
    /// Boot time in Unix nanoseconds: process start times are relative to it.
    pub boot_ns: u64,
}

pub struct ProcessTable {
    proc_dir: PathBuf,
    passwd: PathBuf,
    /// This scrape's processes.
    entries: Vec<(u32, PidStat)>,
    /// CPU ticks per process at the previous scrape, keyed by pid and checked against the start
    /// time so a reused pid is not mistaken for the old process.
    prev_ticks: HashMap<u32, (u64, u64)>,
    next_ticks: HashMap<u32, (u64, u64)>,
    /// User names by uid (`None`: not in passwd), dropped when `<root>/etc/passwd` changes.
    users: HashMap<u32, Option<String>>,
    passwd_mtime: Option<SystemTime>,
    buf: Vec<u8>,
    /// The first unexpected read error of this scrape, for the caller to log.
    pub error: Option<(PathBuf, io::Error)>,
}

/// An error that means the process is gone (or going), not that something is wrong.
fn vanished(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(3) // ESRCH
}

impl ProcessTable {
    pub fn new(root: &Path) -> Self {
        Self {
            proc_dir: root.join("proc"),
            passwd: root.join("etc/passwd"),
            entries: Vec::new(),
            prev_ticks: HashMap::new(),
            next_ticks: HashMap::new(),
            users: HashMap::new(),
            passwd_mtime: None,
            buf: Vec::new(),
            error: None,
        }
    }

    fn note(&mut self, path: PathBuf, e: io::Error) {
        if !vanished(&e) && self.error.is_none() {
            self.error = Some((path, e));
        }
    }

    /// Whether the last refresh found no process.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Reads every process's `stat`. Fails only when `<root>/proc` cannot be listed.
    pub fn refresh(&mut self) -> io::Result<()> {
        self.error = None;
        self.entries.clear();
        for entry in std::fs::read_dir(&self.proc_dir)? {
            let Ok(entry) = entry else { continue };
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            let path = entry.path().join("stat");
            match read_text(&path, &mut self.buf) {
                Ok(text) => {
                    if let Some((_, stat)) = parse_pid_stat(&text) {
                        self.entries.push((pid, stat));
                    }
                }
                Err(e) => self.note(path, e),
            }
        }
        Ok(())
    }

    /// `system.process.count` and `system.process.created` (semconv), or
    /// `system.processes.count` and `system.processes.created` (Collector).
    pub fn emit_counts(&self, out: &mut Emitter, conv: Conventions, stat: Option<&Stat>) {
        let created = stat.and_then(|s| s.processes);
        match conv {
            Conventions::Semconv => {
                // running, sleeping, stopped, defunct
                let mut n = [0u64; 4];
                for (_, s) in &self.entries {
                    let slot = match s.state {
                        b'R' => 0,
                        b'S' | b'D' | b'I' => 1,
                        b'T' | b't' => 2,
                        b'Z' => 3,
                        _ => continue,
                    };
                    n[slot] += 1;
                }
                let mut p = Points::new();
                for (state, count) in ["running", "sleeping", "stopped", "defunct"].iter().zip(n) {
                    p.int(&[("process.state", state)], count);
                }
                out.push(
                    Instrument::UpDownCounter,
                    "system.process.count",
                    "{process}",
                    "Processes, by state.",
                    p,
                );
                let mut p = Points::new();
                if let Some(c) = created {
                    p.int(&[], c);
                }
                out.push(
                    Instrument::Counter,
                    "system.process.created",
                    "{process}",
                    "Processes created since boot.",
                    p,
                );
            }
            Conventions::Collector => {
                const STATUS: [&str; 9] = [
                    "blocked", "idle", "locked", "paging", "running", "sleeping", "stopped",
                    "zombies", "unknown",
                ];
                let mut n = [0u64; STATUS.len()];
                for (_, s) in &self.entries {
                    let slot = match s.state {
                        b'D' => 0,
                        b'I' => 1,
                        b'L' => 2,
                        b'W' => 3,
                        b'R' => 4,
                        b'S' => 5,
                        b'T' | b't' => 6,
                        b'Z' => 7,
                        _ => 8,
                    };
                    n[slot] += 1;
                }
                // As the Collector does: running and blocked come from /proc/stat, one read that
                // does not race with processes coming and going.
                if let Some(s) = stat {
                    n[0] = s.procs_blocked.unwrap_or(n[0]);
                    n[4] = s.procs_running.unwrap_or(n[4]);
                }
                let mut p = Points::new();
                for (i, (status, count)) in STATUS.iter().zip(n).enumerate() {
                    if count > 0 || i == 0 || i == 4 {
                        p.int(&[("status", status)], count);
                    }
                }
                out.push(
                    Instrument::UpDownCounter,
                    "system.processes.count",
                    "{processes}",
                    "Processes, by status.",
                    p,
                );
                let mut p = Points::new();
                if let Some(c) = created {
                    p.int(&[], c);
                }
                out.push(
                    Instrument::Counter,
                    "system.processes.created",
                    "{processes}",
                    "Processes created since boot.",
                    p,
                );
            }
        }
    }

    /// Metrics for the top `cfg.top_n` processes. Ranking by CPU uses the CPU time since the
    /// previous scrape (on the first scrape, since each process started); by memory, the RSS.
    pub fn top(
        &mut self,
        cfg: &ProcessConfig,
        conv: Conventions,
        units: Units,
        now: u64,
    ) -> Vec<ProcessMetrics> {
        self.check_passwd();
        // Remember this scrape's CPU ticks for the next ranking, whatever this one needs.
        self.next_ticks.clear();
        let mut ranked: Vec<(u64, u32, usize)> = Vec::with_capacity(self.entries.len());
        for (i, (pid, s)) in self.entries.iter().enumerate() {
            let ticks = s.utime.saturating_add(s.stime);
            self.next_ticks.insert(*pid, (s.starttime, ticks));
            let key = match cfg.by {
                ProcessRank::Cpu => match self.prev_ticks.get(pid) {
                    Some((start, before)) if *start == s.starttime => ticks.saturating_sub(*before),
                    _ => ticks,
                },
                ProcessRank::Memory => s.rss_pages,
            };
            ranked.push((key, *pid, i));
        }
        std::mem::swap(&mut self.prev_ticks, &mut self.next_ticks);
        ranked.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        ranked.truncate(cfg.top_n);

        let mut out = Vec::with_capacity(ranked.len());
        for (_, pid, i) in ranked {
            let Some(&(_, stat)) = self.entries.get(i) else {
                continue;
            };
            if let Some(pm) = self.one(pid, &stat, conv, units, now) {
                out.push(pm);
            }
        }
        out
    }

    /// The row of process `pid` (its `/proc/<pid>/stat` figures already in `s`): its
    /// attributes and metrics. None when it is gone.
    fn one(
        &mut self,
        pid: u32,
        s: &PidStat,
        conv: Conventions,
        units: Units,
        now: u64,
    ) -> Option<ProcessMetrics> {
        let dir = self.proc_dir.join(pid.to_string());
        let attributes = self.attributes(pid, s, &dir)?;
        let io = self.disk_io(&dir);
        Some(ProcessMetrics {
            attributes,
            metrics: process_metrics(s, io, conv, units, now),
        })
    }

    /// The process's identity: pid, parent, executable name and path, command line, owner.
    /// None when its name cannot be read (it is gone).
    fn attributes(&mut self, pid: u32, s: &PidStat, dir: &Path) -> Option<Vec<KeyValue>> {
        let mut attributes = vec![
            kv_int("process.pid", i64::from(pid)),
            kv_int("process.parent_pid", i64::from(s.ppid)),
        ];
        let comm_path = dir.join("comm");
        match read_text(&comm_path, &mut self.buf) {
            Ok(comm) => attributes.push(kv_str("process.executable.name", comm.trim_end())),
            Err(e) => {
                // Gone already: skip it rather than emit a process without a name.
                self.note(comm_path, e);
                return None;
            }
        }
        let exe = dir.join("exe");
        match std::fs::read_link(&exe) {
            Ok(path) => attributes.push(kv_str("process.executable.path", &path.to_string_lossy())),
            // Kernel threads have no executable; other users' processes need privileges.
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {}
            Err(e) => self.note(exe, e),
        }
        let cmdline = dir.join("cmdline");
        match read_text(&cmdline, &mut self.buf) {
            Ok(text) => {
                let mut args = parse_cmdline(&text);
                if let Some(first) = args.next() {
                    attributes.push(kv_str("process.command", first));
                    let line = std::iter::once(first)
                        .chain(args)
                        .collect::<Vec<_>>()
                        .join(" ");
                    attributes.push(kv_str("process.command_line", &line));
                }
            }
            Err(e) => self.note(cmdline, e),
        }
        match std::fs::metadata(dir) {
            Ok(meta) => {
                if let Some(user) = self.user_name(meta.uid()) {
                    attributes.push(kv_str("process.owner", &user));
                }
            }
            Err(e) => self.note(dir.to_path_buf(), e),
        }
        Some(attributes)
    }

    /// Bytes read and written, from `/proc/<pid>/io` (None when it cannot be read: other
    /// users' processes need privileges).
    fn disk_io(&mut self, dir: &Path) -> Option<(u64, u64)> {
        let io_path = dir.join("io");
        match read_text(&io_path, &mut self.buf) {
            Ok(text) => parse_pid_io(&text),
            Err(e) => {
                self.note(io_path, e);
                None
            }
        }
    }

    /// The user name of `uid` from `<root>/etc/passwd`, cached until the file changes.
    fn user_name(&mut self, uid: u32) -> Option<String> {
        if let Some(name) = self.users.get(&uid) {
            return name.clone();
        }
        let name = match read_text(&self.passwd, &mut self.buf) {
            Ok(text) => passwd_user(&text, uid).map(str::to_owned),
            Err(_) => None,
        };
        self.users.insert(uid, name.clone());
        name
    }

    /// Drops the user-name cache when `<root>/etc/passwd` has changed: one `stat` per scrape.
    fn check_passwd(&mut self) {
        let mtime = std::fs::metadata(&self.passwd)
            .and_then(|m| m.modified())
            .ok();
        if mtime != self.passwd_mtime {
            self.users.clear();
            self.passwd_mtime = mtime;
        }
    }
}

/// The metrics of one process: CPU time by mode, resident and virtual memory, disk I/O when
/// known, and (semantic conventions) its thread count.
fn process_metrics(
    s: &PidStat,
    io: Option<(u64, u64)>,
    conv: Conventions,
    units: Units,
    now: u64,
) -> Vec<Metric> {
    let tps = units.ticks_per_second.max(1);
    let start_ns = units.boot_ns.saturating_add(
        u64::try_from(u128::from(s.starttime) * 1_000_000_000 / u128::from(tps))
            .unwrap_or(u64::MAX),
    );
    let mut m = Emitter::new(now, start_ns);
    let secs = |ticks: u64| ticks as f64 / tps as f64;
    let sc = conv == Conventions::Semconv;
    let mut cpu = Points::new();
    if sc {
        cpu.double(&[("cpu.mode", "user")], secs(s.utime));
        cpu.double(&[("cpu.mode", "system")], secs(s.stime));
    } else {
        cpu.double(&[("state", "user")], secs(s.utime));
        cpu.double(&[("state", "system")], secs(s.stime));
        cpu.double(&[("state", "wait")], secs(s.blkio_ticks));
    }
    m.push(
        Instrument::Counter,
        "process.cpu.time",
        "s",
        "CPU time of the process.",
        cpu,
    );
    let mut rss = Points::new();
    rss.int(&[], s.rss_pages.saturating_mul(units.page_size));
    m.push(
        Instrument::UpDownCounter,
        "process.memory.usage",
        "By",
        "Resident memory of the process.",
        rss,
    );
    let mut virt = Points::new();
    virt.int(&[], s.vsize);
    m.push(
        Instrument::UpDownCounter,
        "process.memory.virtual",
        "By",
        "Virtual memory of the process.",
        virt,
    );
    if let Some((read, write)) = io {
        let dir_key = if sc { "disk.io.direction" } else { "direction" };
        let mut p = Points::new();
        p.int(&[(dir_key, "read")], read)
            .int(&[(dir_key, "write")], write);
        m.push(
            Instrument::Counter,
            "process.disk.io",
            "By",
            "Bytes the process read from and wrote to storage.",
            p,
        );
    }
    if sc {
        let mut p = Points::new();
        p.int(&[], s.num_threads);
        m.push(
            Instrument::UpDownCounter,
            "process.thread.count",
            "{thread}",
            "Threads in the process.",
            p,
        );
    }
    m.finish()
}
