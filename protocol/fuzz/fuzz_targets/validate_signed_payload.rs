//! Arbitrary bytes as the payload of a correctly signed envelope, so that fuzzing reaches the payload
//! decoder and every check behind the signature.
#![no_main]

use libfuzzer_sys::fuzz_target;
use swarm_protocol::{
    network_id, validate, Limits, MessageId, PublicKeyBytes, RejectReason, RolloutBundle, SignedEnvelope,
    SigningKey, StalenessWindow, TaskCheck, TaskRef, Validation, ValidationContext, ValidationHooks,
};

struct AcceptEverything;

impl ValidationHooks for AcceptEverything {
    fn is_duplicate(&self, _: &MessageId, _: &PublicKeyBytes, _: u64) -> bool {
        false
    }
    fn check_task(&self, _: &TaskRef, _: &str) -> TaskCheck {
        TaskCheck::Match
    }
    fn author_over_quota(&self, _: &PublicKeyBytes) -> bool {
        false
    }
}

fuzz_target!(|data: &[u8]| {
    let key = SigningKey::from_bytes(&[7; 32]);
    let envelope = SignedEnvelope::sign_payload(data.to_vec(), &key);
    let bytes = envelope.to_bytes();
    let limits = Limits::default();
    let ctx = ValidationContext {
        network_id: network_id("fuzz"),
        limits: &limits,
        now_ms: 1_700_000_000_000,
        staleness: StalenessWindow { max_age_ms: u64::MAX, max_future_skew_ms: u64::MAX },
        hooks: &AcceptEverything,
    };
    let outcome = validate(&bytes, &ctx);
    let decoded = RolloutBundle::from_bytes(data);
    if bytes.len() <= limits.max_envelope_bytes {
        assert_eq!(
            decoded.is_err(),
            outcome == Validation::Reject(RejectReason::MalformedPayload),
            "payload decoding and validation disagree: {outcome:?}"
        );
    }
    if let Ok(bundle) = decoded {
        // One encoding per value: a payload that decodes re-encodes to itself.
        assert_eq!(bundle.to_bytes().expect("decoded bundle encodes"), data);
    }
    if let Validation::Accept(accepted) = outcome {
        assert_eq!(accepted.message_id, MessageId::of_envelope(&bytes));
        assert_eq!(accepted.signer, key.verifying_key().to_bytes());
    }
});
