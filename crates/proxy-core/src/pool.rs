//! The in-memory key pool: which key serves the next attempt, and how an answer
//! changes a key's state. Plain data and synchronous methods; the platform wraps it in
//! a mutex held for microseconds, never across an await.

use std::collections::BTreeMap;

use crate::classify::Outcome;
pub use crate::key_state::{KeyState, StateChange};
use crate::keys::{KeyId, KeyLimits, Secret, UpstreamKey};
use crate::mark_guard::{MarkGuard, MarkingSuspended};

/// The result of asking the pool for a key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Pick {
    Key {
        id: KeyId,
        secret: Secret,
    },
    /// Every usable key is cooling down for this model; the soonest recovers then.
    AllCooling {
        retry_after_ms: u64,
    },
    /// Every usable key is cooling down or at its configured limits for this model,
    /// some of them at limits; the soonest has room then.
    AllAtLimit {
        retry_after_ms: u64,
    },
    /// No key left to try: none configured, all disabled or invalid, or all tried.
    Exhausted,
}

#[derive(Clone, Debug)]
struct PooledKey {
    key: UpstreamKey,
    state: KeyState,
    /// Order of the last pick; the smallest is the least recently used key.
    picked_at_seq: u64,
    /// Marked invalid here, and the store has not shown the mark back yet. Until it
    /// does, a refresh must not undo it (the write is queued, or another request is
    /// still in flight); once it has, a refresh without it means an operator cleared it.
    invalid_unconfirmed: bool,
    /// Cooldowns learned here that the store has not shown back yet (model -> until),
    /// kept across refreshes for the same reason. Every other cooldown follows the
    /// store, so an operator's clear (`keys enable`) frees the key at the next refresh.
    unconfirmed_cooldowns: BTreeMap<String, u64>,
}

/// A key with its state, as shown by status endpoints and the CLI.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyStatus {
    pub id: KeyId,
    pub name: String,
    pub masked: String,
    pub enabled: bool,
    pub state: KeyState,
}

#[derive(Debug, Default)]
pub struct KeyPool {
    keys: Vec<PooledKey>,
    seq: u64,
    guard: MarkGuard,
    /// Some key has limits (else the pick asks no counts).
    any_limits: bool,
}

impl KeyPool {
    pub fn new(keys: Vec<(UpstreamKey, KeyState)>) -> Self {
        let mut pool = Self::default();
        pool.sync(keys);
        pool
    }

    /// Replaces the key set with what the store holds now. Keys that stay keep their
    /// place in the rotation. The store is the truth for key state, except for marks
    /// learned here that it has not shown back yet (their write is queued, or this
    /// snapshot was read before it): those are kept until a snapshot confirms them.
    /// After that, a snapshot without them means an operator cleared them.
    pub fn sync(&mut self, keys: Vec<(UpstreamKey, KeyState)>) {
        let mut old: BTreeMap<KeyId, PooledKey> = self.keys.drain(..).map(|k| (k.key.id, k)).collect();
        for (key, mut state) in keys {
            let mut invalid_unconfirmed = false;
            let mut unconfirmed_cooldowns = BTreeMap::new();
            let picked_at_seq = match old.remove(&key.id) {
                Some(previous) => {
                    for (model, until) in previous.unconfirmed_cooldowns {
                        // The store keeps the later end of a cooldown (MAX), so showing
                        // ours or a later one means our write landed.
                        let confirmed = state.cooldowns.get(&model).is_some_and(|stored| *stored >= until);
                        if !confirmed {
                            if previous.state.off_models.contains(&model) {
                                state.off_models.insert(model.clone());
                            }
                            state.cooldowns.insert(model.clone(), until);
                            unconfirmed_cooldowns.insert(model, until);
                        }
                    }
                    state.last_used_ms = state.last_used_ms.max(previous.state.last_used_ms);
                    if state.invalid_reason.is_none() && previous.invalid_unconfirmed {
                        state.invalid_reason = previous.state.invalid_reason;
                        invalid_unconfirmed = true;
                    }
                    previous.picked_at_seq
                }
                None => 0,
            };
            self.keys.push(PooledKey {
                key,
                state,
                picked_at_seq,
                invalid_unconfirmed,
                unconfirmed_cooldowns,
            });
        }
        self.any_limits = self.keys.iter().any(|k| !k.key.limits.is_empty());
    }

