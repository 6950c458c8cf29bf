//! Who this host is: the facts every component that describes the host shares — the host
//! metrics' resource, the file source's resource, the internal metrics, and the `resource`
//! processor's `host` and `os` detectors. Read once, from the host's own files under `root`
//! (`/` on a host; the mounted host root in a container, so the host's name and OS are reported
//! rather than the container's), with `uname(2)` for what only the running kernel knows.
//!
//! Why not `sysinfo`: three uname facts were all Sonde read from it, and it cannot read another
//! root; `rustix` (already here for inotify and `/proc` reads) calls uname without `unsafe`.

use std::path::Path;

/// The identity of the host under `root`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostFacts {
    /// `host.name`: `etc/hostname` under a root other than `/`, else the kernel's node name.
    pub name: Option<String>,
    /// `host.id`: `etc/machine-id`.
    pub id: Option<String>,
    /// `host.arch`, in the semantic conventions' words (`amd64`, `arm64`, …).
    pub arch: String,
    /// `os.description`: `PRETTY_NAME` of `os-release`, else the kernel's name and release.
    pub os_description: Option<String>,
    /// `os.version`: the kernel release.
    pub kernel_release: String,
}

impl HostFacts {
    pub fn read(root: &Path) -> HostFacts {
        let uname = rustix::system::uname();
        let text = |b: &std::ffi::CStr| b.to_string_lossy().trim().to_owned();
        let in_container = root != Path::new("/");
        let name = in_container
            .then(|| read_trimmed(&root.join("etc/hostname")))
            .flatten()
            .or_else(|| Some(text(uname.nodename())).filter(|n| !n.is_empty()));
        let pretty = ["etc/os-release", "usr/lib/os-release"]
            .iter()
            .find_map(|p| {
                std::fs::read_to_string(root.join(p))
                    .ok()
                    .and_then(|t| os_release_pretty_name(&t).map(str::to_owned))
            });
        let kernel = format!("{} {}", text(uname.sysname()), text(uname.release()));
        let machine = text(uname.machine());
        HostFacts {
            name,
            id: read_trimmed(&root.join("etc/machine-id")),
            arch: semconv_arch(if machine.is_empty() {
                std::env::consts::ARCH
            } else {
                &machine
            })
            .to_owned(),
            os_description: pretty.or_else(|| (!in_container).then_some(kernel)),
            kernel_release: text(uname.release()),
        }
    }

    /// The facts of this machine's own root.
    pub fn local() -> HostFacts {
        HostFacts::read(Path::new("/"))
    }
}

fn read_trimmed(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

/// semconv `host.arch` values from `uname -m`.
pub fn semconv_arch(machine: &str) -> &str {
    match machine {
        "x86_64" | "amd64" => "amd64",
        "aarch64" | "arm64" => "arm64",
        "i386" | "i486" | "i586" | "i686" | "x86" => "x86",
        "ppc64" | "ppc64le" => "ppc64",
        "ppc" => "ppc32",
        m if m.starts_with("arm") => "arm32",
        m => m,
    }
}

/// `PRETTY_NAME` of an `os-release` file, unquoted.
pub fn os_release_pretty_name(text: &str) -> Option<&str> {
    text.lines().find_map(|line| {
        let value = line.trim().strip_prefix("PRETTY_NAME=")?;
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
            .unwrap_or(value);
        (!value.is_empty()).then_some(value)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arch_names_follow_semconv() {
        assert_eq!(semconv_arch("x86_64"), "amd64");
        assert_eq!(semconv_arch("aarch64"), "arm64");
        assert_eq!(semconv_arch("armv7l"), "arm32");
        assert_eq!(semconv_arch("i686"), "x86");
        assert_eq!(semconv_arch("s390x"), "s390x");
    }

    #[test]
    fn os_release() {
        assert_eq!(
            os_release_pretty_name("NAME=\"Debian\"\nPRETTY_NAME=\"Debian GNU/Linux 12\"\n"),
            Some("Debian GNU/Linux 12")
        );
        assert_eq!(os_release_pretty_name("PRETTY_NAME=Alpine"), Some("Alpine"));
        assert_eq!(os_release_pretty_name("PRETTY_NAME=\"\"\nNAME=x"), None);
    }

    #[test]
    fn a_mounted_root_names_the_host_by_its_files() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("etc")).unwrap();
        std::fs::write(d.path().join("etc/hostname"), "node-7\n").unwrap();
        std::fs::write(d.path().join("etc/machine-id"), "abc123\n").unwrap();
        std::fs::write(
            d.path().join("etc/os-release"),
            "PRETTY_NAME=\"Test OS 1\"\n",
        )
        .unwrap();
        let f = HostFacts::read(d.path());
        assert_eq!(f.name.as_deref(), Some("node-7"));
        assert_eq!(f.id.as_deref(), Some("abc123"));
        assert_eq!(f.os_description.as_deref(), Some("Test OS 1"));
        // Without os-release under a mounted root, the container's kernel does not stand in.
        std::fs::remove_file(d.path().join("etc/os-release")).unwrap();
        assert_eq!(HostFacts::read(d.path()).os_description, None);
        let local = HostFacts::local();
        assert!(local.name.is_some() && !local.arch.is_empty());
    }
}
