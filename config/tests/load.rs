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
#[track_caller]
fn one_error(text: &str) -> ConfigError {
    let errs = load(text).expect_err("the config should be refused");
    assert_eq!(
        errs.errors.len(),
        1,
        "expected exactly one error, got: {errs}"
    );
    errs.errors[0].clone()
}

/// The key path of every error, in the order shown.
fn paths(errs: &ConfigErrors) -> Vec<&str> {
    errs.errors.iter().map(|e| e.path.as_str()).collect()
}

/// What a test says about an error: each check returns the error, so they chain
/// (`one_error(t).at_path("a.b").at(4, 1).says("…")`).
trait Expect: Sized {
    /// The dotted key path is exactly `path`.
    fn at_path(self, path: &str) -> Self;
    /// It points at `line:column`.
    fn at(self, line: usize, column: usize) -> Self;
    /// It points at `line` (the column left unchecked).
    fn on_line(self, line: usize) -> Self;
    /// The message contains `part`.
    fn says(self, part: &str) -> Self;
}

impl Expect for ConfigError {
    #[track_caller]
    fn at_path(self, path: &str) -> Self {
        assert_eq!(self.path, path, "{self}");
        self
    }
    #[track_caller]
    fn at(self, line: usize, column: usize) -> Self {
        assert_eq!(
            (self.line, self.column),
            (Some(line), Some(column)),
            "{self}"
        );
        self
    }
    #[track_caller]
    fn on_line(self, line: usize) -> Self {
        assert_eq!(self.line, Some(line), "{self}");
        self
    }
    #[track_caller]
    fn says(self, part: &str) -> Self {
        assert!(self.message.contains(part), "{self}");
        self
    }
}

const MINIMAL: &str = r#"
[sources.host]
type = "host_metrics"

[exporters.out]
type = "stdout"
"#;

/// [`MINIMAL`] with `line` added to the `out` exporter.
fn out_with(line: &str) -> String {
    format!("{MINIMAL}{line}\n")
}

/// [`MINIMAL`] with `line` added to the `host` source.
fn host_with(line: &str) -> String {
    format!(
        "\n[sources.host]\ntype = \"host_metrics\"\n{line}\n\n[exporters.out]\ntype = \"stdout\"\n"
    )
}

/// A `host` source and an `otlp` exporter `gw` with `lines` (each ending in a newline).
fn gw_with(lines: &str) -> String {
    format!("\n[sources.host]\ntype = \"host_metrics\"\n\n[exporters.gw]\ntype = \"otlp\"\n{lines}")
}

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
    one_error("[sources.host]\ntype = \"host_metrics\"\ninterval = \"${NOPE}\"\n")
        .at(3, 13)
        .says("NOPE");
}

#[test]
fn unknown_key_is_an_error_at_the_key() {
    one_error(&host_with("intervall = \"5s\""))
        .at_path("sources.host.intervall")
        .at(4, 1)
        .says("unknown field `intervall`");
}

#[test]
fn unknown_key_in_the_shared_exporter_settings_is_found_too() {
    one_error(&out_with("batch = { max_itemz = 5 }"))
        .at_path("exporters.out.batch.max_itemz")
        .at(7, 11);
}

#[test]
fn unknown_top_level_key_is_an_error() {
    one_error(&format!("pipelines = 3\n{MINIMAL}"))
        .at_path("pipelines")
        .at(1, 1);
}

#[test]
fn wrong_type_names_the_key_and_position() {
    one_error(&out_with("batch = { max_items = \"lots\" }"))
        .at_path("exporters.out.batch.max_items")
        .at(7, 11)
        .says("invalid type");
}

#[test]
fn bad_duration_names_the_key_and_position() {
    one_error(&host_with("interval = \"10 parsecs\""))
        .at_path("sources.host.interval")
        .at(4, 1)
        .says("invalid duration `10 parsecs`");
}

#[test]
fn bad_size_names_the_key() {
    one_error(&out_with("buffer = { max_size = \"lots\" }"))
        .at_path("exporters.out.buffer.max_size")
        .says("invalid size `lots`");
}

#[test]
fn input_naming_no_source_is_an_error_at_the_entry() {
    one_error(&out_with("inputs = [\"host\", \"hots\"]"))
        .at_path("exporters.out.inputs[1]")
        .at(7, 19)
        .says("`hots` names no source");
}

#[test]
fn exporter_that_receives_no_signal_it_can_take_is_an_error() {
    one_error(&out_with("signals = [\"traces\", \"logs\"]"))
        .at_path("exporters.out")
        .at(5, 12)
        .says("receives no signal");
}

#[test]
fn unknown_component_type_lists_the_known_ones() {
    one_error("[sources.host]\ntype = \"hostmetrics\"\n[exporters.out]\ntype = \"stdout\"\n")
        .at_path("sources.host.type")
        .at(2, 1)
        .says("`host_metrics`");
}

