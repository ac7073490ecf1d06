//! Response variations selected by substrings of the model name, so tests
//! can pick a behaviour without any out-of-band setup.

use std::time::Duration;

/// Fixed token counts: tests assert on them, so they never depend on input.
pub const PROMPT_TOKENS: u32 = 12;
pub const CANDIDATE_TOKENS: u32 = 7;
pub const THOUGHT_TOKENS: u32 = 4;
pub const CACHED_TOKENS: u32 = 6;

/// Texts of the three stream chunks; concatenated they equal [`FULL_TEXT`].
pub const STREAM_TEXTS: [&str; 3] = ["Hello", " from", " fake Gemini"];
pub const FULL_TEXT: &str = "Hello from fake Gemini";
/// Cumulative `candidatesTokenCount` per stream chunk.
pub const STREAM_CANDIDATE_TOKENS: [u32; 3] = [3, 6, 9];
/// Streams that fail midway (`midstream`, `drop`) stop after this many chunks.
pub const CHUNKS_BEFORE_FAILURE: usize = 2;
/// Delay before every chunk of a `slowstream` stream.
pub const SLOW_CHUNK_DELAY: Duration = Duration::from_millis(300);
/// Extra chunks a `longstream` stream sends before its normal ones (× the delay).
pub const LONG_STREAM_EXTRA_CHUNKS: usize = 200;
/// The pause after a `silent` stream's first chunk (heartbeat tests).
pub const SILENCE: Duration = Duration::from_secs(5);
/// How long a `slowheaders` model keeps its response headers back.
pub const SLOW_HEADERS: Duration = Duration::from_secs(2);
/// Size of the text part for `big` models.
pub const BIG_TEXT_LEN: usize = 1 << 20;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ModelFlags {
    pub thinking: bool,
    pub blocked: bool,
    pub overloaded: bool,
    pub slow_stream: bool,
    /// A stream that goes on for about a minute (shutdown tests).
    pub long_stream: bool,
    pub midstream: bool,
    pub drop: bool,
    pub big: bool,
    pub cached: bool,
    /// A stream that falls silent for [`SILENCE`] after its first chunk.
    pub silent: bool,
    /// Any answer comes after [`SLOW_HEADERS`].
    pub slow_headers: bool,
}

impl ModelFlags {
    pub fn from_model(model: &str) -> Self {
        ModelFlags {
            thinking: model.contains("thinking"),
            blocked: model.contains("blocked"),
            overloaded: model.contains("overloaded"),
            slow_stream: model.contains("slowstream"),
            long_stream: model.contains("longstream"),
            midstream: model.contains("midstream"),
            drop: model.contains("drop"),
            big: model.contains("big"),
            cached: model.contains("cached"),
            silent: model.contains("silent"),
            slow_headers: model.contains("slowheaders"),
        }
    }

    pub fn thoughts(self) -> Option<u32> {
        self.thinking.then_some(THOUGHT_TOKENS)
    }

    pub fn cached_tokens(self) -> Option<u32> {
        self.cached.then_some(CACHED_TOKENS)
    }

    /// Delay to wait before each stream chunk.
    pub fn chunk_delay(self) -> Option<Duration> {
        (self.slow_stream || self.long_stream).then_some(SLOW_CHUNK_DELAY)
    }

    /// Delay before stream chunk `index` (0-based): a `silent` stream's second one
    /// comes after [`SILENCE`].
    pub fn delay_before(self, index: usize) -> Option<Duration> {
        match (self.silent, index) {
            (true, 1) => Some(SILENCE),
            _ => self.chunk_delay(),
        }
    }

    /// How many of the normal stream chunks are sent before the stream
    /// ends (normally) or fails (midstream/drop).
    pub fn chunks_to_send(self) -> usize {
        if self.midstream || self.drop {
            CHUNKS_BEFORE_FAILURE
        } else {
            STREAM_TEXTS.len()
        }
    }

    /// `totalTokenCount` for a given candidates count (thoughts count too).
    pub fn total(self, candidates: u32) -> u32 {
        PROMPT_TOKENS + candidates + self.thoughts().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_from_name() {
        let f = ModelFlags::from_model("gemini-2.5-flash-thinking-cached");
        assert!(f.thinking && f.cached && !f.big);
        assert_eq!(f.total(7), 23);
        assert_eq!(ModelFlags::from_model("gemini-2.5-flash"), ModelFlags::default());
        assert_eq!(ModelFlags::from_model("x-drop").chunks_to_send(), 2);
    }
}
