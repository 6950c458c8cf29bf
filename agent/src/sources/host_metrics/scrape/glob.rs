//! Include/exclude name filters for devices, interfaces, mount points and file system types:
//! glob patterns with `*` (any run of characters, also none) and `?` (exactly one character).
//! Everything else matches itself; there are no character classes and no escapes.

use sonde_config::{FilesystemFilter, NameFilter};

/// Whether `text` matches the whole of `pattern`.
///
/// Iterative with one backtrack point (the last `*`), so it runs in O(pattern × text) at worst
/// and never recurses. Works on characters, not bytes, so `?` matches one non-ASCII character.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let (mut p, mut t) = (0usize, 0usize);
    // After a `*`: where the pattern resumes, and where in the text that attempt started.
    let mut star: Option<(usize, usize)> = None;
    while let Some(tc) = text[t..].chars().next() {
        match pattern[p..].chars().next() {
            Some('*') => {
                p += 1;
                star = Some((p, t));
                continue;
            }
            Some('?') => {
                p += 1;
                t += tc.len_utf8();
                continue;
            }
            Some(pc) if pc == tc => {
                p += pc.len_utf8();
                t += tc.len_utf8();
                continue;
            }
            _ => {}
        }
        // Mismatch: let the last `*` swallow one more character, or fail.
        let Some((sp, st)) = star else { return false };
        let Some(skipped) = text[st..].chars().next() else {
            return false;
        };
        let st = st + skipped.len_utf8();
        star = Some((sp, st));
        p = sp;
        t = st;
    }
    pattern[p..].chars().all(|c| c == '*')
}

fn any_match(patterns: &[String], text: &str) -> bool {
    patterns.iter().any(|p| glob_match(p, text))
}

/// Included when `include` is empty or one of its patterns matches, and no `exclude` pattern
/// matches.
fn included(include: &[String], exclude: &[String], text: &str) -> bool {
    (include.is_empty() || any_match(include, text)) && !any_match(exclude, text)
}

pub fn name_included(filter: &NameFilter, name: &str) -> bool {
    included(&filter.include, &filter.exclude, name)
}

pub fn filesystem_included(filter: &FilesystemFilter, mount_point: &str, fs_type: &str) -> bool {
    included(
        &filter.include_mount_points,
        &filter.exclude_mount_points,
        mount_point,
    ) && included(&filter.include_fs_types, &filter.exclude_fs_types, fs_type)
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn question_mark_is_one_character_not_one_byte() {
        assert!(glob_match("caf?", "café"));
        assert!(glob_match("*é", "ééé"));
        assert!(!glob_match("caf??", "café"));
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
