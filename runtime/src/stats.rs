//! Loop statistics: lock-free histograms the tick writes and anyone may read while the loop
//! runs. Recording is a few relaxed atomic adds; no allocation, no lock.

use std::sync::atomic::{AtomicU64, Ordering};

/// Sub-buckets per power of two: percentiles are exact to within 1/32 (about 3%).
const SUB_BITS: u32 = 5;
const SUB: usize = 1 << SUB_BITS;
/// Values up to 2^40 ns (about 18 minutes) are resolved; larger ones land in the last bucket.
const MAX_EXP: usize = 40;
const BUCKETS: usize = (MAX_EXP + 1) * SUB;

/// A log-linear histogram of nanosecond values, safe to share between threads.
pub struct Histogram {
    buckets: Box<[AtomicU64]>,
    count: AtomicU64,
    sum: AtomicU64,
    max: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

fn bucket_of(value: u64) -> usize {
    if value < SUB as u64 {
        return value as usize;
    }
    let exp = 63 - value.leading_zeros(); // >= SUB_BITS
    let shift = exp - SUB_BITS;
    let sub = ((value >> shift) as usize) & (SUB - 1);
    let index = ((exp - SUB_BITS + 1) as usize) * SUB + sub;
    index.min(BUCKETS - 1)
}

/// The smallest value that falls in `index`, and the width of the bucket.
fn bucket_range(index: usize) -> (u64, u64) {
    if index < SUB {
        return (index as u64, 1);
    }
    let group = index / SUB; // >= 1
    let sub = (index % SUB) as u64;
    let shift = (group - 1) as u32;
    let low = ((SUB as u64) | sub) << shift;
    (low, 1u64 << shift)
}

impl Histogram {
    pub fn new() -> Self {
        Self {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum: AtomicU64::new(0),
            max: AtomicU64::new(0),
        }
    }

    #[inline]
    pub fn record(&self, value_ns: u64) {
        self.buckets[bucket_of(value_ns)].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(value_ns, Ordering::Relaxed);
        self.max.fetch_max(value_ns, Ordering::Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    pub fn max(&self) -> u64 {
        self.max.load(Ordering::Relaxed)
    }

    /// The value below which a fraction `q` of samples lie (middle of its bucket, never
    /// above the maximum seen). Zero when empty.
    pub fn quantile(&self, q: f64) -> u64 {
        let count = self.count();
        if count == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * count as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (index, bucket) in self.buckets.iter().enumerate() {
            seen += bucket.load(Ordering::Relaxed);
            if seen >= rank {
                let (low, width) = bucket_range(index);
                return (low + width / 2).min(self.max());
            }
        }
        self.max()
    }

    pub fn summary(&self) -> Summary {
        let count = self.count();
        Summary {
            count,
            mean_ns: if count == 0 {
                0.0
            } else {
                self.sum.load(Ordering::Relaxed) as f64 / count as f64
            },
            p50_ns: self.quantile(0.50),
            p99_ns: self.quantile(0.99),
            max_ns: self.max(),
        }
    }

    pub fn reset(&self) {
        for bucket in self.buckets.iter() {
            bucket.store(0, Ordering::Relaxed);
        }
        self.count.store(0, Ordering::Relaxed);
        self.sum.store(0, Ordering::Relaxed);
        self.max.store(0, Ordering::Relaxed);
    }
}

/// Percentiles of one metric, in nanoseconds.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct Summary {
    pub count: u64,
    pub mean_ns: f64,
    pub p50_ns: u64,
    pub p99_ns: u64,
    pub max_ns: u64,
}

impl Summary {
    pub fn to_us(&self) -> (f64, f64, f64) {
        (
            self.p50_ns as f64 / 1e3,
            self.p99_ns as f64 / 1e3,
            self.max_ns as f64 / 1e3,
        )
    }
}

/// Everything the loop measures, shared with other components through an `Arc`.
#[derive(Default)]
pub struct LoopStats {
    /// How late each tick started after its deadline (jitter).
    pub start_lateness: Histogram,
    /// Reading the newest observation and building the policy input.
    pub stage_read: Histogram,
    pub stage_policy: Histogram,
    pub stage_safety: Histogram,
    pub stage_publish: Histogram,
    /// From tick start to the command handed to the sink.
    pub tick_total: Histogram,
    /// From receiving the observation the command is based on to publishing the command.
    pub observation_to_command: Histogram,
    pub ticks: AtomicU64,
    /// Ticks that ended after the next tick's deadline.
    pub overruns: AtomicU64,
    /// Deadlines skipped entirely because the loop was more than a period late.
    pub missed_deadlines: AtomicU64,
    /// Telemetry records dropped because the queue was full.
    pub telemetry_dropped: AtomicU64,
    /// Commands the sink refused.
    pub publish_failures: AtomicU64,
}

/// A snapshot of [`LoopStats`].
#[derive(Clone, Debug, serde::Serialize)]
pub struct LoopSummary {
    pub ticks: u64,
    pub overruns: u64,
    pub missed_deadlines: u64,
    pub telemetry_dropped: u64,
    pub publish_failures: u64,
    pub start_lateness: Summary,
    pub stage_read: Summary,
    pub stage_policy: Summary,
    pub stage_safety: Summary,
    pub stage_publish: Summary,
    pub tick_total: Summary,
    pub observation_to_command: Summary,
}

impl LoopStats {
    /// Clears everything (after a warm-up, say).
    pub fn reset(&self) {
        for h in [
            &self.start_lateness,
            &self.stage_read,
            &self.stage_policy,
            &self.stage_safety,
            &self.stage_publish,
            &self.tick_total,
            &self.observation_to_command,
        ] {
            h.reset();
        }
        for c in [
            &self.ticks,
            &self.overruns,
            &self.missed_deadlines,
            &self.telemetry_dropped,
            &self.publish_failures,
        ] {
            c.store(0, Ordering::Relaxed);
        }
    }

