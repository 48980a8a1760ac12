//! The swarm rollout protocol, version 2: wire types, codec, signatures, content ids and the
//! model-free validation every received message goes through.
//!
//! A node publishes each prompt group it sampled as a [`RolloutBundle`], encoded with the codec of
//! PROTOCOL.md, signed into a [`SignedEnvelope`] by [`sign_bundle`], on the gossip [`topic`] of its
//! network. Receivers run [`validate`] on every message and count the outcome by its stable name.
//! PROTOCOL.md (beside this crate) specifies the bytes for implementers in other languages.
//!
//! No async runtime, networking or model code lives here, so the crate stays small and fuzzable.
//!
//! ```
//! use swarm_protocol::*;
//!
//! struct Node; // the receiver's state: seen messages, quotas, task generators
//! impl ValidationHooks for Node {
//!     fn is_duplicate(&self, _: &MessageId, _: &PublicKeyBytes, _: u64) -> bool { false }
//!     fn check_task(&self, _: &TaskRef, _: &str) -> TaskCheck { TaskCheck::Match }
//!     fn author_over_quota(&self, _: &PublicKeyBytes) -> bool { false }
//! }
//!
//! let key = SigningKey::from_bytes(&[1; 32]);
//! let bundle = RolloutBundle {
//!     network_id: network_id("demo"),
//!     author: key.verifying_key().to_bytes(),
//!     sequence: 0,
//!     created_at_ms: 1_700_000_000_000,
//!     policy: PolicyInfo {
//!         model_name: "tiny".into(),
//!         architecture_hash: [0; 32],
//!         tokenizer_hash: [0; 32],
//!         policy_version: 0,
//!     },
//!     sampling: SamplingParams { temperature: 1.0, top_p: 1.0, top_k: 0, max_new_tokens: 4 },
//!     task: TaskRef::Unlabeled { prompt_hash: prompt_hash("Say hi.") },
//!     prompt: "Say hi.".into(),
//!     completions: vec![Completion {
//!         text: "hi".into(),
//!         token_ids: vec![5, 2],
//!         logprobs: vec![-0.1, -0.2],
//!         reward: 1.0,
//!         truncated: false,
//!     }],
//! };
//! let limits = Limits::default();
//! check_bundle(&bundle, &limits).expect("a publisher checks before signing");
//! let message = sign_bundle(&bundle, &key).unwrap().to_bytes();
//!
//! let ctx = ValidationContext {
//!     network_id: network_id("demo"),
//!     limits: &limits,
//!     now_ms: 1_700_000_001_000,
//!     staleness: StalenessWindow { max_age_ms: 600_000, max_future_skew_ms: 30_000 },
//!     hooks: &Node,
//! };
//! match validate(&message, &ctx) {
//!     Validation::Accept(accepted) => assert_eq!(accepted.bundle, bundle),
//!     other => panic!("counted under {}", other.as_str()),
//! }
//! ```

mod codec;
mod ids;
mod limits;
mod reason;
mod signing;
#[cfg(feature = "test-support")]
pub mod test_support;
mod validate;
mod wire;

pub use codec::{
    CodecError, DECODE_LIMIT_BYTES, ENVELOPE_OVERHEAD, PAYLOAD_LEN_OFFSET, PAYLOAD_OFFSET,
    peek_version,
};
pub use ids::{MESSAGE_ID_LEN, MessageId, message_id, network_id, prompt_hash, topic};
pub use limits::{LimitKind, Limits, LimitsError, MAX_ENVELOPE_BYTES_CEILING};
pub use reason::{IgnoreReason, Outcome, RejectReason};
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
pub const PROTOCOL_VERSION: u16 = 2;

/// Re-exported so that callers name the same key types this crate signs with.
pub use ed25519_dalek::{SigningKey, VerifyingKey};
