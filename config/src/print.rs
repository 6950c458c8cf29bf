//! The effective configuration written back as TOML (`sonde print-config`): every default filled
//! in, secrets redacted, each component with its `type`, so the output loads again to the same
//! [`Config`].

use crate::schema::{Config, ExporterKind, ProcessorKind, SourceConfig};
use serde::Serialize;

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
                SourceConfig::Journald(c) => to_table(c),
                SourceConfig::Syslog(c) => to_table(c),
            };
            t.insert("type".into(), s.type_name().into());
            sources.insert(name.clone(), toml::Value::Table(t));
        }
        root.insert("sources".into(), toml::Value::Table(sources));
        let mut processors = toml::Table::new();
        for (name, p) in &self.processors {
            let mut t = match &p.kind {
                ProcessorKind::Resource(c) => to_table(c),
                ProcessorKind::Filter(c) => to_table(c),
                ProcessorKind::Redact(c) => to_table(c),
                ProcessorKind::Sample(c) => to_table(c),
            };
            t.insert("type".into(), p.kind.type_name().into());
            t.insert(
                "inputs".into(),
                toml::Value::Array(p.inputs.iter().map(|i| i.clone().into()).collect()),
            );
            processors.insert(name.clone(), toml::Value::Table(t));
        }
        if !processors.is_empty() {
            root.insert("processors".into(), toml::Value::Table(processors));
        }
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
