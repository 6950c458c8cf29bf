//! The configuration reference in `docs/` cannot drift from the schema.
//!
//! Every page that documents configuration keys does it in tables of one form, announced by a
//! marker line naming the table the keys belong to:
//!
//! ```text
//! <!-- keys: sources.file -->
//! | key | type | default | meaning |
//! |---|---|---|---|
//! | `include` | list of patterns | (required) | … |
//! | `multiline.timeout` | duration | `"1s"` | … |
//! ```
//!
//! Sections: `agent`, `sources.<type>`, `processors.<type>` (with `type` and `inputs`),
//! `exporters.*` (the keys every exporter has) and `exporters.<type>`. A key is written as it is in the TOML file, dotted below its table
//! (`buffer.max_size`, `tls.cert_file`); one key per row; a `|` inside a cell is written `\|`.
//!
//! What the schema has is found by asking the configuration loader itself: a file with an
//! unknown key `__sonde_docs_probe__` in a table is refused with serde's "unknown field …,
//! expected one of `a`, `b`, …", which lists every key of that table; a key whose value is a
//! table of known keys is probed the same way, one level down. So the keys come from the same
//! code path `sonde validate` runs, whatever the types behind them.
//!
//! The tests check that (a) every section has exactly one table, (b) every documented key is a
//! key of the schema, (c) every key of the schema is documented, (d) a default written as one
//! TOML literal (`` `"10s"` ``) is the default — the configuration with the key written that
//! way loads and equals the one without it — and (e) every ```` ```toml ```` example in `docs/`
//! and `README.md` is a configuration that loads.

use sonde_config::{
    load_str_with_env, Config, ConfigError, ExporterKind, ProcessorKind, SourceConfig,
};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const PROBE: &str = "__sonde_docs_probe__";
const HEADER: &str = "| key | type | default | meaning |";

// ---------------------------------------------------------------------------------------------
// The sections and the configurations that hold them

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Section {
    Agent,
    Source(&'static str),
    Processor(&'static str),
    ExporterCommon,
    Exporter(&'static str),
}

impl Section {
    fn all() -> Vec<Section> {
        let mut all = vec![Section::Agent, Section::ExporterCommon];
        all.extend(SourceConfig::TYPES.iter().map(|t| Section::Source(t)));
        all.extend(ProcessorKind::TYPES.iter().map(|t| Section::Processor(t)));
        all.extend(ExporterKind::TYPES.iter().map(|t| Section::Exporter(t)));
        all
    }

    fn name(self) -> String {
        match self {
            Section::Agent => "agent".into(),
            Section::Source(t) => format!("sources.{t}"),
            Section::Processor(t) => format!("processors.{t}"),
            Section::ExporterCommon => "exporters.*".into(),
            Section::Exporter(t) => format!("exporters.{t}"),
        }
    }

    /// The key path of the section's table in the configurations [`Section::config`] writes.
    fn table_path(self) -> &'static str {
        match self {
            Section::Agent => "agent",
            Section::Source(_) => "sources.p",
            Section::Processor(_) => "processors.p",
            Section::ExporterCommon | Section::Exporter(_) => "exporters.p",
        }
    }

    /// The keys a table of this type cannot do without, for a configuration that loads.
    fn required(self) -> &'static str {
        match self {
            Section::Source("file") => "include = [\"/var/log/*.log\"]\n",
            Section::Processor("resource") => "delete = [\"x\"]\n",
            Section::Processor("filter") => "spans = [\"true\"]\n",
            Section::Processor("redact") => "keys = [\"x\"]\n",
            Section::Source("syslog") => "unix = \"/run/sonde/syslog.sock\"\n",
            Section::Exporter("otlp") => "endpoint = \"http://127.0.0.1:4317\"\n",
            Section::Exporter("parquet") => "url = \"file:///var/lib/sonde-docs-test\"\n",
            _ => "",
        }
    }

    /// [`Section::required`], unless `key` is among them: a processor needs one of several
    /// optional keys, so another one stands in while `key` is written with its default.
    fn required_besides(self, key: &str) -> &'static str {
        match (self, key) {
            (Section::Processor("resource"), "delete") => "set = { x = \"y\" }\n",
            (Section::Processor("filter"), "spans") => "log_records = [\"true\"]\n",
            (Section::Processor("redact"), "keys") => "patterns = [\"email\"]\n",
            _ => self.required(),
        }
    }

    /// Keys that must be written for `key` to be written alone (a table with a required key).
    fn companions(self, key: &str) -> &'static str {
        match self {
            Section::Source("file")
                if key.starts_with("multiline.") && key != "multiline.start" =>
            {
                "multiline.start = '^\\d'\n"
            }
            _ => "",
        }
    }

    /// A whole configuration with `required` and `lines` written in this section's table, plus
    /// what the file needs around it.
    fn config(self, lines: &str, required: &str) -> String {
        match self {
            Section::Agent => format!(
                "[agent]\n{lines}\n\n[sources.h]\ntype = \"host_metrics\"\n\n\
                 [exporters.out]\ntype = \"stdout\"\n"
            ),
            Section::Source(t) => format!(
                "[sources.p]\ntype = \"{t}\"\n{required}{lines}\n\n\
                 [exporters.out]\ntype = \"stdout\"\n"
            ),
            Section::Processor(t) => format!(
                "[sources.h]\ntype = \"otlp\"\n\n\
                 [processors.p]\ntype = \"{t}\"\ninputs = [\"h\"]\n{required}{lines}\n\n\
                 [exporters.out]\ntype = \"stdout\"\ninputs = [\"p\"]\n"
            ),
            Section::ExporterCommon => format!(
                "[sources.h]\ntype = \"host_metrics\"\n\n\
                 [exporters.p]\ntype = \"stdout\"\n{lines}\n"
            ),
            Section::Exporter(t) => format!(
                "[sources.h]\ntype = \"host_metrics\"\n\n\
                 [exporters.p]\ntype = \"{t}\"\n{required}{lines}\n"
            ),
        }
    }
}

