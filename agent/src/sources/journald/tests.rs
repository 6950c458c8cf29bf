//! The reader against journal files written by systemd's own tools: `systemd-journal-remote`
//! turns an export-format stream into a journal file (regular and compact layouts, ZSTD
//! compression of large fields); LZ4 and XZ files are made from those by re-compressing their
//! DATA objects, and journalctl itself checks the result reads back the same. Damaged copies
//! (truncated, flipped bytes, random corruption) must never panic or loop.

use super::header::{
    INCOMPATIBLE_COMPRESSED_LZ4, INCOMPATIBLE_COMPRESSED_XZ, INCOMPATIBLE_COMPRESSED_ZSTD,
};
use super::merge::{Merge, Start};
use super::object::EntryObject;
use super::reader::JournalFile;
use std::path::{Path, PathBuf};
use std::process::Command;

pub const JOURNAL_REMOTE: &str = "/lib/systemd/systemd-journal-remote";

/// True when systemd-journal-remote is installed; says so when it is not.
pub fn have_tools() -> bool {
    let ok = Path::new(JOURNAL_REMOTE).exists();
    if !ok {
        eprintln!(
            "SKIPPED: {JOURNAL_REMOTE} is absent (apt-get install systemd-journal-remote); \
             tests/run.sh installs it"
        );
    }
    ok
}

/// The fields of test entry `i` (binary, large and repeated fields included).
pub fn entry_fields(i: u64, base_us: u64) -> Vec<(String, Vec<u8>)> {
    let mut f = vec![
        (
            "__REALTIME_TIMESTAMP".to_string(),
            (base_us + i * 1000).to_string().into_bytes(),
        ),
        (
            "__MONOTONIC_TIMESTAMP".to_string(),
            (1000 + i).to_string().into_bytes(),
        ),
        (
            "_BOOT_ID".to_string(),
            b"0123456789abcdef0123456789abcdef".to_vec(),
        ),
        (
            "MESSAGE".to_string(),
            format!("message number {i}").into_bytes(),
        ),
        ("PRIORITY".to_string(), (i % 8).to_string().into_bytes()),
        (
            "_SYSTEMD_UNIT".to_string(),
            format!("unit{}.service", i % 3).into_bytes(),
        ),
        ("_PID".to_string(), (100 + i).to_string().into_bytes()),
        ("_HOSTNAME".to_string(), b"box".to_vec()),
    ];
    if i.is_multiple_of(4) {
        // Large enough to be compressed (the threshold is 512 bytes).
        let mut big = format!("big-{i}-").into_bytes();
        big.extend(std::iter::repeat_n(b'a' + (i % 26) as u8, 3000));
        f.push(("BIG".to_string(), big));
    }
    if i.is_multiple_of(5) {
        f.push(("BINARY".to_string(), vec![0, 1, 2, 0xff, b'\n', b'=']));
    }
    f
}

/// The export-format stream of `fields`.
pub fn export(entries: &[Vec<(String, Vec<u8>)>]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        for (k, v) in e {
            out.extend_from_slice(k.as_bytes());
            if v.contains(&b'\n') || v.iter().any(|b| *b < 0x20 && *b != b'\t') {
                out.push(b'\n');
                out.extend_from_slice(&(v.len() as u64).to_le_bytes());
            } else {
                out.push(b'=');
            }
            out.extend_from_slice(v);
            out.push(b'\n');
        }
        out.push(b'\n');
    }
    out
}

/// Writes `entries` into journal file `out` with systemd-journal-remote.
pub fn write_journal(out: &Path, entries: &[Vec<(String, Vec<u8>)>], compact: bool) {
    let input = out.with_extension("export");
    std::fs::write(&input, export(entries)).unwrap();
    let st = Command::new(JOURNAL_REMOTE)
        .arg(format!("--output={}", out.display()))
        .arg(&input)
        .env("SYSTEMD_JOURNAL_COMPACT", if compact { "1" } else { "0" })
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "journal-remote: {}",
        String::from_utf8_lossy(&st.stderr)
    );
    std::fs::remove_file(&input).unwrap();
}

/// Every entry of a file, with its fields sorted (journal-remote adds its own, e.g.
/// `_BOOT_ID` lives in the entry header).
fn read_all(file: &mut JournalFile) -> Vec<(EntryObject, Vec<Vec<u8>>)> {
    let mut out = vec![];
    while let Some(e) = file.next_entry() {
        let mut f = vec![];
        let errs = file.fields(&e, &mut f);
        assert_eq!(errs, Default::default());
        f.sort();
        out.push((e, f));
    }
    out
}

