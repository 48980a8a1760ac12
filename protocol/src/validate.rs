//! Model-free validation of untrusted envelopes: the single entry point the network layer calls for
//! every gossip message.

use crate::codec::CodecError;
use crate::ids::{MessageId, prompt_hash};
use crate::limits::{LimitKind, Limits};
use crate::reason::{IgnoreReason, Outcome, RejectReason};
use crate::wire::{
    Completion, Digest, PublicKeyBytes, RolloutBundle, SamplingParams, SignedEnvelope, TaskRef,
};

/// The outcome of validating one message.
#[derive(Clone, Debug, PartialEq)]
pub enum Validation {
    /// Valid and useful: deliver it to the learner and forward it.
    Accept(ValidatedBundle),
    /// Valid but not useful now: drop it without penalising the sender.
    Ignore(IgnoreReason),
    /// Protocol violation: drop it and penalise the sender.
    Reject(RejectReason),
}

impl Validation {
    /// Stable metric label of the outcome: `accept`, or the reason's name.
    pub fn as_str(&self) -> &'static str {
        self.outcome().label()
    }

    /// The verdict without the bundle, for counting.
    pub fn outcome(&self) -> Outcome {
        match self {
            Validation::Accept(_) => Outcome::Accept,
            Validation::Ignore(reason) => Outcome::Ignore(*reason),
            Validation::Reject(reason) => Outcome::Reject(*reason),
        }
    }
}

/// A bundle that passed every check.
#[derive(Clone, Debug, PartialEq)]
pub struct ValidatedBundle {
    /// The decoded bundle.
    pub bundle: RolloutBundle,
    /// Its message id (first 20 bytes of blake3 of the payload).
    pub message_id: MessageId,
    /// The key that signed it; equal to `bundle.author`.
    pub signer: PublicKeyBytes,
}

/// How old and how far ahead of the receiver's clock a bundle may be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StalenessWindow {
    /// Bundles created more than this long before `now_ms` are ignored as stale.
    pub max_age_ms: u64,
    /// Bundles created more than this long after `now_ms` are ignored as coming from the future
    /// (clocks are not synchronised, so some skew is normal).
    pub max_future_skew_ms: u64,
}

/// What the caller's task generators say about a task reference and the prompt that came with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskCheck {
    /// The reference regenerates exactly this prompt.
    Match,
    /// The reference regenerates another prompt.
    Mismatch,
    /// The procedural family is not known to this node.
    UnknownFamily,
    /// The dataset is not loaded on this node.
    UnknownDataset,
}

/// The checks that need node state, supplied by the caller.
pub trait ValidationHooks {
    /// Whether this message was already seen: by id, or because its author already published this
    /// sequence number. Called only for messages that passed every other check except the task check;
    /// recording the message as seen is the caller's job, after an Accept.
    fn is_duplicate(&self, id: &MessageId, author: &PublicKeyBytes, sequence: u64) -> bool;

    /// Regenerates the question `task` names and compares it with `prompt`. For
    /// [`TaskRef::Unlabeled`] the prompt hash was already checked, so `Match` is the usual answer.
    fn check_task(&self, task: &TaskRef, prompt: &str) -> TaskCheck;

    /// Whether `author` has used up its publishing quota. Asked only after the signature proved the
    /// author, so a forger cannot spend someone else's quota; the caller charges the quota when it
    /// records an accepted message. (Per-peer quotas on forwarders belong to the network layer, which
    /// reports them as [`IgnoreReason::OverPeerQuota`].)
    fn author_over_quota(&self, author: &PublicKeyBytes) -> bool;
}

/// Everything [`validate`] needs beyond the message bytes.
pub struct ValidationContext<'a> {
    /// The id of the network this node belongs to (see [`crate::network_id`]).
    pub network_id: Digest,
    /// Limits to enforce; should satisfy [`Limits::check`].
    pub limits: &'a Limits,
    /// The receiver's clock, in milliseconds since the Unix epoch.
    pub now_ms: u64,
    /// Accepted age range of bundles.
    pub staleness: StalenessWindow,
    /// Duplicate and task checks.
    pub hooks: &'a dyn ValidationHooks,
}

/// Validates one untrusted message, cheapest and most damning checks first: size, framing, version,
/// signature (before the payload is decoded), payload decoding, author, network, limits and structure,
/// then the staleness window, duplicates, the author's quota, and finally the task check (which may
/// regenerate a prompt).
pub fn validate(bytes: &[u8], ctx: &ValidationContext<'_>) -> Validation {
    match validate_inner(bytes, ctx) {
        Ok(bundle) => Validation::Accept(bundle),
        Err(Refusal::Ignore(reason)) => Validation::Ignore(reason),
        Err(Refusal::Reject(reason)) => Validation::Reject(reason),
    }
}

enum Refusal {
    Ignore(IgnoreReason),
    Reject(RejectReason),
}

impl From<RejectReason> for Refusal {
    fn from(reason: RejectReason) -> Self {
        Refusal::Reject(reason)
    }
}

