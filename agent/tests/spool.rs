//! The disk spool through its public API: order, acknowledgement, restart, damage, limits.

#![allow(clippy::unwrap_used)] // tests and benchmarks may unwrap

mod common;

use common::*;
use sonde::pipeline::buffer::spool::CursorFound;
use sonde::pipeline::buffer::{PushError, Pushed, Wait};
use sonde_config::WhenFull;
use sonde_core::metrics::Registry;

#[tokio::test]
async fn records_come_back_in_order_and_survive_a_restart_until_acked() {
    let d = tempfile::tempdir().unwrap();
    let r = Registry::default();
    let cfg = config(d.path(), 1 << 20, 4096, WhenFull::Block);
    let (tx, mut rx, rec) = open(&cfg, &r).await;
    assert_eq!(rec.backlog_bytes, 0);
    for i in 0..100 {
        assert_eq!(
            tx.push(log_batch(i, 100), Wait::No).await,
            Ok(Pushed::Queued)
        );
    }
    assert!(seg_files(d.path()).len() > 3, "small segments roll");
    // Take 30; ack 0..10 and 20..30 (out of order): the cursor stops at 10.
    let mut held = Vec::new();
    for i in 0..30 {
        let (b, t) = rx.recv().await.unwrap();
        assert_eq!(ids(&b), [i]);
        held.push(t);
    }
    let rest: Vec<_> = held.drain(20..).collect();
    for t in rest.into_iter().rev() {
        t.ack();
    }
    for t in held.drain(..10) {
        t.ack();
    }
    drop(held); // 10..20 cut off, as by a shutdown: kept
    drop(tx);
    assert!(
        rx.recv().await.is_none(),
        "closed once the senders are gone"
    );
    rx.close().await;

    let (tx, mut rx, rec) = open(&cfg, &r).await;
    assert_eq!(rec.cursor, CursorFound::Valid);
    let got = drain(&mut rx).await;
    assert_eq!(got, (10..100).collect::<Vec<_>>());
    drop(tx);
    rx.close().await;

    let (_tx, mut rx, rec) = open(&cfg, &r).await;
    assert_eq!(rec.backlog_bytes, 0);
    assert!(drain(&mut rx).await.is_empty());
    assert_eq!(
        seg_files(d.path()).len(),
        1,
        "exported segments are deleted"
    );
}

#[tokio::test]
async fn block_refuses_when_full_and_resumes_when_acked() {
    let d = tempfile::tempdir().unwrap();
    let r = Registry::default();
    let one = sonde::pipeline::buffer::spool::record::frame_len(&log_batch(0, 1000));
    let cfg = config(d.path(), one * 3, 64 << 10, WhenFull::Block);
    let (tx, mut rx, _) = open(&cfg, &r).await;
    for i in 0..3 {
        tx.push(log_batch(i, 1000), Wait::No).await.unwrap();
    }
    assert_eq!(
        tx.push(log_batch(3, 1000), Wait::No).await,
        Err(PushError::Full)
    );
    let soon = tokio::time::Instant::now() + std::time::Duration::from_millis(30);
    assert_eq!(
        tx.push(log_batch(3, 1000), Wait::Until(soon)).await,
        Err(PushError::Full)
    );
    let tx2 = tx.clone();
    let waiter = tokio::spawn(async move { tx2.push(log_batch(3, 1000), Wait::Forever).await });
    let (_, t) = rx.recv().await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    assert!(
        !waiter.is_finished(),
        "reading is not enough; the ack frees the space"
    );
    t.ack();
    assert_eq!(waiter.await.unwrap(), Ok(Pushed::Queued));
    assert_eq!(drain(&mut rx).await, [1, 2, 3]);
}

