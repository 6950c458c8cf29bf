//! The object store a `url` names (S3, GCS, Azure or a local directory, through `object_store`)
//! and one upload: a single PUT for a file up to `upload.part_size`, a multipart upload in parts
//! of that size above it. Both are atomic at the store: an object appears whole or not at all
//! (an S3 multipart upload is invisible until completed, and is aborted when an attempt fails; a
//! local file is written aside and renamed).
//!
//! Credentials come the way each store's SDKs find them: S3 from `AWS_*` variables, the shared
//! credentials/config files (`AWS_PROFILE`), web identity, container or instance metadata; GCS
//! from `GOOGLE_*` variables, application default credentials or the metadata server; Azure from
//! `AZURE_*` variables or managed identity. Explicit settings and `options` override them.
//!
//! Retrying a whole failed upload is the caller's job (with `sonde_core`'s backoff); the store client retries a
//! failed request only briefly, so that a dead server is noticed and counted.

use super::BuildError;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{
    BackoffConfig, ClientOptions, ObjectStore, PutMultipartOptions, PutOptions, RetryConfig,
    WriteMultipart,
};
use sonde_config::{ParquetConfig, StoreScheme};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncReadExt;

/// Where finished files go.
#[derive(Clone, Debug)]
pub struct Store {
    inner: Arc<dyn ObjectStore>,
    prefix: Vec<String>,
    /// The URL, for logs (holds no secret: credentials are never in it).
    pub url: String,
}

/// Why an upload attempt failed; the label is the `reason` of the retry counter.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error("cannot read the local file {path}: {source}")]
    Local {
        path: String,
        source: std::io::Error,
    },
    #[error("store refused the credentials: {0}")]
    Auth(object_store::Error),
    #[error("store error: {0}")]
    Store(object_store::Error),
    #[error("upload timed out after {0:?}")]
    Timeout(Duration),
}

impl UploadError {
    pub fn reason(&self) -> &'static str {
        match self {
            UploadError::Local { .. } => "local_io",
            UploadError::Auth(_) => "auth",
            UploadError::Store(_) => "store_error",
            UploadError::Timeout(_) => "timeout",
        }
    }
}

fn store_err(e: object_store::Error) -> UploadError {
    match e {
        object_store::Error::PermissionDenied { .. }
        | object_store::Error::Unauthenticated { .. } => UploadError::Auth(e),
        e => UploadError::Store(e),
    }
}

/// The HTTP client settings shared by the cloud stores: the upload timeouts, and plain HTTP
/// only when allowed.
fn client_options(cfg: &ParquetConfig) -> ClientOptions {
    ClientOptions::new()
        .with_timeout(cfg.upload.timeout.get())
        .with_connect_timeout(cfg.upload.connect_timeout.get())
        .with_allow_http(cfg.allow_http)
}

/// The store client's own retries: brief (two, within the upload timeout), so that a dead
/// server is noticed and counted; the exporter retries the whole upload.
fn retry_config(cfg: &ParquetConfig) -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
            base: 2.0,
        },
        max_retries: 2,
        retry_timeout: cfg.upload.timeout.get(),
    }
}

fn unknown_option(key: &str, source: object_store::Error) -> BuildError {
    BuildError::Option {
        key: key.to_string(),
        source,
    }
}

fn store_error(cfg: &ParquetConfig, source: object_store::Error) -> BuildError {
    BuildError::Store {
        url: cfg.url.clone(),
        source,
    }
}

/// `file://` (the part after the scheme is `rest`): a local directory, created if missing;
/// files are written aside and renamed.
fn local_store(rest: &str) -> Result<Arc<dyn ObjectStore>, BuildError> {
    let root = rest.trim_end_matches('/');
    let root = if root.is_empty() { "/" } else { root };
    let bad_dir = |e: &dyn std::fmt::Display| BuildError::Directory {
        path: root.into(),
        reason: e.to_string(),
    };
    std::fs::create_dir_all(root).map_err(|e| bad_dir(&e))?;
    let fs = LocalFileSystem::new_with_prefix(root)
        .map_err(|e| bad_dir(&e))?
        .with_automatic_cleanup(true);
    Ok(Arc::new(fs))
}

