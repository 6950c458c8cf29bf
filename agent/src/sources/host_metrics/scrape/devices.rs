//! Per-device figures as metrics: block devices, file systems, network interfaces and TCP
//! connection states. Each function turns figures already read (and filtered) into metrics under
//! one [`Conventions`]; none does I/O.

use super::otlp::{ratio, Emitter, Instrument, Points};
use super::procfs::{DiskStat, Mount, NetDev, SECTOR_BYTES, TCP_STATES};
use sonde_config::Conventions;

fn ms_to_s(ms: u64) -> f64 {
    ms as f64 / 1000.0
}

/// Block-device counters from `/proc/diskstats`.
pub fn disk(out: &mut Emitter, conv: Conventions, disks: &[DiskStat<'_>]) {
    let sc = conv == Conventions::Semconv;
    let (dev, dir) = if sc {
        ("system.device", "disk.io.direction")
    } else {
        ("device", "direction")
    };
    let ops_unit = if sc { "{operation}" } else { "{operations}" };

    let (mut io, mut ops, mut op_time, mut merged) =
        (Points::new(), Points::new(), Points::new(), Points::new());
    let (mut io_time, mut weighted, mut pending) = (Points::new(), Points::new(), Points::new());
    for d in disks {
        for (direction, bytes, count, ms, merges) in [
            ("read", d.sectors_read, d.reads, d.read_ms, d.reads_merged),
            (
                "write",
                d.sectors_written,
                d.writes,
                d.write_ms,
                d.writes_merged,
            ),
        ] {
            let attrs = [(dev, d.name), (dir, direction)];
            io.int(&attrs, bytes.saturating_mul(SECTOR_BYTES));
            ops.int(&attrs, count);
            op_time.double(&attrs, ms_to_s(ms));
            merged.int(&attrs, merges);
        }
        io_time.double(&[(dev, d.name)], ms_to_s(d.io_ms));
        weighted.double(&[(dev, d.name)], ms_to_s(d.weighted_io_ms));
        pending.int(&[(dev, d.name)], d.in_progress);
    }
    out.push(
        Instrument::Counter,
        "system.disk.io",
        "By",
        "Bytes read and written.",
        io,
    );
    out.push(
        Instrument::Counter,
        "system.disk.operations",
        ops_unit,
        "Completed reads and writes.",
        ops,
    );
    out.push(
        Instrument::Counter,
        "system.disk.io_time",
        "s",
        "Time the device had I/O in flight.",
        io_time,
    );
    out.push(
        Instrument::Counter,
        "system.disk.operation_time",
        "s",
        "Time spent on reads and writes, summed over operations.",
        op_time,
    );
    out.push(
        Instrument::Counter,
        "system.disk.merged",
        ops_unit,
        "Adjacent reads and writes merged into one.",
        merged,
    );
    if !sc {
        out.push(
            Instrument::Counter,
            "system.disk.weighted_io_time",
            "s",
            "I/O time weighted by the number of operations in flight.",
            weighted,
        );
        out.push(
            Instrument::UpDownCounter,
            "system.disk.pending_operations",
            "{operations}",
            "Operations in flight.",
            pending,
        );
    }
}

/// One mounted file system with its `statvfs` figures.
pub struct FsUsage<'a> {
    pub mount: &'a Mount,
    /// Fragment size (`f_frsize`): the unit of the block counts.
    pub block_size: u64,
    pub blocks: u64,
    pub blocks_free: u64,
    /// Free blocks an unprivileged user may use.
    pub blocks_available: u64,
    pub files: u64,
    pub files_free: u64,
}

