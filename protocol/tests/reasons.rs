//! Every Reject and Ignore reason, each produced by a message that triggers exactly that reason.

mod common;

use common::*;
use swarm_protocol::{
    IgnoreReason, LimitKind, Limits, PROTOCOL_VERSION, RejectReason, RolloutBundle, SignedEnvelope,
    TaskCheck, TaskRef, Validation, VerifyingKey, network_id, prompt_hash,
};

/// A message and the receiver state that make `validate` produce one specific outcome.
struct Case {
    bytes: Vec<u8>,
    limits: Limits,
    hooks: Hooks,
}

impl Case {
    fn new(bytes: Vec<u8>) -> Self {
        Case {
            bytes,
            limits: Limits::default(),
            hooks: Hooks::default(),
        }
    }

    /// The valid test bundle, changed by `edit`, signed by its author.
    fn edited(edit: impl FnOnce(&mut RolloutBundle)) -> Self {
        let key = key(9);
        let mut bundle = example_bundle(&key);
        edit(&mut bundle);
        Case::new(signed_bytes(&bundle, &key))
    }

    /// Signs raw payload bytes, so payload-level malformations get past the signature check.
    fn raw_payload(payload: Vec<u8>) -> Self {
        Case::new(SignedEnvelope::sign_payload(payload, &key(9)).to_bytes())
    }

    fn run(&self) -> Validation {
        validate_with(&self.bytes, &self.limits, &self.hooks)
    }
}

fn valid_bytes() -> Vec<u8> {
    let key = key(9);
    signed_bytes(&example_bundle(&key), &key)
}

fn reject_case(reason: RejectReason) -> Case {
    match reason {
        RejectReason::MalformedEnvelope => {
            let mut bytes = valid_bytes();
            bytes.pop();
            Case::new(bytes)
        }
        RejectReason::UnsupportedVersion => {
            let mut bytes = valid_bytes();
            bytes[..2].copy_from_slice(&(PROTOCOL_VERSION + 1).to_le_bytes());
            Case::new(bytes)
        }
        RejectReason::BadSignature => {
            let mut bytes = valid_bytes();
            let last = bytes.len() - 1;
            bytes[last] ^= 0x01;
            Case::new(bytes)
        }
        RejectReason::MalformedPayload => {
            let mut payload = example_bundle(&key(9)).to_bytes().unwrap();
            payload.push(0);
            Case::raw_payload(payload)
        }
        RejectReason::AuthorMismatch => {
            // Signed by key 9, but naming key 8 as the author.
            let payload = example_bundle(&key(8)).to_bytes().unwrap();
            Case::raw_payload(payload)
        }
        RejectReason::WrongNetwork => Case::edited(|b| b.network_id = network_id("another-net")),
        RejectReason::OverLimit(kind) => over_limit_case(kind),
        RejectReason::NoCompletions => Case::edited(|b| b.completions.clear()),
        RejectReason::LogprobLengthMismatch => {
            Case::edited(|b| b.completions[1].logprobs.push(-1.0))
        }
        RejectReason::InvalidLogprob => Case::edited(|b| b.completions[0].logprobs[1] = f32::NAN),
        RejectReason::InvalidReward => Case::edited(|b| b.completions[1].reward = 1.5),
        RejectReason::InvalidSampling => Case::edited(|b| b.sampling.top_p = 0.0),
        RejectReason::CompletionTooLong => Case::edited(|b| b.sampling.max_new_tokens = 1),
        RejectReason::PromptMismatch => {
            let mut case = Case::new(valid_bytes());
            case.hooks.task = TaskCheck::Mismatch;
            case
        }
    }
}

fn over_limit_case(kind: LimitKind) -> Case {
    let mut case = Case::new(valid_bytes());
    match kind {
        LimitKind::EnvelopeBytes => case.limits.max_envelope_bytes = case.bytes.len() - 1,
        LimitKind::Completions => case.limits.max_completions = 1,
        LimitKind::TextBytes => {
            case = Case::edited(|b| b.completions[0].text = "x".repeat(17 * 1024));
        }
        LimitKind::PromptBytes => case.limits.max_prompt_bytes = 4,
        LimitKind::Tokens => case.limits.max_tokens = 1,
        LimitKind::NameBytes => case.limits.max_name_bytes = 5,
    }
    case
}