/// `s3://`: credentials and region from the environment, then from the shared AWS profile
/// files when the environment and the config have no keys, then the config's explicit
/// settings and `options`.
fn s3_store(cfg: &ParquetConfig) -> Result<Arc<dyn ObjectStore>, BuildError> {
    let mut b = AmazonS3Builder::from_env()
        .with_url(cfg.url.clone())
        .with_client_options(client_options(cfg))
        .with_retry(retry_config(cfg))
        .with_virtual_hosted_style_request(!cfg.path_style);
    let env_keys = std::env::var_os("AWS_ACCESS_KEY_ID").is_some();
    if cfg.access_key_id.is_none() && !env_keys {
        if let Some(p) = aws_profile() {
            b = with_aws_profile(b, p, cfg.region.is_none());
        }
    }
    if let Some(r) = &cfg.region {
        b = b.with_region(r.clone());
    }
    if let Some(e) = &cfg.endpoint {
        b = b.with_endpoint(e.clone());
    }
    if let Some(k) = &cfg.access_key_id {
        b = b.with_access_key_id(k.expose());
    }
    if let Some(s) = &cfg.secret_access_key {
        b = b.with_secret_access_key(s.expose());
    }
    if let Some(t) = &cfg.session_token {
        b = b.with_token(t.expose());
    }
    for (k, v) in &cfg.options {
        let key: AmazonS3ConfigKey = k.parse().map_err(|e| unknown_option(k, e))?;
        b = b.with_config(key, v.expose());
    }
    let s3 = b.build().map_err(|e| store_error(cfg, e))?;
    Ok(Arc::new(s3))
}

/// The profile's keys (both, or none) and session token; its region too when neither the
/// config (`no_region`) nor `AWS_REGION` / `AWS_DEFAULT_REGION` name one.
fn with_aws_profile(mut b: AmazonS3Builder, p: AwsProfile, no_region: bool) -> AmazonS3Builder {
    if let (Some(k), Some(s)) = (p.access_key_id, p.secret_access_key) {
        b = b.with_access_key_id(k).with_secret_access_key(s);
        if let Some(t) = p.session_token {
            b = b.with_token(t);
        }
    }
    if no_region
        && std::env::var_os("AWS_REGION").is_none()
        && std::env::var_os("AWS_DEFAULT_REGION").is_none()
    {
        if let Some(r) = p.region {
            b = b.with_region(r);
        }
    }
    b
}

/// `gs://`: credentials from the environment, then `options`.
fn gcs_store(cfg: &ParquetConfig) -> Result<Arc<dyn ObjectStore>, BuildError> {
    let mut b = GoogleCloudStorageBuilder::from_env()
        .with_url(cfg.url.clone())
        .with_client_options(client_options(cfg))
        .with_retry(retry_config(cfg));
    for (k, v) in &cfg.options {
        let key: GoogleConfigKey = k.parse().map_err(|e| unknown_option(k, e))?;
        b = b.with_config(key, v.expose());
    }
    let gcs = b.build().map_err(|e| store_error(cfg, e))?;
    Ok(Arc::new(gcs))
}

/// `az://` and `abfs(s)://`: credentials from the environment, then the endpoint and
/// `options`.
fn azure_store(cfg: &ParquetConfig) -> Result<Arc<dyn ObjectStore>, BuildError> {
    let mut b = MicrosoftAzureBuilder::from_env()
        .with_url(cfg.url.clone())
        .with_client_options(client_options(cfg))
        .with_retry(retry_config(cfg));
    if let Some(e) = &cfg.endpoint {
        b = b.with_endpoint(e.clone());
    }
    for (k, v) in &cfg.options {
        let key: AzureConfigKey = k.parse().map_err(|e| unknown_option(k, e))?;
        b = b.with_config(key, v.expose());
    }
    let az = b.build().map_err(|e| store_error(cfg, e))?;
    Ok(Arc::new(az))
}

