//! Resource detectors: the attributes that describe where the data comes from, found once.
//!
//! Local detectors run when the processor is built:
//! - `env`: `OTEL_RESOURCE_ATTRIBUTES` (`k=v,k2=v2`, values percent-decoded, as the
//!   OpenTelemetry SDKs read it) and `OTEL_SERVICE_NAME` (→ `service.name`);
//! - `host`: `host.name`, `host.id`, `host.arch` ([`crate::host::HostFacts`] under `root_path`);
//! - `os`: `os.type`, `os.description`;
//! - `k8s`: the downward-API variables the sidecar and DaemonSet manifests set —
//!   `K8S_POD_NAME`, `K8S_POD_NAMESPACE` (or `K8S_NAMESPACE`), `K8S_POD_UID`, `K8S_NODE_NAME`,
//!   `K8S_CONTAINER_NAME`, `K8S_CLUSTER_NAME` → `k8s.pod.name`, `k8s.namespace.name`,
//!   `k8s.pod.uid`, `k8s.node.name`, `k8s.container.name`, `k8s.cluster.name`.
//!
//! Cloud detectors (`ec2`, `gcp`, `azure`) ask the instance metadata service in the
//! background: each request under `detect_timeout`, retried with backoff (1 s doubling to 60 s,
//! at most [`CLOUD_ATTEMPTS`] times) until one answers; their attributes apply from then on.
//! Nothing waits for them: a host without a metadata service starts at once and loses nothing.
//!
//! When two detectors find the same key, the one listed first wins (as in the Collector).

use super::resource::Encoded;
use super::ProcessorContext;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use sonde_config::{Detector, ResourceProcessorConfig};
use sonde_core::backoff::Backoff;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

/// How many times a cloud detector asks before it gives up.
pub const CLOUD_ATTEMPTS: u32 = 8;
/// The most of a metadata answer read.
const MAX_ANSWER: usize = 64 * 1024;
/// Where every cloud's instance metadata service answers.
const METADATA: &str = "http://169.254.169.254";

/// What the detectors found so far, in detector order (the first of a key wins).
#[derive(Debug, Default)]
pub struct Detected {
    /// One list per configured detector, in the configured order.
    by_detector: RwLock<Vec<(Detector, Vec<Encoded>)>>,
    /// The merged list the processor applies.
    merged: RwLock<Arc<Vec<Encoded>>>,
}

impl Detected {
    /// The attributes to add, first-wins merged.
    pub fn current(&self) -> Arc<Vec<Encoded>> {
        self.merged
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Every detector's findings as `(detector, key, value as written)`, for the admin server.
    pub fn describe(&self) -> Vec<(String, String)> {
        self.current()
            .iter()
            .map(|e| (e.key.clone(), e.display.clone()))
            .collect()
    }

    fn set(&self, detector: Detector, found: Vec<Encoded>) {
        let mut by = self.by_detector.write().unwrap_or_else(|p| p.into_inner());
        if let Some(slot) = by.iter_mut().find(|(d, _)| *d == detector) {
            slot.1 = found;
        }
        let mut merged: Vec<Encoded> = Vec::new();
        for (_, list) in by.iter() {
            for e in list {
                if !merged.iter().any(|m| m.key == e.key) {
                    merged.push(e.clone());
                }
            }
        }
        *self.merged.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(merged);
    }
}

/// The configured detectors of one processor.
pub struct DetectorSet {
    detectors: Vec<Detector>,
    root: std::path::PathBuf,
    timeout: Duration,
    metadata: String,
    name: Arc<str>,
    shutdown: CancellationToken,
}

impl DetectorSet {
    pub fn new(cfg: &ResourceProcessorConfig, cx: &ProcessorContext) -> DetectorSet {
        DetectorSet {
            detectors: cfg.detectors.clone(),
            root: cfg.root_path.clone(),
            timeout: cfg.detect_timeout.get(),
            metadata: cfg
                .metadata_url
                .clone()
                .unwrap_or_else(|| METADATA.to_string())
                .trim_end_matches('/')
                .to_string(),
            name: cx.name.clone(),
            shutdown: cx.shutdown.clone(),
        }
    }

