//! Identifiers derived from content: network ids, gossip topics, message ids and prompt hashes.

use std::fmt;

use crate::PROTOCOL_VERSION;
use crate::wire::Digest;

/// The 32-byte network id: blake3 of the UTF-8 network name.
pub fn network_id(network_name: &str) -> Digest {
    *blake3::hash(network_name.as_bytes()).as_bytes()
}

/// The gossipsub topic rollouts of `network_name` are published on: `/swarm/<network>/rollouts/2`.
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

/// Id of a gossip message: the first 20 bytes of blake3 of the whole envelope as received.
///
/// It covers the signature, so a copy of a payload with a corrupted signature (which validation
/// rejects) has an id of its own and cannot make receivers drop the genuine envelope as a duplicate.
/// A third party cannot make a second valid envelope of the same payload either: strict verification
/// admits one encoding of each signature, and the envelope admits no trailing bytes. The id is
/// defined for any byte string, well formed or not.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageId(pub [u8; MESSAGE_ID_LEN]);

impl MessageId {
    /// The id of the message `envelope` (raw bytes; nothing is decoded or checked).
    pub fn of_envelope(envelope: &[u8]) -> Self {
        let digest = blake3::hash(envelope);
        let mut id = [0u8; MESSAGE_ID_LEN];
        id.copy_from_slice(&digest.as_bytes()[..MESSAGE_ID_LEN]);
        MessageId(id)
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

/// The message id of raw envelope bytes: the first 20 bytes of their blake3 digest.
pub fn message_id(envelope: &[u8]) -> MessageId {
    MessageId::of_envelope(envelope)
}
