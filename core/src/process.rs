//! The process's own figures and the `/proc/<pid>/stat` parser behind them: the one reader of
//! that file, used by the admin server and the internal metrics (this process), the host metrics'
//! process collectors (every process, under any root), and the benches (a peer's CPU time).
//!
//! Times in `/proc` are in clock ticks of `USER_HZ`, which Linux's user ABI fixes at 100.

/// Clock ticks per second in `/proc` (`USER_HZ`).
pub const TICKS_PER_SECOND: f64 = 100.0;

/// The fields of `/proc/<pid>/stat` the process collectors use. Times in clock ticks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PidStat {
    pub state: u8,
    pub ppid: u32,
    pub utime: u64,
    pub stime: u64,
    pub num_threads: u64,
    /// Start time after boot, in clock ticks.
    pub starttime: u64,
    /// Virtual memory size in bytes.
    pub vsize: u64,
    /// Resident set size in pages.
    pub rss_pages: u64,
    /// Time spent waiting for block I/O (`delayacct_blkio_ticks`); zero when absent.
    pub blkio_ticks: u64,
}

/// Parses `/proc/<pid>/stat` and returns the process name (`comm`) with the figures. The name
/// sits in parentheses and may itself contain spaces and parentheses, so the figures start after
/// the last `)`.
pub fn parse_pid_stat(text: &str) -> Option<(&str, PidStat)> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text.get(open + 1..close)?;
    let mut f = text.get(close + 1..)?.split_whitespace();
    // Field numbers as in proc(5); `f` starts at field 3 (state).
    let state = *f.next()?.as_bytes().first()?;
    let mut num = |skip: usize| -> Option<u64> { f.nth(skip)?.parse().ok() };
    let ppid = u32::try_from(num(0)?).ok()?; // 4
    let utime = num(9)?; // 14
    let stime = num(0)?; // 15
    let num_threads = num(4)?; // 20
    let starttime = num(1)?; // 22
    let vsize = num(0)?; // 23
    let rss_pages = num(0)?; // 24
    let blkio_ticks = num(17).unwrap_or(0); // 42
    Some((
        comm,
        PidStat {
            state,
            ppid,
            utime,
            stime,
            num_threads,
            starttime,
            vsize,
            rss_pages,
            blkio_ticks,
        },
    ))
}

/// The process's own figures, read from `/proc/self`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProcessFigures {
    pub cpu_seconds: f64,
    pub resident_bytes: u64,
    pub peak_resident_bytes: u64,
    pub open_fds: u64,
}

impl ProcessFigures {
    pub fn read() -> Self {
        let mut p = ProcessFigures {
            cpu_seconds: process_cpu_seconds(None).unwrap_or(0.0),
            ..ProcessFigures::default()
        };
        if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
            let kib = |key: &str| {
                status
                    .lines()
                    .find(|l| l.starts_with(key))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0)
                    * 1024
            };
            p.resident_bytes = kib("VmRSS:");
            p.peak_resident_bytes = kib("VmHWM:");
        }
        if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
            p.open_fds = fds.count() as u64;
        }
        p
    }
}

/// CPU seconds (user + system, all threads) this process has used, or process `pid`; `None`
/// where `/proc/<pid>/stat` cannot be read (not Linux, a process gone).
pub fn process_cpu_seconds(pid: Option<u32>) -> Option<f64> {
    let path = match pid {
        Some(p) => format!("/proc/{p}/stat"),
        None => "/proc/self/stat".into(),
    };
    let text = std::fs::read_to_string(path).ok()?;
    let (_, stat) = parse_pid_stat(&text)?;
    Some((stat.utime + stat.stime) as f64 / TICKS_PER_SECOND)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pid_stat_handles_parentheses_in_name() {
        let text = "1234 (my (weird) name) S 1 1234 1234 0 -1 4194304 500 0 2 0 \
                    150 25 0 0 20 0 3 0 4242 10485760 256 18446744073709551615 1 1 0 0 0 0 0 0 0 \
                    0 0 0 17 1 0 0 9 0 0\n";
        let (comm, s) = parse_pid_stat(text).expect("valid stat");
        assert_eq!(comm, "my (weird) name");
        assert_eq!(s.state, b'S');
        assert_eq!(s.ppid, 1);
        assert_eq!(s.utime, 150);
        assert_eq!(s.stime, 25);
        assert_eq!(s.num_threads, 3);
        assert_eq!(s.starttime, 4242);
        assert_eq!(s.vsize, 10485760);
        assert_eq!(s.rss_pages, 256);
        assert_eq!(s.blkio_ticks, 9);
    }

    #[test]
    fn pid_stat_truncated_is_none() {
        assert_eq!(
            parse_pid_stat("1234 (bash) S 1 1234 1234 0 -1 4194304 500"),
            None
        );
        assert_eq!(parse_pid_stat("1234 bash S"), None);
        assert_eq!(parse_pid_stat(") ("), None);
        assert_eq!(parse_pid_stat(""), None);
    }

    #[test]
    fn process_cpu_seconds_grows_with_work() {
        let Some(before) = process_cpu_seconds(None) else {
            return; // not Linux: nothing to read
        };
        // Spin until the count moves two ticks; a count that never moves fails at the deadline.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let mut x = 0u64;
        loop {
            for _ in 0..1_000_000 {
                x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
            }
            let now = process_cpu_seconds(None).expect("readable a moment ago");
            if now >= before + 0.02 {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "stuck at {now}");
        }
        assert_eq!(process_cpu_seconds(Some(u32::MAX)), None);
        assert!(ProcessFigures::read().resident_bytes > 0);
    }
}
