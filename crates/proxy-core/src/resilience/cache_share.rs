//! The message one instance sends the others when it keeps an answer (`REDIS_URL`):
//! which instance sent it, the cache key, how long the answer stays fresh, and the
//! answer itself. Each instance keeps what it receives in its own memory, so a lookup
//! never leaves the process: sharing costs a message per answer kept, not a round trip
//! per request.
//!
//! Layout (big-endian): `GPC1`, origin (8 bytes), key (32), fresh ms (8), content
//! type length (2), content type, body.

use bytes::Bytes;

use super::cache::{CacheKey, CachedAnswer};

const MAGIC: &[u8; 4] = b"GPC1";
const HEAD: usize = 4 + 8 + 32 + 8 + 2;

/// A kept answer as the other instances receive it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SharedAnswer {
    /// The sending instance, so it can skip its own messages.
    pub origin: u64,
    pub key: CacheKey,
    /// How long it stays fresh from when it was sent.
    pub fresh_ms: u64,
    pub answer: CachedAnswer,
}

impl SharedAnswer {
    pub fn encode(&self) -> Vec<u8> {
        let content_type = self.answer.content_type.as_bytes();
        let content_type = &content_type[..content_type.len().min(usize::from(u16::MAX))];
        let mut out = Vec::with_capacity(HEAD + content_type.len() + self.answer.body.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.origin.to_be_bytes());
        out.extend_from_slice(&self.key);
        out.extend_from_slice(&self.fresh_ms.to_be_bytes());
        out.extend_from_slice(&(content_type.len() as u16).to_be_bytes());
        out.extend_from_slice(content_type);
        out.extend_from_slice(&self.answer.body);
        out
    }

    /// `None` for anything that is not a whole message of this version.
    pub fn decode(message: &[u8]) -> Option<Self> {
        let rest = message.strip_prefix(MAGIC)?;
        let (origin, rest) = rest.split_first_chunk::<8>()?;
        let (key, rest) = rest.split_first_chunk::<32>()?;
        let (fresh_ms, rest) = rest.split_first_chunk::<8>()?;
        let (type_len, rest) = rest.split_first_chunk::<2>()?;
        let type_len = usize::from(u16::from_be_bytes(*type_len));
        if rest.len() < type_len {
            return None;
        }
        let (content_type, body) = rest.split_at(type_len);
        Some(Self {
            origin: u64::from_be_bytes(*origin),
            key: *key,
            fresh_ms: u64::from_be_bytes(*fresh_ms),
            answer: CachedAnswer {
                content_type: String::from_utf8(content_type.to_vec()).ok()?,
                body: Bytes::copy_from_slice(body),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> SharedAnswer {
        SharedAnswer {
            origin: 0xfeed_beef,
            key: [7; 32],
            fresh_ms: 59_000,
            answer: CachedAnswer {
                content_type: "application/json; charset=UTF-8".into(),
                body: Bytes::from_static(br#"{"candidates":[]}"#),
            },
        }
    }

    #[test]
    fn a_message_reads_back_as_sent() {
        let sent = sample();
        assert_eq!(SharedAnswer::decode(&sent.encode()), Some(sent));
        let empty = SharedAnswer {
            answer: CachedAnswer {
                content_type: String::new(),
                body: Bytes::new(),
            },
            ..sample()
        };
        assert_eq!(SharedAnswer::decode(&empty.encode()), Some(empty));
    }

    #[test]
    fn cut_or_foreign_messages_are_refused() {
        let whole = sample().encode();
        for cut in [0, 3, 4, 11, 44, 52, HEAD, HEAD + 5] {
            assert_eq!(SharedAnswer::decode(&whole[..cut]), None, "cut at {cut}");
        }
        let mut other_version = whole.clone();
        other_version[3] = b'2';
        assert_eq!(SharedAnswer::decode(&other_version), None);
        let mut bad_type = whole;
        bad_type[HEAD] = 0xff;
        assert_eq!(SharedAnswer::decode(&bad_type), None, "content type not UTF-8");
    }
}
