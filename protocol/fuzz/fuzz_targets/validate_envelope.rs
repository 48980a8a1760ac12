//! Arbitrary bytes as a received gossip message: framing, version, signature and (rarely reached)
//! payload decoding. Must never panic or allocate without bound.
#![no_main]

use libfuzzer_sys::fuzz_target;
use swarm_protocol::{
    network_id, validate, Limits, MessageId, PublicKeyBytes, SignedEnvelope, StalenessWindow, TaskCheck,
    TaskRef, Validation, ValidationContext, ValidationHooks,
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
    let limits = Limits::default();
    let ctx = ValidationContext {
        network_id: network_id("fuzz"),
        limits: &limits,
        now_ms: 1_700_000_000_000,
        staleness: StalenessWindow { max_age_ms: u64::MAX, max_future_skew_ms: u64::MAX },
        hooks: &AcceptEverything,
    };
    let outcome = validate(data, &ctx);
    if let Validation::Accept(accepted) = &outcome {
        assert_eq!(accepted.message_id, MessageId::of_envelope(data));
    }
    match SignedEnvelope::from_bytes(data) {
        // Whatever decodes must re-encode to the same bytes: one encoding per value.
        Ok(envelope) => {
            assert_eq!(envelope.to_bytes(), data);
        }
        Err(_) => assert!(matches!(outcome, Validation::Reject(_))),
    }
});
