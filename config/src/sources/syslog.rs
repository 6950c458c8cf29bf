//! `type = "syslog"` source settings: the UDP, TCP and Unix-datagram listeners, TLS on the TCP
//! listener (RFC 5425), and the bounds on messages and connections. Also the checks these types
//! cannot express (no listener at all, TLS without TCP).
//!
//! Plain data and checks only; the receiver lives in `agent/src/sources/syslog/`.

use crate::listen::Listen;
use crate::problem::Problems;
use crate::sources::otlp::ServerTlsConfig;
use crate::units::ByteSize;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The smallest `max_message_size`: RFC 5424 §6.1 says every receiver must take 480 octets.
pub const MIN_SYSLOG_MESSAGE_SIZE: u64 = 480;
/// The largest `max_message_size`: one message is one log record, not a file.
pub const MAX_SYSLOG_MESSAGE_SIZE: u64 = 16 * 1024 * 1024;

/// `type = "syslog"`: receives syslog messages (RFC 5424 and RFC 3164/BSD) over UDP, TCP (RFC
/// 6587 framing, optionally TLS as RFC 5425) and a Unix datagram socket, and emits one OTLP log
/// record per message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SyslogSourceConfig {
    /// UDP listening address (one message per datagram), or `"off"`.
    pub udp: Listen,
    /// TCP listening address, or `"off"`. Framing (octet counting or newline) is detected per
    /// connection from its first byte.
    pub tcp: Listen,
    /// Path of a Unix datagram socket to create (as `/dev/log`); absent means none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unix: Option<PathBuf>,
    /// TLS on the TCP listener (RFC 5425); absent means plaintext. The same table as the `otlp`
    /// source's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<ServerTlsConfig>,
    /// Largest message kept whole; a longer one is truncated to this size and counted.
    pub max_message_size: ByteSize,
    /// Open TCP connections at once; connections over the limit are closed at once and counted.
    pub max_connections: usize,
}

impl Default for SyslogSourceConfig {
    fn default() -> Self {
        Self {
            udp: Listen::Off,
            tcp: Listen::Off,
            unix: None,
            tls: None,
            max_message_size: ByteSize::kib(64),
            max_connections: 256,
        }
    }
}

impl SyslogSourceConfig {
    /// What is wrong with these settings, each with its key below the source.
    pub fn problems(&self) -> Problems {
        let mut out = Problems::default();
        if self.udp == Listen::Off && self.tcp == Listen::Off && self.unix.is_none() {
            out.at(
                "",
                "no listener: set at least one of `udp`, `tcp` (e.g. \"127.0.0.1:5514\") or \
                 `unix` (a socket path)",
            );
        }
        if self.tls.is_some() && self.tcp == Listen::Off {
            out.at(
                "tls",
                "TLS applies to the TCP listener, but `tcp` is \"off\"",
            );
        }
        if let Some(p) = &self.unix {
            if p.as_os_str().is_empty() {
                out.at(
                    "unix",
                    "must be a socket path, e.g. \"/run/sonde/syslog.sock\"",
                );
            }
        }
        let size = self.max_message_size.get();
        if !(MIN_SYSLOG_MESSAGE_SIZE..=MAX_SYSLOG_MESSAGE_SIZE).contains(&size) {
            out.at(
                "max_message_size",
                format!(
                    "must be between {MIN_SYSLOG_MESSAGE_SIZE} bytes (RFC 5424's minimum) and 16MiB"
                ),
            );
        }
        if self.max_connections == 0 {
            out.at("max_connections", "must be at least 1");
        }
        out
    }
}
