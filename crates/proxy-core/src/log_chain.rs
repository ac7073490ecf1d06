//! The request log's hash chain: every record a log writer stores is linked to the one
//! it stored before, so `gemini-proxy logs verify` can tell a record changed, removed
//! or slipped in after it was written.
//!
//! Each writer (one per running proxy) keeps its own chain per UTC day of writing:
//! `chain_id` names it (`<writer>-<YYYY-MM-DD>`), `chain_seq` counts its records
//! from 0, and `chain_sha256` is SHA-256 of the previous link (32 zero bytes for the
//! first) followed by SHA-256 of the record's stored fields in canonical JSON (its
//! `chain_id` and `chain_seq` included). A writer needs no word with the store or
//! with other writers, so several instances write to one table without a lock.
//!
//! What it guarantees, and what not: a change to any stored field, a record removed
//! from the middle of a chain, one added or two swapped all break a link that
//! `verify` reports. The end of a chain and whole chains can be removed without a
//! trace unless their heads (printed by `verify`) were kept somewhere else; anyone
//! able to rewrite the table can also recompute every link after a change. Records
//! the proxy dropped (the store down at shutdown) leave a gap the same way.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

mod form;

use crate::hex::{decode, encode};
use crate::log::LogRecord;

/// The link before a chain's first record.
const GENESIS: [u8; 32] = [0; 32];

/// One writer's chains; [`LogChain::link`] each record once, in the order written.
#[derive(Debug)]
pub struct LogChain {
    writer: String,
    day: Option<String>,
    seq: u64,
    prev: [u8; 32],
}

impl LogChain {
    /// `writer` tells this writer's chains from the others' (unique per process).
    pub fn new(writer: impl Into<String>) -> Self {
        Self {
            writer: writer.into(),
            day: None,
            seq: 0,
            prev: GENESIS,
        }
    }

    /// Links `record` (written at `now_ms`) to this writer's chain of the day, unless
    /// it is linked already (a batch written again after a failure keeps its links).
    pub fn link(&mut self, record: &mut LogRecord, now_ms: u64) {
        if record.chain_sha256.is_some() {
            return;
        }
        let day = day_of(now_ms);
        if self.day.as_deref() != Some(day.as_str()) {
            self.day = Some(day.clone());
            self.seq = 0;
            self.prev = GENESIS;
        }
        normalize(record);
        record.chain_id = Some(format!("{}-{day}", self.writer));
        record.chain_seq = Some(self.seq);
        let link = next_link(&self.prev, record);
        record.chain_sha256 = Some(encode(&link));
        self.prev = link;
        self.seq += 1;
    }
}

/// The record as every store keeps it, so what is read back hashes as what was
/// linked: text without U+0000 (PostgreSQL refuses it), counts within `bigint`, no
/// cost that is not a number.
fn normalize(record: &mut LogRecord) {
    let clean = |text: &mut String| {
        if text.contains('\0') {
            *text = text.replace('\0', "\u{FFFD}");
        }
    };
    for text in [&mut record.id, &mut record.route, &mut record.api] {
        clean(text);
    }
    for text in [
        &mut record.model,
        &mut record.served_model,
        &mut record.finish_reason,
        &mut record.block_reason,
        &mut record.error_kind,
        &mut record.error_message,
        &mut record.request_body,
        &mut record.cache,
        &mut record.prompt_sha256,
        &mut record.client_ip,
        &mut record.user_agent,
    ]
    .into_iter()
    .flatten()
    {
        clean(text);
    }
    record.notes.iter_mut().for_each(clean);
    record
        .attempt_details
        .iter_mut()
        .for_each(|a| clean(&mut a.model));
    let max = i64::MAX as u64;
    record.latency_ms = record.latency_ms.min(max);
    record
        .attempt_details
        .iter_mut()
        .for_each(|a| a.ms = a.ms.min(max));
    for count in [
        &mut record.ttfb_ms,
        &mut record.prompt_tokens,
        &mut record.candidates_tokens,
        &mut record.thoughts_tokens,
        &mut record.cached_tokens,
        &mut record.total_tokens,
        &mut record.overhead_us,
    ]
    .into_iter()
    .flatten()
    {
        *count = (*count).min(max);
    }
    record.cost_usd = record.cost_usd.filter(|c| c.is_finite());
}