fn expected(e: &[(String, Vec<u8>)]) -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = e
        .iter()
        .filter(|(k, _)| !k.starts_with("__") && k != "_BOOT_ID")
        .map(|(k, v)| {
            let mut f = k.clone().into_bytes();
            f.push(b'=');
            f.extend_from_slice(v);
            f
        })
        .collect();
    v.sort();
    v
}

fn check_file(path: &Path, entries: &[Vec<(String, Vec<u8>)>]) {
    let mut f = JournalFile::open(path).unwrap();
    let got = read_all(&mut f);
    assert_eq!(got.len(), entries.len(), "{}", path.display());
    for (i, ((e, fields), want)) in got.iter().zip(entries).enumerate() {
        assert_eq!(e.realtime, 1_700_000_000_000_000 + i as u64 * 1000);
        assert_eq!(e.seqnum, i as u64 + 1);
        // journal-remote may add fields of its own; every field we wrote must be there.
        for w in expected(want) {
            assert!(
                fields.contains(&w),
                "entry {i} lacks {:?}",
                String::from_utf8_lossy(&w)
            );
        }
    }
    assert!(f.damaged().is_none());
    assert!(f.at_end());
}

fn entries(n: u64) -> Vec<Vec<(String, Vec<u8>)>> {
    (0..n)
        .map(|i| entry_fields(i, 1_700_000_000_000_000))
        .collect()
}

#[test]
fn every_entry_arrives_with_its_fields_regular_and_compact() {
    if !have_tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let e = entries(300);
    for compact in [false, true] {
        let p = dir.path().join(format!("c{compact}.journal"));
        write_journal(&p, &e, compact);
        let f = JournalFile::open(&p).unwrap();
        assert_eq!(f.header().compact(), compact);
        assert_ne!(
            f.header().incompatible_flags & INCOMPATIBLE_COMPRESSED_ZSTD,
            0
        );
        check_file(&p, &e);
    }
}

/// Rewrites every ZSTD-compressed DATA object of a journal as `codec` (an XZ or LZ4 object
/// appended at the end of the arena, entry items pointed at it), as systemd built with that
/// codec would have written it.
fn recompress(bytes: &mut Vec<u8>, codec: u32) {
    let le64 = |b: &[u8], at: usize| u64::from_le_bytes(b[at..at + 8].try_into().unwrap());
    let mut file =
        JournalFile::with_storage(Path::new("x"), bytes.clone(), bytes.len() as u64).unwrap();
    let compact = file.header().compact();
    let header_size = file.header().header_size as usize;
    let mut end = header_size + le64(bytes, 96) as usize;
    let (dh, item) = if compact { (72, 4) } else { (64, 16) };
    let mut moved = std::collections::HashMap::new();
    let mut n_objects = le64(bytes, 144);
    let mut tail = le64(bytes, 136);
    while let Some(e) = file.next_entry() {
        for (k, &off) in e.items.iter().enumerate() {
            let o = off as usize;
            if !moved.contains_key(&off) && bytes[o + 1] == 4 {
                let size = le64(bytes, o + 8) as usize;
                let plain = zstd::stream::decode_all(&bytes[o + dh..o + size]).unwrap();
                let (flag, body) = if codec == INCOMPATIBLE_COMPRESSED_LZ4 {
                    let mut b = (plain.len() as u64).to_le_bytes().to_vec();
                    b.extend_from_slice(&lz4_flex::block::compress(&plain));
                    (2u8, b)
                } else {
                    let mut b = vec![];
                    lzma_rs::xz_compress(&mut &plain[..], &mut b).unwrap();
                    (1u8, b)
                };
                let mut obj = bytes[o..o + dh].to_vec();
                obj[1] = flag;
                obj[8..16].copy_from_slice(&((dh + body.len()) as u64).to_le_bytes());
                obj.extend_from_slice(&body);
                end = end.div_ceil(8) * 8;
                if bytes.len() < end + obj.len() {
                    bytes.resize(end + obj.len() + 4096, 0);
                }
                bytes[end..end + obj.len()].copy_from_slice(&obj);
                moved.insert(off, end as u64);
                tail = end as u64;
                n_objects += 1;
                end += obj.len();
            }
            if let Some(&new) = moved.get(&off) {
                let at = e.offset as usize + 64 + k * item;
                if compact {
                    bytes[at..at + 4].copy_from_slice(&(new as u32).to_le_bytes());
                } else {
                    bytes[at..at + 8].copy_from_slice(&new.to_le_bytes());
                }
            }
        }
    }
    assert!(!moved.is_empty(), "the fixture has compressed fields");
    let end = end.div_ceil(8) * 8;
    bytes[96..104].copy_from_slice(&((end - header_size) as u64).to_le_bytes());
    bytes[136..144].copy_from_slice(&tail.to_le_bytes());
    bytes[144..152].copy_from_slice(&n_objects.to_le_bytes());
    let mut flags = u32::from_le_bytes(bytes[12..16].try_into().unwrap());
    flags = (flags & !INCOMPATIBLE_COMPRESSED_ZSTD) | codec;
    bytes[12..16].copy_from_slice(&flags.to_le_bytes());
}

