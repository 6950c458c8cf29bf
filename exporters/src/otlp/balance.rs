//! Choosing endpoints: the consistent-hash ring of `balance = "trace_id"`. Cutting a trace
//! request into one request per endpoint, so that every span of a trace goes to the same one, is
//! the wire-level [`sonde_core::wire::by_trace`] split; this module decides where each part goes.
//!
//! The ring places each endpoint at [`VNODES`] points derived from its key (`ip:port`) with a
//! fixed hash (FNV-1a, then a SplitMix64 finaliser), so every agent with the same endpoints routes
//! a trace to the same endpoint, whatever its version; adding or removing an endpoint moves only
//! the traces whose points it takes or gives up.

/// Points per endpoint on the ring: enough for an even spread over a handful of endpoints.
pub const VNODES: u32 = 128;

/// FNV-1a, 64 bits: a hash that never changes between versions or machines.
pub fn fnv1a(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in data {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// SplitMix64's finaliser: spreads FNV's output over the whole ring.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Where a trace ID falls on the ring.
pub fn trace_point(trace_id: &[u8]) -> u64 {
    mix(fnv1a(trace_id))
}

/// A consistent-hash ring over endpoints `0..n`.
#[derive(Debug, Clone, Default)]
pub struct Ring {
    points: Vec<(u64, usize)>,
    endpoints: usize,
}

impl Ring {
    /// Builds the ring from each endpoint's stable key.
    pub fn new<S: AsRef<str>>(keys: &[S]) -> Ring {
        let mut points = Vec::with_capacity(keys.len() * VNODES as usize);
        for (i, k) in keys.iter().enumerate() {
            for v in 0..VNODES {
                let point = mix(fnv1a(format!("{}#{v}", k.as_ref()).as_bytes()));
                points.push((point, i));
            }
        }
        points.sort_unstable();
        Ring {
            points,
            endpoints: keys.len(),
        }
    }

    /// The endpoint owning `point`, then the next distinct ones clockwise (the failover order).
    pub fn order(&self, point: u64) -> impl Iterator<Item = usize> + '_ {
        let start = self.points.partition_point(|(p, _)| *p < point);
        let mut seen = vec![false; self.endpoints];
        let mut left = self.endpoints;
        let n = self.points.len();
        (0..n)
            .map(move |i| self.points[(start + i) % n].1)
            .filter(move |idx| {
                if left == 0 || seen[*idx] {
                    return false;
                }
                seen[*idx] = true;
                left -= 1;
                true
            })
    }

    /// The first endpoint clockwise from `point` that `usable` accepts.
    pub fn pick(&self, point: u64, usable: impl Fn(usize) -> bool) -> Option<usize> {
        self.order(point).find(|i| usable(*i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn the_ring_spreads_traces_and_moves_only_a_removed_endpoints_share() {
        let keys = ["10.0.0.1:4317", "10.0.0.2:4317", "10.0.0.3:4317"];
        let ring = Ring::new(&keys);
        let smaller = Ring::new(&keys[..2]);
        let mut counts = [0usize; 3];
        let mut moved_wrongly = 0;
        for i in 0u32..30_000 {
            let p = trace_point(&i.to_le_bytes());
            let owner = ring.pick(p, |_| true).unwrap();
            counts[owner] += 1;
            let after = smaller.pick(p, |_| true).unwrap();
            if owner != 2 && after != owner {
                moved_wrongly += 1;
            }
        }
        assert_eq!(moved_wrongly, 0, "traces of the remaining endpoints moved");
        for c in counts {
            assert!((7_000..13_000).contains(&c), "uneven spread: {counts:?}");
        }
    }

    #[test]
    fn the_failover_order_visits_every_endpoint_once() {
        let ring = Ring::new(&["a", "b", "c", "d"]);
        for p in [0, u64::MAX / 3, u64::MAX] {
            let order: BTreeSet<usize> = ring.order(p).collect();
            assert_eq!(order.len(), 4);
        }
        // Skipping an unusable owner gives the next one clockwise, stable for the same point.
        let p = trace_point(b"trace");
        let owner = ring.pick(p, |_| true).unwrap();
        let second = ring.order(p).nth(1).unwrap();
        assert_eq!(ring.pick(p, |i| i != owner), Some(second));
    }
}