fn validate_inner(bytes: &[u8], ctx: &ValidationContext<'_>) -> Result<ValidatedBundle, Refusal> {
    if bytes.len() > ctx.limits.max_envelope_bytes {
        return Err(RejectReason::OverLimit(LimitKind::EnvelopeBytes).into());
    }
    // Decoding reads the version first, so other versions are reported as such, not as malformed.
    let envelope = SignedEnvelope::from_bytes(bytes).map_err(|err| match err {
        CodecError::UnsupportedVersion { .. } => RejectReason::UnsupportedVersion,
        CodecError::TooLarge { .. } => RejectReason::OverLimit(LimitKind::EnvelopeBytes),
        _ => RejectReason::MalformedEnvelope,
    })?;
    envelope.verify().map_err(|_| RejectReason::BadSignature)?;
    let bundle =
        RolloutBundle::from_bytes(&envelope.payload).map_err(|_| RejectReason::MalformedPayload)?;
    if bundle.author != envelope.signer {
        return Err(RejectReason::AuthorMismatch.into());
    }
    if bundle.network_id != ctx.network_id {
        return Err(RejectReason::WrongNetwork.into());
    }
    check_bundle(&bundle, ctx.limits)?;

    let window = ctx.staleness;
    if ctx.now_ms.saturating_sub(bundle.created_at_ms) > window.max_age_ms {
        return Err(Refusal::Ignore(IgnoreReason::Stale));
    }
    if bundle.created_at_ms > ctx.now_ms.saturating_add(window.max_future_skew_ms) {
        return Err(Refusal::Ignore(IgnoreReason::FromFuture));
    }
    let message_id = MessageId::of_envelope(bytes);
    if ctx
        .hooks
        .is_duplicate(&message_id, &bundle.author, bundle.sequence)
    {
        return Err(Refusal::Ignore(IgnoreReason::Duplicate));
    }
    if ctx.hooks.author_over_quota(&bundle.author) {
        return Err(Refusal::Ignore(IgnoreReason::OverAuthorQuota));
    }
    match ctx.hooks.check_task(&bundle.task, &bundle.prompt) {
        TaskCheck::Match => {}
        TaskCheck::Mismatch => return Err(RejectReason::PromptMismatch.into()),
        TaskCheck::UnknownFamily => return Err(Refusal::Ignore(IgnoreReason::UnknownTaskFamily)),
        TaskCheck::UnknownDataset => return Err(Refusal::Ignore(IgnoreReason::UnknownDataset)),
    }
    Ok(ValidatedBundle {
        bundle,
        message_id,
        signer: envelope.signer,
    })
}

/// The checks on a decoded bundle that need neither node state nor a model: limits, completion
/// structure, sampling parameters, and the prompt hash of unlabeled tasks. Publishers run it before
/// signing; [`validate`] runs it on every received bundle.
pub fn check_bundle(bundle: &RolloutBundle, limits: &Limits) -> Result<(), RejectReason> {
    let over = RejectReason::OverLimit;
    if bundle.policy.model_name.len() > limits.max_name_bytes {
        return Err(over(LimitKind::NameBytes));
    }
    if let TaskRef::Procedural { family, .. } = &bundle.task {
        if family.len() > limits.max_name_bytes {
            return Err(over(LimitKind::NameBytes));
        }
    }
    if bundle.prompt.len() > limits.max_prompt_bytes {
        return Err(over(LimitKind::PromptBytes));
    }
    if bundle.completions.is_empty() {
        return Err(RejectReason::NoCompletions);
    }
    if bundle.completions.len() > limits.max_completions {
        return Err(over(LimitKind::Completions));
    }
    check_sampling(&bundle.sampling)?;
    for completion in &bundle.completions {
        check_completion(completion, &bundle.sampling, limits)?;
    }
    if let TaskRef::Unlabeled {
        prompt_hash: claimed,
    } = &bundle.task
    {
        if *claimed != prompt_hash(&bundle.prompt) {
            return Err(RejectReason::PromptMismatch);
        }
    }
    Ok(())
}

fn check_sampling(sampling: &SamplingParams) -> Result<(), RejectReason> {
    let temperature_ok = sampling.temperature.is_finite() && sampling.temperature > 0.0;
    let top_p_ok = sampling.top_p > 0.0 && sampling.top_p <= 1.0;
    if temperature_ok && top_p_ok && sampling.max_new_tokens >= 1 {
        Ok(())
    } else {
        Err(RejectReason::InvalidSampling)
    }
}

fn check_completion(
    completion: &Completion,
    sampling: &SamplingParams,
    limits: &Limits,
) -> Result<(), RejectReason> {
    if completion.text.len() > limits.max_text_bytes {
        return Err(RejectReason::OverLimit(LimitKind::TextBytes));
    }
    if completion.token_ids.len() > limits.max_tokens
        || completion.logprobs.len() > limits.max_tokens
    {
        return Err(RejectReason::OverLimit(LimitKind::Tokens));
    }
    if completion.token_ids.len() != completion.logprobs.len() {
        return Err(RejectReason::LogprobLengthMismatch);
    }
    // u32 -> usize is lossless on every platform this code targets (usize >= 32 bits).
    if completion.token_ids.len() > sampling.max_new_tokens as usize {
        return Err(RejectReason::CompletionTooLong);
    }
    // A log-probability lies in [-inf, 0]; -inf (a token the distribution could not produce) and NaN are
    // as invalid as positive values.
    if completion
        .logprobs
        .iter()
        .any(|&lp| !lp.is_finite() || lp > 0.0)
    {
        return Err(RejectReason::InvalidLogprob);
    }
    if !(0.0..=1.0).contains(&completion.reward) {
        return Err(RejectReason::InvalidReward);
    }
    Ok(())
}
