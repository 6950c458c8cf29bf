//! Loading: text → interpolated text → TOML → typed [`Config`], collecting every problem with its
//! key path and line:column.
//!
//! Each component is deserialized on its own, and each settings table is tried again without a
//! key that failed, so one bad source does not hide the problems of the next and one typo does
//! not hide another. Then the whole file is checked (`validate.rs`). Reading the file is
//! the only I/O.

use crate::agent::AgentConfig;
use crate::error::{line_col, ConfigError, ConfigErrors};
use crate::exporters::common::ExporterCommon;
use crate::interpolate::interpolate;
use crate::problem::{KeyPath, PathSeg};
use crate::report::Report;
use crate::schema::{
    Config, ExporterConfig, ExporterKind, ProcessorConfig, ProcessorKind, SourceConfig,
};
use crate::validate::{validate, Declared};
use serde::de::DeserializeOwned;
use std::path::Path;

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

/// A problem another crate finds in a loaded configuration — a filter condition that does not
/// parse, say — placed at a key path and, for a string value, at a 1-based (line, column)
/// inside the string, so it is reported with the file's line:column like every other problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LateProblem {
    pub path: KeyPath,
    pub within: Option<(usize, usize)>,
    pub message: String,
}

/// Loads configuration text like [`load_str`], then runs `check` on the result and reports
/// what it finds in the same way.
pub fn load_str_checked(
    text: &str,
    origin: &str,
    check: &dyn Fn(&Config) -> Vec<LateProblem>,
) -> Result<Config, ConfigErrors> {
    load_inner(text, origin, |name| std::env::var(name).ok(), check)
}

/// Loads configuration text with a custom variable lookup (for tests).
pub fn load_str_with_env(
    text: &str,
    origin: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<Config, ConfigErrors> {
    load_inner(text, origin, lookup, &|_| vec![])
}

fn load_inner(
    text: &str,
    origin: &str,
    lookup: impl Fn(&str) -> Option<String>,
    check: &dyn Fn(&Config) -> Vec<LateProblem>,
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
        report: Report::new(&text),
    };
    let config = loader.config(table);
    if let Some(c) = config.as_ref().filter(|_| loader.report.is_empty()) {
        for p in check(c) {
            match p.within {
                Some(within) => loader.report.error_within(&p.path, within, p.message),
                None => loader.report.error(&p.path, p.message),
            }
        }
    }
    let mut errors = loader.report.into_errors();
    if errors.is_empty() {
        if let Some(config) = config {
            return Ok(config);
        }
    }
    errors.sort_by_key(|e| (e.line.unwrap_or(usize::MAX), e.column.unwrap_or(usize::MAX)));
    Err(fail(errors))
}

/// The top-level sections a file may have.
const SECTIONS: &str = "`agent`, `sources`, `processors`, `exporters`";

struct Loader<'a> {
    report: Report<'a>,
}

