//! `type = "parquet"` exporter settings: where files go (an object store URL and its
//! credentials/options), how objects are named, when a file is rolled, and how it is encoded and
//! uploaded. Also the checks that need no I/O ([`ParquetConfig::problems`]) and what a URL and a
//! path template mean ([`StoreScheme::of`], [`PATH_PLACEHOLDERS`]), so `sonde validate` and the
//! exporter read them the same way.
//!
//! Plain data and checks only; the behaviour is in `sonde-exporters`' `parquet` module.

use crate::problem::Problems;
use crate::units::{ByteSize, Duration, Secret};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `type = "parquet"`: telemetry as query-ready Parquet files in object storage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ParquetConfig {
    /// Where files go: `s3://bucket/prefix`, `gs://bucket/prefix`, `az://container/prefix`
    /// (also `azure://`, `abfs://`, `abfss://` with an account in the host), or
    /// `file:///absolute/path`.
    pub url: String,
    /// Object name below the URL's prefix. Placeholders: `{signal}`, `{date}` (YYYY-MM-DD),
    /// `{hour}` (HH), `{year}`, `{month}`, `{day}`, `{minute}` (of the time the file was opened,
    /// UTC), `{host}`, `{exporter}`, `{id}` (required: the file's content identity).
    pub path: String,
    /// The `{host}` placeholder. Absent: this machine's host name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Roll a file once its Parquet bytes (written plus the row group being built) reach this.
    pub max_file_size: ByteSize,
    /// Roll a file this long after its first row arrived, however small it is.
    pub max_file_age: Duration,
    /// Flush a row group once its encoded size reaches this (also bounds the memory one open
    /// file holds).
    pub row_group_size: ByteSize,
    /// … or once it holds this many rows.
    pub row_group_rows: usize,
    pub compression: ParquetCompression,
    /// Codec level: zstd 1–22 (default 2), gzip 0–10 (default 6); ignored by other codecs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compression_level: Option<i32>,
    /// Upper bound on local disk used under `agent.data_dir/parquet/<exporter>/`: open files'
    /// logs and finished files waiting for upload. Past it, exports are refused as retryable
    /// (the buffer's `when_full` applies) until uploads catch up.
    pub max_staged_size: ByteSize,
    pub upload: UploadConfig,
    /// S3: the region (default: `AWS_REGION`/`AWS_DEFAULT_REGION`, the profile, else us-east-1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// An explicit service endpoint, e.g. `http://127.0.0.1:9000` for an S3-compatible server.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Allow plain `http://` endpoints (an S3-compatible server on loopback).
    pub allow_http: bool,
    /// S3: path-style requests (`endpoint/bucket/key`) instead of virtual-hosted-style
    /// (`bucket.endpoint/key`).
    pub path_style: bool,
    /// S3 static credentials (default: environment, profile, web identity, container or
    /// instance metadata, in the SDKs' order).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_key_id: Option<Secret>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_access_key: Option<Secret>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_token: Option<Secret>,
    /// Any other option of the store, by the `object_store` crate's key names (e.g.
    /// `aws_server_side_encryption`, `google_service_account`, `azure_storage_account_key`).
    /// Values are secrets: never logged, redacted by `print-config`.
    pub options: BTreeMap<String, Secret>,
}

impl Default for ParquetConfig {
    fn default() -> Self {
        Self {
            url: String::new(),
            path: DEFAULT_PATH.to_string(),
            host: None,
            max_file_size: ByteSize::mib(128),
            max_file_age: Duration::from_secs(300),
            row_group_size: ByteSize::mib(32),
            row_group_rows: 1024 * 1024,
            compression: ParquetCompression::Zstd,
            compression_level: None,
            max_staged_size: ByteSize::mib(1024),
            upload: UploadConfig::default(),
            region: None,
            endpoint: None,
            allow_http: false,
            path_style: true,
            access_key_id: None,
            secret_access_key: None,
            session_token: None,
            options: BTreeMap::new(),
        }
    }
}

/// The default object name template (below the URL's prefix).
pub const DEFAULT_PATH: &str = "{signal}/date={date}/hour={hour}/{host}-{id}.parquet";

/// Every placeholder a `path` template may use.
pub const PATH_PLACEHOLDERS: &[&str] = &[
    "signal", "date", "hour", "year", "month", "day", "minute", "host", "exporter", "id",
];

/// How uploads are made and retried.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UploadConfig {
    /// Files larger than this go up as multipart uploads in parts of this size (S3: 5 MiB–5 GiB).
    pub part_size: ByteSize,
    /// Parts in flight at once for one multipart upload.
    pub concurrency: usize,
    /// Time limit of one request to the store.
    pub timeout: Duration,
    pub connect_timeout: Duration,
    /// A failed upload is retried (whole, under the same name) with exponential backoff and full
    /// jitter between these bounds, for as long as it takes: the file stays on local disk.
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for UploadConfig {
    fn default() -> Self {
        Self {
            part_size: ByteSize::mib(8),
            concurrency: 4,
            timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(10),
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(60),
        }
    }
}

