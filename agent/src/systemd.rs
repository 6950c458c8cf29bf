//! systemd's notification protocol (`sd_notify(3)`): `READY=1`, `RELOADING=1` (with
//! `MONOTONIC_USEC`, which systemd ≥ 253 requires of a reload), `STOPPING=1`, `WATCHDOG=1` and
//! `STATUS=…`, one datagram per event to the Unix socket `$NOTIFY_SOCKET` names: a path, or an
//! abstract name written `@name` (what user managers and some container runtimes hand out).
//! Without that variable (not under systemd) every call is a no-op; a failed send is logged at
//! debug and never stops the agent.
//!
//! Why not the `sd-notify` crate: its 0.5 release connects to `$NOTIFY_SOCKET` as a path only,
//! so an abstract socket fails; the protocol is one datagram, and std addresses abstract sockets
//! without `unsafe`.

use std::ffi::OsString;
use std::os::linux::net::SocketAddrExt as _;
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

/// What the agent tells its service manager.
#[derive(Debug, Clone, Copy)]
pub enum Event<'a> {
    /// Started or reloaded: serving, with a status line.
    Ready(&'a str),
    Reloading,
    Stopping,
    /// The heartbeat: the pipeline is alive.
    Watchdog,
}

impl Event<'_> {
    /// The datagram: `KEY=value` lines.
    fn message(self) -> String {
        match self {
            Event::Ready(status) => format!("READY=1\nSTATUS={status}\n"),
            Event::Reloading => format!(
                "RELOADING=1\nMONOTONIC_USEC={}\nSTATUS=reloading\n",
                monotonic_usec()
            ),
            Event::Stopping => "STOPPING=1\nSTATUS=stopping\n".into(),
            Event::Watchdog => "WATCHDOG=1\n".into(),
        }
    }
}

/// CLOCK_MONOTONIC in microseconds, as systemd reads it.
fn monotonic_usec() -> u128 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    u128::try_from(t.tv_sec).unwrap_or(0) * 1_000_000
        + u128::try_from(t.tv_nsec).unwrap_or(0) / 1000
}

/// The socket address `$NOTIFY_SOCKET` names: `@name` is abstract, anything else a path.
fn address(var: &OsString) -> std::io::Result<SocketAddr> {
    match var.as_bytes().strip_prefix(b"@") {
        Some(name) => SocketAddr::from_abstract_name(name),
        None => SocketAddr::from_pathname(var),
    }
}

pub struct Notifier {
    socket: Option<(UnixDatagram, SocketAddr)>,
}

impl Notifier {
    pub fn from_env() -> Self {
        let socket = std::env::var_os("NOTIFY_SOCKET").and_then(|var| {
            let target = address(&var)
                .inspect_err(|e| {
                    tracing::warn!(socket = ?var, error = %e, "unusable NOTIFY_SOCKET; not notifying systemd")
                })
                .ok()?;
            UnixDatagram::unbound().ok().map(|s| (s, target))
        });
        Notifier { socket }
    }

    pub fn notify(&self, event: Event<'_>) {
        if let Some((sock, target)) = &self.socket {
            if let Err(e) = sock.send_to_addr(event.message().as_bytes(), target) {
                tracing::debug!(error = %e, ?event, "sd_notify failed");
            }
        }
    }

    /// Half the watchdog period systemd asked for (`WATCHDOG_USEC`), if it asked, for this
    /// process (`WATCHDOG_PID`).
    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.socket.as_ref()?;
        if let Ok(pid) = std::env::var("WATCHDOG_PID") {
            if pid.parse::<u32>().ok() != Some(std::process::id()) {
                return None;
            }
        }
        let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
        (usec > 0).then(|| Duration::from_micros(usec / 2))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn abstract_and_path_addresses() {
        let a = address(&OsString::from("@sonde-notify")).unwrap();
        assert_eq!(a.as_abstract_name(), Some(&b"sonde-notify"[..]));
        let p = address(&OsString::from("/run/systemd/notify")).unwrap();
        assert_eq!(
            p.as_pathname(),
            Some(std::path::Path::new("/run/systemd/notify"))
        );
    }

    #[test]
    fn a_reload_carries_the_monotonic_time() {
        let m = Event::Reloading.message();
        let usec: u128 = m
            .lines()
            .find_map(|l| l.strip_prefix("MONOTONIC_USEC="))
            .unwrap()
            .parse()
            .unwrap();
        assert!(usec > 0 && usec <= monotonic_usec());
        assert!(m.starts_with("RELOADING=1\n"));
    }
}
