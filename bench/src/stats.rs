//! Pure summary statistics over recorded latency samples (microseconds).
//!
//! We keep every sample (a `Vec<u32>` of micros) instead of a histogram: at
//! the request rates a 2-core box reaches, a few seconds per level is at most
//! a few hundred thousand samples, and exact percentiles remove one source of
//! doubt from the report.

/// Nearest-rank percentile of an ascending-sorted slice.
///
/// `p` is in percent (50.0, 99.0). Returns `None` on an empty slice so that a
/// level where every request failed shows "—" rather than a fake zero.
/// Nearest-rank (rank = ceil(p/100 * n)) always returns an observed sample and
/// never interpolates, so p99 of 100 samples is the 99th smallest.
pub fn percentile(sorted: &[u32], p: f64) -> Option<u32> {
    if sorted.is_empty() {
        return None;
    }
    let n = sorted.len();
    let p = p.clamp(0.0, 100.0);
    // Precision: n is far below 2^52, so the f64 round-trip is exact.
    let rank = ((p / 100.0) * n as f64).ceil() as usize;
    let index = rank.clamp(1, n) - 1;
    sorted.get(index).copied()
}

/// What the report needs from one (target, level) measurement.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    /// Requests that completed with a 2xx status and a fully read body.
    pub ok: u64,
    /// Requests that failed: connect/IO errors, timeouts, non-2xx statuses.
    pub errors: u64,
    /// Successful requests per second over the measured window.
    pub throughput: f64,
    pub p50_us: Option<u32>,
    pub p99_us: Option<u32>,
    /// CPU the measured process spent per request (ok or not), in µs.
    pub cpu_us_per_request: Option<f64>,
    /// CPU the mock spent per request in the same windows, in µs (for the direct
    /// path the mock is the measured process, so both are the same).
    pub mock_cpu_us_per_request: Option<f64>,
}

impl Summary {
    /// Summarises raw samples; sorts them in place.
    pub fn from_samples(samples: &mut [u32], errors: u64, elapsed_secs: f64) -> Self {
        samples.sort_unstable();
        let ok = samples.len() as u64;
        let throughput = if elapsed_secs > 0.0 {
            ok as f64 / elapsed_secs
        } else {
            0.0
        };
        Self {
            ok,
            errors,
            throughput,
            p50_us: percentile(samples, 50.0),
            p99_us: percentile(samples, 99.0),
            cpu_us_per_request: None,
            mock_cpu_us_per_request: None,
        }
    }
}

/// `value / base`, when both exist and the base is positive (a ratio to a
/// row that measured nothing is no number).
pub fn ratio(value: Option<f64>, base: Option<f64>) -> Option<f64> {
    let (v, b) = (value?, base?);
    (b > 0.0 && v.is_finite() && b.is_finite()).then(|| v / b)
}

/// `proxy - direct` in microseconds, signed: the proxy can come out faster
/// through noise and the report must show that, not clamp it to zero.
pub fn added_us(direct: Option<u32>, proxy: Option<u32>) -> Option<i64> {
    Some(i64::from(proxy?) - i64::from(direct?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_of_empty_is_none() {
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn percentile_single_sample() {
        assert_eq!(percentile(&[7], 50.0), Some(7));
        assert_eq!(percentile(&[7], 99.0), Some(7));
        assert_eq!(percentile(&[7], 0.0), Some(7));
    }

    #[test]
    fn percentile_nearest_rank_on_1_to_100() {
        let v: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), Some(50));
        assert_eq!(percentile(&v, 99.0), Some(99));
        assert_eq!(percentile(&v, 100.0), Some(100));
        assert_eq!(percentile(&v, 1.0), Some(1));
    }

    #[test]
    fn percentile_small_odd_set() {
        // ceil(0.5 * 5) = 3 -> third smallest; ceil(0.99 * 5) = 5 -> max.
        let v = [10, 20, 30, 40, 1000];
        assert_eq!(percentile(&v, 50.0), Some(30));
        assert_eq!(percentile(&v, 99.0), Some(1000));
    }

    #[test]
    fn p99_catches_the_tail() {
        // 1000 samples, 11 of them slow: p99 (rank 990) must be slow.
        let mut v = vec![100u32; 989];
        v.extend(std::iter::repeat_n(5000u32, 11));
        assert_eq!(percentile(&v, 99.0), Some(5000));
        assert_eq!(percentile(&v, 50.0), Some(100));
    }

    #[test]
    fn summary_sorts_and_computes_throughput() {
        let mut v = vec![300, 100, 200, 400];
        let s = Summary::from_samples(&mut v, 2, 2.0);
        assert_eq!(s.ok, 4);
        assert_eq!(s.errors, 2);
        assert!((s.throughput - 2.0).abs() < 1e-9);
        assert_eq!(s.p50_us, Some(200));
        assert_eq!(s.p99_us, Some(400));
    }

    #[test]
    fn summary_with_no_success_has_no_percentiles() {
        let s = Summary::from_samples(&mut [], 5, 1.0);
        assert_eq!(s.ok, 0);
        assert_eq!(s.p50_us, None);
        assert_eq!(s.throughput, 0.0);
    }

    #[test]
    fn ratio_needs_a_positive_base() {
        assert_eq!(ratio(Some(50.0), Some(200.0)), Some(0.25));
        assert_eq!(ratio(Some(50.0), Some(0.0)), None);
        assert_eq!(ratio(None, Some(1.0)), None);
        assert_eq!(ratio(Some(1.0), None), None);
        assert_eq!(ratio(Some(f64::NAN), Some(1.0)), None);
    }

    #[test]
    fn added_is_signed_and_needs_both_sides() {
        assert_eq!(added_us(Some(100), Some(130)), Some(30));
        assert_eq!(added_us(Some(130), Some(100)), Some(-30));
        assert_eq!(added_us(None, Some(100)), None);
        assert_eq!(added_us(Some(100), None), None);
    }
}
