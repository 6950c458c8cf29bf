//! Loading real configuration text: defaults, interpolation, and one test per kind of error, each
//! asserting that the message names the key path and the line:column.

use sonde_config::*;

fn env(name: &str) -> Option<String> {
    match name {
        "INTERVAL" => Some("2s".into()),
        "FORMAT" => Some("json".into()),
        _ => None,
    }
}

fn load(text: &str) -> Result<Config, ConfigErrors> {
    load_str_with_env(text, "test.toml", env)
}

/// The single error of a failing load.
fn one_error(text: &str) -> ConfigError {
    let errs = load(text).expect_err("the config should be refused");
    assert_eq!(
        errs.errors.len(),
        1,
        "expected exactly one error, got: {errs}"
    );
    errs.errors[0].clone()
}

const MINIMAL: &str = r#"
[sources.host]
type = "host_metrics"

[exporters.out]
type = "stdout"
"#;

#[test]
fn minimal_config_gets_every_default() {
    let c = load(MINIMAL).unwrap();
    let SourceConfig::HostMetrics(h) = &c.sources["host"] else {
        panic!("not host metrics")
    };
    assert_eq!(h.interval, Duration::from_secs(10));
    assert_eq!(h.conventions, Conventions::Semconv);
    let out = &c.exporters["out"];
    assert_eq!(out.common.buffer.max_size, ByteSize::mib(64));
    assert_eq!(out.common.buffer.when_full, WhenFull::Block);
    assert_eq!(out.common.batch.max_items, 8192);
    assert_eq!(
        out.kind,
        ExporterKind::Stdout(StdoutConfig {
            format: StdoutFormat::Text
        })
    );
    assert_eq!(c.agent.shutdown_timeout, Duration::from_secs(10));
}

#[test]
fn interpolation_fills_values_from_the_environment() {
    let c = load(
        r#"
[sources.host]
type = "host_metrics"
interval = "${INTERVAL}"
[exporters.out]
type = "stdout"
format = "${FORMAT:-text}"
batch = { max_age = "${UNSET_AGE:-1s}" }
"#,
    )
    .unwrap();
    let SourceConfig::HostMetrics(h) = &c.sources["host"] else {
        panic!("not host metrics")
    };
    assert_eq!(h.interval, Duration::from_secs(2));
    let out = &c.exporters["out"];
    assert_eq!(
        out.kind,
        ExporterKind::Stdout(StdoutConfig {
            format: StdoutFormat::Json
        })
    );
    assert_eq!(out.common.batch.max_age, Duration::from_secs(1));
}

#[test]
fn unset_variable_names_the_variable_and_position() {
    let e = one_error("[sources.host]\ntype = \"host_metrics\"\ninterval = \"${NOPE}\"\n");
    assert_eq!((e.line, e.column), (Some(3), Some(13)));
    assert!(e.message.contains("NOPE"), "{e}");
}

#[test]
fn unknown_key_is_an_error_at_the_key() {
    let e = one_error(
        r#"
[sources.host]
type = "host_metrics"
intervall = "5s"

[exporters.out]
type = "stdout"
"#,
    );
    assert_eq!(e.path, "sources.host.intervall");
    assert_eq!((e.line, e.column), (Some(4), Some(1)));
    assert!(e.message.contains("unknown field `intervall`"), "{e}");
}

#[test]
fn unknown_key_in_the_shared_exporter_settings_is_found_too() {
    let e = one_error(&format!("{MINIMAL}batch = {{ max_itemz = 5 }}\n"));
    assert_eq!(e.path, "exporters.out.batch.max_itemz");
    assert_eq!((e.line, e.column), (Some(7), Some(11)));
}

#[test]
fn unknown_top_level_key_is_an_error() {
    let e = one_error(&format!("pipelines = 3\n{MINIMAL}"));
    assert_eq!(e.path, "pipelines");
    assert_eq!((e.line, e.column), (Some(1), Some(1)));
}

#[test]
fn wrong_type_names_the_key_and_position() {
    let e = one_error(
        r#"
[sources.host]
type = "host_metrics"

[exporters.out]
type = "stdout"
batch = { max_items = "lots" }
"#,
    );
    assert_eq!(e.path, "exporters.out.batch.max_items");
    assert_eq!((e.line, e.column), (Some(7), Some(11)));
    assert!(e.message.contains("invalid type"), "{e}");
}

#[test]
fn bad_duration_names_the_key_and_position() {
    let e = one_error(
        r#"
[sources.host]
type = "host_metrics"
interval = "10 parsecs"

[exporters.out]
type = "stdout"
"#,
    );
    assert_eq!(e.path, "sources.host.interval");
    assert_eq!((e.line, e.column), (Some(4), Some(1)));
    assert!(e.message.contains("invalid duration `10 parsecs`"), "{e}");
}

#[test]
fn bad_size_names_the_key() {
    let e = one_error(&format!("{MINIMAL}buffer = {{ max_size = \"lots\" }}\n"));
    assert_eq!(e.path, "exporters.out.buffer.max_size");
    assert!(e.message.contains("invalid size `lots`"), "{e}");
}

