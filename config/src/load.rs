//! Loading: text → interpolated text → TOML → typed [`Config`], collecting every problem with its
//! key path and line:column.
//!
//! Each component is deserialized on its own, so one bad source does not hide the problems of the
//! next; positions are found by walking the key path through a span-keeping parse of the same text.

use crate::error::{line_col, ConfigError, ConfigErrors};
use crate::interpolate::interpolate;
use crate::schema::*;
use crate::units::ByteSize;
use serde::de::DeserializeOwned;
use serde::Serialize;
use sonde_core::Signal;
use std::cell::OnceCell;
use std::collections::BTreeSet;
use std::path::Path;

/// The keys of [`ExporterCommon`]; every other key of an exporter belongs to its type.
const EXPORTER_COMMON_KEYS: &[&str] = &[
    "inputs",
    "signals",
    "buffer",
    "batch",
    "timeout",
    "retry",
    "concurrency",
];

/// One step of a key path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    Key(String),
    Index(usize),
}

fn path_string(path: &[Seg]) -> String {
    let mut s = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(k);
            }
            Seg::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

fn key(k: &str) -> Seg {
    Seg::Key(k.to_string())
}

/// Reads and loads a configuration file, interpolating `${VAR}` from the process environment.
pub fn load_file(path: &Path) -> Result<Config, ConfigErrors> {
    let origin = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ConfigErrors {
        origin: origin.clone(),
        errors: vec![ConfigError::new("", format!("cannot read the file: {e}"))],
    })?;
    load_str(&text, &origin)
}

/// Loads configuration text, interpolating `${VAR}` from the process environment.
pub fn load_str(text: &str, origin: &str) -> Result<Config, ConfigErrors> {
    load_str_with_env(text, origin, |name| std::env::var(name).ok())
}

/// Loads configuration text with a custom variable lookup (for tests).
pub fn load_str_with_env(
    text: &str,
    origin: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<Config, ConfigErrors> {
    let fail = |errors: Vec<ConfigError>| ConfigErrors {
        origin: origin.to_string(),
        errors,
    };
    let text = interpolate(text, lookup).map_err(fail)?;
    let table: toml::Table = toml::from_str(&text).map_err(|e| {
        let pos = e.span().map(|s| line_col(&text, s.start)).unwrap_or((1, 1));
        fail(vec![ConfigError::at(
            pos,
            "",
            format!("invalid TOML: {}", e.message().trim()),
        )])
    })?;
    let mut loader = Loader {
        text: &text,
        doc: OnceCell::new(),
        errors: Vec::new(),
    };
    let config = loader.config(table);
    let mut errors = loader.errors;
    if errors.is_empty() {
        if let Some(config) = config {
            return Ok(config);
        }
    }
    errors.sort_by_key(|e| (e.line.unwrap_or(usize::MAX), e.column.unwrap_or(usize::MAX)));
    Err(fail(errors))
}

struct Loader<'a> {
    text: &'a str,
    /// The text parsed again, keeping positions: only an error needs it, so it is parsed on the
    /// first error (a valid file, the common case, is parsed once).
    doc: OnceCell<Option<toml_edit::Document<String>>>,
    errors: Vec<ConfigError>,
}

