//! A full disk: a 1 MiB tmpfs as the spool's directory. Appends fail with ENOSPC; the producer
//! gets backpressure (or the drop policy), nothing crashes, and appends resume once exported
//! segments are deleted. Needs `mount` (root); skipped with a message where it is not allowed.

#![allow(clippy::unwrap_used)] // tests and benchmarks may unwrap

mod common;

use common::*;
use sonde::pipeline::buffer::spool::{SpoolConfig, SpoolSender};
use sonde::pipeline::buffer::{PushError, Pushed, Wait};
use sonde_config::WhenFull;
use sonde_core::metrics::Registry;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

/// A tmpfs mounted in a temp dir of its own: unmounted, then the dir removed, on drop.
struct Tmpfs {
    dir: PathBuf,
    _parent: tempfile::TempDir,
}

impl Tmpfs {
    /// A 1 MiB tmpfs, or `None` (said on stderr) where mounting is not allowed.
    fn one_mib() -> Option<Tmpfs> {
        let parent = tempfile::tempdir().unwrap();
        let fs = Tmpfs::mount(parent, "1m");
        if fs.is_none() {
            eprintln!(
                "SKIPPED: cannot mount a tmpfs here (needs root); the disk-full test did not run"
            );
        }
        fs
    }

    fn mount(parent: tempfile::TempDir, size: &str) -> Option<Tmpfs> {
        let dir = parent.path().join("mnt");
        std::fs::create_dir_all(&dir).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        ok.then_some(Tmpfs {
            dir,
            _parent: parent,
        })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.dir).status();
    }
}

/// The config of a spool in `spool/` on a fresh 1 MiB tmpfs, with segments of `segment_size`
/// and a limit far above the file system's size (the disk is what fills); `None` where
/// mounting is not allowed.
fn on_one_mib(segment_size: u64, when_full: WhenFull) -> Option<(Tmpfs, SpoolConfig)> {
    let fs = Tmpfs::one_mib()?;
    let cfg = config(&fs.dir.join("spool"), 64 << 20, segment_size, when_full);
    Some((fs, cfg))
}

fn soon(ms: u64) -> Wait {
    Wait::Until(tokio::time::Instant::now() + Duration::from_millis(ms))
}

