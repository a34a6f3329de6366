//! A latency histogram of bounded size: log-linear buckets, each at most
//! 1/128 (0.8 %) of its value wide, so that millions of operations cost a
//! fixed 60 KB and percentiles stay within 0.8 % of the exact ones.

use std::time::Duration;

/// Mantissa bits: each power of two is split into 2^BITS buckets.
const BITS: u32 = 7;
const SUB: u64 = 1 << BITS;
/// Values below this have a bucket each.
const LINEAR: u64 = 2 * SUB;
/// One bucket per value below LINEAR, then SUB per power of two up to 2^63.
const BUCKETS: usize = (LINEAR + (63 - BITS as u64) * SUB) as usize;

/// Latencies in nanoseconds.
#[derive(Debug, Clone)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram::new()
    }
}

fn index(v: u64) -> usize {
    if v < LINEAR {
        return v as usize;
    }
    let e = u64::from(63 - v.leading_zeros()); // at least BITS + 1
    let shift = e - u64::from(BITS);
    let m = v >> shift; // in SUB..2*SUB
    (LINEAR + (e - u64::from(BITS) - 1) * SUB + (m - SUB)) as usize
}

/// The lowest value of bucket `i` and the bucket's width.
fn bucket(i: usize) -> (u64, u64) {
    let i = i as u64;
    if i < LINEAR {
        return (i, 1);
    }
    let k = i - LINEAR;
    let e = u64::from(BITS) + 1 + k / SUB;
    let m = SUB + k % SUB;
    let shift = e - u64::from(BITS);
    (m << shift, 1 << shift)
}

impl Histogram {
    /// An empty histogram.
    pub fn new() -> Histogram {
        Histogram {
            counts: vec![0; BUCKETS],
            total: 0,
            max: 0,
        }
    }

    /// Counts one latency.
    pub fn record(&mut self, d: Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.counts[index(ns)] += 1;
        self.total += 1;
        self.max = self.max.max(ns);
    }

    /// Adds another histogram's counts to this one.
    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.total += other.total;
        self.max = self.max.max(other.max);
    }

    /// Latencies counted.
    pub fn count(&self) -> u64 {
        self.total
    }

    /// The largest latency counted, exactly.
    pub fn max(&self) -> Duration {
        Duration::from_nanos(self.max)
    }

    /// The latency that `q` (0.0..=1.0) of the operations did not exceed,
    /// to within a bucket (the bucket's middle, never above the maximum);
    /// `None` when nothing was counted.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        if self.total == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                let (low, width) = bucket(i);
                return Some(Duration::from_nanos((low + width / 2).min(self.max)));
            }
        }
        Some(self.max())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fixed sequence of numbers below `n` (a linear congruential
    /// generator's high bits): enough spread for the quantile test.
    struct Lcg(u64);

    impl Lcg {
        fn below(&mut self, n: u64) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (self.0 >> 33) % n
        }
    }

    #[test]
    fn buckets_tile_the_range() {
        assert_eq!(index(u64::MAX), BUCKETS - 1);
        let mut next = 0;
        for i in 0..BUCKETS {
            let (low, width) = bucket(i);
            assert_eq!(low, next, "bucket {i}");
            assert_eq!(index(low), i);
            assert_eq!(index(low + (width - 1)), i);
            assert!(width == 1 || width * SUB <= low, "bucket {i} too wide");
            next = low.wrapping_add(width);
        }
        assert_eq!(next, 0, "the last bucket ends at u64::MAX");
    }

    #[test]
    fn small_values_are_exact() {
        let mut h = Histogram::new();
        for ns in 1..=100 {
            h.record(Duration::from_nanos(ns));
        }
        assert_eq!(h.quantile(0.5), Some(Duration::from_nanos(50)));
        assert_eq!(h.quantile(0.9), Some(Duration::from_nanos(90)));
        assert_eq!(h.quantile(1.0), Some(Duration::from_nanos(100)));
        assert_eq!(h.max(), Duration::from_nanos(100));
        assert_eq!(h.count(), 100);
    }

    #[test]
    fn percentiles_within_a_bucket_of_the_exact_ones() {
        let mut r = Lcg(11);
        let mut exact = Vec::new();
        let mut h = Histogram::new();
        let mut parts = [Histogram::new(), Histogram::new()];
        for i in 0..50_000 {
            // Spread over five orders of magnitude.
            let octave = 10 + r.below(17);
            let ns = 1_000 + r.below(1 << octave);
            exact.push(ns);
            h.record(Duration::from_nanos(ns));
            parts[i % 2].record(Duration::from_nanos(ns));
        }
        let [mut merged, other] = parts;
        merged.merge(&other);
        exact.sort_unstable();
        for q in [0.5, 0.9, 0.99, 0.999] {
            let want = exact[(q * exact.len() as f64).ceil() as usize - 1] as f64;
            for hist in [&h, &merged] {
                let got = hist.quantile(q).unwrap().as_nanos() as f64;
                assert!(
                    (got - want).abs() <= want / SUB as f64,
                    "q {q}: {got} vs {want}"
                );
            }
        }
        assert_eq!(h.max().as_nanos() as u64, *exact.last().unwrap());
        assert_eq!(merged.count(), 50_000);
    }

    #[test]
    fn empty_has_no_quantiles() {
        assert_eq!(Histogram::new().quantile(0.5), None);
    }
}