#[test]
fn input_naming_no_source_is_an_error_at_the_entry() {
    let e = one_error(
        r#"
[sources.host]
type = "host_metrics"

[exporters.out]
type = "stdout"
inputs = ["host", "hots"]
"#,
    );
    assert_eq!(e.path, "exporters.out.inputs[1]");
    assert_eq!((e.line, e.column), (Some(7), Some(19)));
    assert!(e.message.contains("`hots` names no source"), "{e}");
}

#[test]
fn exporter_that_receives_no_signal_it_can_take_is_an_error() {
    let e = one_error(
        r#"
[sources.host]
type = "host_metrics"

[exporters.out]
type = "stdout"
signals = ["traces", "logs"]
"#,
    );
    assert_eq!(e.path, "exporters.out");
    assert_eq!((e.line, e.column), (Some(5), Some(12)));
    assert!(e.message.contains("receives no signal"), "{e}");
}

#[test]
fn unknown_component_type_lists_the_known_ones() {
    let e =
        one_error("[sources.host]\ntype = \"hostmetrics\"\n[exporters.out]\ntype = \"stdout\"\n");
    assert_eq!(e.path, "sources.host.type");
    assert_eq!((e.line, e.column), (Some(2), Some(1)));
    assert!(e.message.contains("`host_metrics`"), "{e}");
}

#[test]
fn invalid_toml_reports_the_position() {
    let e = one_error("[sources.host\ntype = 1\n");
    assert_eq!(e.line, Some(1));
    assert!(e.message.starts_with("invalid TOML"), "{e}");
}

#[test]
fn every_problem_is_listed_not_just_the_first() {
    let errs = load(
        r#"
[sources.a]
type = "host_metrics"
interval = "soon"

[sources.b]
type = "host_metrics"
collectors = ["cpu", "gpu"]

[exporters.out]
type = "stdout"
format = "yaml"
inputs = ["c"]
"#,
    )
    .unwrap_err();
    let paths: Vec<&str> = errs.errors.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "sources.a.interval",
            "sources.b.collectors[1]",
            "exporters.out.format"
        ],
        "{errs}"
    );
    // The display lists each with file, line and column.
    let shown = errs.to_string();
    assert!(
        shown.contains("test.toml:4:1: `sources.a.interval`"),
        "{shown}"
    );
}

#[test]
fn print_config_round_trips_and_fills_defaults() {
    let c = load(MINIMAL).unwrap();
    let text = c.to_toml();
    assert!(text.contains("max_items = 8192"), "{text}");
    assert!(text.contains("interval = \"10s\""), "{text}");
    let again = load(&text).unwrap();
    assert_eq!(again, c);
}

#[test]
fn several_problems_in_one_component_are_all_reported() {
    let errs = load(
        r#"
[sources.host]
type = "host_metrics"
colectors = ["cpu"]
interval = "soon"
conventions = "otel"

[exporters.out]
type = "stdout"
inputs = ["host"]
"#,
    )
    .unwrap_err();
    let paths: Vec<&str> = errs.errors.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "sources.host.colectors",
            "sources.host.interval",
            "sources.host.conventions"
        ],
        "{errs}"
    );
    // `inputs` names a source that exists, even though that source had errors.
    assert!(!errs.to_string().contains("names no source"), "{errs}");
}

const OTLP: &str = r#"
[sources.host]
type = "host_metrics"

[exporters.gw]
type = "otlp"
endpoint = "http://gw:4317"
headers = { authorization = "Bearer ${TOKEN}" }
retry = { max_elapsed = "unlimited" }
"#;

fn env_with_token(name: &str) -> Option<String> {
    (name == "TOKEN").then(|| "hunter2-token".to_string())
}

#[test]
fn otlp_exporter_gets_its_defaults() {
    let c = load_str_with_env(OTLP, "t.toml", env_with_token).unwrap();
    let e = &c.exporters["gw"];
    let ExporterKind::Otlp(o) = &e.kind else {
        panic!("not otlp: {:?}", e.kind)
    };
    assert_eq!(o.protocol, OtlpProtocol::Grpc);
    assert_eq!(o.compression, OtlpCompression::Gzip);
    assert_eq!(o.balance, OtlpBalance::RoundRobin);
    assert_eq!(o.circuit_breaker.failure_threshold, 5);
    assert_eq!(o.circuit_breaker.open_duration, Duration::from_secs(1));
    assert_eq!(o.circuit_breaker.max_open_duration, Duration::from_secs(30));
    assert_eq!(o.headers["authorization"].expose(), "Bearer hunter2-token");
    assert_eq!(e.kind.default_concurrency(), 4);
    assert_eq!(
        e.common.retry.max_elapsed,
        Duration::from_secs(0),
        "unlimited"
    );
}