/// Space (and, for the Collector, inodes) per file system. `reserved` is the space only root
/// may use (free − available).
pub fn filesystem(out: &mut Emitter, conv: Conventions, fss: &[FsUsage<'_>]) {
    let sc = conv == Conventions::Semconv;
    let [dev, state, kind, mode, mountpoint] = if sc {
        [
            "system.device",
            "system.filesystem.state",
            "system.filesystem.type",
            "system.filesystem.mode",
            "system.filesystem.mountpoint",
        ]
    } else {
        ["device", "state", "type", "mode", "mountpoint"]
    };
    let (mut usage, mut util, mut limit, mut inodes) =
        (Points::new(), Points::new(), Points::new(), Points::new());
    for fs in fss {
        let m = fs.mount;
        let ro = if m.read_only { "ro" } else { "rw" };
        let bytes = |blocks: u64| blocks.saturating_mul(fs.block_size);
        let total = bytes(fs.blocks);
        let free_blocks = fs.blocks_free.min(fs.blocks);
        let avail_blocks = fs.blocks_available.min(free_blocks);
        let states = [
            ("used", bytes(fs.blocks - free_blocks)),
            ("free", bytes(avail_blocks)),
            ("reserved", bytes(free_blocks - avail_blocks)),
        ];
        for (st, value) in states {
            let attrs = [
                (dev, m.device.as_str()),
                (mode, ro),
                (mountpoint, m.mount_point.as_str()),
                (kind, m.fs_type.as_str()),
                (state, st),
            ];
            usage.int(&attrs, value);
            if let Some(u) = ratio(value, total) {
                util.double(&attrs, u);
            }
        }
        let attrs = [
            (dev, m.device.as_str()),
            (mode, ro),
            (mountpoint, m.mount_point.as_str()),
            (kind, m.fs_type.as_str()),
        ];
        limit.int(&attrs, total);
        let files_free = fs.files_free.min(fs.files);
        for (st, value) in [("used", fs.files - files_free), ("free", files_free)] {
            let [a0, a1, a2, a3] = attrs;
            inodes.int(&[a0, a1, a2, a3, (state, st)], value);
        }
    }
    out.push(
        Instrument::UpDownCounter,
        "system.filesystem.usage",
        "By",
        "File system space, by state.",
        usage,
    );
    if sc {
        out.push(
            Instrument::Gauge,
            "system.filesystem.utilization",
            "1",
            "Fraction of file system space in each state.",
            util,
        );
        out.push(
            Instrument::UpDownCounter,
            "system.filesystem.limit",
            "By",
            "File system size.",
            limit,
        );
    } else {
        out.push(
            Instrument::UpDownCounter,
            "system.filesystem.inodes.usage",
            "{inodes}",
            "File system inodes, by state.",
            inodes,
        );
    }
}

/// Interface counters from `/proc/net/dev`.
///
/// Semconv puts the interface in `network.interface.name`, except on
/// `system.network.packet.count`, which the conventions define with `system.device`.
pub fn network(out: &mut Emitter, conv: Conventions, devs: &[NetDev<'_>]) {
    let sc = conv == Conventions::Semconv;
    let (iface, packet_iface, dir) = if sc {
        (
            "network.interface.name",
            "system.device",
            "network.io.direction",
        )
    } else {
        ("device", "device", "direction")
    };
    let (mut io, mut packets, mut dropped, mut errors) =
        (Points::new(), Points::new(), Points::new(), Points::new());
    for d in devs {
        for (direction, b, p, dr, e) in [
            (
                "receive",
                d.rx_bytes,
                d.rx_packets,
                d.rx_dropped,
                d.rx_errors,
            ),
            (
                "transmit",
                d.tx_bytes,
                d.tx_packets,
                d.tx_dropped,
                d.tx_errors,
            ),
        ] {
            let attrs = [(iface, d.name), (dir, direction)];
            io.int(&attrs, b);
            packets.int(&[(packet_iface, d.name), (dir, direction)], p);
            dropped.int(&attrs, dr);
            errors.int(&attrs, e);
        }
    }
    let (packets_name, dropped_name, packet_unit, error_unit) = if sc {
        (
            "system.network.packet.count",
            "system.network.packet.dropped",
            "{packet}",
            "{error}",
        )
    } else {
        (
            "system.network.packets",
            "system.network.dropped",
            "{packets}",
            "{errors}",
        )
    };
    out.push(
        Instrument::Counter,
        "system.network.io",
        "By",
        "Bytes received and sent.",
        io,
    );
    out.push(
        Instrument::Counter,
        packets_name,
        packet_unit,
        "Packets received and sent.",
        packets,
    );
    out.push(
        Instrument::Counter,
        dropped_name,
        packet_unit,
        "Packets dropped.",
        dropped,
    );
    out.push(
        Instrument::Counter,
        "system.network.errors",
        error_unit,
        "Receive and transmit errors.",
        errors,
    );
}

/// `system.network.connections` (Collector only): TCP connections (IPv4 and IPv6) per state,
/// every state listed even when zero, as the Collector does.
pub fn tcp_connections(out: &mut Emitter, counts: &[u64; TCP_STATES.len()]) {
    let mut p = Points::new();
    for (state, n) in TCP_STATES.iter().zip(counts) {
        p.int(&[("protocol", "tcp"), ("state", state)], *n);
    }
    out.push(
        Instrument::UpDownCounter,
        "system.network.connections",
        "{connections}",
        "TCP connections, by state.",
        p,
    );
}