    /// Whether any key has limits of its own.
    pub fn has_limits(&self) -> bool {
        self.any_limits
    }

    /// One key's limits.
    pub fn limits_of(&self, key_id: KeyId) -> Option<&KeyLimits> {
        self.keys
            .iter()
            .find(|k| k.key.id == key_id)
            .map(|k| &k.key.limits)
    }

    /// Chooses the least recently used healthy key not yet tried by this request that
    /// `full_until` says has room (`None`; else the moment it has: see
    /// [`crate::governance::Governor::pick`], which asks the key's limits).
    pub fn pick(
        &mut self,
        model: &str,
        now_ms: u64,
        tried: &[KeyId],
        mut full_until: impl FnMut(&UpstreamKey) -> Option<u64>,
    ) -> Pick {
        let mut best: Option<usize> = None;
        let mut soonest_cool: Option<u64> = None;
        let mut soonest_room: Option<u64> = None;
        let sooner = |slot: &mut Option<u64>, at: u64| *slot = Some(slot.map_or(at, |s| s.min(at)));
        for (index, pooled) in self.keys.iter().enumerate() {
            if !pooled.key.enabled || pooled.state.invalid_reason.is_some() {
                continue;
            }
            if tried.contains(&pooled.key.id) {
                continue;
            }
            if let Some(until) = pooled.state.cooldowns.get(model).filter(|until| **until > now_ms) {
                sooner(&mut soonest_cool, *until);
                continue;
            }
            let better = best.is_none_or(|b| pooled.picked_at_seq < self.keys[b].picked_at_seq);
            if !better {
                continue;
            }
            match full_until(&pooled.key) {
                Some(until) => sooner(&mut soonest_room, until),
                None => best = Some(index),
            }
        }
        if let Some(index) = best {
            self.seq += 1;
            let pooled = &mut self.keys[index];
            pooled.picked_at_seq = self.seq;
            pooled.state.last_used_ms = Some(now_ms);
            return Pick::Key {
                id: pooled.key.id,
                secret: pooled.key.secret.clone(),
            };
        }
        match (soonest_cool, soonest_room) {
            (cool, Some(room)) => Pick::AllAtLimit {
                retry_after_ms: cool.map_or(room, |c| c.min(room)) - now_ms,
            },
            (Some(until), None) => Pick::AllCooling {
                retry_after_ms: until - now_ms,
            },
            (None, None) => Pick::Exhausted,
        }
    }

    /// Records what an attempt with `key_id` for `model` taught us about the key. An
    /// invalid mark past the burst guard is refused (`None`): the key keeps serving.
    pub fn apply(
        &mut self,
        key_id: KeyId,
        model: &str,
        outcome: &Outcome,
        now_ms: u64,
    ) -> Option<StateChange> {
        if let Outcome::KeyInvalid { reason } = outcome {
            let enabled = self.keys.iter().filter(|k| k.key.enabled).count();
            let known = self.keys.iter().any(|k| k.key.id == key_id);
            if !known || !self.guard.allow(now_ms, enabled) {
                return None;
            }
            return self.mark_invalid(key_id, reason);
        }
        let pooled = self.keys.iter_mut().find(|k| k.key.id == key_id)?;
        match outcome {
            Outcome::RateLimited {
                until_ms, model_off, ..
            } => {
                pooled.state.cooldowns.insert(model.to_string(), *until_ms);
                pooled.unconfirmed_cooldowns.insert(model.to_string(), *until_ms);
                let (model, until_ms) = (model.to_string(), *until_ms);
                if *model_off {
                    pooled.state.off_models.insert(model.clone());
                    return Some(StateChange::ModelOff {
                        key_id,
                        model,
                        until_ms,
                    });
                }
                pooled.state.off_models.remove(&model);
                Some(StateChange::Cooldown {
                    key_id,
                    model,
                    until_ms,
                })
            }
            Outcome::Success => {
                // Stores never show an expired cooldown, so one that ran out is
                // forgotten here, confirmed or not.
                pooled.state.cooldowns.retain(|_, until| *until > now_ms);
                pooled.unconfirmed_cooldowns.retain(|_, until| *until > now_ms);
                None
            }
            _ => None,
        }
    }

