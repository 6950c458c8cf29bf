//! A small tool around the disk spool, for the end-to-end tests and for looking at a spool by
//! hand.
//!
//! ```text
//! spool_tool write <spool dir> <first id> <count> [segment bytes] [pad bytes]
//!     appends <count> OTLP logs batches whose one record's body is "id-<n>", as an agent would
//!     (fsync = batch); prints how many were acknowledged.
//! spool_tool frames <segment file>
//!     prints "<offset> <length>" for every valid frame of a segment.
//! ```

// The batches are the spool tests' own (`id-<n>` bodies), so that the end-to-end tests read the
// ids back the same way.
#[path = "../tests/common/mod.rs"]
mod common;

use common::log_batch;
use sonde::pipeline::buffer::spool::{self, segment};
use sonde::pipeline::buffer::{Pushed, Wait};
use sonde_config::WhenFull;
use sonde_core::metrics::Registry;
use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| args.get(i).cloned().unwrap_or_default();
    let num = |i: usize, d: u64| args.get(i).and_then(|s| s.parse().ok()).unwrap_or(d);
    match arg(0).as_str() {
        "write" => {
            let dir = PathBuf::from(arg(1));
            let (first, count) = (num(2, 0), num(3, 0));
            // Stored as is (no compression), so that the tests that damage frames know their
            // sizes.
            let cfg = common::config(&dir, 1 << 40, num(4, 64 << 20), WhenFull::Block);
            let pad = num(5, 100) as usize;
            let rt = match tokio::runtime::Runtime::new() {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::FAILURE;
                }
            };
            rt.block_on(async move {
                let (tx, rx, _) = match spool::open(cfg, &Registry::default()).await {
                    Ok(s) => s,
                    Err(e) => {
                        eprintln!("error: {e}");
                        return ExitCode::FAILURE;
                    }
                };
                let mut n = 0;
                for id in first..first + count {
                    if tx.push(log_batch(id, pad), Wait::Forever).await == Ok(Pushed::Queued) {
                        n += 1;
                    }
                }
                drop(tx);
                rx.close().await;
                println!("{n}");
                ExitCode::SUCCESS
            })
        }
        "frames" => match segment::frames(&PathBuf::from(arg(1))) {
            Ok(frames) => {
                for f in frames {
                    println!("{} {}", f.offset, f.len);
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        },
        _ => {
            eprintln!("usage: spool_tool write <dir> <first id> <count> [segment bytes] [pad] | frames <segment file>");
            ExitCode::from(2)
        }
    }
}