impl Loader<'_> {
    /// Records a problem at `path`, locating it in the file.
    fn error(&mut self, path: &[Seg], message: impl Into<String>) {
        let pos = self.position(path);
        self.errors.push(ConfigError {
            path: path_string(path),
            line: pos.map(|p| p.0),
            column: pos.map(|p| p.1),
            message: message.into(),
        });
    }

    /// The line:column of the key (or, for an array element, the value) at `path`; falls back to
    /// the nearest ancestor that exists in the file.
    fn position(&self, path: &[Seg]) -> Option<(usize, usize)> {
        use toml_edit::{Item, Value};
        enum Node<'d> {
            Item(&'d Item),
            Value(&'d Value),
        }
        let mut best = None;
        let doc = self
            .doc
            .get_or_init(|| toml_edit::Document::parse(self.text.to_string()).ok())
            .as_ref()?;
        let mut node = Node::Item(doc.as_item());
        for seg in path {
            let value = match &node {
                Node::Item(Item::Value(v)) => Some(v),
                Node::Value(v) => Some(*v),
                _ => None,
            };
            let (span, next) = match (seg, &node, value) {
                (Seg::Key(k), Node::Item(Item::Table(t)), _) => {
                    let next = t.get(k);
                    (
                        t.key(k)
                            .and_then(|k| k.span())
                            .or_else(|| next.and_then(|i| i.span())),
                        next.map(Node::Item),
                    )
                }
                (Seg::Key(k), _, Some(Value::InlineTable(t))) => {
                    let next = t.get(k);
                    (
                        t.key(k)
                            .and_then(|k| k.span())
                            .or_else(|| next.and_then(|v| v.span())),
                        next.map(Node::Value),
                    )
                }
                (Seg::Index(i), _, Some(Value::Array(a))) => {
                    let next = a.get(*i);
                    (next.and_then(|v| v.span()), next.map(Node::Value))
                }
                _ => (None, None),
            };
            if span.is_some() {
                best = span;
            }
            match next {
                Some(n) => node = n,
                None => break,
            }
        }
        best.map(|s| line_col(self.text, s.start))
    }

    /// Deserializes `value` as `T`, recording a positioned error for every problem: after each
    /// error the offending key is removed (so its default applies) and deserialization is tried
    /// again, so one typo does not hide the next.
    fn typed<T: DeserializeOwned>(&mut self, mut value: toml::Value, at: &[Seg]) -> Option<T> {
        let mut failed = false;
        for _ in 0..64 {
            match serde_path_to_error::deserialize::<_, T>(value.clone()) {
                Ok(v) => return (!failed).then_some(v),
                Err(e) => {
                    failed = true;
                    let mut rel = Vec::new();
                    for seg in e.path().iter() {
                        match seg {
                            serde_path_to_error::Segment::Seq { index } => {
                                rel.push(Seg::Index(*index))
                            }
                            serde_path_to_error::Segment::Map { key } => {
                                rel.push(Seg::Key(key.clone()))
                            }
                            _ => {}
                        }
                    }
                    let message = in_toml_terms(e.inner().message());
                    // serde reports an unknown key at its parent; point at the key itself.
                    if let Some(unknown) = unknown_field(&message) {
                        if rel.last() != Some(&Seg::Key(unknown.clone())) {
                            rel.push(Seg::Key(unknown));
                        }
                    }
                    let mut path = at.to_vec();
                    path.extend(rel.iter().cloned());
                    self.error(&path, message);
                    if !remove_at(&mut value, &rel) {
                        return None;
                    }
                }
            }
        }
        None
    }

    fn config(&mut self, mut root: toml::Table) -> Option<Config> {
        let agent = match root.remove("agent") {
            Some(v) => self.typed::<AgentConfig>(v, &[key("agent")]),
            None => Some(AgentConfig::default()),
        };
        let sources = root.remove("sources");
        let exporters = root.remove("exporters");
        for k in root.keys() {
            self.error(
                &[key(k)],
                format!("unknown key `{k}`, expected one of `agent`, `sources`, `exporters`"),
            );
        }

        let mut config = Config::default();
        let mut ok = agent.is_some();
        let mut declared = BTreeSet::new();
        if let Some(agent) = agent {
            config.agent = agent;
        }
        for (name, value) in self.components(sources, "sources") {
            declared.insert(name.clone());
            match self.source(&name, value) {
                Some(s) => {
                    config.sources.insert(name, s);
                }
                None => ok = false,
            }
        }
        for (name, value) in self.components(exporters, "exporters") {
            match self.exporter(&name, value) {
                Some(e) => {
                    config.exporters.insert(name, e);
                }
                None => ok = false,
            }
        }
        self.validate(&config, &declared);
        ok.then_some(config)
    }

    /// The `<name> = { … }` tables of a `[sources]` or `[exporters]` section.
    fn components(
        &mut self,
        section: Option<toml::Value>,
        what: &str,
    ) -> Vec<(String, toml::Table)> {
        let table = match section {
            None => {
                self.error(
                    &[],
                    format!("no `{what}` configured: add at least one `[{what}.<name>]` table"),
                );
                return vec![];
            }
            Some(toml::Value::Table(t)) => t,
            Some(other) => {
                self.error(
                    &[key(what)],
                    format!("expected a table, found {}", other.type_str()),
                );
                return vec![];
            }
        };
        if table.is_empty() {
            self.error(
                &[key(what)],
                format!("no `{what}` configured: add at least one `[{what}.<name>]` table"),
            );
        }
        let mut out = Vec::new();
        for (name, value) in table {
            let at = [key(what), key(&name)];
            if !valid_name(&name) {
                self.error(
                    &at,
                    format!("invalid name `{name}`: use letters, digits, `_` and `-`"),
                );
                continue;
            }
            match value {
                toml::Value::Table(t) => out.push((name, t)),
                other => self.error(&at, format!("expected a table, found {}", other.type_str())),
            }
        }
        out
    }

    /// Removes and checks the `type` key of a component.
    fn type_of(&mut self, table: &mut toml::Table, at: &[Seg], types: &[&str]) -> Option<String> {
        let expected = types
            .iter()
            .map(|t| format!("`{t}`"))
            .collect::<Vec<_>>()
            .join(", ");
        match table.remove("type") {
            Some(toml::Value::String(t)) if types.contains(&t.as_str()) => Some(t),
            Some(toml::Value::String(t)) => {
                let mut p = at.to_vec();
                p.push(key("type"));
                self.error(
                    &p,
                    format!("unknown type `{t}`, expected one of {expected}"),
                );
                None
            }
            Some(other) => {
                let mut p = at.to_vec();
                p.push(key("type"));
                self.error(&p, format!("expected a string, found {}", other.type_str()));
                None
            }
            None => {
                self.error(at, format!("missing key `type` (one of {expected})"));
                None
            }
        }
    }

    fn source(&mut self, name: &str, mut table: toml::Table) -> Option<SourceConfig> {
        let at = [key("sources"), key(name)];
        let ty = self.type_of(&mut table, &at, SourceConfig::TYPES)?;
        let value = toml::Value::Table(table);
        match ty.as_str() {
            "host_metrics" => self.typed(value, &at).map(SourceConfig::HostMetrics),
            "file" => self.typed(value, &at).map(SourceConfig::File),
            "internal_metrics" => self.typed(value, &at).map(SourceConfig::InternalMetrics),
            "otlp" => self.typed(value, &at).map(SourceConfig::Otlp),
            _ => None,
        }
    }

    fn exporter(&mut self, name: &str, mut table: toml::Table) -> Option<ExporterConfig> {
        let at = [key("exporters"), key(name)];
        let ty = self.type_of(&mut table, &at, ExporterKind::TYPES)?;
        let (common, own): (toml::Table, toml::Table) = table
            .into_iter()
            .partition(|(k, _)| EXPORTER_COMMON_KEYS.contains(&k.as_str()));
        let common = self.typed::<ExporterCommon>(toml::Value::Table(common), &at);
        let own = toml::Value::Table(own);
        let kind = match ty.as_str() {
            "stdout" => self.typed(own, &at).map(ExporterKind::Stdout),
            "otlp" => self.typed(own, &at).map(ExporterKind::Otlp),
            "parquet" => self.typed(own, &at).map(ExporterKind::Parquet),
            _ => None,
        };
        Some(ExporterConfig {
            common: common?,
            kind: kind?,
        })
    }

    /// Checks that need the whole configuration: references between components and signal flow.
    fn validate(&mut self, config: &Config, declared: &BTreeSet<String>) {
        for (name, exporter) in &config.exporters {
            let at = [key("exporters"), key(name)];
            let c = &exporter.common;
            if let Some(inputs) = &c.inputs {
                for (i, input) in inputs.iter().enumerate() {
                    if !declared.contains(input) {
                        let known = declared
                            .iter()
                            .map(|k| format!("`{k}`"))
                            .collect::<Vec<_>>();
                        self.error(
                            &[key("exporters"), key(name), key("inputs"), Seg::Index(i)],
                            format!(
                                "`{input}` names no source (sources: {})",
                                if known.is_empty() {
                                    "none".into()
                                } else {
                                    known.join(", ")
                                }
                            ),
                        );
                    }
                }
                if inputs.is_empty() {
                    self.error(
                        &[key("exporters"), key(name), key("inputs")],
                        "`inputs` is empty: the exporter would receive nothing",
                    );
                }
            }
            let accepts = exporter.kind.accepts();
            if let Some(signals) = &c.signals {
                for (i, s) in signals.iter().enumerate() {
                    if !accepts.contains(s) {
                        self.error(
                            &[key("exporters"), key(name), key("signals"), Seg::Index(i)],
                            format!("a `{}` exporter cannot take {s}", exporter.kind.type_name()),
                        );
                    }
                }
            }
            let produced: BTreeSet<Signal> = config
                .sources
                .iter()
                .filter(|(n, _)| c.inputs.as_ref().is_none_or(|i| i.contains(n)))
                .flat_map(|(_, s)| s.signals().iter().copied())
                .collect();
            let receives = produced
                .iter()
                .filter(|s| accepts.contains(s))
                .any(|s| c.signals.as_ref().is_none_or(|sig| sig.contains(s)));
            // Only judge the signal flow when every source was understood.
            if !config.sources.is_empty() && config.sources.len() == declared.len() && !receives {
                let produced: Vec<&str> = produced.iter().map(|s| s.as_str()).collect();
                self.error(
                    &at,
                    format!(
                        "receives no signal it can take: its inputs produce [{}], it takes [{}]",
                        produced.join(", "),
                        c.signals
                            .as_deref()
                            .unwrap_or(accepts)
                            .iter()
                            .filter(|s| accepts.contains(s))
                            .map(|s| s.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                );
            }
            if let ExporterKind::Otlp(o) = &exporter.kind {
                for (rel, message) in o.problems() {
                    let mut path = at.to_vec();
                    path.extend(rel.into_iter().map(|s| match s {
                        PathSeg::Key(k) => key(k),
                        PathSeg::KeyOwned(k) => Seg::Key(k),
                        PathSeg::Index(i) => Seg::Index(i),
                    }));
                    self.error(&path, message);
                }
            }
            if let ExporterKind::Parquet(p) = &exporter.kind {
                for (rel, message) in p.problems() {
                    let mut path = at.to_vec();
                    path.extend(rel.split('.').map(key));
                    self.error(&path, message);
                }
            }
            if c.batch.max_items == 0 {
                self.error(
                    &[key("exporters"), key(name), key("batch"), key("max_items")],
                    "must be at least 1",
                );
            }
            if c.batch.max_bytes.get() == 0 {
                self.error(
                    &[key("exporters"), key(name), key("batch"), key("max_bytes")],
                    "must be at least 1 byte",
                );
            }
            if c.buffer.max_size < c.batch.max_bytes {
                self.error(
                    &[key("exporters"), key(name), key("buffer"), key("max_size")],
                    format!(
                        "the buffer ({}) must hold at least one full batch (batch.max_bytes = {})",
                        c.buffer.max_size, c.batch.max_bytes
                    ),
                );
            }
            if c.buffer.when_full == WhenFull::DropOldest && c.buffer.kind != BufferKind::Disk {
                self.error(
                    &[key("exporters"), key(name), key("buffer"), key("when_full")],
                    "`drop_oldest` needs `type = \"disk\"`: a memory buffer can `block` or `drop_newest`",
                );
            }
            if c.buffer.kind == BufferKind::Disk && c.buffer.max_size < ByteSize::kib(64) {
                self.error(
                    &[key("exporters"), key(name), key("buffer"), key("max_size")],
                    "a disk buffer needs at least 64KiB",
                );
            }
            if c.concurrency == Some(0) {
                self.error(
                    &[key("exporters"), key(name), key("concurrency")],
                    "must be at least 1",
                );
            }
            if c.timeout.get().is_zero() {
                self.error(
                    &[key("exporters"), key(name), key("timeout")],
                    "must be greater than zero",
                );
            }
            if c.retry.initial_backoff.get().is_zero()
                || c.retry.initial_backoff > c.retry.max_backoff
            {
                self.error(
                    &[
                        key("exporters"),
                        key(name),
                        key("retry"),
                        key("initial_backoff"),
                    ],
                    "must be greater than zero and at most `max_backoff`",
                );
            }
        }
        for (name, source) in &config.sources {
            let interval = match source {
                SourceConfig::HostMetrics(h) => Some(h.interval),
                SourceConfig::InternalMetrics(i) => Some(i.interval),
                SourceConfig::File(f) => {
                    for (k, message) in crate::file::validate(f) {
                        let mut path = vec![key("sources"), key(name)];
                        path.extend(k.iter().map(|s| match s.parse::<usize>() {
                            Ok(i) => Seg::Index(i),
                            Err(_) => key(s),
                        }));
                        self.error(&path, message);
                    }
                    None
                }
                SourceConfig::Otlp(o) => {
                    self.validate_otlp(name, o);
                    None
                }
            };
            if interval.is_some_and(|i| i.get() < std::time::Duration::from_millis(100)) {
                self.error(
                    &[key("sources"), key(name), key("interval")],
                    "must be at least 100ms",
                );
            }
        }
    }
}

impl Loader<'_> {
    /// The checks of an `otlp` source that its types cannot express.
    fn validate_otlp(&mut self, name: &str, o: &OtlpSourceConfig) {
        let at = |k: &str| [key("sources"), key(name), key(k)];
        match (o.grpc, o.http) {
            (Listen::Off, Listen::Off) => self.error(
                &[key("sources"), key(name)],
                "`grpc` and `http` are both \"off\": the source would receive nothing",
            ),
            (Listen::At(g), Listen::At(h)) if g == h && g.port() != 0 => self.error(
                &at("http"),
                format!("`http` and `grpc` cannot share the address {h}"),
            ),
            _ => {}
        }
        if o.max_request_size.get() < 1024 {
            self.error(&at("max_request_size"), "must be at least 1KiB");
        }
        for (k, v) in [
            ("max_in_flight", o.max_in_flight),
            ("max_connections", o.max_connections),
        ] {
            if v == 0 {
                self.error(&at(k), "must be at least 1");
            }
        }
        for (k, v) in [
            ("request_timeout", o.request_timeout),
            ("retry_after", o.retry_after),
        ] {
            if v.get().is_zero() {
                self.error(&at(k), "must be greater than zero");
            }
        }
    }
}

/// Removes the value at `path` (relative to `value`); false when there is nothing to remove.
fn remove_at(value: &mut toml::Value, path: &[Seg]) -> bool {
    let Some((last, parents)) = path.split_last() else {
        return false;
    };
    let mut v = value;
    for seg in parents {
        v = match (seg, v) {
            (Seg::Key(k), toml::Value::Table(t)) => match t.get_mut(k) {
                Some(next) => next,
                None => return false,
            },
            (Seg::Index(i), toml::Value::Array(a)) => match a.get_mut(*i) {
                Some(next) => next,
                None => return false,
            },
            _ => return false,
        };
    }
    match (last, v) {
        (Seg::Key(k), toml::Value::Table(t)) => t.remove(k).is_some(),
        (Seg::Index(i), toml::Value::Array(a)) if *i < a.len() => {
            a.remove(*i);
            true
        }
        _ => false,
    }
}

/// serde names the Rust type it wanted ("expected struct AgentConfig"); a config file's reader
/// knows it as a table.
fn in_toml_terms(message: &str) -> String {
    const STRUCT: &str = "expected struct ";
    match message.find(STRUCT) {
        Some(at) => {
            let rest = &message[at + STRUCT.len()..];
            let name_len = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            format!("{}expected a table{}", &message[..at], &rest[name_len..])
        }
        None => message.to_string(),
    }
}

/// Extracts `x` from serde's "unknown field `x`, expected …".
fn unknown_field(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    Some(rest[..rest.find('`')?].to_string())
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

// ---------------------------------------------------------------------------------------------
// Serialization back to TOML (print-config).

fn to_table<T: Serialize>(v: &T) -> toml::Table {
    match toml::Value::try_from(v) {
        Ok(toml::Value::Table(t)) => t,
        _ => toml::Table::new(),
    }
}

impl Config {
    /// The effective configuration as TOML, every default filled in and secrets redacted.
    pub fn to_toml(&self) -> String {
        let mut root = toml::Table::new();
        root.insert("agent".into(), toml::Value::Table(to_table(&self.agent)));
        let mut sources = toml::Table::new();
        for (name, s) in &self.sources {
            let mut t = match s {
                SourceConfig::HostMetrics(c) => to_table(c),
                SourceConfig::File(c) => to_table(c),
                SourceConfig::InternalMetrics(c) => to_table(c),
                SourceConfig::Otlp(c) => to_table(c),
            };
            t.insert("type".into(), s.type_name().into());
            sources.insert(name.clone(), toml::Value::Table(t));
        }
        root.insert("sources".into(), toml::Value::Table(sources));
        let mut exporters = toml::Table::new();
        for (name, e) in &self.exporters {
            let mut t = to_table(&e.common);
            let own = match &e.kind {
                ExporterKind::Stdout(c) => to_table(c),
                ExporterKind::Otlp(c) => to_table(c),
                ExporterKind::Parquet(c) => to_table(c),
            };
            t.extend(own);
            t.insert("type".into(), e.kind.type_name().into());
            exporters.insert(name.clone(), toml::Value::Table(t));
        }
        root.insert("exporters".into(), toml::Value::Table(exporters));
        toml::to_string_pretty(&root).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
    }
}
