//! The disk spool through its public API: order, acknowledgement, restart, damage, limits.

mod common;

use common::*;
use sonde::metrics::Registry;
use sonde::pipeline::buffer::{PushError, Pushed, Wait};
use sonde::pipeline::spool::CursorFound;
use sonde_config::WhenFull;

#[tokio::test]
async fn records_come_back_in_order_and_survive_a_restart_until_acked() {
    let d = tempfile::tempdir().unwrap();
    let r = Registry::default();
    let cfg = config(d.path(), 1 << 20, 4096, WhenFull::Block);
    let (tx, mut rx, rec) = open(&cfg, &r).await;
    assert_eq!(rec.backlog_bytes, 0);
    for i in 0..100 {
        assert_eq!(tx.push(log_batch(i, 100), Wait::No).await, Ok(Pushed::Queued));
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
    assert!(rx.recv().await.is_none(), "closed once the senders are gone");
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
    assert_eq!(seg_files(d.path()).len(), 1, "exported segments are deleted");
}

#[tokio::test]
async fn block_refuses_when_full_and_resumes_when_acked() {
    let d = tempfile::tempdir().unwrap();
    let r = Registry::default();
    let one = sonde::pipeline::spool::record::frame_len(&log_batch(0, 1000));
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
    assert!(!waiter.is_finished(), "reading is not enough; the ack frees the space");
    t.ack();
    assert_eq!(waiter.await.unwrap(), Ok(Pushed::Queued));
    assert_eq!(drain(&mut rx).await, [1, 2, 3]);
}
