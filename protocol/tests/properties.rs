//! Property tests: codec round trips, agreement with an independent encoder written from PROTOCOL.md,
//! and rejection of every corrupted, truncated or extended envelope.

mod common;

use common::strategies::{any_bundle, valid_bundle};
use common::*;
use proptest::prelude::*;
use swarm_protocol::{
    Completion, MessageId, PolicyInfo, RolloutBundle, SamplingParams, SignedEnvelope, TaskRef,
    Validation, sign_bundle,
};

/// The payload encoding as PROTOCOL.md describes it, written without bincode.
fn spec_encode(bundle: &RolloutBundle) -> Vec<u8> {
    fn bytes(out: &mut Vec<u8>, data: &[u8]) {
        out.extend_from_slice(&(data.len() as u64).to_le_bytes());
        out.extend_from_slice(data);
    }
    let mut out = Vec::new();
    out.extend_from_slice(&bundle.network_id);
    out.extend_from_slice(&bundle.author);
    out.extend_from_slice(&bundle.sequence.to_le_bytes());
    out.extend_from_slice(&bundle.created_at_ms.to_le_bytes());
    let PolicyInfo {
        model_name,
        architecture_hash,
        tokenizer_hash,
        policy_version,
    } = &bundle.policy;
    bytes(&mut out, model_name.as_bytes());
    out.extend_from_slice(architecture_hash);
    out.extend_from_slice(tokenizer_hash);
    out.extend_from_slice(&policy_version.to_le_bytes());
    let SamplingParams {
        temperature,
        top_p,
        top_k,
        max_new_tokens,
    } = bundle.sampling;
    out.extend_from_slice(&temperature.to_le_bytes());
    out.extend_from_slice(&top_p.to_le_bytes());
    out.extend_from_slice(&top_k.to_le_bytes());
    out.extend_from_slice(&max_new_tokens.to_le_bytes());
    match &bundle.task {
        TaskRef::Procedural {
            family,
            difficulty,
            seed,
            index,
        } => {
            out.extend_from_slice(&0u32.to_le_bytes());
            bytes(&mut out, family.as_bytes());
            out.extend_from_slice(&difficulty.to_le_bytes());
            out.extend_from_slice(&seed.to_le_bytes());
            out.extend_from_slice(&index.to_le_bytes());
        }
        TaskRef::Dataset { dataset_hash, row } => {
            out.extend_from_slice(&1u32.to_le_bytes());
            out.extend_from_slice(dataset_hash);
            out.extend_from_slice(&row.to_le_bytes());
        }
        TaskRef::Unlabeled { prompt_hash } => {
            out.extend_from_slice(&2u32.to_le_bytes());
            out.extend_from_slice(prompt_hash);
        }
    }
    bytes(&mut out, bundle.prompt.as_bytes());
    out.extend_from_slice(&(bundle.completions.len() as u64).to_le_bytes());
    for Completion {
        text,
        token_ids,
        logprobs,
        reward,
        truncated,
    } in &bundle.completions
    {
        bytes(&mut out, text.as_bytes());
        out.extend_from_slice(&(token_ids.len() as u64).to_le_bytes());
        token_ids
            .iter()
            .for_each(|id| out.extend_from_slice(&id.to_le_bytes()));
        out.extend_from_slice(&(logprobs.len() as u64).to_le_bytes());
        logprobs
            .iter()
            .for_each(|lp| out.extend_from_slice(&lp.to_le_bytes()));
        out.extend_from_slice(&reward.to_le_bytes());
        out.push(u8::from(*truncated));
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_bundle_round_trips_bit_exactly(bundle in any_bundle()) {
        let payload = bundle.to_bytes().unwrap();
        let decoded = RolloutBundle::from_bytes(&payload).unwrap();
        // Compared through the encoding because NaN floats are not equal to themselves.
        prop_assert_eq!(decoded.to_bytes().unwrap(), payload);
    }

    #[test]
    fn encoding_follows_the_written_spec(bundle in any_bundle()) {
        prop_assert_eq!(bundle.to_bytes().unwrap(), spec_encode(&bundle));
    }

    #[test]
    fn valid_bundles_are_accepted_unchanged(bundle in valid_bundle(key(4))) {
        let key = key(4);
        let envelope = sign_bundle(&bundle, &key).unwrap();
        let bytes = envelope.to_bytes();
        match validate_default(&bytes) {
            Validation::Accept(accepted) => {
                prop_assert_eq!(&accepted.bundle, &bundle);
                prop_assert_eq!(accepted.message_id, MessageId::of_envelope(&bytes));
            }
            other => prop_assert!(false, "expected accept, got {:?}", other),
        }
    }

    #[test]
    fn truncated_or_extended_envelopes_are_rejected(
        bundle in valid_bundle(key(6)),
        cut in any::<prop::sample::Index>(),
        extra in proptest::collection::vec(any::<u8>(), 1..8),
    ) {
        let bytes = signed_bytes(&bundle, &key(6));
        let truncated = &bytes[..cut.index(bytes.len())];
        prop_assert!(matches!(validate_default(truncated), Validation::Reject(_)));
        let mut extended = bytes.clone();
        extended.extend_from_slice(&extra);
        prop_assert!(matches!(validate_default(&extended), Validation::Reject(_)));
        prop_assert_ne!(MessageId::of_envelope(&extended), MessageId::of_envelope(&bytes));
    }

    #[test]
    fn envelope_round_trips(payload in proptest::collection::vec(any::<u8>(), 0..256), seed in any::<u8>()) {
        let envelope = SignedEnvelope::sign_payload(payload, &key(seed));
        let bytes = envelope.to_bytes();
        prop_assert_eq!(SignedEnvelope::from_bytes(&bytes).unwrap(), envelope.clone());
        prop_assert!(envelope.verify().is_ok());
    }
}

proptest! {
    // Many cases: this is the property that keeps forged or damaged messages out of training.
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn any_single_byte_corruption_is_rejected(
        bundle in valid_bundle(key(5)),
        position in any::<prop::sample::Index>(),
        flip in 1u8..=255,
    ) {
        let mut bytes = signed_bytes(&bundle, &key(5));
        let position = position.index(bytes.len());
        bytes[position] ^= flip;
        let outcome = validate_default(&bytes);
        prop_assert!(matches!(outcome, Validation::Reject(_)), "byte {} ^ {:#04x}: {:?}", position, flip, outcome);
    }
}