    /// Runs the local detectors now and the cloud ones in the background (on the current
    /// runtime; without one, the cloud detectors do not run).
    pub fn start(self) -> Arc<Detected> {
        let detected = Arc::new(Detected {
            by_detector: RwLock::new(self.detectors.iter().map(|d| (*d, vec![])).collect()),
            merged: RwLock::default(),
        });
        for d in &self.detectors {
            if let Some(found) = local(*d, &self.root, |k| std::env::var(k).ok()) {
                detected.set(*d, found);
            }
        }
        let cloud: Vec<Detector> = self
            .detectors
            .iter()
            .copied()
            .filter(|d| matches!(d, Detector::Ec2 | Detector::Gcp | Detector::Azure))
            .collect();
        if let (false, Ok(rt)) = (cloud.is_empty(), tokio::runtime::Handle::try_current()) {
            let this = Arc::new(self);
            for d in cloud {
                rt.spawn(this.clone().ask_cloud(d, detected.clone()));
            }
        }
        detected
    }

    async fn ask_cloud(self: Arc<Self>, d: Detector, detected: Arc<Detected>) {
        let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        for attempt in 1..=CLOUD_ATTEMPTS {
            let found = match d {
                Detector::Ec2 => ec2(&client, &self.metadata, self.timeout).await,
                Detector::Gcp => gcp(&client, &self.metadata, self.timeout).await,
                Detector::Azure => azure(&client, &self.metadata, self.timeout).await,
                _ => return,
            };
            match found {
                Ok(attrs) => {
                    info!(processor = %self.name, detector = ?d, attributes = attrs.len(), "cloud resource detected");
                    detected.set(d, attrs);
                    return;
                }
                Err(e) => {
                    debug!(processor = %self.name, detector = ?d, attempt, error = %e, "cloud metadata not available");
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(backoff.next(None)) => {}
                _ = self.shutdown.cancelled() => return,
            }
        }
        info!(processor = %self.name, detector = ?d, attempts = CLOUD_ATTEMPTS, "no cloud metadata service answered; this detector adds nothing");
    }
}

/// The attributes of a local detector (`None` for a cloud one); `env` reads variables.
pub fn local(
    d: Detector,
    root: &std::path::Path,
    env: impl Fn(&str) -> Option<String>,
) -> Option<Vec<Encoded>> {
    let s = Encoded::string;
    Some(match d {
        Detector::Env => {
            let mut out: Vec<Encoded> = Vec::new();
            if let Some(name) = env("OTEL_SERVICE_NAME").filter(|n| !n.is_empty()) {
                out.push(s("service.name", &name));
            }
            for (k, v) in
                parse_resource_attributes(&env("OTEL_RESOURCE_ATTRIBUTES").unwrap_or_default())
            {
                if !out.iter().any(|e| e.key == k) {
                    out.push(s(&k, &v));
                }
            }
            out
        }
        Detector::Host => {
            let f = crate::host::HostFacts::read(root);
            let mut out = Vec::new();
            out.extend(f.name.as_deref().map(|n| s("host.name", n)));
            out.extend(f.id.as_deref().map(|i| s("host.id", i)));
            out.push(s("host.arch", &f.arch));
            out
        }
        Detector::Os => {
            let f = crate::host::HostFacts::read(root);
            let mut out = vec![s("os.type", "linux")];
            out.extend(f.os_description.as_deref().map(|d| s("os.description", d)));
            out
        }
        Detector::K8s => [
            ("K8S_POD_NAME", "k8s.pod.name"),
            ("K8S_POD_NAMESPACE", "k8s.namespace.name"),
            ("K8S_NAMESPACE", "k8s.namespace.name"),
            ("K8S_POD_UID", "k8s.pod.uid"),
            ("K8S_NODE_NAME", "k8s.node.name"),
            ("K8S_CONTAINER_NAME", "k8s.container.name"),
            ("K8S_CLUSTER_NAME", "k8s.cluster.name"),
        ]
        .iter()
        .filter_map(|(var, key)| env(var).filter(|v| !v.is_empty()).map(|v| (*key, v)))
        .fold(Vec::new(), |mut out, (key, v)| {
            if !out.iter().any(|e: &Encoded| e.key == key) {
                out.push(s(key, &v));
            }
            out
        }),
        Detector::Ec2 | Detector::Gcp | Detector::Azure => return None,
    })
}

/// `OTEL_RESOURCE_ATTRIBUTES`: comma-separated `key=value` pairs, percent-encoded; a malformed
/// pair is skipped (the SDKs' behaviour), the rest is kept.
pub fn parse_resource_attributes(text: &str) -> Vec<(String, String)> {
    text.split(',')
        .filter_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            let (k, v) = (percent_decode(k.trim())?, percent_decode(v.trim())?);
            (!k.is_empty()).then_some((k, v))
        })
        .collect()
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

type HttpClient = Client<hyper_util::client::legacy::connect::HttpConnector, Empty<Bytes>>;

/// One request to a metadata service, under `timeout`, its answer bounded.
async fn ask(
    client: &HttpClient,
    method: http::Method,
    url: &str,
    headers: &[(&str, &str)],
    timeout: Duration,
) -> Result<String, String> {
    let mut req = http::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(Empty::new()).map_err(|e| e.to_string())?;
    let work = async {
        let resp = client.request(req).await.map_err(|e| e.to_string())?;
        if !resp.status().is_success() {
            return Err(format!("{url} answered {}", resp.status()));
        }
        let body = Limited::new(resp.into_body(), MAX_ANSWER)
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        String::from_utf8(body.to_vec()).map_err(|_| format!("{url}: not UTF-8"))
    };
    tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| format!("{url}: no answer within {timeout:?}"))?
}