async fn fill_until_refused(tx: &SpoolSender, next: &mut u64) -> (u64, Result<Pushed, PushError>) {
    for _ in 0..10_000 {
        let r = tx.push(log_batch(*next, 20_000), soon(100)).await;
        if r != Ok(Pushed::Queued) {
            return (*next, r);
        }
        *next += 1;
    }
    panic!("a 1 MiB file system never filled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_pushes_back_and_appends_resume_when_space_returns() {
    let Some((_fs, cfg)) = on_one_mib(256 << 10, WhenFull::Block) else {
        return;
    };
    let r = Registry::default();
    let (tx, rx, _) = open(&cfg, &r).await;
    let mut next = 0;
    let (at, refused) = fill_until_refused(&tx, &mut next).await;
    assert_eq!(refused, Err(PushError::Full), "block: backpressure");
    assert!(at > 10, "some batches fit first");
    assert!(r.counter_sum("sonde_spool_write_errors_total", &[("reason", "disk_full")]) >= 1);
    // Still refusing while nothing is exported.
    assert_eq!(
        tx.push(log_batch(at, 20_000), soon(50)).await,
        Err(PushError::Full)
    );
    // A restart on the full disk: the spool opens and serves its backlog.
    drop(tx);
    rx.close().await;
    let (tx, mut rx, rec) = open(&cfg, &r).await;
    assert!(rec.backlog_bytes > 0);
    // Export (read and ack) everything: segments go, space returns, appends resume.
    let got = drain(&mut rx).await;
    assert_eq!(
        got,
        (0..at).collect::<Vec<_>>(),
        "everything acknowledged is there"
    );
    assert_eq!(
        tx.push(
            log_batch(at, 20_000),
            Wait::Until(tokio::time::Instant::now() + Duration::from_secs(10))
        )
        .await,
        Ok(Pushed::Queued),
        "appends resume once space returns"
    );
    let (b, t) = rx.recv().await.unwrap();
    assert_eq!(ids(&b), [at]);
    t.ack();
    drop(tx);
    rx.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_under_drop_newest_drops_and_counts() {
    let Some((_fs, cfg)) = on_one_mib(256 << 10, WhenFull::DropNewest) else {
        return;
    };
    let r = Registry::default();
    let (tx, mut rx, _) = open(&cfg, &r).await;
    let mut next = 0;
    let (at, refused) = fill_until_refused(&tx, &mut next).await;
    assert_eq!(refused, Ok(Pushed::Dropped));
    assert_eq!(
        r.counter_sum(
            "sonde_buffer_dropped_items_total",
            &[("reason", "disk_full")]
        ),
        1
    );
    assert_eq!(drain(&mut rx).await, (0..at).collect::<Vec<_>>());
    drop(tx);
    rx.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_under_drop_oldest_discards_the_oldest_and_keeps_taking_new_data() {
    let Some((_fs, cfg)) = on_one_mib(128 << 10, WhenFull::DropOldest) else {
        return;
    };
    let r = Registry::default();
    let (tx, mut rx, _) = open(&cfg, &r).await;
    let total = 200u64; // ~4 MB into a 1 MiB file system, nothing exported
    let mut queued = 0;
    for i in 0..total {
        if tx.push(log_batch(i, 20_000), Wait::No).await.unwrap() == Pushed::Queued {
            queued += 1;
        }
    }
    assert!(queued > total / 2, "most new batches are taken: {queued}");
    let kept = drain(&mut rx).await;
    assert!(!kept.is_empty());
    assert_eq!(*kept.last().unwrap(), total - 1, "the newest is kept");
    assert!(kept.windows(2).all(|w| w[0] < w[1]), "in order");
    let evicted = r.counter_sum("sonde_buffer_dropped_items_total", &[("reason", "evicted")]);
    let dropped = r.counter_sum(
        "sonde_buffer_dropped_items_total",
        &[("reason", "disk_full")],
    );
    assert!(evicted > 0);
    assert_eq!(
        kept.len() as u64 + evicted + dropped,
        total,
        "every batch is delivered or counted"
    );
    drop(tx);
    rx.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_full_disk_the_spare_segment_file_gives_its_space_to_data() {
    let Some((fs, cfg)) = on_one_mib(256 << 10, WhenFull::Block) else {
        return;
    };
    let r = Registry::default();
    let (tx, mut rx, _) = open(&cfg, &r).await;
    // Two segments' worth, exported: the newer segment file is kept as the spare.
    let spare = keep_a_spare(&tx, &mut rx, &cfg.dir, 20, 20_000).await;
    let mut next = 20;
    // Something else fills the disk until 40 KiB are left: room for two records, while the
    // active segment has room for four more. The write that fails deletes the spare, and its
    // space takes data (without it, two records would fit and then nothing).
    {
        use std::io::Write;
        let filler = fs.dir.join("filler");
        let mut f = std::fs::File::create(&filler).unwrap();
        let page = vec![7u8; 4096];
        while f.write_all(&page).is_ok() {}
        let len = f.metadata().unwrap().len();
        f.set_len(len.saturating_sub(40 << 10)).unwrap();
    }
    let first = next;
    let (at, refused) = fill_until_refused(&tx, &mut next).await;
    assert_eq!(refused, Err(PushError::Full));
    assert!(r.counter_sum("sonde_spool_write_errors_total", &[("reason", "disk_full")]) >= 1);
    assert!(!spare.exists(), "a full disk deletes the spare");
    assert!(
        at - first >= 6,
        "only {} records fit: the spare's space was not given to data",
        at - first
    );
    assert_eq!(drain(&mut rx).await, (first..next).collect::<Vec<_>>());
    drop(tx);
    rx.close().await;
}
