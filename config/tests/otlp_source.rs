//! The `otlp` source's configuration: defaults, turning a listener off, TLS and auth tables,
//! print-config round trip with nothing secret in it, and the checks types cannot express.

use sonde_config::*;
use sonde_core::Signal;

fn load(text: &str) -> Result<Config, ConfigErrors> {
    load_str_with_env(text, "test.toml", |_| None)
}

fn otlp(c: &Config) -> &OtlpSourceConfig {
    match &c.sources["otlp"] {
        SourceConfig::Otlp(o) => o,
        other => panic!("not otlp: {other:?}"),
    }
}

const EXPORTER: &str = "\n[exporters.out]\ntype = \"stdout\"\n";

#[test]
fn defaults_listen_on_loopback_4317_and_4318() {
    let c = load(&format!("[sources.otlp]\ntype = \"otlp\"\n{EXPORTER}")).unwrap();
    let o = otlp(&c);
    assert_eq!(o.grpc, Listen::At("127.0.0.1:4317".parse().unwrap()));
    assert_eq!(o.http, Listen::At("127.0.0.1:4318".parse().unwrap()));
    assert_eq!(o.max_request_size, ByteSize::mib(16));
    assert_eq!(o.max_in_flight, 32);
    assert_eq!(o.max_connections, 256);
    assert_eq!(o.block_timeout, Duration::from_secs(2));
    assert!(o.tls.is_none() && o.auth.is_none());
    assert_eq!(c.sources["otlp"].signals(), &Signal::ALL);
}

#[test]
fn a_listener_can_be_turned_off_and_tls_and_auth_are_tables() {
    let c = load(&format!(
        r#"[sources.otlp]
type = "otlp"
grpc = "off"
http = "0.0.0.0:4318"
max_request_size = "4MiB"
tls = {{ cert_file = "/c.pem", key_file = "/k.pem", client_ca_file = "/ca.pem" }}
auth = {{ bearer_token_file = "/run/secrets/token" }}
{EXPORTER}"#
    ))
    .unwrap();
    let o = otlp(&c);
    assert_eq!(o.grpc, Listen::Off);
    assert_eq!(o.http, Listen::At("0.0.0.0:4318".parse().unwrap()));
    assert_eq!(o.max_request_size, ByteSize::mib(4));
    let tls = o.tls.as_ref().unwrap();
    assert_eq!(
        tls.client_ca_file.as_deref(),
        Some(std::path::Path::new("/ca.pem"))
    );
    let printed = c.to_toml();
    assert!(
        printed.contains("bearer_token_file = \"/run/secrets/token\""),
        "{printed}"
    );
    assert!(printed.contains("grpc = \"off\""), "{printed}");
    assert_eq!(
        load(&printed).unwrap(),
        c,
        "print-config output loads back the same"
    );
}

#[test]
fn impossible_settings_are_refused_with_their_key() {
    let e = load(&format!(
        "[sources.otlp]\ntype = \"otlp\"\ngrpc = \"off\"\nhttp = false\n{EXPORTER}"
    ))
    .unwrap_err()
    .to_string();
    assert!(e.contains("both \"off\""), "{e}");
    let e = load(&format!(
        "[sources.otlp]\ntype = \"otlp\"\ngrpc = \"127.0.0.1:5000\"\nhttp = \"127.0.0.1:5000\"\nmax_in_flight = 0\n{EXPORTER}"
    ))
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("`sources.otlp.http`: `http` and `grpc` cannot share"),
        "{e}"
    );
    assert!(
        e.contains("test.toml:5:1: `sources.otlp.max_in_flight`: must be at least 1"),
        "{e}"
    );
    let e = load(&format!(
        "[sources.otlp]\ntype = \"otlp\"\ntls = {{ cert_file = \"/c.pem\" }}\nbogus = 1\n{EXPORTER}"
    ))
    .unwrap_err()
    .to_string();
    assert!(e.contains("missing field `key_file`"), "{e}");
    assert!(e.contains("unknown field `bogus`"), "{e}");
}
