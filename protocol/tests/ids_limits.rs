//! Identifiers and limit configuration.

mod common;

use common::*;
use swarm_protocol::{
    LimitKind, Limits, MAX_ENVELOPE_BYTES_CEILING, MessageId, RejectReason, SignedEnvelope,
    Validation, network_id, prompt_hash, topic,
};

#[test]
fn ids_are_blake3_of_their_inputs() {
    assert_eq!(network_id("demo"), *blake3::hash(b"demo").as_bytes());
    assert_eq!(
        prompt_hash("2 + 2 = ?"),
        *blake3::hash(b"2 + 2 = ?").as_bytes()
    );
    let id = MessageId::of_envelope(b"envelope");
    assert_eq!(id.0, blake3::hash(b"envelope").as_bytes()[..20]);
    assert_eq!(id.to_string(), hex::encode(id.0));
    assert_eq!(topic("demo"), "/swarm/demo/rollouts/2");
}

#[test]
fn the_message_id_covers_the_signature() {
    let key = key(2);
    let bytes = signed_bytes(&example_bundle(&key), &key);
    let mut forged = bytes.clone();
    let last = forged.len() - 1;
    forged[last] ^= 1;
    // Same payload, corrupted signature: another message, so rejecting it cannot make a receiver
    // drop the genuine envelope as a duplicate.
    assert_ne!(
        MessageId::of_envelope(&forged),
        MessageId::of_envelope(&bytes)
    );
    assert!(matches!(validate_default(&forged), Validation::Reject(_)));
    assert!(matches!(validate_default(&bytes), Validation::Accept(_)));
}

#[test]
fn default_limits_are_usable_and_bad_ones_are_named() {
    assert_eq!(Limits::default().check(), Ok(()));
    let zero = Limits {
        max_tokens: 0,
        ..Limits::default()
    };
    let err = zero.check().unwrap_err();
    assert_eq!(err.kind, LimitKind::Tokens);
    assert_eq!(
        err.to_string(),
        "limit max_tokens is 0; it must be at least 1"
    );
    let huge = Limits {
        max_envelope_bytes: MAX_ENVELOPE_BYTES_CEILING + 1,
        ..Limits::default()
    };
    let err = huge.check().unwrap_err();
    assert_eq!(err.kind, LimitKind::EnvelopeBytes);
    assert!(err.to_string().contains("max_envelope_bytes"), "{err}");
    assert!(
        err.to_string()
            .contains(&MAX_ENVELOPE_BYTES_CEILING.to_string()),
        "{err}"
    );
}

#[test]
fn envelope_limit_is_checked_before_the_signature() {
    // An unsigned oversized message is rejected for its size, without signature work.
    let junk = vec![0xAB; Limits::default().max_envelope_bytes + 1];
    assert_eq!(
        validate_default(&junk),
        Validation::Reject(RejectReason::OverLimit(LimitKind::EnvelopeBytes))
    );
    assert!(SignedEnvelope::from_bytes(&vec![0; MAX_ENVELOPE_BYTES_CEILING + 1]).is_err());
}

#[test]
fn empty_and_one_byte_messages_are_malformed() {
    for bytes in [&[][..], &[1][..]] {
        assert_eq!(
            validate_default(bytes),
            Validation::Reject(RejectReason::MalformedEnvelope)
        );
    }
}
