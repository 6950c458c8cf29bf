//! Host-wide kernel figures as metrics: CPU, memory, load, paging, uptime. Each function turns
//! figures already parsed from `/proc` into metrics under one [`Conventions`]; none does I/O.
//!
//! Semconv names, units and attributes follow the current semantic conventions; the `Collector`
//! ones the hostmetrics receiver's default ("D") metrics, and only those.

use super::otlp::{ratio, Emitter, Instrument, Points};
use super::procfs::{CpuTimes, Meminfo, Swap, Vmstat};
use sonde_config::Conventions;

/// CPU time per mode, in clock ticks, under each convention's mode names.
///
/// Semconv has no `softirq` mode: it is counted in `interrupt`. The Collector reports `iowait`
/// as `wait` and keeps `softirq` apart.
fn cpu_modes(t: &CpuTimes, conv: Conventions) -> Vec<(&'static str, u64)> {
    match conv {
        Conventions::Semconv => vec![
            ("user", t.user),
            ("nice", t.nice),
            ("system", t.system),
            ("idle", t.idle),
            ("iowait", t.iowait),
            ("interrupt", t.irq.saturating_add(t.softirq)),
            ("steal", t.steal),
        ],
        Conventions::Collector => vec![
            ("user", t.user),
            ("nice", t.nice),
            ("system", t.system),
            ("idle", t.idle),
            ("wait", t.iowait),
            ("interrupt", t.irq),
            ("softirq", t.softirq),
            ("steal", t.steal),
        ],
    }
}

/// `system.cpu.time` (aggregated over CPUs), `system.cpu.utilization` (semconv only, from the
/// change since `prev`; absent on the first scrape) and `system.cpu.logical.count`.
pub fn cpu(
    out: &mut Emitter,
    conv: Conventions,
    now: Option<&CpuTimes>,
    prev: Option<&CpuTimes>,
    logical_cpus: u64,
    ticks_per_second: f64,
) {
    let mode_key = match conv {
        Conventions::Semconv => "cpu.mode",
        Conventions::Collector => "state",
    };
    if let Some(now) = now {
        let modes = cpu_modes(now, conv);
        let mut p = Points::new();
        for (mode, ticks) in &modes {
            p.double(&[(mode_key, mode)], *ticks as f64 / ticks_per_second);
        }
        out.push(
            Instrument::Counter,
            "system.cpu.time",
            "s",
            "CPU time spent in each mode.",
            p,
        );

        if let (Conventions::Semconv, Some(prev)) = (conv, prev) {
            let before = cpu_modes(prev, conv);
            let deltas: Vec<(&str, u64)> = modes
                .iter()
                .zip(&before)
                .map(|((mode, n), (_, b))| (*mode, n.saturating_sub(*b)))
                .collect();
            let total: u64 = deltas.iter().map(|(_, d)| d).sum();
            let mut p = Points::new();
            for (mode, d) in &deltas {
                if let Some(u) = ratio(*d, total) {
                    p.double(&[(mode_key, mode)], u);
                }
            }
            out.push(
                Instrument::Gauge,
                "system.cpu.utilization",
                "1",
                "Fraction of CPU time spent in each mode since the previous scrape.",
                p,
            );
        }
    }
    if logical_cpus > 0 {
        let mut p = Points::new();
        p.int(&[], logical_cpus);
        out.push(
            Instrument::UpDownCounter,
            "system.cpu.logical.count",
            "{cpu}",
            "Number of logical CPUs online.",
            p,
        );
    }
}

/// Memory metrics. Returns `false` when the figures every metric needs (MemTotal, MemFree) are
/// missing.
///
/// The states partition MemTotal, so they add up to `system.memory.limit` as the conventions ask.
/// Semconv: `used` = total − free − buffers − cached (slab counts as used, and is broken down in
/// `system.memory.linux.slab.usage`). Shared memory (Shmem) lives inside the page cache, so it is
/// reported as `system.memory.linux.shared` rather than as a state that would be counted twice.
/// Collector: the slab is its own two states, so `used` also excludes it.
pub fn memory(out: &mut Emitter, conv: Conventions, m: &Meminfo) -> bool {
    let (Some(total), Some(free)) = (m.total, m.free) else {
        return false;
    };
    let buffers = m.buffers.unwrap_or(0);
    let cached = m.cached.unwrap_or(0);
    let slab_r = m.slab_reclaimable.unwrap_or(0);
    let slab_u = m.slab_unreclaimable.unwrap_or(0);
    let not_used = |parts: &[u64]| parts.iter().fold(0u64, |a, b| a.saturating_add(*b));

    match conv {
        Conventions::Semconv => {
            let used = total.saturating_sub(not_used(&[free, buffers, cached]));
            let states = [
                ("used", used),
                ("free", free),
                ("buffers", buffers),
                ("cached", cached),
            ];
            let key = "system.memory.state";
            let mut usage = Points::new();
            let mut util = Points::new();
            for (state, bytes) in states {
                usage.int(&[(key, state)], bytes);
                if let Some(u) = ratio(bytes, total) {
                    util.double(&[(key, state)], u);
                }
            }
            out.push(
                Instrument::UpDownCounter,
                "system.memory.usage",
                "By",
                "Memory in use, by state.",
                usage,
            );
            out.push(
                Instrument::Gauge,
                "system.memory.utilization",
                "1",
                "Fraction of memory in each state.",
                util,
            );
            let mut limit = Points::new();
            limit.int(&[], total);
            out.push(
                Instrument::UpDownCounter,
                "system.memory.limit",
                "By",
                "Total memory.",
                limit,
            );
            if let Some(available) = m.available {
                let mut p = Points::new();
                p.int(&[], available);
                out.push(
                    Instrument::UpDownCounter,
                    "system.memory.linux.available",
                    "By",
                    "Memory available for new work without swapping (MemAvailable).",
                    p,
                );
            }
            if let Some(shmem) = m.shmem {
                let mut p = Points::new();
                p.int(&[], shmem);
                out.push(
                    Instrument::UpDownCounter,
                    "system.memory.linux.shared",
                    "By",
                    "Shared memory (tmpfs, shm), part of the page cache.",
                    p,
                );
            }
            let mut slab = Points::new();
            let key = "system.memory.linux.slab.state";
            if let Some(r) = m.slab_reclaimable {
                slab.int(&[(key, "reclaimable")], r);
            }
            if let Some(u) = m.slab_unreclaimable {
                slab.int(&[(key, "unreclaimable")], u);
            }
            out.push(
                Instrument::UpDownCounter,
                "system.memory.linux.slab.usage",
                "By",
                "Kernel slab memory, by reclaimability.",
                slab,
            );
        }
        Conventions::Collector => {
            let used = total.saturating_sub(not_used(&[free, buffers, cached, slab_r, slab_u]));
            let mut usage = Points::new();
            for (state, bytes) in [
                ("used", used),
                ("free", free),
                ("buffered", buffers),
                ("cached", cached),
                ("slab_reclaimable", slab_r),
                ("slab_unreclaimable", slab_u),
            ] {
                usage.int(&[("state", state)], bytes);
            }
            out.push(
                Instrument::UpDownCounter,
                "system.memory.usage",
                "By",
                "Bytes of memory in use.",
                usage,
            );
        }
    }
    true
}

