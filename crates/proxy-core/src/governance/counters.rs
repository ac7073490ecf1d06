//! The counts limits are checked against, one per (subject, measure, window), kept in
//! memory and, when the platform shares them (Redis), reconciled in the background so
//! no request waits for the shared store.
//!
//! Two kinds of count:
//! - a **gate** (requests): taken before the request goes upstream, so it can be exact.
//!   Shared, an instance spends *leases*: units the shared store granted it from the
//!   limit. When its lease runs dry it may admit up to one lease more on credit while
//!   the next lease is on its way; if the store then says the window is full, that
//!   credit is the overshoot. Worst case per window: limit + instances × lease, with a
//!   lease of max(1, limit / 20).
//! - a **meter** (tokens, cost): added when an answer ends, checked before the next
//!   request. Shared, the check sees the store's total as of the last sync plus what
//!   this instance added since.

use std::collections::HashMap;

use super::windows::Window;
use crate::keys::KeyId;

/// Whose count it is.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Subject {
    /// A proxy (client) key, by id.
    Proxy(i64),
    /// An upstream key for one model (Google's quotas are per project and model).
    Upstream(KeyId, String),
}

/// What is counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Measure {
    Requests,
    Tokens,
    /// Nano-dollars.
    Cost,
}

impl Measure {
    fn is_gate(self) -> bool {
        self == Self::Requests
    }

    fn name(self) -> &'static str {
        match self {
            Self::Requests => "req",
            Self::Tokens => "tok",
            Self::Cost => "usd",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CounterKey {
    pub subject: Subject,
    pub measure: Measure,
    pub window: Window,
}

impl CounterKey {
    /// The shared store's name for this count in the window ending at `end_ms`:
    /// `<subject>:<measure>:<window>:<end>` (the platform puts its namespace in
    /// front). Model names are Google's (`[a-z0-9.-]`), so nothing needs escaping.
    pub fn shared_name(&self, end_ms: u64) -> String {
        let subject = match &self.subject {
            Subject::Proxy(id) => format!("p{id}"),
            Subject::Upstream(id, model) => format!("u{id}/{model}"),
        };
        format!(
            "{subject}:{}:{}:{end_ms}",
            self.measure.name(),
            self.window.name()
        )
    }
}

/// One window's count.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Count {
    end_ms: u64,
    /// Units this instance added in the window.
    used: u64,
    /// The limit last checked against (what a lease is sized from).
    limit: u64,
    /// Gate: units the shared store granted this instance in the window.
    granted: u64,
    /// Gate: the shared store said the window is full.
    full: bool,
    /// Units of `used` the shared store has been told of.
    reported: u64,
    /// Meter: the shared store's total as of the last sync (this instance's reported
    /// units included).
    shared_total: u64,
}

impl Count {
    fn lease(&self) -> u64 {
        (self.limit / 20).max(1)
    }

    /// A gate's units in use beyond what was granted (admitted on credit).
    fn credit(&self) -> u64 {
        self.used.saturating_sub(self.granted)
    }

    /// A meter's total as this instance sees it.
    fn seen_total(&self, shared: bool) -> u64 {
        match shared {
            true => self.shared_total + (self.used - self.reported),
            false => self.used,
        }
    }
}

/// A refused check: the window is full until `until_ms`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Full {
    pub until_ms: u64,
}

/// One reconciliation with the shared store, planned by [`Counters::sync_plan`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncOp {
    /// The store's key ([`CounterKey::shared_name`]); it may expire at `end_ms`.
    pub name: String,
    pub end_ms: u64,
    /// Add this much to the store's count and read back the total (0: only read).
    pub add: u64,
    pub(super) key: CounterKey,
    /// For a gate: what was asked (credit to cover plus a lease) and against what limit.
    pub(super) gate_limit: Option<u64>,
}

/// Every count this instance keeps.
#[derive(Debug, Default)]
pub struct Counters {
    counts: HashMap<CounterKey, Count>,
    /// Counts are shared (the platform syncs them and the store answers).
    shared: bool,
}

impl Counters {
    fn count(&mut self, key: &CounterKey, now_ms: u64) -> &mut Count {
        let end_ms = key.window.end_ms(now_ms);
        let count = self.counts.entry(key.clone()).or_default();
        if count.end_ms != end_ms {
            *count = Count {
                end_ms,
                ..Count::default()
            };
        }
        count
    }

    /// Shared counting on or off (the store is reachable, or not). Off, each instance
    /// checks its own counts only, and keeps them, so turning sharing back on resumes
    /// with this window's units reported.
    pub fn set_shared(&mut self, shared: bool) {
        self.shared = shared;
    }

    pub fn is_shared(&self) -> bool {
        self.shared
    }

