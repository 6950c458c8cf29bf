//! Pure parsers for the Linux `/proc` text the scraper reads: each takes the file's text and
//! returns the figures it found.
//!
//! Outside input, so nothing here panics or indexes out of bounds: a malformed or truncated line
//! is skipped, a missing figure is `None`/absent. No I/O happens here; the caller reads the file
//! (under `root_path`) and decides what a missing figure means.

/// Per-mode CPU time from one `cpu` line of `/proc/stat`, in clock ticks (`USER_HZ`).
///
/// `guest` and `guest_nice` are left out: the kernel already counts them in `user` and `nice`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuTimes {
    pub user: u64,
    pub nice: u64,
    pub system: u64,
    pub idle: u64,
    pub iowait: u64,
    pub irq: u64,
    pub softirq: u64,
    pub steal: u64,
}

/// The figures the scraper takes from `/proc/stat`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stat {
    /// The aggregate `cpu` line.
    pub cpu: Option<CpuTimes>,
    /// How many `cpuN` lines there are (online logical CPUs).
    pub logical_cpus: u64,
    /// Boot time, seconds since the epoch.
    pub btime: Option<u64>,
    /// Forks since boot.
    pub processes: Option<u64>,
    pub procs_running: Option<u64>,
    pub procs_blocked: Option<u64>,
}

/// Parses the numbers after `cpu`/`cpuN`: at least user, nice, system, idle (older kernels stop
/// there); later fields default to zero.
fn parse_cpu_fields<'a>(mut fields: impl Iterator<Item = &'a str>) -> Option<CpuTimes> {
    let mut v = [0u64; 8];
    let mut n = 0;
    for slot in v.iter_mut() {
        match fields.next() {
            Some(f) => {
                *slot = f.parse().ok()?;
                n += 1;
            }
            None => break,
        }
    }
    if n < 4 {
        return None;
    }
    let [user, nice, system, idle, iowait, irq, softirq, steal] = v;
    Some(CpuTimes {
        user,
        nice,
        system,
        idle,
        iowait,
        irq,
        softirq,
        steal,
    })
}

pub fn parse_stat(text: &str) -> Stat {
    let mut out = Stat::default();
    for line in text.lines() {
        let mut fields = line.split_whitespace();
        let Some(key) = fields.next() else { continue };
        match key {
            "cpu" => out.cpu = parse_cpu_fields(fields),
            "btime" => out.btime = fields.next().and_then(|v| v.parse().ok()),
            "processes" => out.processes = fields.next().and_then(|v| v.parse().ok()),
            "procs_running" => out.procs_running = fields.next().and_then(|v| v.parse().ok()),
            "procs_blocked" => out.procs_blocked = fields.next().and_then(|v| v.parse().ok()),
            k if k.starts_with("cpu")
                && k[3..].bytes().all(|b| b.is_ascii_digit())
                && parse_cpu_fields(fields).is_some() =>
            {
                out.logical_cpus += 1;
            }
            _ => {}
        }
    }
    out
}

/// The `/proc/meminfo` figures the scraper uses, in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Meminfo {
    pub total: Option<u64>,
    pub free: Option<u64>,
    pub available: Option<u64>,
    pub buffers: Option<u64>,
    pub cached: Option<u64>,
    pub shmem: Option<u64>,
    pub slab_reclaimable: Option<u64>,
    pub slab_unreclaimable: Option<u64>,
}

pub fn parse_meminfo(text: &str) -> Meminfo {
    let mut m = Meminfo::default();
    for line in text.lines() {
        let Some((key, rest)) = line.split_once(':') else {
            continue;
        };
        let mut parts = rest.split_whitespace();
        let Some(Ok(value)) = parts.next().map(str::parse::<u64>) else {
            continue;
        };
        let bytes = match parts.next() {
            None => value,
            Some("kB") => value.saturating_mul(1024),
            Some(_) => continue,
        };
        let slot = match key {
            "MemTotal" => &mut m.total,
            "MemFree" => &mut m.free,
            "MemAvailable" => &mut m.available,
            "Buffers" => &mut m.buffers,
            "Cached" => &mut m.cached,
            "Shmem" => &mut m.shmem,
            "SReclaimable" => &mut m.slab_reclaimable,
            "SUnreclaim" => &mut m.slab_unreclaimable,
            _ => continue,
        };
        *slot = Some(bytes);
    }
    m
}

