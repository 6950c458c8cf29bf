//! systemd's notification protocol (`sd_notify`): `READY=1`, `STOPPING=1`, `WATCHDOG=1`,
//! `STATUS=…` as datagrams to the Unix socket named by `$NOTIFY_SOCKET`. Without that variable
//! (not under systemd) every call is a no-op.

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

pub struct Notifier {
    socket: Option<(UnixDatagram, String)>,
}

impl Notifier {
    pub fn from_env() -> Self {
        let socket = std::env::var("NOTIFY_SOCKET").ok().and_then(|path| {
            // Abstract sockets ("@name") need Linux-specific addressing; the plain path form is
            // what systemd uses for services.
            if path.starts_with('@') {
                tracing::warn!(socket = %path, "abstract NOTIFY_SOCKET not supported; not notifying systemd");
                return None;
            }
            UnixDatagram::unbound().ok().map(|s| (s, path))
        });
        Notifier { socket }
    }

    pub fn notify(&self, state: &str) {
        if let Some((sock, path)) = &self.socket {
            if let Err(e) = sock.send_to(state.as_bytes(), path) {
                tracing::debug!(error = %e, state, "sd_notify failed");
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
