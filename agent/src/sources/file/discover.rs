//! Finding the files to tail: `include` patterns are walked from their literal base directory
//! (as deep as the pattern reaches, or any depth under `**`), `exclude` patterns then remove
//! paths. Only regular files (or symlinks to them) are candidates; anything else that matches
//! (a directory, a FIFO, a socket, a device) is reported once so the tailer can say why it is
//! not read. Never opens a file: that is the tailer's job.

use globset::{Glob, GlobBuilder, GlobMatcher, GlobSet, GlobSetBuilder};
use std::collections::HashSet;
use std::fs::Metadata;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Component, Path, PathBuf};

/// The deepest a `**` pattern is followed below its base directory.
const MAX_DEPTH: usize = 32;

/// A file that matched.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub path: PathBuf,
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
}

/// Why a matching path is not read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Skip {
    Directory,
    Fifo,
    Socket,
    Device,
    /// `stat` failed (a dangling symlink, a permission problem on the way).
    Unreachable,
}

impl Skip {
    pub fn as_str(self) -> &'static str {
        match self {
            Skip::Directory => "directory",
            Skip::Fifo => "fifo",
            Skip::Socket => "socket",
            Skip::Device => "device",
            Skip::Unreachable => "unreachable",
        }
    }
}

struct Pattern {
    base: PathBuf,
    /// Components below `base` the pattern spans; `None` under `**`.
    depth: Option<usize>,
    matcher: GlobMatcher,
}

pub struct Discover {
    include: Vec<Pattern>,
    exclude: GlobSet,
}

/// A problem met while walking (an unreadable directory).
#[derive(Debug)]
pub struct WalkError {
    pub path: PathBuf,
    pub error: std::io::Error,
}

impl Discover {
    /// Compiles the patterns (validated by the config already; a bad one is an error here too).
    pub fn new(include: &[String], exclude: &[String]) -> Result<Self, globset::Error> {
        let mut inc = Vec::new();
        for p in include {
            let glob = GlobBuilder::new(p).literal_separator(true).build()?;
            let (base, rest) = split_base(Path::new(p));
            let depth = if rest.iter().any(|c| c == "**") {
                None
            } else {
                Some(rest.len())
            };
            inc.push(Pattern {
                base,
                depth,
                matcher: glob.compile_matcher(),
            });
        }
        let mut ex = GlobSetBuilder::new();
        for p in exclude {
            ex.add(Glob::new(p)?);
        }
        Ok(Discover {
            include: inc,
            exclude: ex.build()?,
        })
    }

    /// The literal base directory of every pattern (where new files appear).
    pub fn bases(&self) -> impl Iterator<Item = PathBuf> + '_ {
        self.include.iter().map(|p| {
            if p.depth == Some(0) {
                p.base.parent().map(Path::to_path_buf).unwrap_or_default()
            } else {
                p.base.clone()
            }
        })
    }

    /// Walks every pattern. Files go to `found` (each path once), matching non-files to
    /// `skipped`, walk failures to `errors`.
    pub fn scan(
        &self,
        found: &mut Vec<Candidate>,
        skipped: &mut Vec<(PathBuf, Skip)>,
        errors: &mut Vec<WalkError>,
    ) {
        let mut seen = HashSet::new();
        for pat in &self.include {
            let max = pat.depth.unwrap_or(MAX_DEPTH);
            if pat.depth == Some(0) {
                // A literal path.
                self.consider(&pat.base, pat, found, skipped, &mut seen);
                continue;
            }
            self.walk(&pat.base, 1, max, pat, found, skipped, errors, &mut seen);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn walk(
        &self,
        dir: &Path,
        level: usize,
        max: usize,
        pat: &Pattern,
        found: &mut Vec<Candidate>,
        skipped: &mut Vec<(PathBuf, Skip)>,
        errors: &mut Vec<WalkError>,
        seen: &mut HashSet<PathBuf>,
    ) {
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(error) => {
                errors.push(WalkError {
                    path: dir.to_path_buf(),
                    error,
                });
                return;
            }
        };
        let mut paths: Vec<(PathBuf, bool)> = entries
            .filter_map(|e| e.ok())
            .map(|e| {
                let is_dir = e.file_type().map(|t| t.is_dir()).unwrap_or(false);
                (e.path(), is_dir)
            })
            .collect();
        // A stable order: files are opened oldest name first within a directory.
        paths.sort();
        for (path, is_dir) in paths {
            self.consider(&path, pat, found, skipped, seen);
            if is_dir && level < max {
                self.walk(&path, level + 1, max, pat, found, skipped, errors, seen);
            }
        }
    }

    fn consider(
        &self,
        path: &Path,
        pat: &Pattern,
        found: &mut Vec<Candidate>,
        skipped: &mut Vec<(PathBuf, Skip)>,
        seen: &mut HashSet<PathBuf>,
    ) {
        if !pat.matcher.is_match(path) || self.exclude.is_match(path) {
            return;
        }
        if !seen.insert(path.to_path_buf()) {
            return;
        }
        // Follows symlinks: a link to a log file is tailed as that file.
        match std::fs::metadata(path) {
            Ok(m) => match kind(&m) {
                None => found.push(Candidate {
                    path: path.to_path_buf(),
                    dev: m.dev(),
                    ino: m.ino(),
                    size: m.len(),
                }),
                Some(skip) => skipped.push((path.to_path_buf(), skip)),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // Gone between listing and stat, or a dangling symlink.
                if std::fs::symlink_metadata(path).is_ok() {
                    skipped.push((path.to_path_buf(), Skip::Unreachable));
                }
            }
            Err(_) => skipped.push((path.to_path_buf(), Skip::Unreachable)),
        }
    }
}