impl Store {
    /// Builds the client the config describes. Fails on a URL or option the store does not
    /// understand; credentials are only checked by the first request.
    pub fn from_config(cfg: &ParquetConfig) -> Result<Store, BuildError> {
        let scheme =
            StoreScheme::of(&cfg.url).ok_or_else(|| BuildError::UnsupportedUrl(cfg.url.clone()))?;
        let rest = cfg.url.split_once("://").map(|x| x.1).unwrap_or("");
        // Past the bucket or container: s3://bucket/prefix, gs://bucket/prefix,
        // az://container/prefix, abfs(s)://container@account.host/prefix.
        let bucket_prefix = rest.split_once('/').map(|x| x.1).unwrap_or("");
        let (inner, prefix): (Arc<dyn ObjectStore>, &str) = match scheme {
            StoreScheme::File => (local_store(rest)?, ""),
            StoreScheme::S3 => (s3_store(cfg)?, bucket_prefix),
            StoreScheme::Gcs => (gcs_store(cfg)?, bucket_prefix),
            StoreScheme::Azure => (azure_store(cfg)?, bucket_prefix),
        };
        Ok(Store {
            inner,
            prefix: prefix
                .split('/')
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect(),
            url: cfg.url.clone(),
        })
    }

    /// The object path of `rel` (a rendered template) below the URL's prefix.
    pub fn key(&self, rel: &str) -> ObjectPath {
        ObjectPath::from_iter(
            self.prefix
                .iter()
                .map(String::as_str)
                .chain(rel.split('/').filter(|s| !s.is_empty())),
        )
    }

    /// Uploads the local file at `local` to `key` in one attempt. Returns the bytes sent.
    pub async fn upload(
        &self,
        local: &std::path::Path,
        key: &ObjectPath,
        part_size: usize,
        concurrency: usize,
    ) -> Result<u64, UploadError> {
        let io = |source| UploadError::Local {
            path: local.display().to_string(),
            source,
        };
        let mut file = tokio::fs::File::open(local).await.map_err(io)?;
        let len = file.metadata().await.map_err(io)?.len();
        if len <= part_size as u64 {
            let mut buf = Vec::with_capacity(len as usize);
            file.read_to_end(&mut buf).await.map_err(io)?;
            self.inner
                .put_opts(key, bytes::Bytes::from(buf).into(), PutOptions::default())
                .await
                .map_err(store_err)?;
            return Ok(len);
        }
        let upload = self
            .inner
            .put_multipart_opts(key, PutMultipartOptions::default())
            .await
            .map_err(store_err)?;
        // `object_store`'s writer: parts of `part_size` uploaded by up to `concurrency` tasks,
        // waited for before the next part is read, so at most that many parts are in memory.
        let mut writer = WriteMultipart::new_with_chunk_size(upload, part_size.max(1));
        let mut remaining = len;
        let sent: Result<(), UploadError> = async {
            while remaining > 0 {
                let n = remaining.min(part_size as u64) as usize;
                let mut buf = vec![0u8; n];
                file.read_exact(&mut buf).await.map_err(io)?;
                remaining -= n as u64;
                writer
                    .wait_for_capacity(concurrency.max(1))
                    .await
                    .map_err(store_err)?;
                writer.put(bytes::Bytes::from(buf));
            }
            Ok(())
        }
        .await;
        match sent {
            // `finish` aborts the upload itself when completing it fails.
            Ok(()) => writer.finish().await.map(|_| len).map_err(store_err),
            Err(e) => {
                // Best effort: parts of an aborted upload are never visible, but they cost
                // storage.
                let _ = tokio::time::timeout(Duration::from_secs(10), writer.abort()).await;
                Err(e)
            }
        }
    }
}

/// Credentials and region from the AWS shared files, for the profile `AWS_PROFILE` (default
/// `default`).
#[derive(Debug, Default, PartialEq)]
pub(crate) struct AwsProfile {
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub session_token: Option<String>,
    pub region: Option<String>,
}

