//! Durable small files: the one atomic replace (temporary file, fsync, rename, directory fsync)
//! and the directory fsync behind it. Every piece of state the agent persists — the spool's
//! cursor, the file source's checkpoints, the Parquet exporter's file metadata — is written this
//! way, so a crash leaves either the old content or the new, never a mix.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Makes the directory's entries (files created, renamed or removed in it) durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// The temporary file [`write_atomic`] writes `path` through: `path` with `.tmp` appended.
/// Whoever opens a directory of such files removes a leftover one (a crash mid-write).
pub fn temporary_of(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".tmp");
    PathBuf::from(name)
}

/// Replaces `path` with `contents` atomically: written to [`temporary_of`]`(path)`, fsynced,
/// renamed over `path`, then the directory fsynced. With `sync` false the two fsyncs are skipped
/// (the rename is still atomic against a crash of the process, not of the machine).
pub fn write_atomic(path: &Path, contents: &[u8], sync: bool) -> io::Result<()> {
    let tmp = temporary_of(path);
    {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        f.write_all(contents)?;
        if sync {
            f.sync_all()?;
        }
    }
    std::fs::rename(&tmp, path)?;
    if sync {
        sync_dir(path.parent().unwrap_or(Path::new(".")))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_atomic_replaces_the_file_and_leaves_no_temporary() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("state");
        write_atomic(&path, b"one", true).unwrap();
        write_atomic(&path, b"two", false).unwrap();
        assert_eq!(temporary_of(&path), d.path().join("state.tmp"));
        assert_eq!(std::fs::read(d.path().join("state")).unwrap(), b"two");
        assert!(!d.path().join("state.tmp").exists());
    }

    #[test]
    fn a_missing_directory_is_an_error() {
        let d = tempfile::tempdir().unwrap();
        let gone = d.path().join("gone");
        assert!(write_atomic(&gone.join("state"), b"x", true).is_err());
        assert!(sync_dir(&gone).is_err());
    }
}
