//! The wire types of protocol version 2.
//!
//! Field order is part of the protocol: the codec writes fields in declaration order, so reordering,
//! inserting or removing a field here is a new protocol version (see PROTOCOL.md, "Versioning").

use bincode::{Decode, Encode};

/// An ed25519 public key in its 32-byte compressed form.
pub type PublicKeyBytes = [u8; 32];

/// A 32-byte blake3 digest.
pub type Digest = [u8; 32];

/// The signed unit that travels over gossip: an opaque payload (an encoded [`RolloutBundle`]) plus the
/// key that signed it and the signature.
///
/// The signer's key travels beside the payload so that a receiver verifies the signature before it
/// spends any work decoding the payload; the payload's `author` must then equal `signer`.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct SignedEnvelope {
    /// Protocol version; always the first two bytes on the wire, in every version.
    pub version: u16,
    /// Public key of the signer.
    pub signer: PublicKeyBytes,
    /// The encoded [`RolloutBundle`].
    pub payload: Vec<u8>,
    /// ed25519 signature over the signing input (see [`crate::signing_input`]).
    pub signature: [u8; 64],
}

/// One prompt and the completions a node sampled for it, with everything a receiver needs to check
/// the question itself and to weigh the answers off-policy.
#[derive(Clone, Debug, PartialEq, Encode, Decode)]
pub struct RolloutBundle {
    /// blake3 of the network name (see [`crate::network_id`]); keeps networks from mixing.
    pub network_id: Digest,
    /// Public key of the node that sampled the completions; must equal the envelope's signer.
    pub author: PublicKeyBytes,
    /// Per-author number, never reused by its author; receivers ignore a repeated (author, sequence)
    /// and do not require order (gossip reorders).
    pub sequence: u64,
    /// Author's wall clock when the bundle was created, in milliseconds since the Unix epoch.
    pub created_at_ms: u64,
    /// Which policy produced the completions.
    pub policy: PolicyInfo,
    /// How the completions were sampled.
    pub sampling: SamplingParams,
    /// Names the question so that receivers can regenerate it instead of trusting the prompt.
    pub task: TaskRef,
    /// The fully rendered prompt the policy was conditioned on.
    pub prompt: String,
    /// The sampled answers.
    pub completions: Vec<Completion>,
}

/// Identifies the policy that sampled a bundle.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Encode, Decode)]
pub struct PolicyInfo {
    /// Human-readable model name, for logs and dashboards only.
    pub model_name: String,
    /// blake3 of the model's architecture description; receivers compare it with their own.
    pub architecture_hash: Digest,
    /// blake3 of the tokenizer definition; token ids are only meaningful under an equal hash.
    pub tokenizer_hash: Digest,
    /// Number of optimizer steps the author's policy had taken when it sampled.
    pub policy_version: u64,
}

/// The sampling distribution the behaviour log-probs were taken from.
#[derive(Clone, Copy, Debug, PartialEq, Encode, Decode)]
pub struct SamplingParams {
    /// Softmax temperature, finite and > 0.
    pub temperature: f32,
    /// Nucleus mass in (0, 1]; 1 disables nucleus filtering.
    pub top_p: f32,
    /// Keep only the `top_k` most likely tokens; 0 disables the filter.
    pub top_k: u32,
    /// Upper bound on the number of tokens of every completion.
    pub max_new_tokens: u32,
}

/// Names a question without trusting the sender: receivers rebuild the prompt (and ground truth)
/// from this reference and reject a bundle whose prompt differs.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Encode, Decode)]
pub enum TaskRef {
    /// A question from a deterministic generator.
    Procedural {
        /// Task family name, e.g. `basic_arithmetic`.
        family: String,
        /// Family-specific difficulty level.
        difficulty: u32,
        /// Generator seed.
        seed: u64,
        /// Index of the question in the seeded stream.
        index: u64,
    },
    /// A row of a dataset file, identified by content.
    Dataset {
        /// blake3 of the dataset file.
        dataset_hash: Digest,
        /// Zero-based row number.
        row: u64,
    },
    /// A prompt without ground truth (rewarded by majority vote).
    Unlabeled {
        /// blake3 of the UTF-8 prompt (see [`crate::prompt_hash`]).
        prompt_hash: Digest,
    },
}

impl TaskRef {
    /// Stable short name of the variant, for logs and metrics labels.
    pub fn kind(&self) -> &'static str {
        match self {
            TaskRef::Procedural { .. } => "procedural",
            TaskRef::Dataset { .. } => "dataset",
            TaskRef::Unlabeled { .. } => "unlabeled",
        }
    }
}

/// One sampled answer.
#[derive(Clone, Debug, PartialEq, Encode, Decode)]
pub struct Completion {
    /// Decoded text of the answer.
    pub text: String,
    /// Sampled token ids under the author's tokenizer.
    pub token_ids: Vec<u32>,
    /// Behaviour log-probability of each sampled token, one per entry of `token_ids`; finite and <= 0.
    pub logprobs: Vec<f32>,
    /// Reward the author's verifier gave, in [0, 1]. Receivers rescore and use this only for logs.
    pub reward: f32,
    /// True when sampling stopped at `max_new_tokens` rather than at a stop token.
    pub truncated: bool,
}