fn ignore_case(reason: IgnoreReason) -> Case {
    match reason {
        IgnoreReason::Duplicate => {
            let mut case = Case::new(valid_bytes());
            case.hooks.duplicate = true;
            case
        }
        IgnoreReason::Stale => Case::edited(|b| b.created_at_ms = NOW_MS - WINDOW.max_age_ms - 1),
        IgnoreReason::FromFuture => {
            Case::edited(|b| b.created_at_ms = NOW_MS + WINDOW.max_future_skew_ms + 1)
        }
        IgnoreReason::UnknownTaskFamily => {
            let mut case = Case::new(valid_bytes());
            case.hooks.task = TaskCheck::UnknownFamily;
            case
        }
        IgnoreReason::UnknownDataset => {
            let mut case = Case::edited(|b| {
                b.task = TaskRef::Dataset {
                    dataset_hash: [5; 32],
                    row: 3,
                }
            });
            case.hooks.task = TaskCheck::UnknownDataset;
            case
        }
        IgnoreReason::OverAuthorQuota => {
            let mut case = Case::new(valid_bytes());
            case.hooks.over_quota = true;
            case
        }
        IgnoreReason::OverPeerQuota => {
            panic!("the network layer decides over_quota_peer, before validation")
        }
    }
}

#[test]
fn every_reject_reason_is_produced_exactly() {
    for reason in RejectReason::ALL {
        assert_eq!(
            reject_case(reason).run(),
            Validation::Reject(reason),
            "case for {}",
            reason.as_str()
        );
    }
}

#[test]
fn every_ignore_reason_is_produced_exactly() {
    // over_quota_peer is the network layer's (net/tests/malicious.rs reaches it).
    for reason in IgnoreReason::ALL
        .into_iter()
        .filter(|r| *r != IgnoreReason::OverPeerQuota)
    {
        assert_eq!(
            ignore_case(reason).run(),
            Validation::Ignore(reason),
            "case for {}",
            reason.as_str()
        );
    }
}

#[test]
fn boundaries_of_the_staleness_window_are_inclusive() {
    for created in [
        NOW_MS - WINDOW.max_age_ms,
        NOW_MS + WINDOW.max_future_skew_ms,
    ] {
        let case = Case::edited(|b| b.created_at_ms = created);
        assert!(
            matches!(case.run(), Validation::Accept(_)),
            "created_at_ms {created}"
        );
    }
}

#[test]
fn limits_equal_to_the_message_accept_it() {
    let key = key(9);
    let bundle = example_bundle(&key);
    let bytes = signed_bytes(&bundle, &key);
    let limits = Limits {
        max_envelope_bytes: bytes.len(),
        max_completions: bundle.completions.len(),
        max_text_bytes: 1,
        max_prompt_bytes: bundle.prompt.len(),
        max_tokens: 2,
        max_name_bytes: "basic_arithmetic".len(),
    };
    assert!(matches!(
        validate_with(&bytes, &limits, &Hooks::default()),
        Validation::Accept(_)
    ));
}

#[test]
fn unlabeled_prompts_are_checked_against_their_hash() {
    let good = Case::edited(|b| {
        b.task = TaskRef::Unlabeled {
            prompt_hash: prompt_hash(&b.prompt),
        }
    });
    assert!(matches!(good.run(), Validation::Accept(_)));
    let bad = Case::edited(|b| {
        b.task = TaskRef::Unlabeled {
            prompt_hash: prompt_hash("another prompt"),
        }
    });
    assert_eq!(bad.run(), Validation::Reject(RejectReason::PromptMismatch));
}