#[tokio::test]
async fn damage_is_skipped_exactly_counted_and_the_rest_delivered() {
    use sonde::pipeline::buffer::spool::segment;
    use std::os::unix::fs::FileExt;
    let d = tempfile::tempdir().unwrap();
    let cfg = config(d.path(), 1 << 20, 4096, WhenFull::Block);
    // Five records are exported and acknowledged before the damage.
    leave_a_backlog(&cfg, 100, 100, 5).await;
    let files = seg_files(d.path());
    assert!(files.len() >= 4, "{files:?}");
    // Which ids live where.
    let mut ids_of = Vec::new();
    let mut next = 0u64;
    for f in &files {
        let n = segment::frames(f).unwrap().len() as u64;
        ids_of.push((next..next + n).collect::<Vec<_>>());
        next += n;
    }
    assert_eq!(next, 100);
    let (a, b, c, last) = (&files[0], &files[1], &files[2], &files[files.len() - 1]);
    // A: one flipped byte in the payload of its third record.
    let fa = segment::frames(a).unwrap();
    let file = std::fs::OpenOptions::new().write(true).open(a).unwrap();
    file.write_all_at(&[0xAA], fa[2].offset + 60).unwrap();
    // B: cut in the middle of its fifth record.
    let fb = segment::frames(b).unwrap();
    let file = std::fs::OpenOptions::new().write(true).open(b).unwrap();
    file.set_len(fb[4].offset + 10).unwrap();
    // C: zeros over the whole file.
    let len = std::fs::metadata(c).unwrap().len();
    std::fs::write(c, vec![0u8; len as usize]).unwrap();
    // The last segment: a torn half-record at its end, as a crash mid-write leaves it.
    let fl = segment::frames(last).unwrap();
    let torn = std::fs::read(last).unwrap()[..(fl[0].len / 2) as usize].to_vec();
    let mut f = std::fs::OpenOptions::new().append(true).open(last).unwrap();
    std::io::Write::write_all(&mut f, &torn).unwrap();
    // And no cursor.
    std::fs::remove_file(d.path().join("cursor")).unwrap();

    let r = Registry::default();
    let (_tx, mut rx, rec) = open(&cfg, &r).await;
    assert_eq!(rec.cursor, CursorFound::Missing);
    assert_eq!(rec.torn_tail_bytes, fl[0].len / 2);
    let mut want = Vec::new();
    for (k, seg_ids) in ids_of.iter().enumerate() {
        for (j, id) in seg_ids.iter().enumerate() {
            let lost = (k == 0 && j == 2) || (k == 1 && j >= 4) || k == 2;
            if !lost {
                want.push(*id);
            }
        }
    }
    // The backlog is counted from the frames' headers: the record with the damaged payload has
    // an intact header and is counted too (one item per batch here).
    let counted = want.len() as i64 + 1;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while gauge(&r, "sonde_buffer_items") != counted {
        assert!(
            std::time::Instant::now() < deadline,
            "backlog never counted: {}",
            gauge(&r, "sonde_buffer_items")
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let got = drain(&mut rx).await;
    // Resent from the oldest segment (0..5 again: duplicates, not loss), minus exactly the damage.
    assert_eq!(got, want);
    let damaged =
        |reason| r.counter_sum("sonde_spool_damaged_records_total", &[("reason", reason)]);
    assert_eq!(damaged("bad_crc"), 1);
    assert_eq!(damaged("truncated"), 1);
    assert_eq!(damaged("bad_frame"), 1);
    assert_eq!(
        r.counter_sum("sonde_spool_torn_tail_bytes_total", &[]),
        fl[0].len / 2
    );
    // The reader skipped that record, so its item was never taken off; the spool is empty now
    // and the gauge says so.
    assert_eq!(gauge(&r, "sonde_buffer_items"), 0);
}

#[tokio::test]
async fn a_damaged_cursor_falls_back_to_resending() {
    let d = tempfile::tempdir().unwrap();
    let cfg = config(d.path(), 1 << 20, 4096, WhenFull::Block);
    leave_a_backlog(&cfg, 10, 10, 4).await;
    std::fs::write(d.path().join("cursor"), b"garbage that is not a cursor").unwrap();
    let (_tx, mut rx, rec) = open(&cfg, &Registry::default()).await;
    assert_eq!(rec.cursor, CursorFound::Damaged);
    assert_eq!(drain(&mut rx).await, (0..10).collect::<Vec<_>>());
}

#[tokio::test]
async fn drop_newest_keeps_the_oldest_and_counts_the_rest() {
    let d = tempfile::tempdir().unwrap();
    let r = Registry::default();
    let one = sonde::pipeline::buffer::spool::record::frame_len(&log_batch(0, 100));
    let cfg = config(d.path(), one * 10, one * 3, WhenFull::DropNewest);
    let (tx, mut rx, _) = open(&cfg, &r).await;
    let mut dropped = 0;
    for i in 0..15 {
        if tx.push(log_batch(i, 100), Wait::Forever).await.unwrap() == Pushed::Dropped {
            dropped += 1;
        }
    }
    assert_eq!(dropped, 5);
    assert_eq!(
        r.counter_sum(
            "sonde_buffer_dropped_items_total",
            &[("reason", "buffer_full")]
        ),
        5
    );
    assert_eq!(drain(&mut rx).await, (0..10).collect::<Vec<_>>());
}

#[tokio::test]
async fn drop_oldest_keeps_the_newest_and_counts_what_it_discards() {
    let d = tempfile::tempdir().unwrap();
    let r = Registry::default();
    let one = sonde::pipeline::buffer::spool::record::frame_len(&log_batch(0, 100));
    // Three records a segment, nine in all.
    let cfg = config(d.path(), one * 9, one * 3, WhenFull::DropOldest);
    let (tx, mut rx, _) = open(&cfg, &r).await;
    tx.push(log_batch(0, 100), Wait::No).await.unwrap();
    tx.push(log_batch(1, 100), Wait::No).await.unwrap();
    // The worker holds 0 and 1 when their segment is discarded: 0 is then exported, 1 is
    // given up at shutdown.
    let (b0, t0) = rx.recv().await.unwrap();
    let (b1, t1) = rx.recv().await.unwrap();
    assert_eq!((ids(&b0), ids(&b1)), (vec![0], vec![1]));
    for i in 2..40 {
        assert_eq!(
            tx.push(log_batch(i, 100), Wait::No).await,
            Ok(Pushed::Queued),
            "drop_oldest never refuses the new batch"
        );
    }
    t0.ack();
    drop(t1);
    let kept = drain(&mut rx).await;
    let first = kept[0];
    assert_eq!(kept, (first..40).collect::<Vec<_>>(), "a suffix, in order");
    assert!(
        kept.len() >= 6 && kept.len() <= 9,
        "between max_size less a segment and max_size: {}",
        kept.len()
    );
    let evicted = r.counter_sum("sonde_buffer_dropped_items_total", &[("reason", "evicted")]);
    // Everything not delivered is counted: 40 sent = 1 exported by the worker + kept + evicted.
    assert_eq!(evicted, 40 - 1 - kept.len() as u64);
    assert_eq!(
        gauge(&r, "sonde_buffer_items"),
        0,
        "evictions and acknowledgements take their items off the gauge"
    );
    // Discarded segments are deleted once the cursor past them is persisted (its own thread).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let files: u64 = seg_files(d.path())
            .iter()
            // A file may be deleted between the listing and this look.
            .map(|p| std::fs::metadata(p).map_or(0, |m| m.len()))
            .sum();
        if files <= one * 12 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the files stay within max_size + one segment: {files}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_drained_backlog_is_deleted_even_when_nothing_follows() {
    let d = tempfile::tempdir().unwrap();
    let cfg = config(d.path(), 1 << 20, 4096, WhenFull::Block);
    leave_a_backlog(&cfg, 100, 100, 0).await;
    // After a restart the backlog is behind a fresh, empty segment: the last ack leaves the
    // cursor at the end of a finished segment, and moving it to the next costs zero bytes.
    let (_tx, mut rx, _) = open(&cfg, &Registry::default()).await;
    for i in 0..100 {
        let (b, t) = rx.recv().await.unwrap();
        assert_eq!(ids(&b), [i]);
        t.ack();
    }
    // Let the cursor thread write the cursor of the last ack before the reader moves on.
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert!(rx.try_recv().await.is_none());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while seg_files(d.path()).len() > 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "drained segments left behind: {:?}",
            seg_files(d.path())
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// The value of `sonde_spool_read_records_total{from=…}` in the registry's text output.
fn reads_from(r: &Registry, from: &str) -> u64 {
    let want = format!("sonde_spool_read_records_total{{exporter=\"t\",from=\"{from}\"}} ");
    r.render()
        .lines()
        .find_map(|l| l.strip_prefix(&want).map(|v| v.trim().parse().unwrap()))
        .unwrap_or_else(|| panic!("no {want} in /metrics"))
}

#[tokio::test]
async fn a_reader_that_falls_behind_reads_the_older_records_back_and_takes_the_newest_from_memory()
{
    let d = tempfile::tempdir().unwrap();
    let r = Registry::default();
    let cfg = config(d.path(), 64 << 20, 1 << 20, WhenFull::Block);
    let (tx, mut rx, _) = open(&cfg, &r).await;
    // 40 × 256 KiB = 10 MiB, more than the writer keeps in memory (RECENT_BYTES = 4 MiB).
    for i in 0..40 {
        tx.push(log_batch(i, 256 << 10), Wait::No).await.unwrap();
    }
    let mut got = Vec::new();
    for _ in 0..40 {
        let (b, t) = rx.recv().await.unwrap();
        got.extend(ids(&b));
        t.ack();
    }
    assert_eq!(got, (0..40).collect::<Vec<_>>(), "one log, one order");
    let (disk, memory) = (reads_from(&r, "disk"), reads_from(&r, "memory"));
    assert_eq!(disk + memory, 40);
    assert!(disk >= 20, "the oldest were let go and read back: {disk}");
    assert!(memory >= 10, "the newest came from memory: {memory}");
    // A reader keeping up takes everything from memory.
    for i in 40..50 {
        tx.push(log_batch(i, 1000), Wait::No).await.unwrap();
        let (b, t) = rx.recv().await.unwrap();
        assert_eq!(ids(&b), [i]);
        t.ack();
    }
    assert_eq!(reads_from(&r, "memory"), memory + 10);
    assert_eq!(reads_from(&r, "disk"), disk);
}

#[tokio::test]
async fn zstd_records_take_a_fraction_of_the_space_and_come_back_whole_after_a_restart() {
    let d = tempfile::tempdir().unwrap();
    let r = Registry::default();
    let mut cfg = config(d.path(), 64 << 20, 1 << 20, WhenFull::Block);
    cfg.compression = sonde_config::SpoolCompression::Zstd;
    let (tx, rx, _) = open(&cfg, &r).await;
    let batches: Vec<_> = (0..50).map(|i| log_batch(i, 20_000)).collect();
    let raw: u64 = batches.iter().map(|b| b.payload.len() as u64).sum();
    for b in &batches {
        tx.push(b.clone(), Wait::No).await.unwrap();
    }
    let backlog = rx.backlog_bytes();
    assert!(
        backlog * 5 < raw,
        "{backlog} bytes on disk for {raw} bytes of payload"
    );
    drop(tx);
    rx.close().await;
    // Read back from the files (nothing in memory after a restart), decompressed.
    let (_tx, mut rx, rec) = open(&cfg, &r).await;
    assert_eq!(rec.backlog_bytes, backlog);
    for b in &batches {
        let (got, t) = rx.recv().await.unwrap();
        assert_eq!(&got, b);
        t.ack();
    }
    assert_eq!(reads_from(&r, "disk"), 50);
}

/// The value of the gauge `name{exporter="t"}` in the registry's text output.
fn gauge(r: &Registry, name: &str) -> i64 {
    let want = format!("{name}{{exporter=\"t\"}} ");
    r.render()
        .lines()
        .find_map(|l| l.strip_prefix(&want).map(|v| v.trim().parse().unwrap()))
        .unwrap_or_else(|| panic!("no {want} in /metrics"))
}

#[tokio::test]
async fn the_items_gauge_follows_appends_and_acks_and_counts_the_backlog_after_a_restart() {
    let d = tempfile::tempdir().unwrap();
    let r = Registry::default();
    let cfg = config(d.path(), 1 << 20, 4096, WhenFull::Block);
    let (tx, mut rx, _) = open(&cfg, &r).await;
    for i in 0..10 {
        tx.push(log_batch(i, 500), Wait::No).await.unwrap();
    }
    assert_eq!(gauge(&r, "sonde_buffer_items"), 10);
    for _ in 0..4 {
        rx.recv().await.unwrap().1.ack();
    }
    let (_held, _t) = rx.recv().await.unwrap(); // handed out, not acknowledged: still held
    assert_eq!(gauge(&r, "sonde_buffer_items"), 6);
    drop(tx);
    drop((_held, _t));
    rx.close().await;

    // After a restart the backlog (several segments) is counted in the background.
    let r = Registry::default();
    let (_tx, mut rx, _) = open(&cfg, &r).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while gauge(&r, "sonde_buffer_items") != 6 {
        assert!(
            std::time::Instant::now() < deadline,
            "backlog never counted: {}",
            gauge(&r, "sonde_buffer_items")
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert_eq!(drain(&mut rx).await, (4..10).collect::<Vec<_>>());
    assert_eq!(gauge(&r, "sonde_buffer_items"), 0);
}

/// The value of `name{exporter="t"}` in the registry's text output (0 when absent).
fn metric(r: &Registry, name: &str) -> u64 {
    let want = format!("{name}{{exporter=\"t\"}} ");
    r.render()
        .lines()
        .find_map(|l| l.strip_prefix(&want).map(|v| v.trim().parse().unwrap()))
        .unwrap_or(0)
}

/// Copies the spool's files (not its lock) as a crash would leave them: everything the writer
/// acknowledged is durable, and a reused file still holds its old content past the new end.
fn crash_copy(from: &std::path::Path, to: &std::path::Path) {
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        if p.file_name().unwrap() != "lock" {
            std::fs::copy(&p, to.join(p.file_name().unwrap())).unwrap();
        }
    }
}

#[tokio::test]
async fn an_exported_segment_file_is_reused_and_a_crash_in_it_resends_nothing_stale() {
    use sonde::pipeline::buffer::spool::segment;
    use std::os::unix::fs::MetadataExt;
    let d = tempfile::tempdir().unwrap();
    let r = Registry::default();
    let cfg = config(d.path(), 1 << 20, 8192, WhenFull::Block);
    let (tx, mut rx, _) = open(&cfg, &r).await;
    // Three segments' worth, exported and acknowledged: the cursor thread keeps the newest
    // exported segment file as the spare.
    let spare = keep_a_spare(&tx, &mut rx, d.path(), 30, 700).await;
    let mut next = 30;
    let old_len = std::fs::metadata(&spare).unwrap().len();
    let ino = std::fs::metadata(&spare).unwrap().ino();
    assert!(seg_files(d.path())
        .iter()
        .all(|p| std::fs::metadata(p).unwrap().ino() != ino));

    // Appends fill the active segment; the next one starts in the spare's file.
    let first_unacked = next;
    while metric(&r, "sonde_spool_segments_reused_total") == 0 {
        assert!(
            next < first_unacked + 20,
            "the writer never rolled into the spare"
        );
        tx.push(log_batch(next, 700), Wait::No).await.unwrap();
        next += 1;
    }
    assert!(!spare.exists());
    let reused = seg_files(d.path())
        .into_iter()
        .find(|p| std::fs::metadata(p).unwrap().ino() == ino)
        .expect("the spare's file became a segment");
    assert_eq!(
        seg_files(d.path()).last(),
        Some(&reused),
        "it is the active segment"
    );
    tx.push(log_batch(next, 10), Wait::No).await.unwrap();
    next += 1;
    let data_len: u64 = segment::frames(&reused)
        .unwrap()
        .iter()
        .map(|f| f.len)
        .sum();
    assert!(
        data_len < old_len && std::fs::metadata(&reused).unwrap().len() == old_len,
        "new frames ({data_len} bytes) over the start, old content after ({old_len} bytes in all)"
    );

    // A crash now: the copy restarts with the reused file's old content past its data.
    let crashed = tempfile::tempdir().unwrap();
    crash_copy(d.path(), crashed.path());
    let r2 = Registry::default();
    let (_tx2, mut rx2, rec) =
        open(&config(crashed.path(), 1 << 20, 8192, WhenFull::Block), &r2).await;
    assert_eq!(rec.torn_tail_bytes, 0, "old content is not a torn record");
    assert_eq!(
        drain(&mut rx2).await,
        (first_unacked..next).collect::<Vec<_>>(),
        "every unacknowledged record, none of the old content"
    );
    assert_eq!(metric(&r2, "sonde_spool_damaged_bytes_total"), 0);
    let name = reused.file_name().unwrap();
    assert_eq!(
        std::fs::metadata(crashed.path().join(name)).unwrap().len(),
        data_len,
        "the old content was cut"
    );

    // Without a crash: once the reused segment is finished it is cut to its data.
    while seg_files(d.path()).last() == Some(&reused) {
        tx.push(log_batch(next, 700), Wait::No).await.unwrap();
        next += 1;
    }
    let frames: u64 = segment::frames(&reused)
        .unwrap()
        .iter()
        .map(|f| f.len)
        .sum();
    assert_eq!(std::fs::metadata(&reused).unwrap().len(), frames);
    assert_eq!(
        drain(&mut rx).await,
        (first_unacked..next).collect::<Vec<_>>()
    );
    // A spare again; closing the spool deletes it.
    wait_until("a second spare", || spare.exists()).await;
    drop(tx);
    assert!(rx.recv().await.is_none());
    rx.close().await;
    wait_until("the spare deleted at close", || !spare.exists()).await;
}

#[tokio::test]
async fn an_idle_spool_lets_its_spare_segment_file_go() {
    use sonde::pipeline::buffer::spool::SPARE_IDLE;
    let d = tempfile::tempdir().unwrap();
    let cfg = config(d.path(), 1 << 20, 8192, WhenFull::Block);
    let (tx, mut rx, _) = open(&cfg, &Registry::default()).await;
    let spare = keep_a_spare(&tx, &mut rx, d.path(), 30, 700).await;
    let kept = std::time::Instant::now();
    wait_until("the idle spare deleted", || !spare.exists()).await;
    assert!(
        kept.elapsed() + std::time::Duration::from_secs(2) >= SPARE_IDLE,
        "deleted after {:?} of an empty spool",
        kept.elapsed()
    );
}

#[tokio::test]
async fn no_spare_is_kept_next_to_a_nearly_full_log() {
    use sonde::pipeline::buffer::spool::SPARE;
    let d = tempfile::tempdir().unwrap();
    let r = Registry::default();
    let (max, seg) = (64u64 << 10, 8u64 << 10);
    let cfg = config(d.path(), max, seg, WhenFull::DropNewest);
    let (tx, mut rx, _) = open(&cfg, &r).await;
    let disk = |dir: &std::path::Path| -> u64 {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().metadata().unwrap().len())
            .sum()
    };
    // Fill the log to `max_size` without exporting.
    let mut next = 0;
    while let Ok(Pushed::Queued) = tx.push(log_batch(next, 700), Wait::No).await {
        next += 1;
    }
    let segments = seg_files(d.path()).len();
    // Export the first segment's records (and one more): the cursor passes that segment, but
    // with the log still within two segments of `max_size` its file is deleted, not kept.
    let per_segment =
        (seg / sonde::pipeline::buffer::spool::record::frame_len(&log_batch(0, 700))) + 1;
    for _ in 0..per_segment {
        rx.recv().await.unwrap().1.ack();
    }
    wait_until("the exported segment deleted", || {
        seg_files(d.path()).len() < segments
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(
        !d.path().join(SPARE).exists(),
        "a spare next to a nearly full log"
    );
    let on_disk = disk(d.path());
    assert!(
        on_disk <= max + seg,
        "{on_disk} bytes on disk, limit {max} + {seg}"
    );
}

/// The histogram `name{exporter="t"}` from the registry.
fn histogram(r: &Registry, name: &str) -> sonde_core::metrics::HistogramValue {
    r.snapshot()
        .into_iter()
        .find_map(|s| match s.value {
            sonde_core::metrics::Value::Histogram(h) if s.name == name => Some(h),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no histogram {name}"))
}

#[tokio::test]
async fn every_group_commit_and_every_append_wait_is_measured() {
    let d = tempfile::tempdir().unwrap();
    let r = Registry::default();
    let cfg = config(d.path(), 64 << 20, 1 << 20, WhenFull::Block);
    let (tx, mut rx, _) = open(&cfg, &r).await;
    // 40 producers at once: they share commits, so there are fewer commits than records.
    let pushes = (0..40).map(|i| {
        let tx = tx.clone();
        tokio::spawn(async move { tx.push(log_batch(i, 2000), Wait::No).await })
    });
    for p in pushes.collect::<Vec<_>>() {
        assert_eq!(p.await.unwrap(), Ok(Pushed::Queued));
    }
    let records = histogram(&r, "sonde_spool_commit_records");
    let commits = histogram(&r, "sonde_spool_commit_seconds");
    let appends = histogram(&r, "sonde_spool_append_seconds");
    assert_eq!(appends.count(), 40, "one wait per append");
    assert_eq!(records.sum, 40.0, "every record in exactly one commit");
    assert_eq!(records.count(), commits.count(), "one size per commit");
    assert!(
        (1..=40).contains(&commits.count()),
        "{} commits",
        commits.count()
    );
    assert!(commits.sum > 0.0 && appends.sum >= commits.sum / 40.0);
    let mut got = drain(&mut rx).await;
    got.sort();
    assert_eq!(got, (0..40).collect::<Vec<_>>());
    drop(tx);
    rx.close().await;
}
