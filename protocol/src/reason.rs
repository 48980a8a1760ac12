//! Why a message was rejected or ignored, with stable names for metrics.
//!
//! Reject means the sender broke the protocol (gossip penalises the peer that forwarded it); Ignore
//! means the message is well-formed but not useful to this node now (no penalty).

use std::fmt;

use crate::limits::LimitKind;

/// A protocol violation. The message is dropped and its forwarder penalised.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RejectReason {
    /// The envelope does not follow the version-1 layout.
    MalformedEnvelope,
    /// The envelope's version is not one this node implements.
    UnsupportedVersion,
    /// The signature does not verify against the envelope's signer.
    BadSignature,
    /// The signed payload does not decode as a bundle.
    MalformedPayload,
    /// The bundle's author is not the key that signed it.
    AuthorMismatch,
    /// The bundle belongs to another network.
    WrongNetwork,
    /// A size limit was exceeded.
    OverLimit(LimitKind),
    /// The bundle carries no completions.
    NoCompletions,
    /// A completion has a different number of token ids and log-probs.
    LogprobLengthMismatch,
    /// A log-prob is NaN, infinite or positive.
    InvalidLogprob,
    /// A claimed reward is NaN or outside [0, 1].
    InvalidReward,
    /// The sampling parameters describe no valid distribution.
    InvalidSampling,
    /// A completion has more tokens than the bundle's `max_new_tokens`.
    CompletionTooLong,
    /// The prompt is not the one the task reference produces.
    PromptMismatch,
}

impl RejectReason {
    /// Every reject reason, each limit kind included once.
    pub const ALL: [RejectReason; 19] = [
        RejectReason::MalformedEnvelope,
        RejectReason::UnsupportedVersion,
        RejectReason::BadSignature,
        RejectReason::MalformedPayload,
        RejectReason::AuthorMismatch,
        RejectReason::WrongNetwork,
        RejectReason::OverLimit(LimitKind::EnvelopeBytes),
        RejectReason::OverLimit(LimitKind::Completions),
        RejectReason::OverLimit(LimitKind::TextBytes),
        RejectReason::OverLimit(LimitKind::PromptBytes),
        RejectReason::OverLimit(LimitKind::Tokens),
        RejectReason::OverLimit(LimitKind::NameBytes),
        RejectReason::NoCompletions,
        RejectReason::LogprobLengthMismatch,
        RejectReason::InvalidLogprob,
        RejectReason::InvalidReward,
        RejectReason::InvalidSampling,
        RejectReason::CompletionTooLong,
        RejectReason::PromptMismatch,
    ];

    /// Stable snake_case name, for metric labels and logs. Never changes once released.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::MalformedEnvelope => "malformed_envelope",
            RejectReason::UnsupportedVersion => "unsupported_version",
            RejectReason::BadSignature => "bad_signature",
            RejectReason::MalformedPayload => "malformed_payload",
            RejectReason::AuthorMismatch => "author_mismatch",
            RejectReason::WrongNetwork => "wrong_network",
            RejectReason::OverLimit(LimitKind::EnvelopeBytes) => "over_limit_envelope_bytes",
            RejectReason::OverLimit(LimitKind::Completions) => "over_limit_completions",
            RejectReason::OverLimit(LimitKind::TextBytes) => "over_limit_text_bytes",
            RejectReason::OverLimit(LimitKind::PromptBytes) => "over_limit_prompt_bytes",
            RejectReason::OverLimit(LimitKind::Tokens) => "over_limit_tokens",
            RejectReason::OverLimit(LimitKind::NameBytes) => "over_limit_name_bytes",
            RejectReason::NoCompletions => "no_completions",
            RejectReason::LogprobLengthMismatch => "logprob_length_mismatch",
            RejectReason::InvalidLogprob => "invalid_logprob",
            RejectReason::InvalidReward => "invalid_reward",
            RejectReason::InvalidSampling => "invalid_sampling",
            RejectReason::CompletionTooLong => "completion_too_long",
            RejectReason::PromptMismatch => "prompt_mismatch",
        }
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            RejectReason::MalformedEnvelope => "envelope does not follow the version-1 layout",
            RejectReason::UnsupportedVersion => {
                "envelope has a protocol version this node does not implement"
            }
            RejectReason::BadSignature => "signature does not verify against the envelope's signer",
            RejectReason::MalformedPayload => "signed payload does not decode as a rollout bundle",
            RejectReason::AuthorMismatch => "bundle author is not the key that signed the envelope",
            RejectReason::WrongNetwork => "bundle belongs to another network",
            RejectReason::OverLimit(kind) => {
                return write!(f, "bundle exceeds {}", kind.field_name());
            }
            RejectReason::NoCompletions => "bundle has no completions",
            RejectReason::LogprobLengthMismatch => {
                "a completion's token ids and log-probs differ in length"
            }
            RejectReason::InvalidLogprob => "a log-prob is NaN, infinite or positive",
            RejectReason::InvalidReward => "a reward is NaN or outside [0, 1]",
            RejectReason::InvalidSampling => {
                "sampling parameters are invalid (temperature must be finite and > 0, top_p in (0, 1], max_new_tokens >= 1)"
            }
            RejectReason::CompletionTooLong => "a completion has more tokens than max_new_tokens",
            RejectReason::PromptMismatch => {
                "prompt differs from the one the task reference produces"
            }
        };
        f.write_str(text)
    }
}