fn load(text: &str) -> Result<Config, Vec<ConfigError>> {
    load_str_with_env(text, "probe.toml", |_| None).map_err(|e| e.errors)
}

fn problems(text: &str) -> Vec<ConfigError> {
    load(text).err().unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// The schema's keys, as the loader knows them

/// The keys serde lists in "unknown field `<PROBE>`, expected one of `a`, `b`" (also
/// "expected `a`", "expected `a` or `b`", "there are no fields"); `None` for another message.
fn listed_fields(message: &str) -> Option<Vec<String>> {
    let head = format!("unknown field `{PROBE}`");
    let at = message.find(&head)?;
    let rest = &message[at + head.len()..];
    Some(
        rest.split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect(),
    )
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() || key.is_empty() {
        format!("{prefix}{key}")
    } else {
        format!("{prefix}.{key}")
    }
}

/// The keys of `section` at and below `prefix` (a dotted key, empty for the table itself).
/// A key whose value is a table of known keys is replaced by those keys; a value of any other
/// kind (a scalar, a list, an address, a table of free keys) makes the key itself a leaf.
fn keys_below(section: Section, prefix: &str) -> Vec<String> {
    let text = section.config(&format!("{} = 0", join(prefix, PROBE)), "");
    let probe_path = join(&join(section.table_path(), prefix), PROBE);
    let fields = problems(&text)
        .into_iter()
        .filter(|e| e.path == probe_path)
        .find_map(|e| listed_fields(&e.message));
    match fields {
        Some(fields) => fields
            .iter()
            .flat_map(|f| keys_below(section, &join(prefix, f)))
            .collect(),
        None => vec![prefix.to_string()],
    }
}

/// The top-level keys every exporter has. The loader hands an exporter's unknown keys to its
/// type, so they are read off the shared struct itself; each is then checked to be taken as a
/// shared key by the loader.
fn exporter_common_top_keys() -> Vec<String> {
    let mut t = toml::Table::new();
    t.insert(PROBE.into(), toml::Value::Integer(0));
    let err =
        <sonde_config::ExporterCommon as serde::Deserialize>::deserialize(toml::Value::Table(t))
            .expect_err("an unknown key in the shared exporter settings is refused");
    let keys = listed_fields(&err.to_string())
        .unwrap_or_else(|| panic!("unexpected message for an unknown key: {err}"));
    for k in &keys {
        let text = Section::ExporterCommon.config(&format!("{k}.{PROBE} = 0"), "");
        let unknown = format!("unknown field `{k}`");
        if let Some(e) = problems(&text)
            .iter()
            .find(|e| e.message.starts_with(&unknown))
        {
            panic!(
                "`{k}` is a field of the shared exporter settings, but the loader hands it to \
                 the exporter's type: {e}"
            );
        }
    }
    keys
}

/// Every key of the schema, by section.
fn schema_keys(section: Section) -> BTreeSet<String> {
    let mut keys: BTreeSet<String> = match section {
        Section::ExporterCommon => exporter_common_top_keys()
            .iter()
            .flat_map(|k| keys_below(section, k))
            .collect(),
        _ => keys_below(section, "").into_iter().collect(),
    };
    keys.remove("");
    if matches!(
        section,
        Section::Source(_) | Section::Processor(_) | Section::Exporter(_)
    ) {
        keys.insert("type".into());
    }
    if matches!(section, Section::Processor(_)) {
        // The loader takes `inputs` before handing the rest to the processor's type.
        keys.insert("inputs".into());
    }
    keys
}

// ---------------------------------------------------------------------------------------------
// The documented keys

#[derive(Debug)]
struct Row {
    key: String,
    /// The default cell, when it is one code span (a TOML literal).
    literal_default: Option<String>,
    line: usize,
}

#[derive(Debug)]
struct KeyTable {
    file: String,
    line: usize,
    rows: Vec<Row>,
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the config crate sits in the workspace")
        .to_path_buf()
}

fn markdown_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            markdown_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "md") {
            out.push(path);
        }
    }
    out.sort();
}