#[test]
fn invalid_floats_are_rejected_in_every_form() {
    for logprob in [
        f32::NAN,
        f32::INFINITY,
        f32::NEG_INFINITY,
        0.5,
        f32::MIN_POSITIVE,
    ] {
        let case = Case::edited(|b| b.completions[0].logprobs[0] = logprob);
        assert_eq!(
            case.run(),
            Validation::Reject(RejectReason::InvalidLogprob),
            "log-prob {logprob}"
        );
    }
    for reward in [f32::NAN, -0.001, 1.001, f32::INFINITY] {
        let case = Case::edited(|b| b.completions[0].reward = reward);
        assert_eq!(
            case.run(),
            Validation::Reject(RejectReason::InvalidReward),
            "reward {reward}"
        );
    }
    for (temperature, top_p) in [
        (0.0, 1.0),
        (f32::NAN, 1.0),
        (f32::INFINITY, 1.0),
        (1.0, 1.01),
        (1.0, f32::NAN),
    ] {
        let case = Case::edited(|b| {
            b.sampling.temperature = temperature;
            b.sampling.top_p = top_p;
        });
        assert_eq!(
            case.run(),
            Validation::Reject(RejectReason::InvalidSampling),
            "{temperature} {top_p}"
        );
    }
}

#[test]
fn reason_names_are_unique_snake_case() {
    let names: Vec<&str> = RejectReason::ALL
        .iter()
        .map(|r| r.as_str())
        .chain(IgnoreReason::ALL.iter().map(|r| r.as_str()))
        .chain(["accept"])
        .collect();
    let mut unique = names.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(
        unique.len(),
        names.len(),
        "duplicate metric names in {names:?}"
    );
    for name in names {
        assert!(
            !name.is_empty() && name.bytes().all(|c| c.is_ascii_lowercase() || c == b'_'),
            "{name} is not snake_case"
        );
    }
}

#[test]
fn all_lists_hold_every_variant() {
    // Exhaustive matches: adding a variant without listing it in ALL fails to compile here first.
    fn listed(reason: RejectReason) -> bool {
        match reason {
            RejectReason::MalformedEnvelope
            | RejectReason::UnsupportedVersion
            | RejectReason::BadSignature
            | RejectReason::MalformedPayload
            | RejectReason::AuthorMismatch
            | RejectReason::WrongNetwork
            | RejectReason::OverLimit(_)
            | RejectReason::NoCompletions
            | RejectReason::LogprobLengthMismatch
            | RejectReason::InvalidLogprob
            | RejectReason::InvalidReward
            | RejectReason::InvalidSampling
            | RejectReason::CompletionTooLong
            | RejectReason::PromptMismatch => RejectReason::ALL.contains(&reason),
        }
    }
    for kind in LimitKind::ALL {
        assert!(listed(RejectReason::OverLimit(kind)), "{kind:?}");
    }
    assert_eq!(RejectReason::ALL.len(), 13 + LimitKind::ALL.len());
    assert!(RejectReason::ALL.iter().all(|r| listed(*r)));
    let ignore_variants = IgnoreReason::ALL.iter().filter(|reason| match reason {
        IgnoreReason::Duplicate
        | IgnoreReason::Stale
        | IgnoreReason::FromFuture
        | IgnoreReason::UnknownTaskFamily
        | IgnoreReason::UnknownDataset
        | IgnoreReason::OverAuthorQuota
        | IgnoreReason::OverPeerQuota => true,
    });
    assert_eq!(ignore_variants.count(), 7);
}

#[test]
fn a_key_that_is_not_a_curve_point_is_a_bad_signature() {
    let mut bytes = valid_bytes();
    // y = 2 is not the y-coordinate of any point on the curve, so the key itself fails to decode.
    let mut not_a_point = [0u8; 32];
    not_a_point[0] = 2;
    assert!(VerifyingKey::from_bytes(&not_a_point).is_err());
    bytes[2..34].copy_from_slice(&not_a_point);
    assert_eq!(
        validate_default(&bytes),
        Validation::Reject(RejectReason::BadSignature)
    );
}