/// `system.cpu.load_average.{1m,5m,15m}`: no semconv name exists, so both conventions use the
/// Collector's.
pub fn load(out: &mut Emitter, avg: [f64; 3]) {
    let [m1, m5, m15] = avg;
    for (name, value) in [
        ("system.cpu.load_average.1m", m1),
        ("system.cpu.load_average.5m", m5),
        ("system.cpu.load_average.15m", m15),
    ] {
        let mut p = Points::new();
        p.double(&[], value);
        out.push(
            Instrument::Gauge,
            name,
            "{thread}",
            "Average run-queue length.",
            p,
        );
    }
}

/// Swap usage per swap area, and paging faults and operations from `/proc/vmstat`.
///
/// Operations follow the Collector's mapping: swap-ins/outs (`pswpin`/`pswpout`) are `major`,
/// page-ins/outs (`pgpgin`/`pgpgout`) are `minor`. Values are the kernel's counts as they are.
pub fn paging(out: &mut Emitter, conv: Conventions, swaps: &[Swap], vm: Option<&Vmstat>) {
    let sc = conv == Conventions::Semconv;
    let (dev_key, state_key) = if sc {
        ("system.device", "system.paging.state")
    } else {
        ("device", "state")
    };
    let mut usage = Points::new();
    let mut util = Points::new();
    for s in swaps {
        let free = s.size.saturating_sub(s.used);
        for (state, bytes) in [("used", s.used), ("free", free)] {
            let attrs = [(dev_key, s.device.as_str()), (state_key, state)];
            usage.int(&attrs, bytes);
            if let Some(u) = ratio(bytes, s.size) {
                util.double(&attrs, u);
            }
        }
    }
    out.push(
        Instrument::UpDownCounter,
        "system.paging.usage",
        "By",
        "Swap space in use, by swap area and state.",
        usage,
    );
    if sc {
        out.push(
            Instrument::Gauge,
            "system.paging.utilization",
            "1",
            "Fraction of each swap area in each state.",
            util,
        );
    }

    let Some(vm) = vm else { return };
    let type_key = if sc {
        "system.paging.fault.type"
    } else {
        "type"
    };
    let mut faults = Points::new();
    if let Some(major) = vm.pgmajfault {
        faults.int(&[(type_key, "major")], major);
        if let Some(all) = vm.pgfault {
            faults.int(&[(type_key, "minor")], all.saturating_sub(major));
        }
    }
    let (faults_unit, ops_unit) = if sc {
        ("{fault}", "{operation}")
    } else {
        ("{faults}", "{operations}")
    };
    out.push(
        Instrument::Counter,
        "system.paging.faults",
        faults_unit,
        "Page faults.",
        faults,
    );

    let (dir_key, dir_in, dir_out) = if sc {
        ("system.paging.direction", "in", "out")
    } else {
        ("direction", "page_in", "page_out")
    };
    let mut ops = Points::new();
    for (kind, dir, value) in [
        ("major", dir_in, vm.pswpin),
        ("major", dir_out, vm.pswpout),
        ("minor", dir_in, vm.pgpgin),
        ("minor", dir_out, vm.pgpgout),
    ] {
        if let Some(v) = value {
            ops.int(&[(dir_key, dir), (type_key, kind)], v);
        }
    }
    out.push(
        Instrument::Counter,
        "system.paging.operations",
        ops_unit,
        "Paging operations: swap (major) and page (minor) ins and outs.",
        ops,
    );
}

pub fn uptime(out: &mut Emitter, seconds: f64) {
    let mut p = Points::new();
    p.double(&[], seconds);
    out.push(
        Instrument::Gauge,
        "system.uptime",
        "s",
        "Time since the host booted.",
        p,
    );
}