    /// Whether a gate has room for one more unit under `limit`, without taking it.
    pub fn gate_room(&mut self, key: &CounterKey, limit: u64, now_ms: u64) -> Result<(), Full> {
        let shared = self.shared;
        let count = self.count(key, now_ms);
        count.limit = limit;
        let full = Full {
            until_ms: count.end_ms,
        };
        if !shared {
            return if count.used < limit { Ok(()) } else { Err(full) };
        }
        if count.used < count.granted {
            return Ok(());
        }
        // No lease in hand: on credit, up to one lease, unless the store said full.
        match !count.full && count.credit() < count.lease() && count.used < limit {
            true => Ok(()),
            false => Err(full),
        }
    }

    /// Takes one unit of a gate (after [`Counters::gate_room`] said yes).
    pub fn take(&mut self, key: &CounterKey, now_ms: u64) {
        self.count(key, now_ms).used += 1;
    }

    /// Whether a meter is still under `limit`.
    pub fn meter_room(&mut self, key: &CounterKey, limit: u64, now_ms: u64) -> Result<(), Full> {
        let shared = self.shared;
        let count = self.count(key, now_ms);
        count.limit = limit;
        match count.seen_total(shared) < limit {
            true => Ok(()),
            false => Err(Full {
                until_ms: count.end_ms,
            }),
        }
    }

    /// Adds `amount` to a meter (what an answer used).
    pub fn add(&mut self, key: &CounterKey, amount: u64, now_ms: u64) {
        if amount > 0 {
            self.count(key, now_ms).used += amount;
        }
    }

    /// This window's total as this instance sees it (for tests and status).
    pub fn total(&mut self, key: &CounterKey, now_ms: u64) -> u64 {
        let shared = self.shared;
        let count = self.count(key, now_ms);
        match key.measure.is_gate() {
            true => count.used,
            false => count.seen_total(shared),
        }
    }

    /// Forgets windows that ended.
    pub fn prune(&mut self, now_ms: u64) {
        self.counts.retain(|_, count| count.end_ms > now_ms);
    }

    /// What to tell and ask the shared store now: each meter's units not yet reported
    /// (and a read of its total, so other instances' use shows), and for each gate in
    /// use, a lease when its own runs low. Applying the answers is
    /// [`Counters::sync_apply`]; meanwhile the plan's units count as reported.
    pub fn sync_plan(&mut self, now_ms: u64) -> Vec<SyncOp> {
        self.prune(now_ms);
        let mut plan = Vec::new();
        for (key, count) in &mut self.counts {
            let gate_limit = key.measure.is_gate().then_some(count.limit);
            let add = match gate_limit {
                Some(_) => {
                    let left = count.granted.saturating_sub(count.used);
                    if count.full || count.used == 0 || left * 2 > count.lease() {
                        continue;
                    }
                    count.credit() + count.lease()
                }
                None => {
                    let add = count.used - count.reported;
                    count.reported = count.used;
                    add
                }
            };
            plan.push(SyncOp {
                name: key.shared_name(count.end_ms),
                end_ms: count.end_ms,
                add,
                key: key.clone(),
                gate_limit,
            });
        }
        plan.sort_by(|a, b| a.name.cmp(&b.name));
        plan
    }

