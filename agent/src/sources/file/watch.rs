//! Waking the tailer: file-system events (Linux inotify on the watched directories) wake it as
//! soon as a file is appended to, created, renamed or deleted, so lines arrive in milliseconds
//! instead of after the next `poll_interval`; polling stays as the safety net (events can be
//! missed: network file systems, a full event queue, the watch limit). The stop signal is an
//! eventfd polled together with inotify, so a stop wakes the tailer at once.
//!
//! Without inotify (disabled, or it failed to start) the tailer only polls.

use rustix::event::{eventfd, poll, EventfdFlags, PollFd, PollFlags, Timespec};
use rustix::fd::OwnedFd;
use rustix::fs::inotify::{self, CreateFlags, ReadFlags, WatchFlags};
use std::collections::{HashMap, HashSet};
use std::mem::MaybeUninit;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::{debug, warn};

/// Tells the tailer to stop, and wakes it if it is waiting.
#[derive(Clone)]
pub struct Stop(Arc<StopInner>);

struct StopInner {
    stopped: AtomicBool,
    /// Becomes readable on stop; `None` if eventfd is unavailable (waits then sleep in slices).
    fd: Option<OwnedFd>,
}

impl Default for Stop {
    fn default() -> Self {
        let fd = eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK).ok();
        Stop(Arc::new(StopInner {
            stopped: AtomicBool::new(false),
            fd,
        }))
    }
}

impl Stop {
    pub fn stop(&self) {
        self.0.stopped.store(true, Ordering::Release);
        if let Some(fd) = &self.0.fd {
            let _ = rustix::io::write(fd, &1u64.to_ne_bytes());
        }
    }

    pub fn is_stopped(&self) -> bool {
        self.0.stopped.load(Ordering::Acquire)
    }
}

/// Why a wait ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Woken {
    Timeout,
    /// A watched file was written to.
    Modified,
    /// A file was created, renamed or deleted (or events were lost): scan again now.
    Changed,
    Stopped,
}

/// The tailer's idle wait.
pub struct Waiter {
    stop: Stop,
    inotify: Option<OwnedFd>,
    watched: HashMap<PathBuf, i32>,
    buf: Vec<MaybeUninit<u8>>,
    warned_limit: bool,
}

impl Waiter {
    /// `events`: use inotify when the platform gives it.
    pub fn new(stop: Stop, events: bool) -> Self {
        let inotify = if events {
            match inotify::init(CreateFlags::CLOEXEC | CreateFlags::NONBLOCK) {
                Ok(fd) => Some(fd),
                Err(e) => {
                    warn!(error = %e, "inotify unavailable; files are polled only");
                    None
                }
            }
        } else {
            None
        };
        Waiter {
            stop,
            inotify,
            watched: HashMap::new(),
            buf: vec![MaybeUninit::uninit(); 64 * 1024],
            warned_limit: false,
        }
    }

    /// Watches exactly `dirs` (adds the new ones, drops the others).
    pub fn set_dirs(&mut self, dirs: HashSet<PathBuf>) {
        let Some(fd) = &self.inotify else {
            return;
        };
        self.watched.retain(|dir, wd| {
            let keep = dirs.contains(dir);
            if !keep {
                // Fails harmlessly when the directory is gone (the kernel dropped the watch).
                let _ = inotify::remove_watch(fd, *wd);
            }
            keep
        });
        let flags = WatchFlags::MODIFY
            | WatchFlags::CREATE
            | WatchFlags::MOVED_FROM
            | WatchFlags::MOVED_TO
            | WatchFlags::DELETE
            | WatchFlags::ONLYDIR;
        for dir in dirs {
            if self.watched.contains_key(&dir) {
                continue;
            }
            match inotify::add_watch(fd, &dir, flags) {
                Ok(wd) => {
                    self.watched.insert(dir, wd);
                }
                Err(rustix::io::Errno::NOSPC) if !self.warned_limit => {
                    self.warned_limit = true;
                    warn!(dir = %dir.display(), "inotify watch limit reached (fs.inotify.max_user_watches); some directories are polled only");
                }
                Err(e) => debug!(dir = %dir.display(), error = %e, "cannot watch directory"),
            }
        }
    }

    /// Waits up to `d` for an event or the stop.
    pub fn wait(&mut self, d: Duration) -> Woken {
        if self.stop.is_stopped() {
            return Woken::Stopped;
        }
        let stop_fd = self.stop.0.fd.as_ref();
        if stop_fd.is_none() && self.inotify.is_none() {
            // Nothing to poll: sleep in slices so a stop is seen soon.
            let end = Instant::now() + d;
            while Instant::now() < end {
                if self.stop.is_stopped() {
                    return Woken::Stopped;
                }
                std::thread::sleep(
                    end.saturating_duration_since(Instant::now())
                        .min(Duration::from_millis(50)),
                );
            }
            return Woken::Timeout;
        }
        let timeout = Timespec {
            tv_sec: d.as_secs() as _,
            tv_nsec: d.subsec_nanos() as _,
        };
        let mut fds = Vec::with_capacity(2);
        if let Some(fd) = stop_fd {
            fds.push(PollFd::new(fd, PollFlags::IN));
        }
        if let Some(fd) = &self.inotify {
            fds.push(PollFd::new(fd, PollFlags::IN));
        }
        let _ = poll(&mut fds, Some(&timeout));
        let inotify_ready = self.inotify.is_some()
            && fds
                .last()
                .is_some_and(|f| f.revents().contains(PollFlags::IN));
        drop(fds);
        if self.stop.is_stopped() {
            return Woken::Stopped;
        }
        if !inotify_ready {
            return Woken::Timeout;
        }
        self.drain()
    }

    /// Reads every queued event; `Changed` if any was more than a write.
    fn drain(&mut self) -> Woken {
        let Some(fd) = &self.inotify else {
            return Woken::Timeout;
        };
        let mut woken = Woken::Modified;
        let mut reader = inotify::Reader::new(fd, &mut self.buf);
        // Until EAGAIN: everything queued is read.
        while let Ok(ev) = reader.next() {
            if ev.events().intersects(
                ReadFlags::CREATE
                    | ReadFlags::MOVED_FROM
                    | ReadFlags::MOVED_TO
                    | ReadFlags::DELETE
                    | ReadFlags::QUEUE_OVERFLOW
                    | ReadFlags::IGNORED,
            ) {
                woken = Woken::Changed;
            }
        }
        woken
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_in_a_watched_directory_wakes_the_wait_and_a_stop_ends_it() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a.log");
        std::fs::write(&f, "x\n").unwrap();
        let stop = Stop::default();
        let mut w = Waiter::new(stop.clone(), true);
        w.set_dirs([dir.path().to_path_buf()].into());
        assert_eq!(w.wait(Duration::from_millis(10)), Woken::Timeout);
        std::fs::write(&f, "y\n").unwrap();
        assert_ne!(w.wait(Duration::from_secs(5)), Woken::Timeout);
        std::fs::write(dir.path().join("new.log"), "z\n").unwrap();
        assert_eq!(w.wait(Duration::from_secs(5)), Woken::Changed);
        let t = Instant::now();
        let s2 = stop.clone();
        let h = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            s2.stop();
        });
        assert_eq!(w.wait(Duration::from_secs(10)), Woken::Stopped);
        assert!(t.elapsed() < Duration::from_secs(5));
        h.join().unwrap();
    }
}
