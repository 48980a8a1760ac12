//! The test vector of PROTOCOL.md, read from the document itself so the two cannot drift apart.

use std::collections::BTreeMap;

use swarm_protocol::{
    Completion, PolicyInfo, RolloutBundle, SamplingParams, SignedEnvelope, SigningKey, TaskRef,
    VerifyingKey, message_id, network_id, sign_bundle, signing_input, topic,
};

const SPEC: &str = include_str!("../PROTOCOL.md");
const BEGIN: &str = "<!-- test-vector:begin -->";
const END: &str = "<!-- test-vector:end -->";

/// The bundle PROTOCOL.md describes in words.
fn vector_bundle(author: [u8; 32]) -> RolloutBundle {
    RolloutBundle {
        network_id: network_id("swarm-vector"),
        author,
        sequence: 1,
        created_at_ms: 1_700_000_000_000,
        policy: PolicyInfo {
            model_name: "tiny-policy".into(),
            architecture_hash: [0x11; 32],
            tokenizer_hash: [0x22; 32],
            policy_version: 12,
        },
        sampling: SamplingParams {
            temperature: 1.0,
            top_p: 0.9375,
            top_k: 50,
            max_new_tokens: 16,
        },
        task: TaskRef::Procedural {
            family: "basic_arithmetic".into(),
            difficulty: 1,
            seed: 42,
            index: 0,
        },
        prompt: "What is 2 + 3?".into(),
        completions: vec![Completion {
            text: "5".into(),
            token_ids: vec![20, 151_643],
            logprobs: vec![-0.5, -0.125],
            reward: 1.0,
            truncated: false,
        }],
    }
}

/// `name value` lines of the vector block; repeated names (the annotated payload) are concatenated.
fn vector_fields() -> BTreeMap<String, String> {
    let start = SPEC
        .find(BEGIN)
        .expect("PROTOCOL.md has a test-vector:begin marker")
        + BEGIN.len();
    let end = SPEC
        .find(END)
        .expect("PROTOCOL.md has a test-vector:end marker");
    let mut fields = BTreeMap::<String, String>::new();
    for line in SPEC[start..end].lines() {
        let mut words = line.split_whitespace();
        let (Some(name), Some(value)) = (words.next(), words.next()) else {
            continue;
        };
        if name.starts_with("```") {
            continue;
        }
        fields.entry(name.to_string()).or_default().push_str(value);
    }
    fields
}

fn field<'a>(fields: &'a BTreeMap<String, String>, name: &str) -> &'a str {
    fields
        .get(name)
        .unwrap_or_else(|| panic!("PROTOCOL.md test vector lacks `{name}`"))
}

fn hex_field(fields: &BTreeMap<String, String>, name: &str) -> Vec<u8> {
    hex::decode(field(fields, name)).unwrap_or_else(|err| panic!("`{name}` is not hex: {err}"))
}

#[test]
fn protocol_md_test_vector_holds() {
    let fields = vector_fields();
    let seed: [u8; 32] = hex_field(&fields, "seed")
        .try_into()
        .expect("seed is 32 bytes");
    let key = SigningKey::from_bytes(&seed);
    let public_key = key.verifying_key().to_bytes();
    assert_eq!(hex_field(&fields, "public_key"), public_key);

    let network = field(&fields, "network_name");
    assert_eq!(hex_field(&fields, "network_id"), network_id(network));
    assert_eq!(field(&fields, "topic"), topic(network));

    let bundle = vector_bundle(public_key);
    assert_eq!(bundle.network_id, network_id(network));
    let payload = hex_field(&fields, "payload");
    assert_eq!(
        bundle.to_bytes().unwrap(),
        payload,
        "computed payload {}",
        hex::encode(bundle.to_bytes().unwrap())
    );
    assert_eq!(RolloutBundle::from_bytes(&payload).unwrap(), bundle);

    assert_eq!(
        hex_field(&fields, "payload_blake3"),
        blake3::hash(&payload).as_bytes()
    );
    assert_eq!(hex_field(&fields, "signing_input"), signing_input(&payload));
    let envelope = sign_bundle(&bundle, &key).unwrap();
    assert_eq!(hex_field(&fields, "signature"), envelope.signature);
    assert_eq!(
        hex_field(&fields, "message_id"),
        message_id(&envelope.to_bytes()).0
    );

    // The envelope is the header, the payload and the signature, in that order.
    let mut expected_envelope = hex_field(&fields, "envelope_header");
    expected_envelope.extend_from_slice(&payload);
    expected_envelope.extend_from_slice(&envelope.signature);
    assert_eq!(envelope.to_bytes(), expected_envelope);
    assert_eq!(
        SignedEnvelope::from_bytes(&expected_envelope).unwrap(),
        envelope
    );

    // The signature verifies with the public key alone, as another client would check it.
    let verifying = VerifyingKey::from_bytes(&public_key).unwrap();
    let signature = ed25519_dalek::Signature::from_bytes(&envelope.signature);
    verifying
        .verify_strict(&signing_input(&payload), &signature)
        .unwrap();
}