    /// Marks a key invalid without asking the burst guard: for an operator's re-check,
    /// which is evidence asked for, not a request's side effect.
    pub fn mark_invalid(&mut self, key_id: KeyId, reason: &str) -> Option<StateChange> {
        let pooled = self.keys.iter_mut().find(|k| k.key.id == key_id)?;
        pooled.state.invalid_reason = Some(reason.to_string());
        pooled.invalid_unconfirmed = true;
        Some(StateChange::Invalid {
            key_id,
            reason: reason.to_string(),
        })
    }

    /// Set while a burst of invalid marks keeps the pool from taking more (see
    /// [`crate::mark_guard`]); for `/healthz` and the platform's log.
    pub fn marking_suspended(&self, now_ms: u64) -> Option<MarkingSuspended> {
        self.guard.suspended(now_ms).cloned()
    }

    /// The secret of one key, enabled or not (for an operator's re-check).
    pub fn secret_of(&self, key_id: KeyId) -> Option<Secret> {
        self.keys
            .iter()
            .find(|k| k.key.id == key_id)
            .map(|k| k.key.secret.clone())
    }

    /// Every upstream secret the pool holds, for scrubbing text before it leaves.
    pub fn secrets(&self) -> Vec<String> {
        self.keys
            .iter()
            .map(|k| k.key.secret.expose().to_string())
            .collect()
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Milliseconds until the first usable key's cooldown for `model` ends, if every
    /// usable key is cooling down for it.
    pub fn all_cooling_for(&self, model: &str, now_ms: u64) -> Option<u64> {
        let usable = self
            .keys
            .iter()
            .filter(|k| k.key.enabled && k.state.invalid_reason.is_none());
        let mut soonest: Option<u64> = None;
        for pooled in usable {
            let until = pooled
                .state
                .cooldowns
                .get(model)
                .copied()
                .filter(|until| *until > now_ms)?;
            soonest = Some(soonest.map_or(until, |s| s.min(until)));
        }
        soonest.map(|until| until - now_ms)
    }

    /// Milliseconds until some usable key can serve `model` (0 when one can now),
    /// tried by this request or not; `None` when no key is enabled and valid.
    pub fn soonest_free_in(&self, model: &str, now_ms: u64) -> Option<u64> {
        self.keys
            .iter()
            .filter(|k| k.key.enabled && k.state.invalid_reason.is_none())
            .map(|k| {
                let until = k.state.cooldowns.get(model).copied().unwrap_or(0);
                until.saturating_sub(now_ms)
            })
            .min()
    }

    /// How many keys could serve a request for `model` right now.
    pub fn available(&self, model: &str, now_ms: u64) -> usize {
        self.keys
            .iter()
            .filter(|k| k.key.enabled && k.state.invalid_reason.is_none())
            .filter(|k| k.state.cooldowns.get(model).is_none_or(|until| *until <= now_ms))
            .count()
    }

    /// A key's masked form (`AIza…Bc6`), for messages that name it.
    pub fn masked_of(&self, key_id: KeyId) -> Option<String> {
        self.keys
            .iter()
            .find(|k| k.key.id == key_id)
            .map(|k| k.key.secret.masked())
    }

    /// Ids of the keys marked invalid now.
    pub fn invalid_ids(&self) -> Vec<KeyId> {
        self.keys
            .iter()
            .filter(|k| k.state.invalid_reason.is_some())
            .map(|k| k.key.id)
            .collect()
    }

    pub fn statuses(&self) -> Vec<KeyStatus> {
        self.keys
            .iter()
            .map(|k| KeyStatus {
                id: k.key.id,
                name: k.key.name.clone(),
                masked: k.key.secret.masked(),
                enabled: k.key.enabled,
                state: k.state.clone(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: KeyId) -> (UpstreamKey, KeyState) {
        let secret = Secret::new(format!("AIzaTestKey{id:0>30}"));
        (
            UpstreamKey {
                id,
                name: format!("k{id}"),
                secret,
                enabled: true,
                limits: Default::default(),
            },
            KeyState::default(),
        )
    }

    fn picked(pick: Pick) -> KeyId {
        match pick {
            Pick::Key { id, .. } => id,
            other => panic!("expected a key, got {other:?}"),
        }
    }

    #[test]
    fn rotates_least_recently_used_and_never_repeats_within_a_request() {
        let mut pool = KeyPool::new(vec![key(1), key(2), key(3)]);
        let order: Vec<KeyId> = (0..6).map(|_| picked(pool.pick("m", 0, &[], |_| None))).collect();
        assert_eq!(order, vec![1, 2, 3, 1, 2, 3]);
        assert_eq!(picked(pool.pick("m", 0, &[1, 2], |_| None)), 3);
        assert_eq!(pool.pick("m", 0, &[1, 2, 3], |_| None), Pick::Exhausted);
    }

    #[test]
    fn cooldown_is_per_model_and_expires() {
        let mut pool = KeyPool::new(vec![key(1), key(2)]);
        let limited = Outcome::RateLimited {
            until_ms: 1_000,
            per_day: false,
            model_off: false,
        };
        let change = pool.apply(1, "flash", &limited, 0);
        assert_eq!(
            change,
            Some(StateChange::Cooldown {
                key_id: 1,
                model: "flash".into(),
                until_ms: 1_000
            })
        );
        assert_eq!(picked(pool.pick("flash", 10, &[], |_| None)), 2);
        assert_eq!(picked(pool.pick("flash", 10, &[], |_| None)), 2);
        assert_eq!(
            pool.pick("flash", 10, &[2], |_| None),
            Pick::AllCooling { retry_after_ms: 990 }
        );
        assert_eq!(picked(pool.pick("pro", 10, &[2], |_| None)), 1);
        assert_eq!(picked(pool.pick("flash", 1_000, &[2], |_| None)), 1);
        assert_eq!(pool.available("flash", 10), 1);
    }

    #[test]
    fn invalid_and_disabled_keys_are_skipped() {
        let (mut disabled, state) = key(3);
        disabled.enabled = false;
        let mut pool = KeyPool::new(vec![key(1), key(2), (disabled, state)]);
        pool.apply(
            1,
            "m",
            &Outcome::KeyInvalid {
                reason: "API_KEY_INVALID".into(),
            },
            0,
        );
        for _ in 0..3 {
            assert_eq!(picked(pool.pick("m", 0, &[], |_| None)), 2);
        }
        assert_eq!(pool.pick("m", 0, &[2], |_| None), Pick::Exhausted);
        assert!(pool.statuses()[0].state.invalid_reason.is_some());
    }

    #[test]
    fn invalid_mark_survives_refreshes_until_the_store_has_it_then_follows_the_store() {
        let mut pool = KeyPool::new(vec![key(1), key(2)]);
        pool.apply(
            1,
            "m",
            &Outcome::KeyInvalid {
                reason: "API_KEY_INVALID".into(),
            },
            0,
        );
        // The store has not written the mark yet: a refresh keeps it.
        pool.sync(vec![key(1), key(2)]);
        assert_eq!(pool.available("m", 0), 1);
        // The store shows it back...
        let (k1, mut s1) = key(1);
        s1.invalid_reason = Some("API_KEY_INVALID".into());
        pool.sync(vec![(k1, s1), key(2)]);
        assert_eq!(pool.available("m", 0), 1);
        // ...and later an operator's `keys enable` clears it in the store.
        pool.sync(vec![key(1), key(2)]);
        assert_eq!(pool.available("m", 0), 2);
    }

    fn cooling(id: KeyId, model: &str, until_ms: u64) -> (UpstreamKey, KeyState) {
        let (k, mut s) = key(id);
        s.cooldowns.insert(model.to_string(), until_ms);
        (k, s)
    }

    #[test]
    fn cooldown_survives_refreshes_until_the_store_has_it_then_an_operator_clear_wins() {
        let limited = Outcome::RateLimited {
            until_ms: 60_000,
            per_day: false,
            model_off: false,
        };
        let mut pool = KeyPool::new(vec![key(1), key(2)]);
        pool.apply(1, "m", &limited, 0);
        // A refresh read before the cooldown was written keeps it.
        pool.sync(vec![key(1), key(2)]);
        assert_eq!(pool.available("m", 10), 1);
        // The store shows it back (another instance may even have a later one)...
        pool.sync(vec![cooling(1, "m", 90_000), key(2)]);
        assert_eq!(pool.all_cooling_for("m", 10), None);
        assert_eq!(pool.available("m", 60_500), 1, "the store's later end holds");
        // ...then `keys enable` clears the store: the next refresh frees the key.
        pool.sync(vec![key(1), key(2)]);
        assert_eq!(pool.available("m", 10), 2);
        assert!(pool.statuses()[0].state.cooldowns.is_empty());
    }

    #[test]
    fn a_store_cooldown_shorter_than_the_local_one_does_not_confirm_it() {
        let mut pool = KeyPool::new(vec![key(1)]);
        let limited = Outcome::RateLimited {
            until_ms: 60_000,
            per_day: false,
            model_off: false,
        };
        pool.apply(1, "m", &limited, 0);
        // Another instance's shorter cooldown, read before ours was written.
        pool.sync(vec![cooling(1, "m", 30_000)]);
        assert_eq!(pool.available("m", 40_000), 0);
        pool.sync(vec![key(1)]);
        assert_eq!(pool.available("m", 40_000), 0, "still not confirmed");
        pool.sync(vec![cooling(1, "m", 60_000)]);
        pool.sync(vec![key(1)]);
        assert_eq!(pool.available("m", 40_000), 1);
    }

    #[test]
    fn sync_keeps_rotation_and_fresh_cooldowns() {
        let mut pool = KeyPool::new(vec![key(1), key(2)]);
        assert_eq!(picked(pool.pick("m", 0, &[], |_| None)), 1);
        pool.apply(
            2,
            "m",
            &Outcome::RateLimited {
                until_ms: 500,
                per_day: false,
                model_off: false,
            },
            0,
        );
        pool.sync(vec![key(1), key(2), key(3)]);
        // Key 2 still cools down although the store did not know yet; 3 is new.
        assert_eq!(picked(pool.pick("m", 1, &[], |_| None)), 3);
        assert_eq!(picked(pool.pick("m", 1, &[], |_| None)), 1);
        pool.sync(vec![key(3)]);
        assert_eq!(pool.len(), 1);
        assert!(pool.secrets().iter().all(|s| s.ends_with('3')));
    }

    #[test]
    fn a_model_off_is_a_cooldown_that_says_so_until_a_plain_one_replaces_it() {
        let mut pool = KeyPool::new(vec![key(1)]);
        let off = Outcome::RateLimited {
            until_ms: 5_000,
            per_day: true,
            model_off: true,
        };
        assert_eq!(
            pool.apply(1, "pro", &off, 0),
            Some(StateChange::ModelOff {
                key_id: 1,
                model: "pro".into(),
                until_ms: 5_000
            })
        );
        let state = |pool: &KeyPool| {
            pool.statuses()
                .into_iter()
                .next()
                .map(|s| s.state)
                .unwrap_or_default()
        };
        assert!(state(&pool).off_models.contains("pro"));
        assert_eq!(state(&pool).cooldowns.get("pro"), Some(&5_000));
        assert_eq!(
            pool.pick("pro", 10, &[], |_| None),
            Pick::AllCooling {
                retry_after_ms: 4_990
            }
        );
        // A refresh before the store shows it keeps the mark, like any local cooldown.
        pool.sync(vec![key(1)]);
        assert!(state(&pool).off_models.contains("pro"));
        let spent = Outcome::RateLimited {
            until_ms: 9_000,
            per_day: false,
            model_off: false,
        };
        assert!(matches!(
            pool.apply(1, "pro", &spent, 10),
            Some(StateChange::Cooldown { .. })
        ));
        assert!(!state(&pool).off_models.contains("pro"));
    }
}