    pub fn summary(&self) -> LoopSummary {
        LoopSummary {
            ticks: self.ticks.load(Ordering::Relaxed),
            overruns: self.overruns.load(Ordering::Relaxed),
            missed_deadlines: self.missed_deadlines.load(Ordering::Relaxed),
            telemetry_dropped: self.telemetry_dropped.load(Ordering::Relaxed),
            publish_failures: self.publish_failures.load(Ordering::Relaxed),
            start_lateness: self.start_lateness.summary(),
            stage_read: self.stage_read.summary(),
            stage_policy: self.stage_policy.summary(),
            stage_safety: self.stage_safety.summary(),
            stage_publish: self.stage_publish.summary(),
            tick_total: self.tick_total.summary(),
            observation_to_command: self.observation_to_command.summary(),
        }
    }
}

impl LoopSummary {
    /// Named metrics, in the order reports print them.
    pub fn metrics(&self) -> [(&'static str, Summary); 7] {
        [
            ("start_lateness", self.start_lateness),
            ("observation_to_command", self.observation_to_command),
            ("tick_total", self.tick_total),
            ("stage_read", self.stage_read),
            ("stage_policy", self.stage_policy),
            ("stage_safety", self.stage_safety),
            ("stage_publish", self.stage_publish),
        ]
    }
}

impl std::fmt::Display for LoopSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "ticks {}  overruns {}  missed deadlines {}  telemetry dropped {}  publish failures {}",
            self.ticks,
            self.overruns,
            self.missed_deadlines,
            self.telemetry_dropped,
            self.publish_failures
        )?;
        writeln!(
            f,
            "  {:<24} {:>10} {:>10} {:>10}",
            "metric (us)", "p50", "p99", "max"
        )?;
        for (name, s) in self.metrics() {
            let (p50, p99, max) = s.to_us();
            writeln!(f, "  {name:<24} {p50:>10.2} {p99:>10.2} {max:>10.2}")?;
        }
        Ok(())
    }
}

/// Median, 99th percentile and maximum of kept samples, by nearest rank: the sample at index
/// round((n - 1) q) of the sorted samples. (The histograms above serve the tick, which keeps
/// no samples; this serves a bench or a run summary that does.)
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Percentiles {
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

impl Percentiles {
    /// Of `samples`, which it sorts in place; `None` without samples.
    pub fn of(samples: &mut [f64]) -> Option<Self> {
        samples.sort_by(f64::total_cmp);
        let last = samples.len().checked_sub(1)?;
        let at = |q: f64| samples[(last as f64 * q).round() as usize];
        Some(Self {
            p50: at(0.5),
            p99: at(0.99),
            max: at(1.0),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_values_in_order() {
        let mut last = 0;
        for value in [0u64, 1, 31, 32, 33, 63, 64, 100, 1_000, 50_000, 1 << 39] {
            let index = bucket_of(value);
            assert!(index >= last, "bucket order broken at {value}");
            last = index;
            let (low, width) = bucket_range(index);
            assert!(
                low <= value && value < low + width,
                "{value} not in [{low}, {})",
                low + width
            );
        }
    }

    #[test]
    fn quantiles_are_within_bucket_precision() {
        let h = Histogram::new();
        for v in 1..=10_000u64 {
            h.record(v * 1_000);
        }
        let p50 = h.quantile(0.5) as f64;
        let p99 = h.quantile(0.99) as f64;
        assert!((p50 / 5_000_000.0 - 1.0).abs() < 0.04, "p50 {p50}");
        assert!((p99 / 9_900_000.0 - 1.0).abs() < 0.04, "p99 {p99}");
        assert_eq!(h.max(), 10_000_000);
        assert_eq!(h.count(), 10_000);
        h.reset();
        assert_eq!(h.quantile(0.5), 0);
    }

    #[test]
    fn percentiles_take_the_nearest_rank() {
        let mut samples = [5.0, 1.0, 4.0, 2.0, 3.0];
        let p = Percentiles::of(&mut samples).unwrap();
        // Ranks round((5 - 1) q): 2 for the median, round(3.96) = 4 for the 99th.
        assert_eq!((p.p50, p.p99, p.max), (3.0, 5.0, 5.0));
        assert_eq!(samples, [1.0, 2.0, 3.0, 4.0, 5.0]);
        assert_eq!(Percentiles::of(&mut []), None);
    }
}
