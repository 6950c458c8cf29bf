//! Include/exclude name filters for devices, interfaces, mount points and file system types,
//! compiled once into `globset` sets when the source is built: `*` (any run of characters, also
//! none, `/` included), `?` (exactly one byte), `[abc]` classes and `{a,b}` alternatives.
//! A pattern that does not compile fails the source's start with the pattern named.

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use sonde_config::{FilesystemFilter, HostMetricsConfig, NameFilter};

/// Include and exclude patterns over one kind of name.
#[derive(Debug, Clone)]
pub struct Filter {
    /// `None` when no include pattern is given: everything is included.
    include: Option<GlobSet>,
    exclude: GlobSet,
}

fn set(patterns: &[String]) -> Result<GlobSet, globset::Error> {
    let mut b = GlobSetBuilder::new();
    for p in patterns {
        // Names are not paths here: `*` crosses `/` (mount points such as /var/lib/docker/*).
        b.add(GlobBuilder::new(p).literal_separator(false).build()?);
    }
    b.build()
}

impl Filter {
    pub fn new(include: &[String], exclude: &[String]) -> Result<Filter, globset::Error> {
        Ok(Filter {
            include: if include.is_empty() {
                None
            } else {
                Some(set(include)?)
            },
            exclude: set(exclude)?,
        })
    }

    /// Included when there is no include pattern or one matches, and no exclude pattern matches.
    pub fn includes(&self, text: &str) -> bool {
        self.include.as_ref().is_none_or(|s| s.is_match(text)) && !self.exclude.is_match(text)
    }

    fn of(f: &NameFilter) -> Result<Filter, globset::Error> {
        Filter::new(&f.include, &f.exclude)
    }
}

/// Which file systems are reported: by mount point and by type.
#[derive(Debug, Clone)]
pub struct FilesystemFilters {
    mount_points: Filter,
    fs_types: Filter,
}

impl FilesystemFilters {
    pub fn new(f: &FilesystemFilter) -> Result<Self, globset::Error> {
        Ok(FilesystemFilters {
            mount_points: Filter::new(&f.include_mount_points, &f.exclude_mount_points)?,
            fs_types: Filter::new(&f.include_fs_types, &f.exclude_fs_types)?,
        })
    }

    pub fn includes(&self, mount_point: &str, fs_type: &str) -> bool {
        self.mount_points.includes(mount_point) && self.fs_types.includes(fs_type)
    }
}

/// Every filter of a host metrics source, compiled.
#[derive(Debug, Clone)]
pub struct Filters {
    pub disk: Filter,
    pub network: Filter,
    pub filesystem: FilesystemFilters,
}

impl Filters {
    pub fn new(cfg: &HostMetricsConfig) -> Result<Filters, globset::Error> {
        Ok(Filters {
            disk: Filter::of(&cfg.disk)?,
            network: Filter::of(&cfg.network)?,
            filesystem: FilesystemFilters::new(&cfg.filesystem)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn glob_match(pattern: &str, text: &str) -> bool {
        Filter::new(&[pattern.to_string()], &[])
            .unwrap()
            .includes(text)
    }

    fn name_included(f: &NameFilter, name: &str) -> bool {
        Filter::of(f).unwrap().includes(name)
    }

    fn filesystem_included(f: &FilesystemFilter, mount_point: &str, fs_type: &str) -> bool {
        FilesystemFilters::new(f)
            .unwrap()
            .includes(mount_point, fs_type)
    }

    #[test]
    fn a_pattern_that_does_not_compile_is_an_error() {
        let e = Filter::new(&["sd[a".into()], &[]).unwrap_err();
        assert!(e.to_string().contains("sd[a"), "{e}");
    }

    #[test]
    fn classes_and_alternatives() {
        assert!(glob_match("sd[ab]", "sdb"));
        assert!(!glob_match("sd[ab]", "sdc"));
        assert!(glob_match("{eth,ens}*", "ens3"));
    }

    #[test]
    fn literal_star_and_question_mark() {
        assert!(glob_match("eth0", "eth0"));
        assert!(!glob_match("eth0", "eth01"));
        assert!(!glob_match("eth01", "eth0"));
        assert!(glob_match("loop*", "loop0"));
        assert!(glob_match("loop*", "loop"));
        assert!(!glob_match("loop*", "xloop0"));
        assert!(glob_match("*", ""));
        assert!(glob_match("", ""));
        assert!(!glob_match("", "a"));
        assert!(!glob_match("?", ""));
        assert!(glob_match("sd?", "sda"));
        assert!(!glob_match("sd?", "sda1"));
        assert!(glob_match("sd?*", "sda1"));
        assert!(glob_match(
            "/var/lib/docker/*",
            "/var/lib/docker/overlay2/x/merged"
        ));
        assert!(!glob_match("/var/lib/docker/*", "/var/lib/docker"));
    }

    #[test]
    fn star_backtracks() {
        assert!(glob_match("*a*b", "xxaxxab"));
        assert!(glob_match("a*b*c", "abbbc"));
        assert!(!glob_match("a*b*c", "abbb"));
        assert!(glob_match("**x", "x"));
        assert!(glob_match("*.?", "archive.tar.z"));
        assert!(!glob_match("*.??", "archive.tar.z"));
    }

    #[test]
    fn question_mark_is_one_byte_and_star_takes_any_text() {
        // globset matches bytes: a non-ASCII character is matched by `*`, or by one `?` per byte.
        assert!(glob_match("caf*", "café"));
        assert!(glob_match("*é", "ééé"));
        assert!(glob_match("caf??", "café"));
        assert!(!glob_match("caf?", "café"));
    }

    #[test]
    fn name_filter_include_then_exclude() {
        let f = NameFilter {
            include: vec![],
            exclude: vec!["loop*".into(), "ram*".into()],
        };
        assert!(name_included(&f, "vda"));
        assert!(!name_included(&f, "loop3"));
        let f = NameFilter {
            include: vec!["sd*".into(), "nvme*".into()],
            exclude: vec![],
        };
        assert!(name_included(&f, "nvme0n1"));
        assert!(!name_included(&f, "vda"));
        let f = NameFilter {
            include: vec!["eth*".into()],
            exclude: vec!["eth1".into()],
        };
        assert!(name_included(&f, "eth0"));
        assert!(!name_included(&f, "eth1"));
    }

    #[test]
    fn default_filesystem_filter_drops_pseudo_file_systems() {
        let f = FilesystemFilter::default();
        assert!(filesystem_included(&f, "/", "ext4"));
        assert!(filesystem_included(&f, "/home", "xfs"));
        assert!(!filesystem_included(&f, "/proc", "proc"));
        assert!(!filesystem_included(&f, "/dev/shm", "tmpfs"));
        assert!(!filesystem_included(&f, "/sys/fs/cgroup", "tmpfs"));
        assert!(!filesystem_included(&f, "/mnt/x", "squashfs"));
        assert!(!filesystem_included(
            &f,
            "/var/lib/docker/overlay2/abc/merged",
            "ext4"
        ));
    }
}
