//! Kubernetes resource attributes from the path of a container log, as the kubelet lays them
//! out: `/var/log/pods/<namespace>_<pod>_<uid>/<container>/<restart>.log`, rotated to
//! `<restart>.log.<timestamp>` (and compressed, which the tailer skips). The names follow the
//! OpenTelemetry semantic conventions. Nothing here reads a file: the path is all there is.

use crate::sources::kv_str;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use std::path::Path;

/// `k8s.namespace.name`, `k8s.pod.name`, `k8s.pod.uid`, `k8s.container.name` and
/// `k8s.container.restart_count` of a pod log path; `None` when the path is not laid out as the
/// kubelet's (`…/pods/<ns>_<pod>_<uid>/<container>/<n>.log[.<suffix>]`).
pub fn pod_log_attributes(path: &Path) -> Option<Vec<KeyValue>> {
    let mut parts = path.iter().rev().map(|p| p.to_str());
    let (file, container, pod_dir, pods) = (
        parts.next()??,
        parts.next()??,
        parts.next()??,
        parts.next()??,
    );
    if pods != "pods" || container.is_empty() {
        return None;
    }
    let (restart, rest) = file.split_once(".log")?;
    if restart.is_empty()
        || !restart.bytes().all(|b| b.is_ascii_digit())
        || !(rest.is_empty() || rest.starts_with('.'))
    {
        return None;
    }
    let restart: i64 = restart.parse().ok()?;
    // Namespaces and pod names are DNS names: no `_`; the uid is the rest.
    let mut ids = pod_dir.splitn(3, '_');
    let (ns, pod, uid) = (ids.next()?, ids.next()?, ids.next()?);
    if ns.is_empty() || pod.is_empty() || uid.is_empty() {
        return None;
    }
    Some(vec![
        kv_str("k8s.namespace.name", ns),
        kv_str("k8s.pod.name", pod),
        kv_str("k8s.pod.uid", uid),
        kv_str("k8s.container.name", container),
        KeyValue {
            key: "k8s.container.restart_count".into(),
            value: Some(AnyValue {
                value: Some(any_value::Value::IntValue(restart)),
            }),
            ..Default::default()
        },
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(attrs: &[KeyValue]) -> Vec<(String, String)> {
        attrs
            .iter()
            .map(|a| {
                let v = match a.value.as_ref().and_then(|v| v.value.as_ref()) {
                    Some(any_value::Value::StringValue(s)) => s.clone(),
                    Some(any_value::Value::IntValue(i)) => format!("int:{i}"),
                    other => format!("{other:?}"),
                };
                (a.key.clone(), v)
            })
            .collect()
    }

    #[test]
    fn kubelet_paths_give_the_pod_and_container() {
        let a = pod_log_attributes(Path::new(
            "/var/log/pods/kube-system_coredns-5d78c9869d-x7k2p_0b3c1a5e-8f2d-4c1b-9a7e-2d4f6b8c0e1a/coredns/3.log",
        ))
        .unwrap();
        assert_eq!(
            strings(&a),
            [
                ("k8s.namespace.name".into(), "kube-system".into()),
                ("k8s.pod.name".into(), "coredns-5d78c9869d-x7k2p".into()),
                (
                    "k8s.pod.uid".into(),
                    "0b3c1a5e-8f2d-4c1b-9a7e-2d4f6b8c0e1a".into()
                ),
                ("k8s.container.name".into(), "coredns".into()),
                ("k8s.container.restart_count".into(), "int:3".into()),
            ]
        );
    }

    #[test]
    fn rotated_files_keep_their_attributes() {
        let live = pod_log_attributes(Path::new("/var/log/pods/ns_p_u/c/0.log")).unwrap();
        let rotated =
            pod_log_attributes(Path::new("/var/log/pods/ns_p_u/c/0.log.20261207-101010")).unwrap();
        assert_eq!(live, rotated);
    }

    #[test]
    fn other_paths_give_nothing() {
        for p in [
            "/var/log/app.log",
            "/var/log/pods/ns_p_u/c/x.log",
            "/var/log/pods/ns_p/c/0.log",
            "/var/log/pods/ns__u/c/0.log",
            "/var/log/other/ns_p_u/c/0.log",
            "/var/log/pods/ns_p_u/c/0.logs",
            "0.log",
        ] {
            assert!(pod_log_attributes(Path::new(p)).is_none(), "{p}");
        }
    }
}