#[test]
fn print_config_redacts_otlp_header_secrets() {
    let c = load_str_with_env(OTLP, "t.toml", env_with_token).unwrap();
    let printed = c.to_toml();
    assert!(!printed.contains("hunter2"), "{printed}");
    assert!(
        printed.contains("authorization = \"<redacted>\""),
        "{printed}"
    );
    assert!(
        !format!("{c:?}").contains("hunter2"),
        "Debug leaks the secret"
    );
    // And what it prints loads again.
    load(&printed).unwrap();
}

#[test]
fn otlp_endpoint_problems_name_the_key() {
    let e = one_error(
        r#"
[sources.host]
type = "host_metrics"

[exporters.gw]
type = "otlp"
endpoint = "http://gw:4317"
endpoints = ["http://a:4317"]
"#,
    );
    assert_eq!(e.path, "exporters.gw.endpoints");
    assert_eq!((e.line, e.column), (Some(8), Some(1)));
    let e = one_error(
        r#"
[sources.host]
type = "host_metrics"

[exporters.gw]
type = "otlp"
"#,
    );
    assert_eq!(e.path, "exporters.gw");
    assert!(e.message.contains("endpoint"), "{}", e.message);
    let e = one_error(
        r#"
[sources.host]
type = "host_metrics"

[exporters.gw]
type = "otlp"
endpoint = "gw:4317"
tls = { cert_file = "/c.pem" }
"#,
    );
    assert_eq!(e.path, "exporters.gw.tls");
    let e = one_error(
        r#"
[sources.host]
type = "host_metrics"

[exporters.gw]
type = "otlp"
endpoint = "gw:4317"
circuit_breaker = { open_duration = "1m" }
"#,
    );
    assert_eq!(e.path, "exporters.gw.circuit_breaker.max_open_duration");
    assert!(e.message.contains("open_duration"), "{}", e.message);
}

#[test]
fn a_disk_buffer_defaults_to_two_gib_and_batch_fsync() {
    let c = load(
        r#"
[sources.host]
type = "host_metrics"

[exporters.out]
type = "stdout"
buffer = { type = "disk" }
"#,
    )
    .unwrap();
    let b = &c.exporters["out"].common.buffer;
    assert_eq!(b.kind, BufferKind::Disk);
    assert_eq!(b.max_size, ByteSize::gib(2));
    assert_eq!(b.fsync, Fsync::Batch);
    assert_eq!(b.when_full, WhenFull::Block);
    assert_eq!(b.compression, SpoolCompression::None);
    // print-config shows the size that applies, and its output loads back to the same config.
    let text = c.to_toml();
    assert!(text.contains("max_size = \"2GiB\""), "{text}");
    assert_eq!(load(&text).unwrap(), c);
}

#[test]
fn an_explicit_disk_buffer_size_and_policy_are_kept() {
    let c = load(
        r#"
[sources.host]
type = "host_metrics"

[exporters.out]
type = "stdout"
buffer = { type = "disk", max_size = "100MiB", when_full = "drop_oldest", fsync = "never", compression = "zstd" }
"#,
    )
    .unwrap();
    let b = &c.exporters["out"].common.buffer;
    assert_eq!(b.compression, SpoolCompression::Zstd);
    assert_eq!(b.max_size, ByteSize::mib(100));
    assert_eq!(b.when_full, WhenFull::DropOldest);
    assert_eq!(b.fsync, Fsync::Never);
    assert_eq!(
        load(MINIMAL).unwrap().exporters["out"]
            .common
            .buffer
            .max_size,
        ByteSize::mib(64)
    );
}

#[test]
fn drop_oldest_is_refused_for_a_memory_buffer() {
    let e = one_error(
        r#"
[sources.host]
type = "host_metrics"

[exporters.out]
type = "stdout"
buffer = { when_full = "drop_oldest" }
"#,
    );
    assert_eq!(e.path, "exporters.out.buffer.when_full");
    assert!(e.message.contains("disk"), "{}", e.message);
    assert_eq!(e.line, Some(7));
}

#[test]
fn an_unknown_buffer_key_is_named() {
    let e = one_error(
        r#"
[sources.host]
type = "host_metrics"

[exporters.out]
type = "stdout"
buffer = { type = "disk", fsink = "always" }
"#,
    );
    assert_eq!(e.path, "exporters.out.buffer.fsink");
    assert!(e.message.contains("unknown field"), "{}", e.message);
}

#[test]
fn file_level_problems_and_wrong_tables_read_plainly() {
    // A table given as a number: said in TOML's words, not as the Rust type behind it.
    let errs = load("agent = 5\n").expect_err("refused");
    let shown = errs.to_string();
    assert!(
        shown.contains("test.toml:1:1: `agent`: invalid type: integer `5`, expected a table"),
        "{shown}"
    );
    assert!(!shown.contains("struct"), "{shown}");
    // A problem without a place (no sources at all) is `FILE: message`, not `FILE:message`.
    assert!(
        shown.contains("  test.toml: no `sources` configured"),
        "{shown}"
    );
}
