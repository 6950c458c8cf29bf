//! The `syslog` source's configuration: defaults, the listener tables, and the checks types
//! cannot express.

use sonde_config::*;
use sonde_core::Signal;

fn load(text: &str) -> Result<Config, ConfigErrors> {
    load_str_with_env(text, "test.toml", |_| None)
}

const EXPORTER: &str = "\n[exporters.out]\ntype = \"stdout\"\n";

fn syslog(c: &Config) -> &SyslogSourceConfig {
    match &c.sources["s"] {
        SourceConfig::Syslog(s) => s,
        other => panic!("not syslog: {other:?}"),
    }
}

#[test]
fn every_listener_and_tls_can_be_set() {
    let c = load(&format!(
        r#"[sources.s]
type = "syslog"
udp = "127.0.0.1:5514"
tcp = "127.0.0.1:5514"
unix = "/run/sonde/syslog.sock"
tls = {{ cert_file = "/c.pem", key_file = "/k.pem" }}
max_message_size = "8KiB"
max_connections = 10
{EXPORTER}"#
    ))
    .unwrap();
    let s = syslog(&c);
    assert_eq!(s.udp, Listen::At("127.0.0.1:5514".parse().unwrap()));
    assert_eq!(s.tcp, Listen::At("127.0.0.1:5514".parse().unwrap()));
    assert_eq!(
        s.unix.as_deref(),
        Some(std::path::Path::new("/run/sonde/syslog.sock"))
    );
    assert_eq!(
        s.tls.as_ref().unwrap().cert_file,
        std::path::Path::new("/c.pem")
    );
    assert_eq!(s.max_message_size, ByteSize::kib(8));
    assert_eq!(s.max_connections, 10);
    assert_eq!(c.sources["s"].signals(), &[Signal::Logs]);
    // The defaults.
    let c = load(&format!(
        "[sources.s]\ntype = \"syslog\"\nudp = \"127.0.0.1:1\"\n{EXPORTER}"
    ))
    .unwrap();
    let s = syslog(&c);
    assert_eq!((s.tcp, s.unix.is_none()), (Listen::Off, true));
    assert_eq!(s.max_message_size, ByteSize::kib(64));
    assert_eq!(s.max_connections, 256);
}

#[test]
fn a_source_without_any_listener_is_refused() {
    let e = load(&format!("[sources.s]\ntype = \"syslog\"\n{EXPORTER}")).unwrap_err();
    assert!(e.to_string().contains("no listener"), "{e}");
}

#[test]
fn tls_without_tcp_and_bad_limits_are_refused_with_their_keys() {
    let e = load(&format!(
        r#"[sources.s]
type = "syslog"
udp = "127.0.0.1:5514"
tls = {{ cert_file = "/c.pem", key_file = "/k.pem" }}
max_message_size = 100
max_connections = 0
{EXPORTER}"#
    ))
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("sources.s.tls") && e.contains("`tcp` is \"off\""),
        "{e}"
    );
    assert!(
        e.contains("sources.s.max_message_size") && e.contains("480"),
        "{e}"
    );
    assert!(e.contains("sources.s.max_connections"), "{e}");
}