/// The Parquet page codec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ParquetCompression {
    Zstd,
    Snappy,
    Gzip,
    Lz4,
    None,
}

/// Which kind of store a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreScheme {
    S3,
    Gcs,
    Azure,
    File,
}

impl StoreScheme {
    /// The store a URL's scheme names, or `None` for a scheme Sonde cannot write to.
    pub fn of(url: &str) -> Option<StoreScheme> {
        let scheme = url.split_once("://")?.0.to_ascii_lowercase();
        Some(match scheme.as_str() {
            "s3" | "s3a" => StoreScheme::S3,
            "gs" | "gcs" => StoreScheme::Gcs,
            "az" | "azure" | "abfs" | "abfss" | "adl" => StoreScheme::Azure,
            "file" => StoreScheme::File,
            _ => return None,
        })
    }
}

impl ParquetConfig {
    /// Problems found without I/O, each with its key below the exporter and a message.
    pub fn problems(&self) -> Problems {
        let mut out = Problems::default();
        self.check_url(&mut out);
        if let Err(e) = check_template(&self.path) {
            out.at("path", e);
        }
        if let Some(h) = &self.host {
            if h.is_empty() || h.contains('/') {
                out.at("host", "must be non-empty and contain no `/`");
            }
        }
        self.check_file_and_row_groups(&mut out);
        self.check_compression_level(&mut out);
        if self.max_staged_size.get() < self.max_file_size.get().saturating_mul(2) {
            out.at(
                "max_staged_size",
                format!(
                    "must be at least twice `max_file_size` ({})",
                    self.max_file_size
                ),
            );
        }
        self.upload.check(&mut out);
        if let Some(e) = &self.endpoint {
            if !(e.starts_with("http://") || e.starts_with("https://")) {
                out.at("endpoint", "must start with http:// or https://");
            } else if e.starts_with("http://") && !self.allow_http {
                out.at("endpoint", "an http:// endpoint needs `allow_http = true`");
            }
        }
        out
    }

    /// A URL of a store Sonde can write to, naming a bucket (or an absolute local path).
    fn check_url(&self, out: &mut Problems) {
        if self.url.is_empty() {
            out.at(
                "url",
                "missing: where files go, e.g. \"s3://bucket/prefix\" or \"file:///var/lib/lake\"",
            );
            return;
        }
        match StoreScheme::of(&self.url) {
            None => out.at(
                "url",
                format!(
                    "`{}`: expected s3://, gs://, az:// (azure://, abfs://) or file:// URL",
                    self.url
                ),
            ),
            Some(StoreScheme::File) if !self.url["file://".len()..].starts_with('/') => out.at(
                "url",
                "a file:// URL needs an absolute path (file:///var/lib/lake)",
            ),
            Some(StoreScheme::File) => {}
            Some(_) => {
                let rest = self.url.split_once("://").map(|x| x.1).unwrap_or("");
                if rest.split('/').next().unwrap_or("").is_empty() {
                    out.at("url", "names no bucket or container");
                }
            }
        }
    }

    /// When a file is rolled and when a row group is flushed.
    fn check_file_and_row_groups(&self, out: &mut Problems) {
        if self.max_file_size < ByteSize::mib(1) {
            out.at("max_file_size", "must be at least 1MiB");
        }
        if self.max_file_age.get() < std::time::Duration::from_secs(1) {
            out.at("max_file_age", "must be at least 1s");
        }
        if self.row_group_size < ByteSize::kib(64) || self.row_group_size > self.max_file_size {
            out.at(
                "row_group_size",
                "must be at least 64KiB and at most `max_file_size`",
            );
        }
        if self.row_group_rows == 0 {
            out.at("row_group_rows", "must be at least 1");
        }
    }

    /// A level only for the codecs that take one, within that codec's range.
    fn check_compression_level(&self, out: &mut Problems) {
        let Some(level) = self.compression_level else {
            return;
        };
        let range = match self.compression {
            ParquetCompression::Zstd => Some(1..=22),
            ParquetCompression::Gzip => Some(0..=10),
            _ => None,
        };
        match range {
            Some(r) if !r.contains(&level) => out.at(
                "compression_level",
                format!(
                    "must be in {}..={} for {:?}",
                    r.start(),
                    r.end(),
                    self.compression
                ),
            ),
            None => out.at("compression_level", "only zstd and gzip take a level"),
            _ => {}
        }
    }
}

impl UploadConfig {
    /// Part size within the S3 limits, at least one part in flight, non-zero timeouts and a
    /// backoff that grows.
    fn check(&self, out: &mut Problems) {
        if self.part_size < ByteSize::mib(5) || self.part_size > ByteSize::mib(5 * 1024) {
            out.at(
                "upload.part_size",
                "must be between 5MiB and 5GiB (the S3 limits)",
            );
        }
        if self.concurrency == 0 {
            out.at("upload.concurrency", "must be at least 1");
        }
        if self.timeout.get().is_zero() || self.connect_timeout.get().is_zero() {
            out.at("upload.timeout", "timeouts must be greater than zero");
        }
        if self.initial_backoff.get().is_zero() || self.initial_backoff > self.max_backoff {
            out.at(
                "upload.initial_backoff",
                "must be greater than zero and at most `max_backoff`",
            );
        }
    }
}