fn relative(path: &Path) -> String {
    path.strip_prefix(repo())
        .unwrap_or(path)
        .display()
        .to_string()
}

/// Cells of a table row, split on the `|` that are not escaped.
fn cells(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cell = String::new();
    let mut chars = line.trim().chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'|') => {
                cell.push('|');
                chars.next();
            }
            '|' => out.push(std::mem::take(&mut cell).trim().to_string()),
            c => cell.push(c),
        }
    }
    out.push(cell.trim().to_string());
    // A row starts and ends with `|`: drop the empty cells outside them.
    if out.first().is_some_and(String::is_empty) {
        out.remove(0);
    }
    if out.last().is_some_and(String::is_empty) {
        out.pop();
    }
    out
}

/// `` `x` `` → `x`, for a cell that is exactly one code span.
fn code_span(cell: &str) -> Option<&str> {
    let inner = cell.strip_prefix('`')?.strip_suffix('`')?;
    (!inner.contains('`')).then_some(inner)
}

/// Every key table of every page under `docs/`, by section name; format problems in `errors`.
fn documented(errors: &mut Vec<String>) -> BTreeMap<String, Vec<KeyTable>> {
    let mut files = Vec::new();
    markdown_files(&repo().join("docs"), &mut files);
    let mut tables: BTreeMap<String, Vec<KeyTable>> = BTreeMap::new();
    for path in files {
        let text = std::fs::read_to_string(&path).expect("read a docs page");
        let file = relative(&path);
        let lines: Vec<&str> = text.lines().collect();
        let mut i = 0;
        while i < lines.len() {
            let Some(section) = lines[i]
                .trim()
                .strip_prefix("<!-- keys:")
                .and_then(|s| s.strip_suffix("-->"))
                .map(str::trim)
            else {
                i += 1;
                continue;
            };
            let marker = i + 1;
            let mut table = KeyTable {
                file: file.clone(),
                line: marker,
                rows: vec![],
            };
            if lines.get(i + 1).map(|l| l.trim()) != Some(HEADER)
                || !lines.get(i + 2).is_some_and(|l| l.starts_with("|---"))
            {
                errors.push(format!(
                    "{file}:{marker}: the `{section}` key table must follow its marker at once, \
                     starting with `{HEADER}` and a `|---|` line"
                ));
                i += 1;
                continue;
            }
            i += 3;
            while i < lines.len() && lines[i].trim_start().starts_with('|') {
                let line = i + 1;
                let c = cells(lines[i]);
                match (c.len(), c.first().and_then(|k| code_span(k))) {
                    (4, Some(key)) => table.rows.push(Row {
                        key: key.to_string(),
                        literal_default: code_span(&c[2]).map(str::to_string),
                        line,
                    }),
                    (4, None) => errors.push(format!(
                        "{file}:{line}: the key cell must be one key in backticks, found `{}`",
                        c[0]
                    )),
                    (n, _) => errors.push(format!(
                        "{file}:{line}: a key table row has 4 cells, this one has {n} \
                         (write a `|` inside a cell as `\\|`)"
                    )),
                }
                i += 1;
            }
            tables.entry(section.to_string()).or_default().push(table);
        }
    }
    tables
}

