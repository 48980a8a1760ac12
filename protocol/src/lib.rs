//! The swarm rollout protocol, version 1: wire types, codec, signatures, content ids and the
//! model-free validation every received message goes through.
//!
//! A node publishes each prompt group it sampled as a [`RolloutBundle`], encoded with the codec of
//! PROTOCOL.md, signed into a [`SignedEnvelope`] by [`sign_bundle`], on the gossip [`topic`] of its
//! network. Receivers run [`validate`] on every message and count the outcome by its stable name.
//! PROTOCOL.md (beside this crate) specifies the bytes for implementers in other languages.
//!
//! No async runtime, networking or model code lives here, so the crate stays small and fuzzable.

mod codec;
mod ids;
mod limits;
mod reason;
mod signing;
mod validate;
mod wire;

pub use codec::{
    CodecError, DECODE_LIMIT_BYTES, ENVELOPE_OVERHEAD, PAYLOAD_LEN_OFFSET, PAYLOAD_OFFSET,
    peek_version,
};
pub use ids::{MESSAGE_ID_LEN, MessageId, message_id, network_id, prompt_hash, topic};
pub use limits::{LimitKind, Limits, LimitsError, MAX_ENVELOPE_BYTES_CEILING};
pub use reason::{IgnoreReason, RejectReason};
pub use signing::{SIGNING_DOMAIN, SIGNING_INPUT_LEN, SignError, sign_bundle, signing_input};
pub use validate::{
    StalenessWindow, TaskCheck, ValidatedBundle, Validation, ValidationContext, ValidationHooks,
    check_bundle, validate,
};
pub use wire::{
    Completion, Digest, PolicyInfo, PublicKeyBytes, RolloutBundle, SamplingParams, SignedEnvelope,
    TaskRef,
};

/// The protocol version this crate implements: the envelope's `version` field and the topic suffix.
pub const PROTOCOL_VERSION: u16 = 1;

/// Re-exported so that callers name the same key types this crate signs with.
pub use ed25519_dalek::{SigningKey, VerifyingKey};