/// Checks a `path` template: known placeholders only, `{id}` present, a relative path.
pub fn check_template(t: &str) -> Result<(), String> {
    let mut rest = t;
    let mut has_id = false;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else {
            return Err(format!("unclosed `{{` in `{t}`"));
        };
        let name = &after[..close];
        if !PATH_PLACEHOLDERS.contains(&name) {
            return Err(format!(
                "unknown placeholder `{{{name}}}` (known: {})",
                PATH_PLACEHOLDERS
                    .iter()
                    .map(|p| format!("{{{p}}}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        has_id |= name == "id";
        rest = &after[close + 1..];
    }
    if rest.contains('}') {
        return Err(format!("unmatched `}}` in `{t}`"));
    }
    if !has_id {
        return Err(
            "must contain `{id}`: it makes object names unique and retries idempotent".into(),
        );
    }
    if t.starts_with('/') || t.split('/').any(|s| s.is_empty() || s == "." || s == "..") {
        return Err("must be a relative path without empty, `.` or `..` segments".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(f: impl FnOnce(&mut ParquetConfig)) -> Vec<String> {
        let mut c = ParquetConfig {
            url: "s3://bucket/prefix".into(),
            ..Default::default()
        };
        f(&mut c);
        c.problems()
            .into_iter()
            .map(|p| p.path.to_string())
            .collect()
    }

    #[test]
    fn defaults_with_a_url_are_valid() {
        assert!(with(|_| {}).is_empty());
    }

    #[test]
    fn url_scheme_and_bucket_are_checked() {
        assert_eq!(with(|c| c.url = String::new()), ["url"]);
        assert_eq!(with(|c| c.url = "ftp://x/y".into()), ["url"]);
        assert_eq!(with(|c| c.url = "s3:///prefix".into()), ["url"]);
        assert_eq!(with(|c| c.url = "file://relative".into()), ["url"]);
        assert!(with(|c| c.url = "file:///tmp/lake".into()).is_empty());
        assert!(with(|c| c.url = "gs://b".into()).is_empty());
        assert!(with(|c| c.url = "az://container/p".into()).is_empty());
    }

    #[test]
    fn template_needs_id_and_known_placeholders() {
        assert!(check_template(DEFAULT_PATH).is_ok());
        assert!(check_template("{signal}/{host}.parquet").is_err());
        assert!(check_template("{signal}/{nope}/{id}").is_err());
        assert!(check_template("/{id}").is_err());
        assert!(check_template("a//{id}").is_err());
        assert!(check_template("../{id}").is_err());
        assert!(check_template("{id").is_err());
    }

    #[test]
    fn a_parquet_exporter_loads_and_its_problems_are_positioned() {
        let text = "[sources.h]\ntype = \"host_metrics\"\n[exporters.lake]\ntype = \"parquet\"\nurl = \"s3://b/p\"\nsecret_access_key = \"s3cr3t\"\n";
        let c = crate::load_str(text, "t.toml").unwrap();
        let crate::ExporterKind::Parquet(p) = &c.exporters["lake"].kind else {
            panic!("not a parquet exporter");
        };
        assert_eq!(p.url, "s3://b/p");
        assert_eq!(c.exporters["lake"].kind.default_concurrency(), 1);
        let printed = c.to_toml();
        assert!(
            printed.contains("<redacted>") && !printed.contains("s3cr3t"),
            "{printed}"
        );
        let bad = format!("{text}path = \"{{signal}}.parquet\"\n");
        let e = crate::load_str(&bad, "t.toml").unwrap_err().to_string();
        assert!(
            e.contains("t.toml:7:1: `exporters.lake.path`: must contain `{id}`"),
            "{e}"
        );
    }

    #[test]
    fn sizes_and_levels_are_bounded() {
        assert_eq!(
            with(|c| c.max_file_size = ByteSize::kib(10)),
            ["max_file_size", "row_group_size"]
        );
        assert_eq!(
            with(|c| c.compression_level = Some(30)),
            ["compression_level"]
        );
        assert_eq!(
            with(|c| {
                c.compression = ParquetCompression::Snappy;
                c.compression_level = Some(3)
            }),
            ["compression_level"]
        );
        assert_eq!(
            with(|c| c.upload.part_size = ByteSize::mib(1)),
            ["upload.part_size"]
        );
        assert_eq!(
            with(|c| c.max_staged_size = ByteSize::mib(200)),
            ["max_staged_size"]
        );
        assert_eq!(
            with(|c| c.endpoint = Some("http://127.0.0.1:9".into())),
            ["endpoint"]
        );
    }
}
