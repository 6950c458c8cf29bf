//! `type = "host_metrics"`: which scrapers run and how often, the naming conventions, and the
//! filters on file systems, disks, network interfaces and processes. Plain data with defaults;
//! the scrapers live in `agent/src/sources/host_metrics/`.

use crate::problem::Problems;
use crate::sources::periodic::check_interval;
use crate::units::Duration;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// `type = "host_metrics"`: CPU, memory, load, disks, filesystems, network, paging, processes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HostMetricsConfig {
    /// How often to scrape.
    pub interval: Duration,
    /// Which scrapers run.
    pub collectors: Vec<HostCollector>,
    /// Metric names and attributes: current semantic conventions, or the Collector's
    /// hostmetrics receiver defaults.
    pub conventions: Conventions,
    /// The host's root file system as seen by the agent (`/hostfs` in a container).
    pub root_path: PathBuf,
    pub filesystem: FilesystemFilter,
    pub disk: NameFilter,
    pub network: NameFilter,
    pub process: ProcessConfig,
}

impl Default for HostMetricsConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(10),
            collectors: HostCollector::DEFAULT.to_vec(),
            conventions: Conventions::Semconv,
            root_path: PathBuf::from("/"),
            filesystem: FilesystemFilter::default(),
            disk: NameFilter {
                include: vec![],
                exclude: vec!["loop*".into(), "ram*".into()],
            },
            network: NameFilter::default(),
            process: ProcessConfig::default(),
        }
    }
}

impl HostMetricsConfig {
    /// What is wrong with these settings, each with its key below the source.
    pub fn problems(&self) -> Problems {
        let mut out = Problems::default();
        check_interval(self.interval, &mut out);
        out
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HostCollector {
    Cpu,
    Memory,
    Load,
    Disk,
    Filesystem,
    Network,
    Paging,
    Processes,
    Uptime,
    /// Per-process metrics for the top N processes (off by default).
    Process,
}

impl HostCollector {
    pub const DEFAULT: [HostCollector; 9] = [
        HostCollector::Cpu,
        HostCollector::Memory,
        HostCollector::Load,
        HostCollector::Disk,
        HostCollector::Filesystem,
        HostCollector::Network,
        HostCollector::Paging,
        HostCollector::Processes,
        HostCollector::Uptime,
    ];
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Conventions {
    /// Current OpenTelemetry semantic conventions (`cpu.mode`, `system.memory.state`, …).
    Semconv,
    /// The OpenTelemetry Collector hostmetrics receiver's default names (`state`, `device`, …).
    Collector,
}

/// Include/exclude glob patterns (`*` and `?`) on a name. Empty `include` means everything.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NameFilter {
    pub include: Vec<String>,
    pub exclude: Vec<String>,
}

/// Which file systems are reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FilesystemFilter {
    pub include_mount_points: Vec<String>,
    pub exclude_mount_points: Vec<String>,
    pub include_fs_types: Vec<String>,
    pub exclude_fs_types: Vec<String>,
}

impl Default for FilesystemFilter {
    fn default() -> Self {
        Self {
            include_mount_points: vec![],
            exclude_mount_points: vec![
                "/proc*".into(),
                "/sys*".into(),
                "/dev*".into(),
                "/run/credentials*".into(),
                "/var/lib/docker/*".into(),
                "/var/lib/containerd/*".into(),
                "/snap/*".into(),
            ],
            include_fs_types: vec![],
            exclude_fs_types: [
                "autofs",
                "binfmt_misc",
                "bpf",
                "cgroup",
                "cgroup2",
                "configfs",
                "debugfs",
                "devpts",
                "devtmpfs",
                "fusectl",
                "hugetlbfs",
                "mqueue",
                "nsfs",
                "overlay",
                "proc",
                "procfs",
                "pstore",
                "rpc_pipefs",
                "securityfs",
                "selinuxfs",
                "squashfs",
                "sysfs",
                "tracefs",
                "nfsd",
                "fuse.lxcfs",
                "ramfs",
            ]
            .into_iter()
            .map(String::from)
            .collect(),
        }
    }
}

/// Per-process metrics, limited to the top N processes so a scrape stays small.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProcessConfig {
    pub top_n: usize,
    pub by: ProcessRank,
}

impl Default for ProcessConfig {
    fn default() -> Self {
        Self {
            top_n: 10,
            by: ProcessRank::Cpu,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProcessRank {
    Cpu,
    Memory,
}