/// `None` for a regular file, else why it is skipped.
pub fn kind(m: &Metadata) -> Option<Skip> {
    let t = m.file_type();
    if t.is_file() {
        None
    } else if t.is_dir() {
        Some(Skip::Directory)
    } else if t.is_fifo() {
        Some(Skip::Fifo)
    } else if t.is_socket() {
        Some(Skip::Socket)
    } else {
        Some(Skip::Device)
    }
}

/// Splits a pattern into its literal leading directories and the components from the first
/// one holding a glob character.
fn split_base(p: &Path) -> (PathBuf, Vec<String>) {
    let mut base = PathBuf::new();
    let mut rest = Vec::new();
    for c in p.components() {
        let s = c.as_os_str().to_string_lossy();
        let literal = !s.contains(['*', '?', '[', '{']);
        if rest.is_empty() && literal {
            match c {
                Component::RootDir => base.push("/"),
                _ => base.push(c.as_os_str()),
            }
        } else {
            rest.push(s.into_owned());
        }
    }
    (base, rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(d: &Discover) -> (Vec<String>, Vec<(String, Skip)>) {
        let (mut f, mut s, mut e) = (vec![], vec![], vec![]);
        d.scan(&mut f, &mut s, &mut e);
        assert!(e.is_empty(), "{e:?}");
        (
            f.into_iter()
                .map(|c| c.path.to_string_lossy().into_owned())
                .collect(),
            s.into_iter()
                .map(|(p, k)| (p.to_string_lossy().into_owned(), k))
                .collect(),
        )
    }

    #[test]
    fn base_is_the_literal_prefix() {
        let (b, r) = split_base(Path::new("/var/log/app/*.log"));
        assert_eq!(b, PathBuf::from("/var/log/app"));
        assert_eq!(r, ["*.log"]);
        let (b, r) = split_base(Path::new("/var/**/x.log"));
        assert_eq!(b, PathBuf::from("/var"));
        assert_eq!(r, ["**", "x.log"]);
    }

    #[test]
    fn finds_files_skips_others_and_honours_exclude() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(root.join("a.log"), "x").unwrap();
        std::fs::write(root.join("b.log.gz"), "x").unwrap();
        std::fs::write(root.join("c.txt"), "x").unwrap();
        std::fs::create_dir(root.join("d.log")).unwrap();
        std::fs::create_dir_all(root.join("sub/deeper")).unwrap();
        std::fs::write(root.join("sub/e.log"), "x").unwrap();
        std::fs::write(root.join("sub/deeper/f.log"), "x").unwrap();
        let r = root.to_string_lossy();
        let d = Discover::new(&[format!("{r}/*.log*")], &["*.gz".to_string()]).unwrap();
        let (files, skipped) = scan(&d);
        assert_eq!(files, [format!("{r}/a.log")]);
        assert_eq!(skipped, [(format!("{r}/d.log"), Skip::Directory)]);
        // `*` does not cross directories; `**` does.
        let d = Discover::new(&[format!("{r}/**/*.log")], &[]).unwrap();
        let (mut files, _) = scan(&d);
        files.sort();
        assert_eq!(
            files,
            [
                format!("{r}/a.log"),
                format!("{r}/sub/deeper/f.log"),
                format!("{r}/sub/e.log")
            ]
        );
    }

    #[test]
    fn a_literal_path_is_found() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("one.log");
        std::fs::write(&p, "x").unwrap();
        let d = Discover::new(&[p.to_string_lossy().into_owned()], &[]).unwrap();
        assert_eq!(scan(&d).0, [p.to_string_lossy().into_owned()]);
    }
}