    /// Applies the store's answer to one planned op: the total after adding.
    pub fn sync_apply(&mut self, op: &SyncOp, total: u64) {
        let Some(count) = self.counts.get_mut(&op.key).filter(|c| c.end_ms == op.end_ms) else {
            return;
        };
        match op.gate_limit {
            Some(limit) => {
                // Units before ours were others'; we get what fits under the limit.
                let before = total.saturating_sub(op.add);
                let grant = limit.saturating_sub(before).min(op.add);
                count.granted += grant;
                count.reported += op.add;
                if grant < op.add || total >= limit {
                    count.full = true;
                }
            }
            None => count.shared_total = count.shared_total.max(total),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_775_001_600_000; // a minute's start

    fn rpm(id: i64) -> CounterKey {
        CounterKey {
            subject: Subject::Proxy(id),
            measure: Measure::Requests,
            window: Window::Minute,
        }
    }

    fn tokens(id: i64) -> CounterKey {
        CounterKey {
            measure: Measure::Tokens,
            ..rpm(id)
        }
    }

    fn admit(counters: &mut Counters, key: &CounterKey, limit: u64, now: u64) -> bool {
        let room = counters.gate_room(key, limit, now).is_ok();
        if room {
            counters.take(key, now);
        }
        room
    }

    #[test]
    fn a_local_gate_admits_exactly_its_limit_per_window() {
        let mut counters = Counters::default();
        let key = rpm(1);
        let admitted = (0..25)
            .filter(|_| admit(&mut counters, &key, 20, T0 + 10))
            .count();
        assert_eq!(admitted, 20);
        assert_eq!(
            counters.gate_room(&key, 20, T0 + 59_999),
            Err(Full {
                until_ms: T0 + 60_000
            })
        );
        assert!(
            admit(&mut counters, &key, 20, T0 + 60_000),
            "the next minute starts afresh"
        );
        assert!(admit(&mut counters, &rpm(2), 20, T0 + 10), "keys count apart");
    }

    #[test]
    fn a_meter_refuses_once_it_reached_its_limit() {
        let mut counters = Counters::default();
        let key = tokens(1);
        assert!(counters.meter_room(&key, 100, T0).is_ok());
        counters.add(&key, 99, T0);
        assert!(counters.meter_room(&key, 100, T0).is_ok(), "under by one");
        counters.add(&key, 50, T0);
        assert_eq!(
            counters.meter_room(&key, 100, T0),
            Err(Full {
                until_ms: T0 + 60_000
            })
        );
        assert_eq!(
            counters.total(&key, T0),
            149,
            "what was used is counted, over or not"
        );
    }

    /// A stand-in for Redis: one total per name, `INCRBY` semantics.
    #[derive(Default)]
    struct Store(HashMap<String, u64>);

    impl Store {
        fn sync(&mut self, counters: &mut Counters, now: u64) {
            for op in counters.sync_plan(now) {
                let total = self.0.entry(op.name.clone()).or_default();
                *total += op.add;
                counters.sync_apply(&op, *total);
            }
        }
    }

    #[test]
    fn shared_gates_overshoot_by_at_most_a_lease_per_instance() {
        // Two instances, a limit of 20, 60 requests alternately, each instance syncing
        // after each of its requests (as its background task would).
        let mut store = Store::default();
        let mut instances = [Counters::default(), Counters::default()];
        for counters in &mut instances {
            counters.set_shared(true);
        }
        let key = rpm(7);
        let mut admitted = 0;
        for i in 0..60 {
            let counters = &mut instances[i % 2];
            if admit(counters, &key, 20, T0 + i as u64) {
                admitted += 1;
            }
            store.sync(counters, T0 + i as u64);
        }
        assert!((20..=22).contains(&admitted), "admitted {admitted}");

        // If the store never answers, each instance admits one lease on credit only.
        let mut lonely = Counters::default();
        lonely.set_shared(true);
        let admitted = (0..10).filter(|_| admit(&mut lonely, &key, 20, T0)).count();
        assert_eq!(admitted, 1);
    }

    #[test]
    fn a_lease_is_asked_for_before_the_last_one_runs_out() {
        let mut store = Store::default();
        let mut counters = Counters::default();
        counters.set_shared(true);
        let key = rpm(3);
        // limit 200: leases of 10.
        assert!(admit(&mut counters, &key, 200, T0));
        store.sync(&mut counters, T0);
        assert_eq!(store.0.values().sum::<u64>(), 11, "the credit and a lease");
        for _ in 0..4 {
            assert!(admit(&mut counters, &key, 200, T0));
        }
        assert!(
            counters.sync_plan(T0).is_empty(),
            "over half a lease left: no need yet"
        );
        assert!(admit(&mut counters, &key, 200, T0));
        let plan = counters.sync_plan(T0);
        assert_eq!(plan.len(), 1);
        assert_eq!(plan[0].add, 10);
    }

    #[test]
    fn shared_meters_see_each_others_use_after_a_sync() {
        let mut store = Store::default();
        let (mut a, mut b) = (Counters::default(), Counters::default());
        a.set_shared(true);
        b.set_shared(true);
        let key = tokens(1);
        a.add(&key, 60, T0);
        b.add(&key, 30, T0);
        store.sync(&mut a, T0);
        store.sync(&mut b, T0);
        assert_eq!(b.total(&key, T0), 90);
        assert!(b.meter_room(&key, 100, T0).is_ok());
        store.sync(&mut a, T0); // a reads b's units
        a.add(&key, 10, T0);
        assert_eq!(
            a.meter_room(&key, 100, T0),
            Err(Full {
                until_ms: T0 + 60_000
            })
        );
    }

    #[test]
    fn without_the_store_an_instance_counts_its_own_units() {
        let mut counters = Counters::default();
        counters.set_shared(true);
        let key = rpm(1);
        assert!(admit(&mut counters, &key, 3, T0));
        counters.set_shared(false);
        let more = (0..5).filter(|_| admit(&mut counters, &key, 3, T0)).count();
        assert_eq!(more, 2, "the unit taken while shared still counts");
    }

    #[test]
    fn shared_names_hold_subject_measure_window_and_its_end() {
        let key = CounterKey {
            subject: Subject::Upstream(4, "gemini-2.5-flash".into()),
            measure: Measure::Requests,
            window: Window::DayPacific,
        };
        assert_eq!(key.shared_name(99), "u4/gemini-2.5-flash:req:dp:99");
        assert_eq!(tokens(2).shared_name(5), "p2:tok:m:5");
    }
}
