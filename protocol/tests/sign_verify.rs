//! Signing, verification and the envelope codec on hand-built bundles.

mod common;

use common::*;
use swarm_protocol::{
    MessageId, RolloutBundle, SignError, SignedEnvelope, Validation, message_id, sign_bundle,
};

#[test]
fn signed_bundle_validates_and_round_trips() {
    let key = key(1);
    let bundle = example_bundle(&key);
    let envelope = sign_bundle(&bundle, &key).unwrap();
    envelope.verify().unwrap();
    let bytes = envelope.to_bytes();
    assert_eq!(SignedEnvelope::from_bytes(&bytes).unwrap(), envelope);
    assert_eq!(
        RolloutBundle::from_bytes(&envelope.payload).unwrap(),
        bundle
    );
    match validate_default(&bytes) {
        Validation::Accept(accepted) => {
            assert_eq!(accepted.bundle, bundle);
            assert_eq!(accepted.signer, key.verifying_key().to_bytes());
            assert_eq!(accepted.message_id, message_id(&bytes));
            assert_eq!(MessageId::of_envelope(&bytes), accepted.message_id);
        }
        other => panic!("expected accept, got {other:?}"),
    }
}

#[test]
fn signing_someone_elses_bundle_is_refused() {
    let bundle = example_bundle(&key(1));
    let err = sign_bundle(&bundle, &key(2)).unwrap_err();
    assert!(matches!(err, SignError::AuthorMismatch { .. }), "{err}");
}

#[test]
fn envelope_framing_matches_bincode_derive() {
    let key = key(3);
    let envelope = sign_bundle(&example_bundle(&key), &key).unwrap();
    let config = bincode::config::standard()
        .with_little_endian()
        .with_fixed_int_encoding();
    assert_eq!(
        envelope.to_bytes(),
        bincode::encode_to_vec(&envelope, config).unwrap()
    );
}

#[test]
fn every_single_byte_corruption_of_one_envelope_is_rejected() {
    // Exhaustive over position and value for one envelope; the property test covers other bundles.
    let key = key(5);
    let bytes = signed_bytes(&example_bundle(&key), &key);
    let mut corrupted = bytes.clone();
    for position in 0..bytes.len() {
        for value in (0..=u8::MAX).filter(|&v| v != bytes[position]) {
            corrupted[position] = value;
            let outcome = validate_default(&corrupted);
            assert!(
                matches!(outcome, Validation::Reject(_)),
                "byte {position} set to {value:#04x}: {outcome:?}"
            );
        }
        corrupted[position] = bytes[position];
    }
}
