//! Dynamic sharding: every [`RESHARD_EVERY`], choose the shard count from
//! observed throughput and backlog, as Prometheus' `calculateDesiredShards`
//! does, within `min_shards..=max_shards`.
//!
//! A shard's throughput is what one sender achieves: `sent / busy time`.
//! Enough shards must carry the ingest rate plus the backlog drained over
//! [`CATCH_UP`]. Changes within [`TOLERANCE`] are ignored (no flapping), and
//! nothing changes while sends fail (more shards cannot fix an outage). The
//! queue applies a new count only after everything dealt under the old one is
//! acknowledged, so a series is never sent by two shards at once.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::endpoint::EndpointShared;

/// How often the shard count is reconsidered.
pub(crate) const RESHARD_EVERY: Duration = Duration::from_secs(10);

/// A backlog should be gone within this long (while keeping up with ingest).
const CATCH_UP: Duration = Duration::from_secs(30);

/// Relative change below which the count stays.
const TOLERANCE: f64 = 0.3;

/// What was observed over one interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Observed {
    /// Samples collected per second.
    pub(crate) in_rate: f64,
    /// Samples delivered in the interval.
    pub(crate) sent: u64,
    /// Seconds spent in successful requests, summed over shards.
    pub(crate) busy_secs: f64,
    /// Samples pending at the end of the interval.
    pub(crate) pending: u64,
    /// Any request failed in the interval.
    pub(crate) failing: bool,
}

/// The shard count to use next.
pub(crate) fn desired(current: usize, min: usize, max: usize, o: Observed) -> usize {
    let (min, max) = (min.max(1), max.max(min.max(1)));
    if o.failing || o.sent == 0 || o.busy_secs <= 0.0 {
        // Nothing learnt about throughput; an idle endpoint shrinks slowly to min.
        return if o.pending == 0 && o.in_rate == 0.0 && !o.failing {
            current.saturating_sub(1).clamp(min, max)
        } else {
            current.clamp(min, max)
        };
    }
    let per_shard = o.sent as f64 / o.busy_secs; // samples/s one busy shard delivers
    let need = o.in_rate + o.pending as f64 / CATCH_UP.as_secs_f64();
    let want = (need / per_shard).ceil().max(1.0);
    let cur = current as f64;
    if (want - cur).abs() / cur <= TOLERANCE {
        return current.clamp(min, max);
    }
    // Truncation is fine: `want` is a small positive whole number.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let want = want.min(max as f64) as usize;
    want.clamp(min, max)
}

/// Runs until abandoned or the queue closes; resizes `shared.queue`.
pub(crate) async fn autoscale(
    shared: Arc<EndpointShared>,
    mut abandon: watch::Receiver<super::shard::Stop>,
) {
    let q = &shared.config.queue;
    let (min, max) = (q.min_shards, q.max_shards.min(shared.queue.max_shards()));
    // The in-memory queue has a fixed shard count.
    if min >= max || shared.queue.disk_bytes().is_none() {
        return;
    }
    let m = &shared.metrics;
    let mut last = (
        m.collected.get(),
        m.sent.get(),
        shared.busy_nanos.load(Ordering::Relaxed),
        shared.failures.load(Ordering::Relaxed),
        Instant::now(),
    );
    loop {
        tokio::select! {
            () = tokio::time::sleep(RESHARD_EVERY) => {}
            () = super::shard::stopping(&mut abandon) => return,
        }
        let now = (
            m.collected.get(),
            m.sent.get(),
            shared.busy_nanos.load(Ordering::Relaxed),
            shared.failures.load(Ordering::Relaxed),
            Instant::now(),
        );
        let secs = now.4.duration_since(last.4).as_secs_f64().max(1e-3);
        let o = Observed {
            in_rate: now.0.saturating_sub(last.0) as f64 / secs,
            sent: now.1.saturating_sub(last.1),
            busy_secs: now.2.saturating_sub(last.2) as f64 / 1e9,
            pending: shared.queue.len() as u64,
            failing: now.3 != last.3,
        };
        last = now;
        let current = shared.queue.shards();
        let next = desired(current, min, max, o);
        if next != current {
            tracing::info!(
                from = current,
                to = next,
                in_rate = o.in_rate,
                pending = o.pending,
                "resharding"
            );
            shared.queue.set_shards(next);
        }
        m.shards
            .set(i64::try_from(shared.queue.shards()).unwrap_or(i64::MAX));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn o(in_rate: f64, sent: u64, busy_secs: f64, pending: u64, failing: bool) -> Observed {
        Observed {
            in_rate,
            sent,
            busy_secs,
            pending,
            failing,
        }
    }

    #[test]
    fn desired_table() {
        // One shard delivers 1000 samples/s in each case below (sent / busy).
        let cases = [
            ("keeps up: stay", 2, o(1500.0, 10_000, 10.0, 0, false), 2),
            ("ingest needs 5", 1, o(5000.0, 10_000, 10.0, 0, false), 5),
            (
                "backlog of 150k over 30 s adds 5",
                1,
                o(1000.0, 10_000, 10.0, 150_000, false),
                6,
            ),
            ("capped at max", 1, o(1e6, 10_000, 10.0, 0, false), 8),
            (
                "within tolerance: no flapping",
                4,
                o(3500.0, 10_000, 10.0, 0, false),
                4,
            ),
            (
                "shrinks when the load drops",
                8,
                o(1000.0, 10_000, 10.0, 0, false),
                1,
            ),
            (
                "failing: unchanged",
                3,
                o(9000.0, 10_000, 10.0, 1_000_000, true),
                3,
            ),
            ("idle: one step down", 4, o(0.0, 0, 0.0, 0, false), 3),
            ("idle at min: stays", 1, o(0.0, 0, 0.0, 0, false), 1),
        ];
        for (name, current, obs, want) in cases {
            assert_eq!(desired(current, 1, 8, obs), want, "{name}");
        }
    }

    #[test]
    fn catch_up_capacity_is_at_least_five_times_ingest_with_a_backlog() {
        // 10 minutes of backlog at 1000/s: the chosen count drains at >= 5x ingest.
        let obs = o(1000.0, 10_000, 10.0, 600_000, false);
        let n = desired(1, 1, 50, obs);
        assert!(n as f64 * 1000.0 >= 5.0 * 1000.0, "{n}");
    }
}