/// SHA-256 of `prev` then of the record's stored fields (all but `chain_sha256`).
fn next_link(prev: &[u8; 32], record: &LogRecord) -> [u8; 32] {
    let mut canonical = Vec::with_capacity(512);
    form::write(record, &mut canonical);
    let mut hasher = Sha256::new();
    hasher.update(prev);
    hasher.update(Sha256::digest(&canonical));
    hasher.finalize().into()
}

/// The UTC day a record written at `ms` is chained under (`YYYY-MM-DD`, the end of
/// its `chain_id`).
pub fn day_of(ms: u64) -> String {
    crate::civil::format_utc(ms)[..10].to_string()
}

/// One chain as `verify` found it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ChainSummary {
    pub chain_id: String,
    pub records: u64,
    pub first_seq: u64,
    pub last_seq: u64,
    /// The last link: keep it elsewhere to notice the chain's end being cut later.
    pub head: String,
}

/// What is wrong with a chain.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "problem", rename_all = "snake_case")]
pub enum Problem {
    /// The record's fields or its link were changed after it was written.
    Altered { chain_id: String, seq: u64, id: String },
    /// Records `from..=to` of the chain are not there (removed, or never written).
    Missing { chain_id: String, from: u64, to: u64 },
    /// Two records claim the same place.
    Duplicate { chain_id: String, seq: u64 },
    /// The chain's first record is not its first (earlier ones pruned or removed);
    /// its links from there on are checked.
    StartsLate { chain_id: String, first_seq: u64 },
}

impl Problem {
    pub fn chain_id(&self) -> &str {
        match self {
            Problem::Altered { chain_id, .. }
            | Problem::Missing { chain_id, .. }
            | Problem::Duplicate { chain_id, .. }
            | Problem::StartsLate { chain_id, .. } => chain_id,
        }
    }

    /// Whether this points at tampering rather than at pruning.
    pub fn is_tampering(&self) -> bool {
        !matches!(self, Problem::StartsLate { .. })
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::Altered { chain_id, seq, id } => {
                write!(
                    f,
                    "{chain_id} #{seq} (request {id}): changed after it was written"
                )
            }
            Problem::Missing { chain_id, from, to } if from == to => {
                write!(f, "{chain_id} #{from}: missing (removed, or never written)")
            }
            Problem::Missing { chain_id, from, to } => {
                write!(
                    f,
                    "{chain_id} #{from}..#{to}: missing (removed, or never written)"
                )
            }
            Problem::Duplicate { chain_id, seq } => write!(f, "{chain_id} #{seq}: more than one record"),
            Problem::StartsLate { chain_id, first_seq } => write!(
                f,
                "{chain_id} starts at #{first_seq}: the records before were pruned or removed"
            ),
        }
    }
}

/// What `verify` found.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ChainReport {
    pub chains: Vec<ChainSummary>,
    pub problems: Vec<Problem>,
    /// Records without a link (written before the chain existed, or by a platform
    /// that does not link: the Worker).
    pub unlinked: u64,
}

impl ChainReport {
    pub fn tampered(&self) -> bool {
        self.problems.iter().any(Problem::is_tampering)
    }

    /// Keeps only the chains (and their problems) `keep` accepts by id.
    pub fn keep_chains(&mut self, keep: impl Fn(&str) -> bool) {
        self.chains.retain(|c| keep(&c.chain_id));
        self.problems.retain(|p| keep(p.chain_id()));
    }
}

/// The UTC day a chain was written (`YYYY-MM-DD`, the end of its id).
pub fn chain_day(chain_id: &str) -> Option<&str> {
    let at = chain_id.len().checked_sub(10)?;
    chain_id.get(at..)
}

