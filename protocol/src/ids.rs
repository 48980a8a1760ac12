//! Identifiers derived from content: network ids, gossip topics, message ids and prompt hashes.

use std::fmt;

use crate::PROTOCOL_VERSION;
use crate::wire::Digest;

/// The 32-byte network id: blake3 of the UTF-8 network name.
pub fn network_id(network_name: &str) -> Digest {
    *blake3::hash(network_name.as_bytes()).as_bytes()
}

/// The gossipsub topic rollouts of `network_name` are published on: `/swarm/<network>/rollouts/1`.
///
/// The trailing number is the protocol version, so that nodes of two versions can share a swarm during
/// an upgrade without seeing each other's messages.
pub fn topic(network_name: &str) -> String {
    format!("/swarm/{network_name}/rollouts/{PROTOCOL_VERSION}")
}

/// blake3 of the UTF-8 prompt, as carried by [`crate::TaskRef::Unlabeled`].
pub fn prompt_hash(prompt: &str) -> Digest {
    *blake3::hash(prompt.as_bytes()).as_bytes()
}

/// Length of a [`MessageId`] in bytes.
pub const MESSAGE_ID_LEN: usize = 20;

/// Content id of a message: the first 20 bytes of blake3 of the envelope's payload.
///
/// Derived from the payload alone (not the signature or framing), so the same bundle always has the
/// same id and gossip deduplicates it however it was re-framed.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageId(pub [u8; MESSAGE_ID_LEN]);

impl MessageId {
    /// The id of a payload.
    pub fn of_payload(payload: &[u8]) -> Self {
        let digest = blake3::hash(payload);
        let mut id = [0u8; MESSAGE_ID_LEN];
        id.copy_from_slice(&digest.as_bytes()[..MESSAGE_ID_LEN]);
        MessageId(id)
    }

    /// The id of the payload inside raw envelope bytes, reading only the framing (no allocation, no
    /// signature check). Returns `None` when the bytes are not a well-framed version-1 envelope; the
    /// caller (a gossip message-id function) may then hash the whole message, which validation rejects
    /// anyway.
    pub fn of_envelope_bytes(envelope: &[u8]) -> Option<Self> {
        crate::codec::payload_slice(envelope).map(Self::of_payload)
    }

    /// The raw id bytes.
    pub fn as_bytes(&self) -> &[u8; MESSAGE_ID_LEN] {
        &self.0
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MessageId({self})")
    }
}

/// The message id of a payload: the first 20 bytes of its blake3 digest.
pub fn message_id(payload: &[u8]) -> MessageId {
    MessageId::of_payload(payload)
}