fn json_str<'a>(v: &'a serde_json::Value, key: &str) -> Option<&'a str> {
    v.get(key)
        .and_then(|x| x.as_str())
        .filter(|x| !x.is_empty())
}

/// AWS EC2, IMDSv2: a session token, then the instance identity document.
async fn ec2(client: &HttpClient, base: &str, timeout: Duration) -> Result<Vec<Encoded>, String> {
    let token = ask(
        client,
        http::Method::PUT,
        &format!("{base}/latest/api/token"),
        &[("X-aws-ec2-metadata-token-ttl-seconds", "60")],
        timeout,
    )
    .await?;
    let auth = [("X-aws-ec2-metadata-token", token.trim())];
    let doc = ask(
        client,
        http::Method::GET,
        &format!("{base}/latest/dynamic/instance-identity/document"),
        &auth,
        timeout,
    )
    .await?;
    let doc: serde_json::Value = serde_json::from_str(&doc).map_err(|e| e.to_string())?;
    let s = Encoded::string;
    let mut out = vec![s("cloud.provider", "aws"), s("cloud.platform", "aws_ec2")];
    for (json, key) in [
        ("accountId", "cloud.account.id"),
        ("region", "cloud.region"),
        ("availabilityZone", "cloud.availability_zone"),
        ("instanceId", "host.id"),
        ("instanceType", "host.type"),
        ("imageId", "host.image.id"),
    ] {
        out.extend(json_str(&doc, json).map(|v| s(key, v)));
    }
    if let Ok(name) = ask(
        client,
        http::Method::GET,
        &format!("{base}/latest/meta-data/hostname"),
        &auth,
        timeout,
    )
    .await
    {
        out.push(s("host.name", name.trim()));
    }
    Ok(out)
}

/// Google Compute Engine: the instance's metadata and the project id.
async fn gcp(client: &HttpClient, base: &str, timeout: Duration) -> Result<Vec<Encoded>, String> {
    let flavor = [("Metadata-Flavor", "Google")];
    let instance = ask(
        client,
        http::Method::GET,
        &format!("{base}/computeMetadata/v1/instance/?recursive=true"),
        &flavor,
        timeout,
    )
    .await?;
    let project = ask(
        client,
        http::Method::GET,
        &format!("{base}/computeMetadata/v1/project/project-id"),
        &flavor,
        timeout,
    )
    .await?;
    let v: serde_json::Value = serde_json::from_str(&instance).map_err(|e| e.to_string())?;
    let last = |path: &str| path.rsplit('/').next().unwrap_or(path).to_string();
    let s = Encoded::string;
    let mut out = vec![
        s("cloud.provider", "gcp"),
        s("cloud.platform", "gcp_compute_engine"),
        s("cloud.account.id", project.trim()),
    ];
    if let Some(zone) = json_str(&v, "zone").map(last) {
        if let Some((region, _)) = zone.rsplit_once('-') {
            out.push(s("cloud.region", region));
        }
        out.push(s("cloud.availability_zone", &zone));
    }
    let id = v.get("id").map(|id| match id {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    });
    out.extend(id.map(|id| s("host.id", &id)));
    out.extend(json_str(&v, "name").map(|n| s("host.name", n)));
    out.extend(json_str(&v, "machineType").map(|m| s("host.type", &last(m))));
    Ok(out)
}