/// Checks every chain among `records` (any order). A chain whose first record is
/// missing is checked from the link its first present record stored.
pub fn verify(records: impl IntoIterator<Item = LogRecord>) -> ChainReport {
    let mut report = ChainReport::default();
    let mut chains: BTreeMap<String, Vec<LogRecord>> = BTreeMap::new();
    for record in records {
        match (&record.chain_id, record.chain_seq, &record.chain_sha256) {
            (Some(chain_id), Some(_), Some(_)) => chains.entry(chain_id.clone()).or_default().push(record),
            _ => report.unlinked += 1,
        }
    }
    for (chain_id, mut records) in chains {
        records.sort_by_key(|r| r.chain_seq);
        let seq = |r: &LogRecord| r.chain_seq.unwrap_or_default();
        let first_seq = records.first().map_or(0, seq);
        if first_seq > 0 {
            report.problems.push(Problem::StartsLate {
                chain_id: chain_id.clone(),
                first_seq,
            });
        }
        let mut prev: Option<([u8; 32], u64)> = None;
        for record in &records {
            let at = seq(record);
            let stored = record.chain_sha256.as_deref().unwrap_or_default();
            match prev {
                Some((_, last)) if at == last => {
                    report.problems.push(Problem::Duplicate {
                        chain_id: chain_id.clone(),
                        seq: at,
                    });
                    continue;
                }
                Some((_, last)) if at > last + 1 => report.problems.push(Problem::Missing {
                    chain_id: chain_id.clone(),
                    from: last + 1,
                    to: at - 1,
                }),
                _ => {}
            }
            let base = match prev {
                Some((link, last)) if at == last + 1 => Some(link),
                // After a gap (or a late start) the record's own link cannot be
                // recomputed; the ones after it are checked against it.
                Some(_) => None,
                None if at == 0 => Some(GENESIS),
                None => None,
            };
            if let Some(base) = base
                && encode(&next_link(&base, record)) != stored
            {
                report.problems.push(Problem::Altered {
                    chain_id: chain_id.clone(),
                    seq: at,
                    id: record.id.clone(),
                });
            }
            prev = Some((decode::<32>(stored).unwrap_or_default(), at));
        }
        let last = records.last();
        report.chains.push(ChainSummary {
            chain_id,
            records: records.len() as u64,
            first_seq,
            last_seq: last.map_or(0, seq),
            head: last.and_then(|r| r.chain_sha256.clone()).unwrap_or_default(),
        });
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY_MS: u64 = 86_400_000;

    fn written(count: usize) -> Vec<LogRecord> {
        let mut chain = LogChain::new("w1");
        (0..count)
            .map(|i| {
                let mut record = LogRecord {
                    id: format!("r{i}"),
                    started_at_ms: 1_000 + i as u64,
                    route: "generateContent".into(),
                    status: 200,
                    prompt_tokens: Some(i as u64),
                    ..LogRecord::default()
                };
                chain.link(&mut record, 20_000 * DAY_MS + i as u64);
                record
            })
            .collect()
    }

    #[test]
    fn an_untouched_chain_verifies_and_names_its_head() {
        let records = written(5);
        let head = records[4].chain_sha256.clone();
        let report = verify(records.into_iter().rev());
        assert_eq!(report.problems, vec![]);
        assert_eq!(report.chains.len(), 1);
        assert_eq!(report.chains[0].records, 5);
        assert_eq!(Some(report.chains[0].head.clone()), head);
        assert!(report.chains[0].chain_id.starts_with("w1-2024-"));
    }

    #[test]
    fn a_changed_field_is_found() {
        let mut records = written(4);
        records[2].prompt_tokens = Some(999);
        let report = verify(records);
        assert!(report.tampered());
        assert!(matches!(&report.problems[..], [Problem::Altered { seq: 2, .. }]));
    }

    #[test]
    fn a_record_changed_with_its_own_link_recomputed_breaks_the_next() {
        let mut records = written(4);
        records[1].status = 500;
        records[1].chain_sha256 = Some(encode(&next_link(&unhex_of(&records[0]), &records[1])));
        let report = verify(records);
        assert!(matches!(&report.problems[..], [Problem::Altered { seq: 2, .. }]));
    }

    fn unhex_of(record: &LogRecord) -> [u8; 32] {
        decode::<32>(record.chain_sha256.as_deref().unwrap_or_default()).unwrap_or_default()
    }

    #[test]
    fn removed_and_inserted_records_are_found() {
        let mut records = written(6);
        records.remove(3);
        let report = verify(records.clone());
        assert_eq!(
            report.problems.first(),
            Some(&Problem::Missing {
                chain_id: records[0].chain_id.clone().unwrap_or_default(),
                from: 3,
                to: 3
            })
        );
        assert!(report.tampered());

        let mut forged = written(3);
        let mut extra = forged[1].clone();
        extra.id = "forged".into();
        forged.push(extra);
        assert!(
            verify(forged)
                .problems
                .iter()
                .any(|p| matches!(p, Problem::Duplicate { seq: 1, .. }))
        );
    }

    #[test]
    fn a_pruned_start_is_said_but_is_not_tampering() {
        let records = written(5).split_off(2);
        let report = verify(records);
        assert!(matches!(
            &report.problems[..],
            [Problem::StartsLate { first_seq: 2, .. }]
        ));
        assert!(!report.tampered());
    }

    #[test]
    fn linking_is_once_and_a_new_day_starts_a_new_chain() {
        let mut chain = LogChain::new("w");
        let mut record = LogRecord::default();
        chain.link(&mut record, 0);
        let linked = record.clone();
        chain.link(&mut record, 5);
        assert_eq!(record, linked, "a retried batch keeps its links");
        let mut next_day = LogRecord::default();
        chain.link(&mut next_day, DAY_MS);
        assert_eq!(next_day.chain_seq, Some(0));
        assert_ne!(next_day.chain_id, linked.chain_id);
        let unlinked = LogRecord {
            id: "old".into(),
            ..LogRecord::default()
        };
        let report = verify([linked, next_day, unlinked]);
        assert_eq!((report.chains.len(), report.unlinked), (2, 1));
        assert!(report.problems.is_empty());
    }

    #[test]
    fn text_is_stored_without_nul() {
        let mut chain = LogChain::new("w");
        let mut record = LogRecord {
            error_message: Some("a\0b".into()),
            cost_usd: Some(f64::NAN),
            latency_ms: u64::MAX,
            ..LogRecord::default()
        };
        chain.link(&mut record, 0);
        assert_eq!(record.error_message.as_deref(), Some("a\u{FFFD}b"));
        assert_eq!(record.cost_usd, None);
        assert_eq!(record.latency_ms, i64::MAX as u64);
        assert!(verify([record]).problems.is_empty());
    }

    /// The link's bytes are a format: records stored by earlier builds must verify
    /// with later ones, so a record's link is pinned here (a faster canonical writer
    /// has to give the same hash).
    #[test]
    fn a_records_link_is_stable_across_builds() {
        let mut record = LogRecord {
            id: "req-\"1\"".into(),
            started_at_ms: 1_765_000_000_000,
            proxy_key_id: Some(7),
            upstream_key_ids: vec![3, 1],
            answered_key_id: Some(1),
            model: Some("gemini-2.0-flash".into()),
            route: "generateContent".into(),
            api: "gemini".into(),
            status: 200,
            attempts: 2,
            latency_ms: 412,
            ttfb_ms: Some(90),
            prompt_tokens: Some(12),
            total_tokens: Some(19),
            cost_usd: Some(0.000_125),
            finish_reason: Some("STOP".into()),
            error_message: Some("quota \u{e9}t\u{e9} \n\t <x>".into()),
            notes: vec!["fallback".into()],
            user_agent: Some("sdk/1.0 (\u{1F600})".into()),
            attempt_details: vec![crate::log::AttemptDetail {
                key_id: 3,
                model: "gemini-2.0-flash".into(),
                outcome: "rate_limited".into(),
                status: Some(429),
                ms: 40,
            }],
            overhead_us: Some(55),
            ..LogRecord::default()
        };
        LogChain::new("w1").link(&mut record, 1_765_000_000_500);
        assert_eq!(
            record.chain_sha256.as_deref(),
            Some("35807ff312b07893966653a68ca06a166bc183e380869793ac3fab7082a16998")
        );
    }
}
