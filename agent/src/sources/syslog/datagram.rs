//! The datagram listeners: UDP (RFC 5426, one message per datagram) and a Unix datagram socket
//! (as `/dev/log`), and the count of what the kernel dropped from the UDP socket's receive
//! buffer while the source was waiting for the pipeline.
//!
//! A task reads one datagram, then every datagram already waiting (up to a batch), and hands
//! the batch on before reading again. A datagram longer than `max_message_size` is cut to it.

use super::record::Origin;
use super::{frame::Cut, Shared, Sink, SyslogError, Transport};
use sonde_core::log_limit::LogLimit;
use std::net::{IpAddr, SocketAddr};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::net::{UdpSocket, UnixDatagram};
use tracing::{debug, warn};

/// The largest UDP payload.
const MAX_DATAGRAM: usize = 65_535;
/// How often the kernel's drop count is read.
const DROPS_INTERVAL: Duration = Duration::from_secs(1);

pub async fn bind_udp(addr: SocketAddr) -> Result<UdpSocket, SyslogError> {
    UdpSocket::bind(addr)
        .await
        .map_err(|source| SyslogError::Bind {
            transport: "UDP",
            addr,
            source,
        })
}

/// The receive buffer: one byte more than a message may have, so a longer one is seen.
fn receive_buffer(shared: &Shared) -> Vec<u8> {
    vec![0; shared.max_message_size.min(MAX_DATAGRAM) + 1]
}

/// What one datagram is, given the bytes it filled in a buffer of `max + 1`.
fn datagram(buf: &[u8], n: usize, max: usize) -> (&[u8], Option<Cut>) {
    if n > max {
        (&buf[..max], Some(Cut::Oversized))
    } else {
        (&buf[..n], None)
    }
}

/// Keeps the text of the last sender's address, so a busy sender costs no formatting.
#[derive(Default)]
struct PeerText {
    ip: Option<IpAddr>,
    text: String,
}

impl PeerText {
    fn of(&mut self, ip: IpAddr) -> &str {
        if self.ip != Some(ip) {
            self.ip = Some(ip);
            self.text = ip.to_string();
        }
        &self.text
    }
}

pub async fn udp_loop(sock: Arc<UdpSocket>, shared: Arc<Shared>) {
    let mut sink = Sink::new(shared.clone(), Transport::Udp);
    let mut buf = receive_buffer(&shared);
    let max = shared.max_message_size;
    let mut peer = PeerText::default();
    loop {
        let first = tokio::select! {
            _ = shared.shutdown.cancelled() => break,
            r = sock.recv_from(&mut buf) => r,
        };
        let now = SystemTime::now();
        let mut next = first;
        loop {
            match next {
                Ok((n, from)) => {
                    sink.read_bytes(n);
                    let (bytes, cut) = datagram(&buf, n, max);
                    let origin = Origin {
                        peer: Some(peer.of(from.ip())),
                        cut,
                    };
                    sink.push(bytes, origin, now);
                }
                Err(e) => {
                    // ICMP errors and the like reported on the socket: nothing was received.
                    debug!(source = %shared.name, error = %e, "UDP receive failed");
                }
            }
            if sink.full() {
                break;
            }
            next = match sock.try_recv_from(&mut buf) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                r => r,
            };
        }
        if !sink.flush().await {
            break;
        }
    }
    sink.flush_final().await;
}

/// Adds what the kernel dropped from the socket's receive buffer to
/// `sonde_source_dropped_items_total{reason="udp_receive_buffer"}`, every second and once more
/// at the stop.
pub async fn count_udp_drops(sock: Arc<UdpSocket>, shared: Arc<Shared>) {
    let inode = match rustix::fs::fstat(&*sock) {
        Ok(st) => st.st_ino,
        Err(e) => {
            warn!(source = %shared.name, error = %e, "cannot identify the UDP socket; kernel drops are not counted");
            return;
        }
    };
    // The socket was bound by this source, so every drop it has is the source's, including
    // those before this task first looked.
    let mut seen = 0;
    let warn_limit = LogLimit::default();
    let mut unreported = 0;
    let mut tick = tokio::time::interval(DROPS_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let stopping = tokio::select! {
            _ = shared.shutdown.cancelled() => true,
            _ = tick.tick() => false,
        };
        if let Some(now) = kernel_drops(inode).await {
            if now > seen {
                let new = now - seen;
                shared.counters.udp_dropped.add(new);
                unreported += new;
                if warn_limit.check().is_some() {
                    warn!(source = %shared.name, dropped = unreported, "UDP datagrams dropped by the kernel: the socket's receive buffer was full (the pipeline is slower than the senders)");
                    unreported = 0;
                }
            }
            seen = seen.max(now);
        }
        if stopping {
            break;
        }
    }
}

