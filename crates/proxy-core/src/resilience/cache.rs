//! The response cache (`--cache-ttl-secs`, `--cache-max-mb`, `--cache-shared`):
//! identical non-streamed `generateContent`, `countTokens`, `embedContent` and
//! `batchEmbedContents` requests (same model and operation, same body up to key order
//! and whitespace, same proxy key unless shared) are answered from memory within the
//! TTL, without calling upstream. Only whole 200 answers with nothing wrong in them are
//! kept; the least recently used go first when the size bound is reached.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard, OnceLock};

use bytes::Bytes;
use sha2::{Digest, Sha256};

use crate::canonical::write_canonical;
use crate::route::Operation;

/// The cache's settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheConfig {
    /// How long an answer is served from the cache; 0 switches the cache off.
    pub ttl_ms: u64,
    /// Bytes of answers kept at most.
    pub max_bytes: usize,
    /// One cache for every proxy key (else each key has its own).
    pub shared: bool,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            ttl_ms: crate::defaults::CACHE_TTL_SECS * 1000,
            max_bytes: crate::defaults::mib_to_bytes(crate::defaults::CACHE_MAX_MB),
            shared: crate::defaults::CACHE_SHARED,
        }
    }
}

/// What identifies a cached answer: a SHA-256 over the proxy key (unless shared),
/// the method, the upstream path and query, and the body in canonical form.
pub type CacheKey = [u8; 32];

/// A cached answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CachedAnswer {
    pub content_type: String,
    pub body: Bytes,
}

#[derive(Debug)]
struct Entry {
    answer: CachedAnswer,
    expires_ms: u64,
    /// Which use in `order` is this entry's latest.
    used: u64,
}

#[derive(Debug, Default)]
struct State {
    entries: HashMap<CacheKey, Entry>,
    /// Keys by use, oldest first; a key used again is pushed again (stale uses skipped).
    order: VecDeque<(CacheKey, u64)>,
    bytes: usize,
    uses: u64,
}

/// Told of every answer this instance keeps, with the milliseconds it stays fresh, so
/// a platform can hand it to the other instances (`REDIS_URL`, [`super::cache_share`]).
pub type Announce = Box<dyn Fn(&CacheKey, &CachedAnswer, u64) + Send + Sync>;

/// The process's cache.
#[derive(Default)]
pub struct ResponseCache {
    config: CacheConfig,
    state: Mutex<State>,
    announce: OnceLock<Announce>,
}

impl std::fmt::Debug for ResponseCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseCache")
            .field("config", &self.config)
            .field("usage", &self.usage())
            .finish_non_exhaustive()
    }
}

/// Overhead counted per entry besides its body (key, content type, bookkeeping).
const ENTRY_OVERHEAD: usize = 128;

impl ResponseCache {
    pub fn new(config: CacheConfig) -> Self {
        Self {
            config,
            state: Mutex::default(),
            announce: OnceLock::new(),
        }
    }

    /// Calls `announce` for every answer kept from now on by this instance (not those
    /// an [`Self::put_from_peer`] brings). Set once; later calls are ignored.
    pub fn on_fill(&self, announce: Announce) {
        let _ = self.announce.set(announce);
    }