/// `/proc/loadavg`: the 1, 5 and 15 minute load averages.
pub fn parse_loadavg(text: &str) -> Option<[f64; 3]> {
    let mut fields = text.split_whitespace();
    let mut out = [0.0; 3];
    for slot in out.iter_mut() {
        *slot = fields
            .next()?
            .parse()
            .ok()
            .filter(|v: &f64| v.is_finite())?;
    }
    Some(out)
}

/// `/proc/uptime`: seconds since boot.
pub fn parse_uptime(text: &str) -> Option<f64> {
    text.split_whitespace()
        .next()?
        .parse()
        .ok()
        .filter(|v: &f64| v.is_finite())
}

/// One line of `/proc/diskstats`. Times in milliseconds, sizes in 512-byte sectors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskStat<'a> {
    pub name: &'a str,
    pub reads: u64,
    pub reads_merged: u64,
    pub sectors_read: u64,
    pub read_ms: u64,
    pub writes: u64,
    pub writes_merged: u64,
    pub sectors_written: u64,
    pub write_ms: u64,
    pub in_progress: u64,
    pub io_ms: u64,
    pub weighted_io_ms: u64,
}

/// The kernel's sector unit in `/proc/diskstats`, whatever the device's block size.
pub const SECTOR_BYTES: u64 = 512;

pub fn parse_diskstats(text: &str) -> Vec<DiskStat<'_>> {
    text.lines().filter_map(parse_diskstats_line).collect()
}

fn parse_diskstats_line(line: &str) -> Option<DiskStat<'_>> {
    let mut f = line.split_whitespace();
    let _major = f.next()?;
    let _minor = f.next()?;
    let name = f.next()?;
    let mut v = [0u64; 11];
    for slot in v.iter_mut() {
        *slot = f.next()?.parse().ok()?;
    }
    let [reads, reads_merged, sectors_read, read_ms, writes, writes_merged, sectors_written, write_ms, in_progress, io_ms, weighted_io_ms] =
        v;
    Some(DiskStat {
        name,
        reads,
        reads_merged,
        sectors_read,
        read_ms,
        writes,
        writes_merged,
        sectors_written,
        write_ms,
        in_progress,
        io_ms,
        weighted_io_ms,
    })
}

/// One interface of `/proc/net/dev`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetDev<'a> {
    pub name: &'a str,
    pub rx_bytes: u64,
    pub rx_packets: u64,
    pub rx_errors: u64,
    pub rx_dropped: u64,
    pub tx_bytes: u64,
    pub tx_packets: u64,
    pub tx_errors: u64,
    pub tx_dropped: u64,
}

pub fn parse_net_dev(text: &str) -> Vec<NetDev<'_>> {
    text.lines().filter_map(parse_net_dev_line).collect()
}

fn parse_net_dev_line(line: &str) -> Option<NetDev<'_>> {
    // `  eth0: 123 ...` — the counters never contain ':', so the last one ends the name (which
    // may be glued to the first counter when that is wide).
    let (name, rest) = line.rsplit_once(':')?;
    let name = name.trim();
    if name.is_empty() {
        return None;
    }
    let mut v = [0u64; 16];
    let mut f = rest.split_whitespace();
    for slot in v.iter_mut() {
        *slot = f.next()?.parse().ok()?;
    }
    Some(NetDev {
        name,
        rx_bytes: v[0],
        rx_packets: v[1],
        rx_errors: v[2],
        rx_dropped: v[3],
        tx_bytes: v[8],
        tx_packets: v[9],
        tx_errors: v[10],
        tx_dropped: v[11],
    })
}