#[test]
fn invalid_toml_reports_the_position() {
    let e = one_error("[sources.host\ntype = 1\n").on_line(1);
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
    assert_eq!(
        paths(&errs),
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
    assert_eq!(
        paths(&errs),
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

/// An `otlp` exporter whose header carries `${TOKEN}`.
fn otlp() -> String {
    gw_with(
        r#"endpoint = "http://gw:4317"
headers = { authorization = "Bearer ${TOKEN}" }
retry = { max_elapsed = "unlimited" }
"#,
    )
}

fn env_with_token(name: &str) -> Option<String> {
    (name == "TOKEN").then(|| "hunter2-token".to_string())
}

#[test]
fn otlp_exporter_gets_its_defaults() {
    let c = load_str_with_env(&otlp(), "t.toml", env_with_token).unwrap();
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
    let c = load_str_with_env(&otlp(), "t.toml", env_with_token).unwrap();
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
    one_error(&gw_with(
        "endpoint = \"http://gw:4317\"\nendpoints = [\"http://a:4317\"]\n",
    ))
    .at_path("exporters.gw.endpoints")
    .at(8, 1);
    one_error(&gw_with(""))
        .at_path("exporters.gw")
        .says("endpoint");
    one_error(&gw_with(
        "endpoint = \"gw:4317\"\ntls = { cert_file = \"/c.pem\" }\n",
    ))
    .at_path("exporters.gw.tls");
    one_error(&gw_with(
        "endpoint = \"gw:4317\"\ncircuit_breaker = { open_duration = \"1m\" }\n",
    ))
    .at_path("exporters.gw.circuit_breaker.max_open_duration")
    .says("open_duration");
}

#[test]
fn a_disk_buffer_defaults_to_two_gib_and_batch_fsync() {
    let c = load(&out_with("buffer = { type = \"disk\" }")).unwrap();
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
    let c = load(&out_with(
        r#"buffer = { type = "disk", max_size = "100MiB", when_full = "drop_oldest", fsync = "never", compression = "zstd" }"#,
    ))
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
    one_error(&out_with("buffer = { when_full = \"drop_oldest\" }"))
        .at_path("exporters.out.buffer.when_full")
        .says("disk")
        .on_line(7);
}

#[test]
fn an_unknown_buffer_key_is_named() {
    one_error(&out_with(
        "buffer = { type = \"disk\", fsink = \"always\" }",
    ))
    .at_path("exporters.out.buffer.fsink")
    .says("unknown field");
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

#[test]
fn a_processor_named_like_a_source_is_refused() {
    // The graph is keyed by name: the source's batches would pass for the processor's output.
    let text = r#"
[sources.apps]
type = "otlp"

[sources.other]
type = "otlp"

[processors.apps]
type = "filter"
inputs = ["other"]
spans = ['name == "x"']

[exporters.out]
type = "stdout"
inputs = ["apps"]
"#;
    one_error(text)
        .at_path("processors.apps")
        .says("`apps` is also the name of a source");
}

#[test]
fn a_bad_regex_format_is_reported_at_its_key() {
    let text = r#"
[sources.pods]
type = "file"
include = ["/var/log/pods/*/*/*.log"]
format = "regex"
regex = { pattern = '^(?P<time>\S+ (?P<message>.*)$', time_format = "%Y-%m-%d %Q" }

[exporters.out]
type = "stdout"
"#;
    let errs = load(text).expect_err("refused");
    assert_eq!(
        paths(&errs),
        [
            "sources.pods.regex.pattern",
            "sources.pods.regex.time_format"
        ],
        "{errs}"
    );
    errs.errors[0]
        .clone()
        .on_line(6)
        .says("invalid regular expression");
    errs.errors[1].clone().on_line(6).says("strftime");
    // A regex without a named capture extracts nothing.
    one_error(&text.replace(
        r#"'^(?P<time>\S+ (?P<message>.*)$', time_format = "%Y-%m-%d %Q""#,
        r#"'^\S+'"#,
    ))
    .at_path("sources.pods.regex.pattern")
    .says("named capture");
}

#[test]
fn container_formats_take_kubernetes_metadata_by_default() {
    let cfg = |extra: &str| {
        let text = format!(
            "[sources.p]\ntype = \"file\"\ninclude = [\"/var/log/pods/*/*/*.log\"]\n{extra}\n\n[exporters.out]\ntype = \"stdout\"\n"
        );
        let c = load(&text).unwrap();
        match &c.sources["p"] {
            SourceConfig::File(f) => f.k8s_metadata(),
            _ => unreachable!(),
        }
    };
    assert!(cfg("format = \"cri\""));
    assert!(cfg("format = \"docker\""));
    assert!(!cfg("format = \"text\""));
    assert!(!cfg("format = \"cri\"\nk8s_metadata = false"));
    assert!(cfg("format = \"logfmt\"\nk8s_metadata = true"));
    one_error(
        "[sources.p]\ntype = \"file\"\ninclude = [\"/l/*.log\"]\nformat = \"cri\"\nmultiline = { start = '^x' }\n\n[exporters.out]\ntype = \"stdout\"\n",
    )
    .at_path("sources.p.multiline")
    .on_line(5);
}