/// A well-formed message this node does not use now. Dropped without penalty.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IgnoreReason {
    /// Already seen (same message id, or same author and sequence).
    Duplicate,
    /// Created longer ago than the staleness window allows.
    Stale,
    /// Created further in the future than the allowed clock skew.
    FromFuture,
    /// The task family is not known to this node.
    UnknownTaskFamily,
    /// The dataset is not loaded on this node.
    UnknownDataset,
    /// The author is over its publishing quota (see [`crate::ValidationHooks::author_over_quota`]).
    OverAuthorQuota,
    /// The forwarding peer is over its rate quota (checked by the network layer before validation).
    OverPeerQuota,
}

impl IgnoreReason {
    /// Every ignore reason.
    pub const ALL: [IgnoreReason; 7] = [
        IgnoreReason::Duplicate,
        IgnoreReason::Stale,
        IgnoreReason::FromFuture,
        IgnoreReason::UnknownTaskFamily,
        IgnoreReason::UnknownDataset,
        IgnoreReason::OverAuthorQuota,
        IgnoreReason::OverPeerQuota,
    ];

    /// Stable snake_case name, for metric labels and logs. Never changes once released.
    pub fn as_str(self) -> &'static str {
        match self {
            IgnoreReason::Duplicate => "duplicate",
            IgnoreReason::Stale => "stale",
            IgnoreReason::FromFuture => "from_future",
            IgnoreReason::UnknownTaskFamily => "unknown_task_family",
            IgnoreReason::UnknownDataset => "unknown_dataset",
            IgnoreReason::OverAuthorQuota => "over_quota_author",
            IgnoreReason::OverPeerQuota => "over_quota_peer",
        }
    }
}

impl fmt::Display for IgnoreReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IgnoreReason::Duplicate => "already seen",
            IgnoreReason::Stale => "older than the staleness window",
            IgnoreReason::FromFuture => "created further in the future than the allowed clock skew",
            IgnoreReason::UnknownTaskFamily => "task family unknown to this node",
            IgnoreReason::UnknownDataset => "dataset not loaded on this node",
            IgnoreReason::OverAuthorQuota => "author over its publishing quota",
            IgnoreReason::OverPeerQuota => "forwarding peer over its rate quota",
        })
    }
}

/// The verdict on one message without the message itself: what counters and metrics are keyed by.
///
/// Typed rather than a name so that consumers that group outcomes (accept / reject / ignore) match
/// on the variant instead of looking names up in [`RejectReason::ALL`] and [`IgnoreReason::ALL`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Outcome {
    /// The message passed every check.
    Accept,
    /// The message broke the protocol.
    Reject(RejectReason),
    /// The message was well-formed but not useful now.
    Ignore(IgnoreReason),
}

impl Outcome {
    /// Stable snake_case label: `accept`, or the reason's [`RejectReason::as_str`] /
    /// [`IgnoreReason::as_str`] name (reason names are unique across both kinds).
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Accept => "accept",
            Outcome::Reject(reason) => reason.as_str(),
            Outcome::Ignore(reason) => reason.as_str(),
        }
    }

    /// Stable name of the kind of outcome: `accept`, `reject` or `ignore`.
    pub fn kind(self) -> &'static str {
        match self {
            Outcome::Accept => "accept",
            Outcome::Reject(_) => "reject",
            Outcome::Ignore(_) => "ignore",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcome_labels_are_unique_across_kinds() {
        let outcomes: Vec<Outcome> = std::iter::once(Outcome::Accept)
            .chain(RejectReason::ALL.map(Outcome::Reject))
            .chain(IgnoreReason::ALL.map(Outcome::Ignore))
            .collect();
        let labels: std::collections::BTreeSet<&str> =
            outcomes.iter().map(|outcome| outcome.label()).collect();
        assert_eq!(labels.len(), outcomes.len());
    }
}