/// The `/proc/vmstat` counters the paging collector uses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Vmstat {
    pub pgfault: Option<u64>,
    pub pgmajfault: Option<u64>,
    pub pgpgin: Option<u64>,
    pub pgpgout: Option<u64>,
    pub pswpin: Option<u64>,
    pub pswpout: Option<u64>,
}

pub fn parse_vmstat(text: &str) -> Vmstat {
    let mut out = Vmstat::default();
    for line in text.lines() {
        let mut f = line.split_whitespace();
        let (Some(key), Some(value)) = (f.next(), f.next()) else {
            continue;
        };
        let slot = match key {
            "pgfault" => &mut out.pgfault,
            "pgmajfault" => &mut out.pgmajfault,
            "pgpgin" => &mut out.pgpgin,
            "pgpgout" => &mut out.pgpgout,
            "pswpin" => &mut out.pswpin,
            "pswpout" => &mut out.pswpout,
            _ => continue,
        };
        if let Ok(v) = value.parse() {
            *slot = Some(v);
        }
    }
    out
}

/// One swap area of `/proc/swaps`, in bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Swap {
    pub device: String,
    pub size: u64,
    pub used: u64,
}

pub fn parse_swaps(text: &str) -> Vec<Swap> {
    text.lines()
        .filter_map(|line| {
            let mut f = line.split_whitespace();
            let device = f.next()?;
            let _kind = f.next()?;
            let size: u64 = f.next()?.parse().ok()?;
            let used: u64 = f.next()?.parse().ok()?;
            Some(Swap {
                device: unescape_octal(device),
                size: size.saturating_mul(1024),
                used: used.saturating_mul(1024),
            })
        })
        .collect()
}

/// One line of `/proc/<pid>/mounts`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub device: String,
    pub mount_point: String,
    pub fs_type: String,
    pub read_only: bool,
}

/// Parses the mount table. When a mount point appears more than once, the last entry (the one
/// on top) is kept.
pub fn parse_mounts(text: &str) -> Vec<Mount> {
    let mut out: Vec<Mount> = Vec::new();
    for line in text.lines() {
        let mut f = line.split_whitespace();
        let (Some(device), Some(mount_point), Some(fs_type), Some(options)) =
            (f.next(), f.next(), f.next(), f.next())
        else {
            continue;
        };
        let mount = Mount {
            device: unescape_octal(device),
            mount_point: unescape_octal(mount_point),
            fs_type: fs_type.to_owned(),
            read_only: options.split(',').any(|o| o == "ro"),
        };
        out.retain(|m| m.mount_point != mount.mount_point);
        out.push(mount);
    }
    out
}

