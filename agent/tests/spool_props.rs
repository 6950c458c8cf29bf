//! Property test: any sequence of append / read / ack / give-up / reopen keeps the queue's
//! contents and order. After a reopen everything from the first unacknowledged record on comes
//! again (acknowledgements past a gap are not remembered), and nothing before it does.

#![allow(clippy::unwrap_used)] // tests and benchmarks may unwrap

mod common;

use common::*;
use proptest::prelude::*;
use sonde::pipeline::buffer::spool::Ticket;
use sonde::pipeline::buffer::{Pushed, Wait};
use sonde_config::{Fsync, SpoolCompression, WhenFull};
use sonde_core::metrics::Registry;
use std::collections::{HashSet, VecDeque};

#[derive(Debug, Clone)]
enum Op {
    Append(usize),
    Read,
    Ack(usize),
    GiveUp(usize),
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0usize..300).prop_map(Op::Append),
        4 => Just(Op::Read),
        3 => any::<usize>().prop_map(Op::Ack),
        1 => any::<usize>().prop_map(Op::GiveUp),
        1 => Just(Op::Reopen),
    ]
}

async fn run(ops: Vec<Op>, zstd: bool) -> Result<(), TestCaseError> {
    let d = tempfile::tempdir().unwrap();
    let mut cfg = config(d.path(), 1 << 30, 1024, WhenFull::Block);
    cfg.fsync = Fsync::Never;
    if zstd {
        cfg.compression = SpoolCompression::Zstd;
    }
    let r = Registry::default();
    let (mut tx, mut rx, _) = open(&cfg, &r).await;
    // The model: ids from the cursor on, in order; how many of them were handed out since the
    // last open; which were acknowledged since then.
    let mut queue: VecDeque<u64> = VecDeque::new();
    let mut handed = 0usize;
    let mut acked: HashSet<u64> = HashSet::new();
    let mut held: Vec<(u64, Ticket)> = Vec::new();
    let mut next_id = 0u64;
    for op in ops {
        match op {
            Op::Append(pad) => {
                prop_assert_eq!(
                    tx.push(log_batch(next_id, pad), Wait::No).await,
                    Ok(Pushed::Queued)
                );
                queue.push_back(next_id);
                next_id += 1;
            }
            Op::Read => match rx.try_recv().await {
                Some((b, t)) => {
                    prop_assert!(handed < queue.len(), "read past the end of the queue");
                    prop_assert_eq!(ids(&b), vec![queue[handed]]);
                    held.push((queue[handed], t));
                    handed += 1;
                }
                None => prop_assert_eq!(handed, queue.len(), "a ready record was not read"),
            },
            Op::Ack(i) if !held.is_empty() => {
                let (id, t) = held.remove(i % held.len());
                t.ack();
                acked.insert(id);
                while queue.front().is_some_and(|f| acked.contains(f)) {
                    queue.pop_front();
                    handed -= 1;
                }
            }
            Op::GiveUp(i) if !held.is_empty() => {
                drop(held.remove(i % held.len()));
            }
            Op::Reopen => {
                held.clear();
                drop(tx);
                rx.close().await;
                (tx, rx, _) = open(&cfg, &r).await;
                handed = 0;
                acked.clear();
            }
            Op::Ack(_) | Op::GiveUp(_) => {}
        }
    }
    // Whatever is left comes out, in order, after one more reopen too.
    held.clear();
    drop(tx);
    rx.close().await;
    let (_tx, mut rx, _) = open(&cfg, &r).await;
    let rest = drain(&mut rx).await;
    prop_assert_eq!(rest, queue.into_iter().collect::<Vec<_>>());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
    #[test]
    fn the_queue_keeps_its_contents_and_order(ops in proptest::collection::vec(op(), 1..60),
                                              zstd in any::<bool>()) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(run(ops, zstd))?;
    }
}