impl Loader<'_> {
    /// The whole file: `[agent]`, every source, every exporter, then the whole-file checks.
    /// `None` when any part failed to deserialize.
    fn config(&mut self, mut root: toml::Table) -> Option<Config> {
        let agent = match root.remove("agent") {
            Some(v) => self.typed::<AgentConfig>(v, &KeyPath::dotted("agent")),
            None => Some(AgentConfig::default()),
        };
        let sources = root.remove("sources");
        let processors = root.remove("processors");
        let exporters = root.remove("exporters");
        for k in root.keys() {
            self.report.error(
                &KeyPath::default().key(k.clone()),
                format!("unknown key `{k}`, expected one of {SECTIONS}"),
            );
        }

        let mut config = Config::default();
        let mut ok = agent.is_some();
        let mut declared = Declared::default();
        if let Some(agent) = agent {
            config.agent = agent;
        }
        for (name, value) in self.components(sources, "sources") {
            declared.sources.insert(name.clone());
            match self.source(&name, value) {
                Some(s) => {
                    config.sources.insert(name, s);
                }
                None => ok = false,
            }
        }
        if processors.is_some() {
            for (name, value) in self.components(processors, "processors") {
                declared.processors.insert(name.clone());
                match self.processor(&name, value) {
                    Some(p) => {
                        config.processors.insert(name, p);
                    }
                    None => ok = false,
                }
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
        validate(&mut self.report, &config, &declared);
        ok.then_some(config)
    }

    /// The `<name> = { … }` tables of a `[sources]` or `[exporters]` section.
    fn components(
        &mut self,
        section: Option<toml::Value>,
        what: &'static str,
    ) -> Vec<(String, toml::Table)> {
        let none_configured =
            format!("no `{what}` configured: add at least one `[{what}.<name>]` table");
        let table = match section {
            None => {
                self.report.error(&KeyPath::default(), none_configured);
                return vec![];
            }
            Some(toml::Value::Table(t)) => t,
            Some(other) => {
                self.report.error(
                    &KeyPath::dotted(what),
                    format!("expected a table, found {}", other.type_str()),
                );
                return vec![];
            }
        };
        if table.is_empty() {
            self.report.error(&KeyPath::dotted(what), none_configured);
        }
        let mut out = Vec::new();
        for (name, value) in table {
            let at = KeyPath::dotted(what).key(name.clone());
            if !valid_name(&name) {
                self.report.error(
                    &at,
                    format!("invalid name `{name}`: use letters, digits, `_` and `-`"),
                );
                continue;
            }
            match value {
                toml::Value::Table(t) => out.push((name, t)),
                other => self
                    .report
                    .error(&at, format!("expected a table, found {}", other.type_str())),
            }
        }
        out
    }

    /// Removes and checks the `type` key of a component.
    fn type_of(&mut self, table: &mut toml::Table, at: &KeyPath, types: &[&str]) -> Option<String> {
        let expected = types
            .iter()
            .map(|t| format!("`{t}`"))
            .collect::<Vec<_>>()
            .join(", ");
        let message = match table.remove("type") {
            Some(toml::Value::String(t)) if types.contains(&t.as_str()) => return Some(t),
            Some(toml::Value::String(t)) => {
                format!("unknown type `{t}`, expected one of {expected}")
            }
            Some(other) => format!("expected a string, found {}", other.type_str()),
            None => {
                self.report
                    .error(at, format!("missing key `type` (one of {expected})"));
                return None;
            }
        };
        self.report.error(&at.clone().key("type"), message);
        None
    }

    /// A source's settings, deserialized as its `type` says.
    fn source(&mut self, name: &str, mut table: toml::Table) -> Option<SourceConfig> {
        let at = KeyPath::dotted("sources").key(name.to_string());
        let ty = self.type_of(&mut table, &at, SourceConfig::TYPES)?;
        let value = toml::Value::Table(table);
        match ty.as_str() {
            "host_metrics" => self.typed(value, &at).map(SourceConfig::HostMetrics),
            "file" => self.typed(value, &at).map(SourceConfig::File),
            "internal_metrics" => self.typed(value, &at).map(SourceConfig::InternalMetrics),
            "otlp" => self.typed(value, &at).map(SourceConfig::Otlp),
            "journald" => self.typed(value, &at).map(SourceConfig::Journald),
            "syslog" => self.typed(value, &at).map(SourceConfig::Syslog),
            _ => None,
        }
    }

    /// A processor's settings: its `inputs`, and the rest as its `type` says.
    fn processor(&mut self, name: &str, mut table: toml::Table) -> Option<ProcessorConfig> {
        let at = KeyPath::dotted("processors").key(name.to_string());
        let ty = self.type_of(&mut table, &at, ProcessorKind::TYPES);
        let inputs = match table.remove("inputs") {
            Some(v) => self.typed::<Vec<String>>(v, &at.clone().key("inputs")),
            None => {
                self.report.error(
                    &at,
                    "missing key `inputs` (the sources or processors it takes from)",
                );
                None
            }
        };
        let own = toml::Value::Table(table);
        let kind = match ty?.as_str() {
            "resource" => self.typed(own, &at).map(ProcessorKind::Resource),
            "filter" => self.typed(own, &at).map(ProcessorKind::Filter),
            "redact" => self.typed(own, &at).map(ProcessorKind::Redact),
            "sample" => self.typed(own, &at).map(ProcessorKind::Sample),
            _ => None,
        };
        Some(ProcessorConfig {
            inputs: inputs?,
            kind: kind?,
        })
    }

    /// An exporter's settings: the keys every exporter shares, and the rest as its `type` says.
    fn exporter(&mut self, name: &str, mut table: toml::Table) -> Option<ExporterConfig> {
        let at = KeyPath::dotted("exporters").key(name.to_string());
        let ty = self.type_of(&mut table, &at, ExporterKind::TYPES)?;
        let (common, own): (toml::Table, toml::Table) = table
            .into_iter()
            .partition(|(k, _)| ExporterCommon::KEYS.contains(&k.as_str()));
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

    /// Deserializes `value` as `T`, recording a positioned error for every problem: after each
    /// error the offending key is removed (so its default applies) and deserialization is tried
    /// again, so one typo does not hide the next.
    fn typed<T: DeserializeOwned>(&mut self, mut value: toml::Value, at: &KeyPath) -> Option<T> {
        let mut failed = false;
        for _ in 0..64 {
            match serde_path_to_error::deserialize::<_, T>(value.clone()) {
                Ok(v) => return (!failed).then_some(v),
                Err(e) => {
                    failed = true;
                    let message = in_toml_terms(e.inner().message());
                    let rel = error_path(e.path(), &message);
                    self.report.error(&at.join(&rel), message);
                    if !remove_at(&mut value, rel.segments()) {
                        return None;
                    }
                }
            }
        }
        None
    }
}

/// The key path of a deserialization error. serde reports an unknown key at its parent; the
/// path then points at the key itself.
fn error_path(path: &serde_path_to_error::Path, message: &str) -> KeyPath {
    let mut rel = KeyPath::default();
    for seg in path.iter() {
        match seg {
            serde_path_to_error::Segment::Seq { index } => rel.push(PathSeg::Index(*index)),
            serde_path_to_error::Segment::Map { key } => rel.push(PathSeg::key(key.clone())),
            _ => {}
        }
    }
    if let Some(unknown) = unknown_field(message) {
        if rel.segments().last() != Some(&PathSeg::key(unknown.clone())) {
            rel.push(PathSeg::key(unknown));
        }
    }
    rel
}

/// Removes the value at `path` (relative to `value`); false when there is nothing to remove.
fn remove_at(value: &mut toml::Value, path: &[PathSeg]) -> bool {
    let Some((last, parents)) = path.split_last() else {
        return false;
    };
    let mut v = value;
    for seg in parents {
        v = match (seg, v) {
            (PathSeg::Key(k), toml::Value::Table(t)) => match t.get_mut(k.as_ref()) {
                Some(next) => next,
                None => return false,
            },
            (PathSeg::Index(i), toml::Value::Array(a)) => match a.get_mut(*i) {
                Some(next) => next,
                None => return false,
            },
            _ => return false,
        };
    }
    match (last, v) {
        (PathSeg::Key(k), toml::Value::Table(t)) => t.remove(k.as_ref()).is_some(),
        (PathSeg::Index(i), toml::Value::Array(a)) if *i < a.len() => {
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