/// The `drops` count of the UDP socket with `inode`, from `/proc/net/udp` or `/proc/net/udp6`.
async fn kernel_drops(inode: u64) -> Option<u64> {
    for table in ["/proc/net/udp", "/proc/net/udp6"] {
        if let Ok(text) = tokio::fs::read_to_string(table).await {
            if let Some(d) = drops_in(&text, inode) {
                return Some(d);
            }
        }
    }
    None
}

/// Finds the socket's row in a `/proc/net/udp` table (columns: `sl local_address rem_address st
/// tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode ref pointer drops`).
fn drops_in(table: &str, inode: u64) -> Option<u64> {
    table.lines().skip(1).find_map(|line| {
        let cols: Vec<&str> = line.split_whitespace().collect();
        let ino: u64 = cols.get(9)?.parse().ok()?;
        if ino != inode {
            return None;
        }
        cols.get(12)?.parse().ok()
    })
}

/// A bound Unix datagram socket, and its path (removed at the stop).
pub struct UnixListener {
    pub path: PathBuf,
    sock: UnixDatagram,
}

impl UnixListener {
    /// Binds `path`: replaces a socket left there by a previous run, refuses to replace
    /// anything else, creates the directory, and lets every local user write (as `/dev/log`).
    pub fn bind(path: &Path) -> Result<UnixListener, SyslogError> {
        let err = |message: String| SyslogError::Unix {
            path: path.to_path_buf(),
            message,
        };
        match std::fs::symlink_metadata(path) {
            Ok(m) if m.file_type().is_socket() => std::fs::remove_file(path)
                .map_err(|e| err(format!("cannot remove the old socket: {e}")))?,
            Ok(_) => return Err(err("exists and is not a socket; not replacing it".into())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(err(e.to_string())),
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| err(format!("cannot create the directory: {e}")))?;
        }
        let sock = UnixDatagram::bind(path).map_err(|e| err(format!("cannot bind: {e}")))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))
            .map_err(|e| err(format!("cannot make it writable: {e}")))?;
        Ok(UnixListener {
            path: path.to_path_buf(),
            sock,
        })
    }
}

pub async fn unix_loop(listener: UnixListener, shared: Arc<Shared>) {
    let UnixListener { path, sock } = listener;
    let mut sink = Sink::new(shared.clone(), Transport::Unix);
    let mut buf = receive_buffer(&shared);
    let max = shared.max_message_size;
    loop {
        let first = tokio::select! {
            _ = shared.shutdown.cancelled() => break,
            r = sock.recv(&mut buf) => r,
        };
        let now = SystemTime::now();
        let mut next = first;
        loop {
            match next {
                Ok(n) => {
                    sink.read_bytes(n);
                    let (bytes, cut) = datagram(&buf, n, max);
                    sink.push(bytes, Origin { peer: None, cut }, now);
                }
                Err(e) => debug!(source = %shared.name, error = %e, "Unix socket receive failed"),
            }
            if sink.full() {
                break;
            }
            next = match sock.try_recv(&mut buf) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                r => r,
            };
        }
        if !sink.flush().await {
            break;
        }
    }
    drop(sock);
    if let Err(e) = std::fs::remove_file(&path) {
        debug!(source = %shared.name, path = %path.display(), error = %e, "cannot remove the socket");
    }
    sink.flush_final().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_drop_count_is_read_from_the_sockets_row() {
        let table = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  123: 0100007F:1586 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 4242 2 0000000000000000 0
  456: 0100007F:1587 00000000:0000 07 00000000:00034000 00:00000000 00000000     0        0 777 2 0000000000000000 31
";
        assert_eq!(drops_in(table, 777), Some(31));
        assert_eq!(drops_in(table, 4242), Some(0));
        assert_eq!(drops_in(table, 1), None);
    }

    #[test]
    fn a_datagram_longer_than_the_limit_is_cut() {
        let buf = b"0123456789";
        assert_eq!(datagram(buf, 5, 8), (&b"01234"[..], None));
        assert_eq!(
            datagram(buf, 9, 8),
            (&b"01234567"[..], Some(Cut::Oversized))
        );
    }
}