fn journalctl_export(path: &Path) -> Option<Vec<u8>> {
    let out = Command::new("journalctl")
        .arg(format!("--file={}", path.display()))
        .args(["-o", "export", "--no-pager"])
        .output()
        .ok()?;
    assert!(
        out.status.success(),
        "journalctl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(out.stdout)
}

#[test]
fn xz_and_lz4_compressed_fields_are_read() {
    if !have_tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let e = entries(120);
    for compact in [false, true] {
        let zstd = dir.path().join(format!("z{compact}.journal"));
        write_journal(&zstd, &e, compact);
        let reference = journalctl_export(&zstd);
        for (codec, name) in [
            (INCOMPATIBLE_COMPRESSED_LZ4, "lz4"),
            (INCOMPATIBLE_COMPRESSED_XZ, "xz"),
        ] {
            let mut bytes = std::fs::read(&zstd).unwrap();
            recompress(&mut bytes, codec);
            let p = dir.path().join(format!("{name}{compact}.journal"));
            std::fs::write(&p, &bytes).unwrap();
            check_file(&p, &e);
            // journalctl (systemd built with LZ4 and XZ) reads the rewritten file as the
            // original: the fixture is a valid journal of that codec.
            if let Some(r) = &reference {
                assert_eq!(
                    journalctl_export(&p).as_ref(),
                    Some(r),
                    "{name} compact={compact}"
                );
            }
        }
    }
}

#[test]
fn files_merge_in_time_order_and_new_files_are_read_from_the_start() {
    if !have_tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("0123456789abcdef0123456789abcdef");
    std::fs::create_dir(&sub).unwrap();
    // Two files whose entries interleave: even ones in a, odd ones in b.
    let all = entries(40);
    let a: Vec<_> = all.iter().step_by(2).cloned().collect();
    let b: Vec<_> = all.iter().skip(1).step_by(2).cloned().collect();
    write_journal(&sub.join("a.journal"), &a, true);
    write_journal(&dir.path().join("b.journal"), &b, false);
    let mut m = Merge::default();
    let (_, ev) = m.scan(dir.path(), |_| None, Start::Beginning);
    assert_eq!(ev.opened.len(), 2);
    let mut times = vec![];
    while let Some((_, e)) = m.next_entry() {
        times.push(e.realtime);
    }
    let want: Vec<u64> = (0..40).map(|i| 1_700_000_000_000_000 + i * 1000).collect();
    assert_eq!(times, want);
    // A third file (rotation) is read from its start; an archived rename is not read again.
    std::fs::rename(sub.join("a.journal"), sub.join("a@0001-0002.journal")).unwrap();
    let c: Vec<_> = (40..45)
        .map(|i| entry_fields(i, 1_700_000_000_000_000))
        .collect();
    write_journal(&dir.path().join("c.journal"), &c, true);
    let (_, ev) = m.scan(dir.path(), |_| None, Start::End);
    assert_eq!(
        ev.opened,
        [dir.path().join("c.journal")],
        "new files start at their beginning only on the first scan with Start::End"
    );
    let mut n = 0;
    while m.next_entry().is_some() {
        n += 1;
    }
    assert_eq!(n, 0, "Start::End skips what the new file holds");
    // Vacuum: a deleted file is closed.
    std::fs::remove_file(dir.path().join("b.journal")).unwrap();
    let (_, ev) = m.scan(dir.path(), |_| None, Start::Beginning);
    assert_eq!(ev.closed, [dir.path().join("b.journal")]);
    assert_eq!(m.open_files(), 2);
}

#[test]
fn a_resumed_file_starts_right_after_the_position() {
    if !have_tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("r.journal");
    // Enough entries for several chained entry arrays.
    write_journal(&p, &entries(3000), true);
    for n in [0u64, 1, 7, 1000, 2999] {
        let mut f = JournalFile::open(&p).unwrap();
        let first = f.skip(n, 0).unwrap();
        assert_eq!(first.seqnum, n + 1, "skip {n}");
        assert_eq!(f.consumed(), n + 1);
    }
    let mut f = JournalFile::open(&p).unwrap();
    assert!(f.skip(3000, 0).is_none());
    let mut f = JournalFile::open(&p).unwrap();
    assert_eq!(
        f.skip(10, 20).unwrap().seqnum,
        21,
        "entries already delivered are skipped"
    );
}

/// Reads a damaged copy to the end: never panics, never loops, reads at most what is there.
fn read_damaged(bytes: Vec<u8>) -> (usize, bool) {
    let len = bytes.len() as u64;
    let Ok(mut f) = JournalFile::with_storage(Path::new("damaged"), bytes, len) else {
        return (0, true);
    };
    let mut n = 0;
    while let Some(e) = f.next_entry() {
        let mut fields = vec![];
        let _ = f.fields(&e, &mut fields);
        n += 1;
        assert!(n <= 10_000, "bounded");
    }
    (n, f.damaged().is_some())
}

fn fixture() -> Option<(Vec<u8>, PathBuf, tempfile::TempDir)> {
    if !have_tools() {
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("f.journal");
    write_journal(&p, &entries(200), true);
    Some((std::fs::read(&p).unwrap(), p, dir))
}

#[test]
fn truncated_and_flipped_copies_are_skipped_from_the_damage_on() {
    let Some((bytes, path, _dir)) = fixture() else {
        return;
    };
    let used = {
        let f = JournalFile::open(&path).unwrap();
        (f.header().header_size + f.header().arena_size) as usize
    };
    // Truncated in the middle of the 100th entry: the ones before, then the damage is noticed.
    let cut = {
        let mut f = JournalFile::open(&path).unwrap();
        let mut e = f.next_entry().unwrap();
        for _ in 1..100 {
            e = f.next_entry().unwrap();
        }
        e.offset as usize + 8
    };
    let (n, damaged) = read_damaged(bytes[..cut].to_vec());
    assert!(n < 100 && n > 0 && damaged, "read {n}");
    // The root entry array pointer broken: nothing is read, the damage is reported.
    let mut b = bytes.clone();
    b[176..184].copy_from_slice(&7u64.to_le_bytes());
    assert_eq!(read_damaged(b), (0, true));
    // A header that is not a journal's.
    let mut b = bytes.clone();
    b[0] = b'X';
    assert_eq!(read_damaged(b), (0, true));
    // Every 4 KiB of the objects overwritten with 0xff.
    let mut b = bytes.clone();
    for at in (4096..used).step_by(4096) {
        b[at..at + 16].fill(0xff);
    }
    let (n, _) = read_damaged(b);
    assert!(n <= 200);
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
    #[test]
    fn random_corruption_never_panics(flips in proptest::collection::vec((0usize..1 << 20, proptest::num::u8::ANY), 1..40), cut in proptest::option::of(0usize..1 << 20)) {
        let Some((mut bytes, _, _dir)) = FIXTURE.with(|f| f.clone()) else {
            return Ok(());
        };
        let arena = u64::from_le_bytes(bytes[96..104].try_into().unwrap()) as usize;
        let used = bytes.len().min(272 + arena).max(1);
        for (at, v) in flips {
            let at = at % used;
            bytes[at] ^= v | 1;
        }
        if let Some(c) = cut {
            bytes.truncate(c % used);
        }
        let (n, _) = read_damaged(bytes);
        proptest::prop_assert!(n <= 200);
    }
}

thread_local! {
    static FIXTURE: Option<(Vec<u8>, PathBuf, std::rc::Rc<tempfile::TempDir>)> =
        fixture().map(|(b, p, d)| (b, p, std::rc::Rc::new(d)));
}

mod source {
    use super::{entries, have_tools, write_journal};
    use crate::pipeline::buffer::{channel, BufferReceiver};
    use crate::pipeline::router::{Route, Router};
    use crate::sources::journald::build;
    use crate::sources::journald::checkpoint::Store;
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    use prost::Message;
    use sonde_config::{BufferConfig, JournaldSourceConfig, Priority, StartAt};
    use sonde_core::metrics::Registry;
    use sonde_core::Signal;
    use std::path::Path;
    use std::time::Duration;
    use tokio::time::Instant;
    use tokio_util::sync::CancellationToken;

    async fn start(
        journal: &Path,
        data: &Path,
        cfg: JournaldSourceConfig,
    ) -> (
        BufferReceiver,
        CancellationToken,
        tokio::task::JoinHandle<()>,
    ) {
        let metrics = Registry::default();
        let (tx, rx) = channel("e", &BufferConfig::default(), &metrics);
        let router = Router::new(vec![Route {
            exporter: "e".into(),
            inputs: None,
            signals: vec![Signal::Logs],
            buffer: tx,
            bulkhead: None,
        }]);
        let shutdown = CancellationToken::new();
        let cx =
            crate::sources::context("j", router, metrics, shutdown.clone(), data.to_path_buf());
        let cfg = JournaldSourceConfig {
            directory: Some(journal.display().to_string()),
            poll_interval: sonde_config::Duration::from_millis(20),
            checkpoint_interval: sonde_config::Duration::from_millis(10),
            ..cfg
        };
        let task = tokio::spawn(build(&cfg, cx).await.unwrap());
        (rx, shutdown, task)
    }

    fn delivered(data: &Path) -> Vec<u64> {
        match Store::open(data, "j").unwrap().load().unwrap() {
            Some(p) => p.iter().map(|p| p.entries).collect(),
            None => vec![],
        }
    }

    async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !f() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn messages(b: &sonde_core::Batch) -> Vec<String> {
        let req = ExportLogsServiceRequest::decode(&b.payload[..]).unwrap();
        req.resource_logs[0].scope_logs[0]
            .log_records
            .iter()
            .map(|r| match r.body.as_ref().and_then(|b| b.value.as_ref()) {
                Some(opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(s)) => {
                    s.clone()
                }
                other => panic!("{other:?}"),
            })
            .collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn positions_advance_on_acknowledgement_and_a_restart_resumes_after_them() {
        if !have_tools() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let (journal, data) = (dir.path().join("journal"), dir.path().join("data"));
        std::fs::create_dir(&journal).unwrap();
        write_journal(&journal.join("a.journal"), &entries(10), true);
        let cfg = JournaldSourceConfig {
            start_at: StartAt::Beginning,
            priority: Priority::Info,
            ..Default::default()
        };
        let (mut rx, shutdown, task) = start(&journal, &data, cfg.clone()).await;
        let q = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .unwrap()
            .unwrap();
        // PRIORITY is i % 8: entries 7 (debug) is filtered out, but its position counts.
        let m = messages(&q.batch);
        assert_eq!(m.len(), 9, "{m:?}");
        assert_eq!(m[0], "message number 0");
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(
            delivered(&data),
            [0],
            "registered at 0, not acknowledged yet"
        );
        q.ack();
        eventually("the checkpoint to advance", || delivered(&data) == [10]).await;
        shutdown.cancel();
        task.await.unwrap();
        // New entries while stopped, in a new file: after a restart only they arrive.
        let more: Vec<_> = (10..15)
            .map(|i| super::entry_fields(i, 1_700_000_000_000_000))
            .collect();
        write_journal(&journal.join("b.journal"), &more, false);
        let (mut rx, shutdown, task) = start(&journal, &data, cfg).await;
        let q = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .unwrap()
            .unwrap();
        let m = messages(&q.batch);
        assert_eq!(m.first().map(String::as_str), Some("message number 10"));
        assert_eq!(m.len(), 5, "{m:?}");
        q.ack();
        shutdown.cancel();
        task.await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_first_start_at_the_end_sends_only_new_entries() {
        if !have_tools() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let (journal, data) = (dir.path().join("journal"), dir.path().join("data"));
        std::fs::create_dir(&journal).unwrap();
        write_journal(&journal.join("a.journal"), &entries(10), true);
        let (mut rx, shutdown, task) = start(&journal, &data, Default::default()).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let more: Vec<_> = (10..13)
            .map(|i| super::entry_fields(i, 1_700_000_000_000_000))
            .collect();
        write_journal(&journal.join("b.journal"), &more, true);
        // The file may be seen while it is being written: collect until all three are in.
        let mut got = vec![];
        while got.len() < 3 {
            let q = tokio::time::timeout(Duration::from_secs(10), rx.recv())
                .await
                .unwrap()
                .unwrap();
            got.extend(messages(&q.batch));
            q.ack();
        }
        assert_eq!(
            got,
            [
                "message number 10",
                "message number 11",
                "message number 12"
            ]
        );
        shutdown.cancel();
        task.await.unwrap();
        // A restart sends nothing again: the file skipped at the first start has its position.
        let (mut rx, shutdown, task) = start(&journal, &data, Default::default()).await;
        let again = tokio::time::timeout(Duration::from_millis(500), rx.recv()).await;
        assert!(again.is_err(), "nothing is sent again after a restart");
        shutdown.cancel();
        task.await.unwrap();
    }
}