fn aws_profile() -> Option<AwsProfile> {
    let home = std::env::var_os("HOME").map(std::path::PathBuf::from);
    let creds = std::env::var_os("AWS_SHARED_CREDENTIALS_FILE")
        .map(std::path::PathBuf::from)
        .or_else(|| home.as_ref().map(|h| h.join(".aws/credentials")));
    let config = std::env::var_os("AWS_CONFIG_FILE")
        .map(std::path::PathBuf::from)
        .or_else(|| home.as_ref().map(|h| h.join(".aws/config")));
    let profile = std::env::var("AWS_PROFILE").unwrap_or_else(|_| "default".into());
    let read = |p: Option<std::path::PathBuf>| p.and_then(|p| std::fs::read_to_string(p).ok());
    let p = parse_aws_profile(
        read(creds).as_deref().unwrap_or(""),
        read(config).as_deref().unwrap_or(""),
        &profile,
    );
    (p != AwsProfile::default()).then_some(p)
}

/// The `[profile]` section of the credentials file and `[profile NAME]` (or `[default]`) of
/// the config file.
pub(crate) fn parse_aws_profile(creds: &str, config: &str, profile: &str) -> AwsProfile {
    fn section<'a>(text: &'a str, names: &[String]) -> Vec<(&'a str, &'a str)> {
        let mut out = Vec::new();
        let mut inside = false;
        for line in text.lines() {
            let line = line.trim();
            if line.starts_with('#') || line.starts_with(';') || line.is_empty() {
                continue;
            }
            if let Some(h) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                inside = names.iter().any(|n| n == h.trim());
                continue;
            }
            if inside {
                if let Some((k, v)) = line.split_once('=') {
                    out.push((k.trim(), v.trim()));
                }
            }
        }
        out
    }
    let mut p = AwsProfile::default();
    for (k, v) in section(creds, &[profile.to_string()]) {
        match k {
            "aws_access_key_id" => p.access_key_id = Some(v.to_string()),
            "aws_secret_access_key" => p.secret_access_key = Some(v.to_string()),
            "aws_session_token" => p.session_token = Some(v.to_string()),
            _ => {}
        }
    }
    let names = if profile == "default" {
        vec!["default".to_string(), "profile default".to_string()]
    } else {
        vec![format!("profile {profile}")]
    };
    for (k, v) in section(config, &names) {
        if k == "region" {
            p.region = Some(v.to_string());
        }
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aws_profile_files_are_read_for_the_named_profile() {
        let creds = "[default]\naws_access_key_id = A\naws_secret_access_key = B\n\n[dev]\naws_access_key_id=C\naws_secret_access_key=D\naws_session_token=T\n";
        let config = "[default]\nregion = eu-west-1\n[profile dev]\n# comment\nregion=us-west-2\n";
        let d = parse_aws_profile(creds, config, "default");
        assert_eq!(d.access_key_id.as_deref(), Some("A"));
        assert_eq!(d.region.as_deref(), Some("eu-west-1"));
        let dev = parse_aws_profile(creds, config, "dev");
        assert_eq!(dev.secret_access_key.as_deref(), Some("D"));
        assert_eq!(dev.session_token.as_deref(), Some("T"));
        assert_eq!(dev.region.as_deref(), Some("us-west-2"));
        assert_eq!(
            parse_aws_profile(creds, config, "nope"),
            AwsProfile::default()
        );
    }

    #[test]
    fn keys_go_below_the_url_prefix() {
        let cfg = ParquetConfig {
            url: "s3://bucket/a/b/".into(),
            region: Some("us-east-1".into()),
            ..Default::default()
        };
        let s = Store::from_config(&cfg).unwrap();
        assert_eq!(s.key("traces/x.parquet").as_ref(), "a/b/traces/x.parquet");
        let dir = tempfile::tempdir().unwrap();
        let cfg = ParquetConfig {
            url: format!("file://{}", dir.path().display()),
            ..Default::default()
        };
        let s = Store::from_config(&cfg).unwrap();
        assert_eq!(s.key("logs/y.parquet").as_ref(), "logs/y.parquet");
    }

    #[test]
    fn unknown_store_options_are_refused() {
        let cfg = ParquetConfig {
            url: "s3://bucket/p".into(),
            options: [("no_such_option".to_string(), sonde_config::Secret::new("x"))].into(),
            ..Default::default()
        };
        let e = Store::from_config(&cfg).unwrap_err();
        assert!(e.to_string().contains("no_such_option"), "{e}");
    }
}