/// Azure virtual machines: the instance metadata's compute section.
async fn azure(client: &HttpClient, base: &str, timeout: Duration) -> Result<Vec<Encoded>, String> {
    let compute = ask(
        client,
        http::Method::GET,
        &format!("{base}/metadata/instance/compute?api-version=2021-12-13&format=json"),
        &[("Metadata", "true")],
        timeout,
    )
    .await?;
    let v: serde_json::Value = serde_json::from_str(&compute).map_err(|e| e.to_string())?;
    let s = Encoded::string;
    let mut out = vec![
        s("cloud.provider", "azure"),
        s("cloud.platform", "azure_vm"),
    ];
    for (json, key) in [
        ("location", "cloud.region"),
        ("subscriptionId", "cloud.account.id"),
        ("vmId", "host.id"),
        ("name", "host.name"),
        ("vmSize", "host.type"),
        ("resourceGroupName", "azure.resourcegroup.name"),
        ("vmScaleSetName", "azure.vm.scaleset.name"),
    ] {
        out.extend(json_str(&v, json).map(|x| s(key, x)));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(v: &[Encoded]) -> Vec<(&str, &str)> {
        v.iter()
            .map(|e| (e.key.as_str(), e.display.as_str()))
            .collect()
    }

    #[test]
    fn otel_resource_attributes_are_parsed_as_the_sdks_do() {
        assert_eq!(
            parse_resource_attributes("a=1, b = x%2Cy ,broken,=v,c=%E2%9C%93,d=%zz"),
            vec![
                ("a".into(), "1".into()),
                ("b".into(), "x,y".into()),
                ("c".into(), "✓".into())
            ]
        );
    }

    #[test]
    fn env_and_k8s_detectors_read_their_variables_first_one_wins() {
        let vars = |k: &str| match k {
            "OTEL_SERVICE_NAME" => Some("checkout".to_string()),
            "OTEL_RESOURCE_ATTRIBUTES" => {
                Some("service.name=ignored,deployment.environment.name=prod".into())
            }
            "K8S_POD_NAME" => Some("web-1".into()),
            "K8S_POD_NAMESPACE" => Some("shop".into()),
            "K8S_NAMESPACE" => Some("other".into()),
            _ => None,
        };
        let root = std::path::Path::new("/");
        let env = local(Detector::Env, root, vars).unwrap();
        assert_eq!(
            keys(&env),
            [
                ("service.name", "checkout"),
                ("deployment.environment.name", "prod")
            ]
        );
        let k8s = local(Detector::K8s, root, vars).unwrap();
        assert_eq!(
            keys(&k8s),
            [("k8s.pod.name", "web-1"), ("k8s.namespace.name", "shop")]
        );
        assert!(local(Detector::Ec2, root, vars).is_none());
        let os = local(Detector::Os, root, vars).unwrap();
        assert_eq!(os[0].key, "os.type");
    }

    #[test]
    fn the_first_detector_listed_wins_a_key() {
        let d = Detected {
            by_detector: RwLock::new(vec![(Detector::Env, vec![]), (Detector::Host, vec![])]),
            merged: RwLock::default(),
        };
        d.set(
            Detector::Host,
            vec![Encoded::string("host.name", "from-host")],
        );
        d.set(
            Detector::Env,
            vec![Encoded::string("host.name", "from-env")],
        );
        assert_eq!(keys(&d.current()), [("host.name", "from-env")]);
    }
}
