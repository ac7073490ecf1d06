//! What is learned about an upstream key while serving (cooldowns, an invalid mark),
//! and the changes of it that stores keep. Plain data, below every decision.

use std::collections::{BTreeMap, BTreeSet};

use crate::keys::KeyId;

/// What the pool knows about a key beyond its configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyState {
    /// Set when upstream said the key is broken; the key is skipped until re-enabled.
    pub invalid_reason: Option<String>,
    /// Model -> unix ms until which the key must not be used for that model.
    pub cooldowns: BTreeMap<String, u64>,
    /// Models whose cooldown says the model is off for this key (its quota is 0)
    /// rather than spent; meaningful while the cooldown lasts.
    pub off_models: BTreeSet<String>,
    pub last_used_ms: Option<u64>,
}

/// A change worth persisting so other instances (and restarts) see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StateChange {
    Cooldown {
        key_id: KeyId,
        model: String,
        until_ms: u64,
    },
    Invalid {
        key_id: KeyId,
        reason: String,
    },
    /// A cooldown (as [`StateChange::Cooldown`]) because the model is off for the
    /// key: its quota's limit is 0. Stores keep it as a cooldown that says so.
    ModelOff {
        key_id: KeyId,
        model: String,
        until_ms: u64,
    },
}