    pub fn is_on(&self) -> bool {
        self.config.ttl_ms > 0 && self.config.max_bytes > 0
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The key of a request, or `None` when its operation is not cached.
    pub fn key_for(
        &self,
        operation: Operation,
        stream: bool,
        proxy_key_id: i64,
        method: &str,
        path_and_query: &str,
        body: &[u8],
    ) -> Option<CacheKey> {
        let cached = matches!(
            operation,
            Operation::GenerateContent
                | Operation::CountTokens
                | Operation::EmbedContent
                | Operation::BatchEmbedContents
        );
        if !self.is_on() || !cached || stream {
            return None;
        }
        let mut hash = Sha256::new();
        match self.config.shared {
            true => hash.update(b"shared\n"),
            false => hash.update(format!("key {proxy_key_id}\n")),
        }
        hash.update(method.as_bytes());
        hash.update(b"\n");
        hash.update(path_and_query.as_bytes());
        hash.update(b"\n");
        match serde_json::from_slice::<serde_json::Value>(body) {
            Ok(value) => {
                let mut canonical = Vec::with_capacity(body.len());
                write_canonical(&value, &mut canonical);
                hash.update(&canonical);
            }
            Err(_) => hash.update(body),
        }
        Some(hash.finalize().into())
    }

    /// The answer kept for `key`, if it has not expired at `now_ms`.
    pub fn get(&self, key: &CacheKey, now_ms: u64) -> Option<CachedAnswer> {
        let mut state = self.lock();
        let expired = state.entries.get(key).is_some_and(|e| e.expires_ms <= now_ms);
        if expired {
            if let Some(entry) = state.entries.remove(key) {
                state.bytes = state.bytes.saturating_sub(size(&entry.answer));
            }
            return None;
        }
        state.uses += 1;
        let used = state.uses;
        let answer = {
            let entry = state.entries.get_mut(key)?;
            entry.used = used;
            entry.answer.clone()
        };
        state.order.push_back((*key, used));
        Some(answer)
    }

    /// Keeps `answer` for `key` from `now_ms`, evicting the least recently used past
    /// the size bound. An answer larger than an eighth of the bound is not kept. The
    /// other instances are told ([`Self::on_fill`]).
    pub fn put(&self, key: CacheKey, answer: CachedAnswer, now_ms: u64) {
        let ttl_ms = self.config.ttl_ms;
        // The answer is cloned only when someone is told of it.
        match self.announce.get() {
            None => {
                self.store(key, answer, now_ms, ttl_ms);
            }
            Some(announce) => {
                if self.store(key, answer.clone(), now_ms, ttl_ms) {
                    announce(&key, &answer, ttl_ms);
                }
            }
        }
    }

    /// Keeps an answer another instance kept, for what is left of its freshness (never
    /// longer than this instance's own TTL).
    pub fn put_from_peer(&self, key: CacheKey, answer: CachedAnswer, fresh_ms: u64, now_ms: u64) {
        self.store(key, answer, now_ms, fresh_ms.min(self.config.ttl_ms));
    }

    /// Whether the answer was kept.
    fn store(&self, key: CacheKey, answer: CachedAnswer, now_ms: u64, ttl_ms: u64) -> bool {
        let bytes = size(&answer);
        if !self.is_on() || ttl_ms == 0 || bytes > self.max_entry_bytes() {
            return false;
        }
        let mut state = self.lock();
        state.uses += 1;
        let used = state.uses;
        let entry = Entry {
            answer,
            expires_ms: now_ms.saturating_add(ttl_ms),
            used,
        };
        if let Some(old) = state.entries.insert(key, entry) {
            state.bytes = state.bytes.saturating_sub(size(&old.answer));
        }
        state.bytes += bytes;
        state.order.push_back((key, used));
        while state.bytes > self.config.max_bytes {
            let Some((oldest, use_of)) = state.order.pop_front() else {
                break;
            };
            let current = state.entries.get(&oldest).is_some_and(|e| e.used == use_of);
            if current && let Some(entry) = state.entries.remove(&oldest) {
                state.bytes = state.bytes.saturating_sub(size(&entry.answer));
            }
        }
        // Stale uses pile up under hits; drop them once they outnumber entries.
        if state.order.len() > 2 * state.entries.len() + 64 {
            let State { entries, order, .. } = &mut *state;
            order.retain(|(k, u)| entries.get(k).is_some_and(|e| e.used == *u));
        }
        true
    }

    /// The largest answer kept.
    pub fn max_entry_bytes(&self) -> usize {
        self.config.max_bytes / 8
    }

    /// Answers kept and their bytes.
    pub fn usage(&self) -> (usize, usize) {
        let state = self.lock();
        (state.entries.len(), state.bytes)
    }
}

fn size(answer: &CachedAnswer) -> usize {
    answer.body.len() + answer.content_type.len() + ENTRY_OVERHEAD
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(ttl_ms: u64, max_bytes: usize, shared: bool) -> ResponseCache {
        ResponseCache::new(CacheConfig {
            ttl_ms,
            max_bytes,
            shared,
        })
    }

    fn key(cache: &ResponseCache, proxy_key: i64, body: &str) -> Option<CacheKey> {
        let path = "/v1beta/models/m:generateContent";
        cache.key_for(
            Operation::GenerateContent,
            false,
            proxy_key,
            "POST",
            path,
            body.as_bytes(),
        )
    }

    fn answer(body: &str) -> CachedAnswer {
        CachedAnswer {
            content_type: "application/json".into(),
            body: Bytes::from(body.to_string()),
        }
    }

    #[test]
    fn the_same_request_written_another_way_has_the_same_key() {
        let c = cache(1_000, 1 << 20, false);
        let a = key(
            &c,
            1,
            r#"{"contents":[{"parts":[{"text":"hi"}]}],"generationConfig":{"temperature":0}}"#,
        );
        let b = key(
            &c,
            1,
            r#"{ "generationConfig": {"temperature": 0}, "contents": [ {"parts":[{"text":"hi"}]} ] }"#,
        );
        assert!(a.is_some() && a == b);
        assert_ne!(a, key(&c, 1, r#"{"contents":[{"parts":[{"text":"ho"}]}]}"#));
        assert_ne!(
            a,
            key(
                &c,
                2,
                r#"{"contents":[{"parts":[{"text":"hi"}]}],"generationConfig":{"temperature":0}}"#
            ),
            "per proxy key"
        );
        let shared = cache(1_000, 1 << 20, true);
        assert_eq!(key(&shared, 1, "{}"), key(&shared, 2, "{}"), "--cache-shared");
        let other_model = c.key_for(
            Operation::GenerateContent,
            false,
            1,
            "POST",
            "/v1beta/models/n:generateContent",
            b"{}",
        );
        assert_ne!(key(&c, 1, "{}"), other_model);
        // Streams, chats and the off switch are never cached.
        assert!(
            c.key_for(Operation::StreamGenerateContent, true, 1, "POST", "/x", b"{}")
                .is_none()
        );
        assert!(
            c.key_for(Operation::ChatCompletions, false, 1, "POST", "/x", b"{}")
                .is_none()
        );
        assert!(key(&cache(0, 1 << 20, false), 1, "{}").is_none());
    }

    #[test]
    fn answers_expire_after_the_ttl() {
        let c = cache(1_000, 1 << 20, false);
        let k = key(&c, 1, "{}").unwrap_or_default();
        assert_eq!(c.get(&k, 0), None, "a miss");
        c.put(k, answer("a"), 100);
        assert_eq!(c.get(&k, 1_099), Some(answer("a")));
        assert_eq!(c.get(&k, 1_100), None, "expired");
        assert_eq!(c.usage().0, 0);
    }

    #[test]
    fn the_size_bound_evicts_the_least_recently_used() {
        let body = "x".repeat(100);
        let one = size(&answer(&body));
        let c = cache(60_000, one * 8, false);
        let keys: Vec<CacheKey> = (0..9).map(|i| key(&c, i, "{}").unwrap_or_default()).collect();
        for k in &keys[..8] {
            c.put(*k, answer(&body), 0);
        }
        assert_eq!(c.usage(), (8, one * 8));
        assert!(c.get(&keys[0], 1).is_some(), "key 0 used again");
        c.put(keys[8], answer(&body), 2);
        assert_eq!(c.usage(), (8, one * 8), "never past the bound");
        assert!(c.get(&keys[1], 3).is_none(), "the least recently used went");
        assert!(c.get(&keys[0], 3).is_some());
        // An answer bigger than an eighth of the bound is not kept at all.
        c.put(keys[1], answer(&"y".repeat(one * 2)), 4);
        assert!(c.get(&keys[1], 5).is_none());
    }

    #[test]
    fn own_answers_are_announced_and_a_peers_are_kept_for_what_is_left() {
        use std::sync::Arc;
        let c = cache(1_000, 1 << 20, false);
        let told = Arc::new(Mutex::new(Vec::new()));
        let sink = told.clone();
        c.on_fill(Box::new(move |key, answer, fresh_ms| {
            sink.lock()
                .unwrap_or_else(|p| p.into_inner())
                .push((*key, answer.clone(), fresh_ms));
        }));
        let mine = key(&c, 1, r#"{"a":1}"#).unwrap_or_default();
        c.put(mine, answer("mine"), 0);
        let peers = key(&c, 1, r#"{"a":2}"#).unwrap_or_default();
        c.put_from_peer(peers, answer("theirs"), 300, 100);
        // Too big to keep: not announced either.
        c.put(peers, answer(&"z".repeat(1 << 20)), 0);
        let told = told.lock().unwrap_or_else(|p| p.into_inner()).clone();
        assert_eq!(
            told,
            vec![(mine, answer("mine"), 1_000)],
            "only what this instance kept"
        );
        assert_eq!(c.get(&peers, 399), Some(answer("theirs")));
        assert_eq!(
            c.get(&peers, 400),
            None,
            "a peer's answer lasts what was left of it"
        );
        // A peer's longer freshness is cut to this instance's TTL.
        c.put_from_peer(peers, answer("theirs"), 60_000, 0);
        assert_eq!(c.get(&peers, 1_000), None);
    }
}