// ---------------------------------------------------------------------------------------------
// The tests

#[test]
fn every_documented_key_is_in_the_schema_and_every_schema_key_is_documented() {
    let mut errors = Vec::new();
    let tables = documented(&mut errors);
    let sections = Section::all();
    for (name, found) in &tables {
        if !sections.iter().any(|s| s.name() == *name) {
            for t in found {
                errors.push(format!(
                    "{}:{}: no configuration table is called `{name}` (known: {})",
                    t.file,
                    t.line,
                    sections
                        .iter()
                        .map(|s| format!("`{}`", s.name()))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
        }
    }
    for section in sections {
        let name = section.name();
        let table = match tables.get(&name).map(Vec::as_slice) {
            None | Some([]) => {
                errors.push(format!(
                    "no page under docs/ has a `<!-- keys: {name} -->` table: the keys of \
                     `{name}` are not documented"
                ));
                continue;
            }
            Some([one]) => one,
            Some([first, rest @ ..]) => {
                for t in rest {
                    errors.push(format!(
                        "{}:{}: `{name}` is documented again (first at {}:{}); keep one table",
                        t.file, t.line, first.file, first.line
                    ));
                }
                first
            }
        };
        let schema = schema_keys(section);
        let mut seen = BTreeSet::new();
        for row in &table.rows {
            if !seen.insert(row.key.clone()) {
                errors.push(format!(
                    "{}:{}: `{}` is documented twice in the `{name}` table",
                    table.file, row.line, row.key
                ));
            }
            if !schema.contains(&row.key) {
                errors.push(format!(
                    "{}:{}: the `{name}` table documents `{}`, which the schema does not have \
                     (its keys: {})",
                    table.file,
                    row.line,
                    row.key,
                    schema.iter().cloned().collect::<Vec<_>>().join(", ")
                ));
            }
        }
        for key in schema.difference(&seen) {
            errors.push(format!(
                "`{name}`: the schema has `{key}`, which {} does not document (its `{name}` \
                 table starts at line {})",
                table.file, table.line
            ));
        }
    }
    assert!(errors.is_empty(), "\n{}\n", errors.join("\n"));
}

#[test]
fn the_schema_is_found_by_probing_the_loader() {
    // The probe must see through nesting, optional tables and the exporter key split, or the
    // test above would compare the docs with too little.
    let file = schema_keys(Section::Source("file"));
    for k in [
        "include",
        "multiline.start",
        "multiline.timeout",
        "json.timestamp_field",
    ] {
        assert!(file.contains(k), "{k} not found in {file:?}");
    }
    assert!(
        !file.contains("multiline") && !file.contains("json"),
        "{file:?}"
    );
    assert!(
        file.contains("resource"),
        "a table of free keys is one key: {file:?}"
    );
    let otlp = schema_keys(Section::Source("otlp"));
    assert!(otlp.contains("tls.client_ca_file") && otlp.contains("auth.bearer_token_file"));
    let common = schema_keys(Section::ExporterCommon);
    for k in [
        "inputs",
        "buffer.type",
        "buffer.max_size",
        "retry.max_elapsed",
        "concurrency",
    ] {
        assert!(common.contains(k), "{k} not found in {common:?}");
    }
    let parquet = schema_keys(Section::Exporter("parquet"));
    assert!(parquet.contains("upload.part_size") && !parquet.contains("buffer.type"));
    let resource = schema_keys(Section::Processor("resource"));
    for k in [
        "type",
        "inputs",
        "detectors",
        "set",
        "detect_timeout",
        "metadata_url",
    ] {
        assert!(resource.contains(k), "{k} not found in {resource:?}");
    }
    let redact = schema_keys(Section::Processor("redact"));
    assert!(redact.contains("hash_key_file") && redact.contains("bodies"));
    let agent = schema_keys(Section::Agent);
    assert!(agent.contains("log.level") && agent.contains("admin") && !agent.contains("type"));
}

#[test]
fn documented_defaults_are_the_defaults() {
    let mut errors = Vec::new();
    let mut checked = 0;
    let tables = documented(&mut errors);
    for section in Section::all() {
        let Some(table) = tables.get(&section.name()).and_then(|t| t.first()) else {
            continue; // reported by the test above
        };
        for row in &table.rows {
            let Some(literal) = &row.literal_default else {
                continue;
            };
            checked += 1;
            let companions = section.companions(&row.key);
            let required = section.required_besides(&row.key);
            let base = section.config(companions, required);
            let with = section.config(&format!("{companions}{} = {literal}", row.key), required);
            let at = format!("{}:{}", table.file, row.line);
            let base = match load(&base) {
                Ok(c) => c,
                Err(e) => {
                    errors.push(format!(
                        "{at}: the test's own configuration for `{}` does not load: {e:?}",
                        row.key
                    ));
                    continue;
                }
            };
            match load(&with) {
                Err(e) => errors.push(format!(
                    "{at}: `{}.{}` = {literal}, the documented default, is refused: {}",
                    section.name(),
                    row.key,
                    e.iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("; ")
                )),
                Ok(c) if c != base => errors.push(format!(
                    "{at}: the documented default of `{}.{}` is {literal}, but the default is \
                     something else (see `sonde print-config`)",
                    section.name(),
                    row.key
                )),
                Ok(_) => {}
            }
        }
    }
    // Most defaults are literals; far fewer checked means the tables were not read.
    assert!(
        checked >= 60,
        "only {checked} literal defaults found in docs/"
    );
    assert!(errors.is_empty(), "\n{}\n", errors.join("\n"));
}

/// The `${NAME}` references without a default (`${NAME:-x}` has one) in `text`.
fn variables_without_default(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            rest = tail;
            continue;
        }
        if let Some(body) = after.strip_prefix('{') {
            if let Some(end) = body.find('}') {
                if !body[..end].contains(":-") {
                    out.insert(body[..end].to_string());
                }
            }
        }
        rest = after;
    }
    out
}

#[test]
fn every_toml_example_in_the_docs_is_a_configuration_that_loads() {
    let mut files = vec![repo().join("README.md")];
    markdown_files(&repo().join("docs"), &mut files);
    let mut examples = 0;
    let mut errors = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path).expect("read a page");
        let file = relative(&path);
        let mut lines = text.lines().enumerate();
        while let Some((i, line)) = lines.next() {
            if line.trim() != "```toml" {
                continue;
            }
            let block: Vec<&str> = lines
                .by_ref()
                .map(|(_, l)| l)
                .take_while(|l| l.trim() != "```")
                .collect();
            let block = block.join("\n") + "\n";
            // A variable the example leaves without a default is given a value, as the
            // environment would.
            let set = variables_without_default(&block);
            let origin = format!("{file} (the example at line {})", i + 1);
            examples += 1;
            if let Err(e) = load_str_with_env(&block, &origin, |name| {
                set.contains(name).then(|| "example".to_string())
            }) {
                errors.push(format!("the example at {origin} does not load:\n{e}"));
            }
        }
    }
    assert!(examples > 10, "only {examples} TOML examples found");
    assert!(errors.is_empty(), "\n{}", errors.join("\n"));
}
