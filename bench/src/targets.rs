//! The targets a run can measure and the order they take turns in.

use clap::ValueEnum;

/// One measured path from the load generator to the mock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, ValueEnum)]
pub enum Kind {
    /// Straight to the mock: no hop.
    Direct,
    /// nginx as a plain reverse proxy: the floor for one extra hop.
    Nginx,
    /// `gemini-proxy serve` with the resilience that is on by default switched off
    /// (breaker, retry budget, empty-answer check): proxy − bare is what they cost.
    Bare,
    /// `gemini-proxy serve`, SQLite, default keys (no limits, no Redis).
    Proxy,
    /// `gemini-proxy serve` with limits on every key, counted in Redis.
    Governed,
    /// `gemini-proxy serve` with the resilience features on, the cache on its miss path.
    Resilient,
    /// `gemini-proxy serve` with PostgreSQL as its store (a fresh database, the
    /// schema's migrations applied), logging there.
    Postgres,
    /// `gemini-proxy-web`'s proxy route (the dashboard binary), SQLite.
    Web,
    /// `gemini-proxy serve` exporting OpenTelemetry traces over OTLP/HTTP to a local
    /// sink (metrics are on in every proxy row).
    Traced,
}

impl Kind {
    /// Every target, in the order the report lists them: from no hop to the most work.
    pub const ALL: [Kind; 9] = [
        Kind::Direct,
        Kind::Nginx,
        Kind::Bare,
        Kind::Proxy,
        Kind::Postgres,
        Kind::Web,
        Kind::Governed,
        Kind::Resilient,
        Kind::Traced,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Direct => "direct",
            Kind::Nginx => "nginx",
            Kind::Bare => "bare",
            Kind::Proxy => "proxy",
            Kind::Governed => "governed",
            Kind::Resilient => "resilient",
            Kind::Postgres => "postgres",
            Kind::Web => "web",
            Kind::Traced => "traced",
        }
    }

    /// Runs the proxy binary (so the proxy's goals are judged for it).
    pub fn is_gemini_proxy(self) -> bool {
        matches!(
            self,
            Kind::Bare
                | Kind::Proxy
                | Kind::Postgres
                | Kind::Web
                | Kind::Governed
                | Kind::Resilient
                | Kind::Traced
        )
    }
}

/// The targets a run measures, in report order, without duplicates:
/// `--direct-only` is direct alone, no `--targets` is all of them.
pub fn selected(requested: Option<&[Kind]>, direct_only: bool) -> Vec<Kind> {
    if direct_only {
        return vec![Kind::Direct];
    }
    let wanted = requested.unwrap_or(&Kind::ALL);
    Kind::ALL.into_iter().filter(|k| wanted.contains(k)).collect()
}

/// The order of `n` targets in round `round`: each round rotates which one goes
/// first, so over `n` rounds every target runs once in every position (with two
/// targets that is ABBA: A B, B A, A B…).
pub fn round_order(n: usize, round: usize) -> Vec<usize> {
    (0..n).map(|i| (i + round) % n).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_targets_alternate_like_abba() {
        assert_eq!(round_order(2, 0), vec![0, 1]);
        assert_eq!(round_order(2, 1), vec![1, 0]);
        assert_eq!(round_order(2, 2), vec![0, 1]);
    }

    #[test]
    fn every_target_leads_once_and_takes_every_position() {
        let n = 5;
        let rounds: Vec<Vec<usize>> = (0..n).map(|r| round_order(n, r)).collect();
        for position in 0..n {
            let mut seen: Vec<usize> = rounds.iter().map(|o| o[position]).collect();
            seen.sort_unstable();
            assert_eq!(
                seen,
                (0..n).collect::<Vec<_>>(),
                "position {position}: {rounds:?}"
            );
        }
        assert!(round_order(0, 3).is_empty());
        assert_eq!(round_order(1, 5), vec![0]);
    }

    #[test]
    fn selection_keeps_report_order_and_drops_duplicates() {
        assert_eq!(selected(None, false), Kind::ALL.to_vec());
        assert_eq!(selected(None, true), vec![Kind::Direct]);
        let asked = [Kind::Governed, Kind::Direct, Kind::Governed];
        assert_eq!(selected(Some(&asked), false), vec![Kind::Direct, Kind::Governed]);
        assert_eq!(selected(Some(&asked), true), vec![Kind::Direct]);
    }
}