/// Undoes the kernel's `\ooo` escaping of spaces, tabs, newlines and backslashes in mount and
/// swap paths. A backslash not followed by three octal digits is kept as is.
pub fn unescape_octal(s: &str) -> String {
    if !s.contains('\\') {
        return s.to_owned();
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if let (b'\\', Some(digits)) = (bytes[i], bytes.get(i + 1..i + 4)) {
            if digits.iter().all(|d| (b'0'..=b'7').contains(d)) {
                let v = digits
                    .iter()
                    .fold(0u32, |acc, d| acc * 8 + u32::from(d - b'0'));
                if let Ok(b) = u8::try_from(v) {
                    out.push(b);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `/proc/<pid>/io`: bytes the process caused to be read from and written to storage.
pub fn parse_pid_io(text: &str) -> Option<(u64, u64)> {
    let (mut read, mut write) = (None, None);
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let slot = match key {
            "read_bytes" => &mut read,
            "write_bytes" => &mut write,
            _ => continue,
        };
        *slot = value.trim().parse().ok();
    }
    Some((read?, write?))
}

/// `/proc/<pid>/cmdline`: NUL-separated arguments (the last one NUL-terminated).
pub fn parse_cmdline(text: &str) -> impl Iterator<Item = &str> {
    text.strip_suffix('\0')
        .unwrap_or(text)
        .split('\0')
        .filter(|a| !a.is_empty())
}

/// The TCP states of `/proc/net/tcp{,6}`, in the kernel's numbering (`st` column, hex 01..0B),
/// with the names the Collector's network scraper reports.
pub const TCP_STATES: [&str; 12] = [
    "ESTABLISHED",
    "SYN_SENT",
    "SYN_RECV",
    "FIN_WAIT_1",
    "FIN_WAIT_2",
    "TIME_WAIT",
    "CLOSE",
    "CLOSE_WAIT",
    "LAST_ACK",
    "LISTEN",
    "CLOSING",
    // Never set by Linux; listed so the series exists, as the Collector does.
    "DELETE",
];

/// The state of one `/proc/net/tcp` line as an index into [`TCP_STATES`]; `None` for the
/// header and malformed lines.
pub fn tcp_line_state(line: &str) -> Option<usize> {
    let st = line.split_whitespace().nth(3)?;
    let n = usize::from_str_radix(st, 16).ok()?;
    n.checked_sub(1).filter(|&i| i < 11)
}

/// `/etc/passwd`: the user name of `uid`.
pub fn passwd_user(text: &str, uid: u32) -> Option<&str> {
    text.lines().find_map(|line| {
        let mut f = line.split(':');
        let name = f.next()?;
        let _password = f.next()?;
        let id: u32 = f.next()?.parse().ok()?;
        (id == uid && !name.is_empty()).then_some(name)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str = "\
cpu  27521 10 3696 1891010 267 1 39 226 5 0
cpu0 13767 5 1736 945653 138 0 16 97 0 0
cpu1 13754 5 1960 945356 128 1 23 129 0 0
cpu2 garbage
intr 1234 0 0
ctxt 98765
btime 1795907776
processes 8378
procs_running 3
procs_blocked 1
softirq 1 2 3
";

    #[test]
    fn stat_yields_aggregate_cpu_counts_and_process_figures() {
        let s = parse_stat(STAT);
        let cpu = s.cpu.expect("aggregate cpu line");
        assert_eq!(cpu.user, 27521);
        assert_eq!(cpu.nice, 10);
        assert_eq!(cpu.idle, 1891010);
        assert_eq!(cpu.irq, 1);
        assert_eq!(cpu.softirq, 39);
        assert_eq!(cpu.steal, 226);
        // cpu2 is malformed and not counted.
        assert_eq!(s.logical_cpus, 2);
        assert_eq!(s.btime, Some(1795907776));
        assert_eq!(s.processes, Some(8378));
        assert_eq!(s.procs_running, Some(3));
        assert_eq!(s.procs_blocked, Some(1));
    }

    #[test]
    fn stat_old_kernel_short_cpu_line_defaults_later_fields() {
        let s = parse_stat("cpu 1 2 3 4\ncpu0 1 2 3 4\n");
        assert_eq!(
            s.cpu,
            Some(CpuTimes {
                user: 1,
                nice: 2,
                system: 3,
                idle: 4,
                ..Default::default()
            })
        );
        assert_eq!(s.logical_cpus, 1);
    }

    #[test]
    fn stat_truncated_or_empty_yields_nothing() {
        let s = parse_stat("cpu 1 2\nbtime\nprocesses x\ncpufoo 1 2 3 4\n");
        assert_eq!(s, Stat::default());
        assert_eq!(parse_stat(""), Stat::default());
    }

    #[test]
    fn meminfo_converts_kib_to_bytes_and_skips_junk() {
        let m = parse_meminfo(
            "MemTotal:       24731708 kB\nMemFree:        22274636 kB\n\
             MemAvailable:   24380764 kB\nBuffers:           18112 kB\nCached: 2268060 kB\n\
             Shmem: 8856 kB\nSReclaimable: 81228 kB\nSUnreclaim: 24620 kB\n\
             HugePages_Total: 0\nBroken line\nMemFree: lots kB\nCached: 1 MB\n",
        );
        assert_eq!(m.total, Some(24731708 * 1024));
        assert_eq!(m.free, Some(22274636 * 1024));
        assert_eq!(m.available, Some(24380764 * 1024));
        assert_eq!(m.buffers, Some(18112 * 1024));
        assert_eq!(m.cached, Some(2268060 * 1024));
        assert_eq!(m.shmem, Some(8856 * 1024));
        assert_eq!(m.slab_reclaimable, Some(81228 * 1024));
        assert_eq!(m.slab_unreclaimable, Some(24620 * 1024));
        assert_eq!(parse_meminfo("MemTot"), Meminfo::default());
    }

    #[test]
    fn loadavg_and_uptime() {
        assert_eq!(
            parse_loadavg("0.26 0.38 0.24 1/76 8379\n"),
            Some([0.26, 0.38, 0.24])
        );
        assert_eq!(parse_loadavg("0.26 0.38"), None);
        assert_eq!(parse_loadavg("0.26 x 0.1"), None);
        assert_eq!(parse_loadavg("NaN 1 1"), None);
        assert_eq!(parse_uptime("9617.26 18910.10\n"), Some(9617.26));
        assert_eq!(parse_uptime(""), None);
        assert_eq!(parse_uptime("up"), None);
    }

    #[test]
    fn diskstats_reads_whole_devices_and_partitions_and_skips_short_lines() {
        let text = "\
 254       0 vda 6302 3572 1768298 10940 3019 19896 3745752 19157 0 3900 30405 4240 3 60008 305 102 2
 254       1 vda1 10 0 80 1 2 0 16 3 1 4 5
   8       0 sda 1 2 3
   7       0 loop0 0 0 0 0 0 0 0 0 0 0 x
";
        let d = parse_diskstats(text);
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].name, "vda");
        assert_eq!(d[0].reads, 6302);
        assert_eq!(d[0].reads_merged, 3572);
        assert_eq!(d[0].sectors_read, 1768298);
        assert_eq!(d[0].read_ms, 10940);
        assert_eq!(d[0].writes, 3019);
        assert_eq!(d[0].writes_merged, 19896);
        assert_eq!(d[0].sectors_written, 3745752);
        assert_eq!(d[0].write_ms, 19157);
        assert_eq!(d[0].in_progress, 0);
        assert_eq!(d[0].io_ms, 3900);
        assert_eq!(d[0].weighted_io_ms, 30405);
        assert_eq!(d[1].name, "vda1");
        assert_eq!(d[1].in_progress, 1);
    }

    #[test]
    fn net_dev_skips_headers_and_handles_glued_names() {
        let text = "\
Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:    3193      29    0    0    0     0          0         0     3193      29    0    0    0     0       0          0
  eth0:51994138    4077    1    2    0     0          0         0   375927    3808    3    4    0     0       0          0
  bad0: 1 2 3
";
        let d = parse_net_dev(text);
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].name, "lo");
        assert_eq!(d[1].name, "eth0");
        assert_eq!(d[1].rx_bytes, 51994138);
        assert_eq!(d[1].rx_packets, 4077);
        assert_eq!(d[1].rx_errors, 1);
        assert_eq!(d[1].rx_dropped, 2);
        assert_eq!(d[1].tx_bytes, 375927);
        assert_eq!(d[1].tx_packets, 3808);
        assert_eq!(d[1].tx_errors, 3);
        assert_eq!(d[1].tx_dropped, 4);
    }

    #[test]
    fn vmstat_picks_paging_counters() {
        let v = parse_vmstat(
            "nr_free_pages 1\npgpgin 100\npgpgout 200\npswpin 3\npswpout 4\npgfault 5000\n\
             pgmajfault 7\npgfault\npswpin x\n",
        );
        assert_eq!(v.pgpgin, Some(100));
        assert_eq!(v.pgpgout, Some(200));
        assert_eq!(v.pswpin, Some(3));
        assert_eq!(v.pswpout, Some(4));
        assert_eq!(v.pgfault, Some(5000));
        assert_eq!(v.pgmajfault, Some(7));
    }

    #[test]
    fn swaps_skips_header_and_unescapes_names() {
        let s = parse_swaps(
            "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n\
             /dev/sda2 partition 8388604 1024 -2\n/swap\\040file file 100 0 -3\n/dev/sdb1 partition\n",
        );
        assert_eq!(
            s,
            vec![
                Swap {
                    device: "/dev/sda2".into(),
                    size: 8388604 * 1024,
                    used: 1024 * 1024
                },
                Swap {
                    device: "/swap file".into(),
                    size: 100 * 1024,
                    used: 0
                },
            ]
        );
        assert!(parse_swaps("Filename Type Size Used Priority\n").is_empty());
    }

    #[test]
    fn mounts_unescape_dedupe_and_read_mode() {
        let m = parse_mounts(
            "/dev/vda / ext4 rw,relatime 0 0\n\
             tmpfs /mnt/my\\040disk tmpfs ro,nosuid 0 0\n\
             truncated /x\n\
             /dev/vdb / xfs rw,noatime 0 0\n",
        );
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].mount_point, "/mnt/my disk");
        assert!(m[0].read_only);
        assert_eq!(m[1].device, "/dev/vdb");
        assert_eq!(m[1].fs_type, "xfs");
        assert!(!m[1].read_only);
    }

    #[test]
    fn unescape_keeps_lone_backslashes() {
        assert_eq!(unescape_octal("a\\134b"), "a\\b");
        assert_eq!(unescape_octal("a\\9b"), "a\\9b");
        assert_eq!(unescape_octal("tail\\04"), "tail\\04");
        assert_eq!(unescape_octal("\\777"), "\\777");
    }

    #[test]
    fn pid_io_and_cmdline() {
        assert_eq!(
            parse_pid_io("rchar: 5\nwchar: 6\nread_bytes: 4096\nwrite_bytes: 8192\n"),
            Some((4096, 8192))
        );
        assert_eq!(parse_pid_io("rchar: 5\nread_bytes: 1\n"), None);
        let args: Vec<_> = parse_cmdline("/bin/sh\0-c\0echo hi\0").collect();
        assert_eq!(args, ["/bin/sh", "-c", "echo hi"]);
        assert_eq!(parse_cmdline("").count(), 0);
    }

    #[test]
    fn tcp_states_from_st_column() {
        let header = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt";
        let listen = "   0: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000";
        let est = "   1: 0100007F:0016 0100007F:A1B2 01 00000000:00000000 00:00000000 00000000";
        assert_eq!(tcp_line_state(header), None);
        assert_eq!(
            tcp_line_state(listen).map(|i| TCP_STATES[i]),
            Some("LISTEN")
        );
        assert_eq!(
            tcp_line_state(est).map(|i| TCP_STATES[i]),
            Some("ESTABLISHED")
        );
        assert_eq!(tcp_line_state("   2: a b 0C"), None);
        assert_eq!(tcp_line_state("   2: a"), None);
    }

    #[test]
    fn passwd_user_by_uid() {
        let passwd =
            "root:x:0:0:root:/root:/bin/bash\nbroken\nbob:x:1000:1000::/home/bob:/bin/sh\n";
        assert_eq!(passwd_user(passwd, 0), Some("root"));
        assert_eq!(passwd_user(passwd, 1000), Some("bob"));
        assert_eq!(passwd_user(passwd, 7), None);
    }
}
