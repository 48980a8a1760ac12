//! Size limits applied to every message before and after decoding.

use std::fmt;

/// The largest `max_envelope_bytes` a node may configure: the gossip layer's maximum transmit size
/// (1 MiB, which counts the whole RPC frame) less 1 KiB for the frame's own fields and topic.
pub const MAX_ENVELOPE_BYTES_CEILING: usize = (1 << 20) - 1024;

/// Limits a receiver enforces on every bundle. Exceeding any of them rejects the message.
///
/// The defaults are the protocol's recommended values; a node may lower them, or raise them up to the
/// ceilings checked by [`Limits::check`]. Plain data so that the node's configuration maps onto it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Encoded envelope size, checked before anything is decoded. Default 256 KiB.
    pub max_envelope_bytes: usize,
    /// Completions per bundle. Default 64.
    pub max_completions: usize,
    /// UTF-8 bytes of one completion's text. Default 16 KiB.
    pub max_text_bytes: usize,
    /// UTF-8 bytes of the prompt. Default 16 KiB.
    pub max_prompt_bytes: usize,
    /// Tokens (and log-probs) per completion. Default 4096.
    pub max_tokens: usize,
    /// UTF-8 bytes of short names: the model name and the task family. Default 256.
    pub max_name_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_envelope_bytes: 256 * 1024,
            max_completions: 64,
            max_text_bytes: 16 * 1024,
            max_prompt_bytes: 16 * 1024,
            max_tokens: 4096,
            max_name_bytes: 256,
        }
    }
}

impl Limits {
    /// Checks that every limit is usable: non-zero, and the envelope limit within
    /// [`MAX_ENVELOPE_BYTES_CEILING`] (the codec's hard decode bound is sized from that ceiling).
    pub fn check(&self) -> Result<(), LimitsError> {
        let fields = [
            (LimitKind::EnvelopeBytes, self.max_envelope_bytes),
            (LimitKind::Completions, self.max_completions),
            (LimitKind::TextBytes, self.max_text_bytes),
            (LimitKind::PromptBytes, self.max_prompt_bytes),
            (LimitKind::Tokens, self.max_tokens),
            (LimitKind::NameBytes, self.max_name_bytes),
        ];
        for (kind, value) in fields {
            if value == 0 {
                return Err(LimitsError {
                    kind,
                    value,
                    max: None,
                });
            }
        }
        if self.max_envelope_bytes > MAX_ENVELOPE_BYTES_CEILING {
            return Err(LimitsError {
                kind: LimitKind::EnvelopeBytes,
                value: self.max_envelope_bytes,
                max: Some(MAX_ENVELOPE_BYTES_CEILING),
            });
        }
        Ok(())
    }
}

/// A configured limit that cannot be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LimitsError {
    /// Which limit.
    pub kind: LimitKind,
    /// The configured value.
    pub value: usize,
    /// The largest accepted value, when the problem is the upper bound.
    pub max: Option<usize>,
}

impl fmt::Display for LimitsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.max {
            None => write!(
                f,
                "limit {} is 0; it must be at least 1",
                self.kind.field_name()
            ),
            Some(max) => write!(
                f,
                "limit {} is {}; it must be between 1 and {max}",
                self.kind.field_name(),
                self.value
            ),
        }
    }
}

impl std::error::Error for LimitsError {}

/// Names one of the [`Limits`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LimitKind {
    /// [`Limits::max_envelope_bytes`]
    EnvelopeBytes,
    /// [`Limits::max_completions`]
    Completions,
    /// [`Limits::max_text_bytes`]
    TextBytes,
    /// [`Limits::max_prompt_bytes`]
    PromptBytes,
    /// [`Limits::max_tokens`]
    Tokens,
    /// [`Limits::max_name_bytes`]
    NameBytes,
}

impl LimitKind {
    /// Every limit kind.
    pub const ALL: [LimitKind; 6] = [
        LimitKind::EnvelopeBytes,
        LimitKind::Completions,
        LimitKind::TextBytes,
        LimitKind::PromptBytes,
        LimitKind::Tokens,
        LimitKind::NameBytes,
    ];

    /// The [`Limits`] field this kind names, e.g. `max_tokens`.
    pub fn field_name(self) -> &'static str {
        match self {
            LimitKind::EnvelopeBytes => "max_envelope_bytes",
            LimitKind::Completions => "max_completions",
            LimitKind::TextBytes => "max_text_bytes",
            LimitKind::PromptBytes => "max_prompt_bytes",
            LimitKind::Tokens => "max_tokens",
            LimitKind::NameBytes => "max_name_bytes",
        }
    }
}
