//! ed25519 signatures over a domain-separated digest of the payload.

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

use crate::codec::CodecError;
use crate::limits::MAX_ENVELOPE_BYTES_CEILING;
use crate::wire::{PublicKeyBytes, RolloutBundle, SignedEnvelope};
use crate::{PROTOCOL_VERSION, codec};

/// Domain-separation tag of version-1 rollout signatures. A signature made for any other purpose, or
/// for another protocol version, never verifies as a rollout signature.
pub const SIGNING_DOMAIN: &[u8; 16] = b"swarm/rollout/v2";

/// Length of the signing input: the domain tag followed by a 32-byte blake3 digest.
pub const SIGNING_INPUT_LEN: usize = SIGNING_DOMAIN.len() + 32;

/// The bytes that are signed: `b"swarm/rollout/v2" || blake3(payload)`.
///
/// Signing the digest rather than the payload keeps the signed message small and fixed-size, so
/// verification cost does not grow with the payload.
pub fn signing_input(payload: &[u8]) -> [u8; SIGNING_INPUT_LEN] {
    let mut input = [0u8; SIGNING_INPUT_LEN];
    input[..SIGNING_DOMAIN.len()].copy_from_slice(SIGNING_DOMAIN);
    input[SIGNING_DOMAIN.len()..].copy_from_slice(blake3::hash(payload).as_bytes());
    input
}

/// Why a bundle could not be signed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    /// The bundle names another author than the signing key; receivers would reject it.
    #[error(
        "bundle author {} is not the signing key {}; set the author to the signing key's public key",
        hex::encode(bundle_author),
        hex::encode(signing_key)
    )]
    AuthorMismatch {
        /// `author` of the bundle.
        bundle_author: PublicKeyBytes,
        /// Public key of the signing key.
        signing_key: PublicKeyBytes,
    },
    /// The envelope would be larger than any receiver accepts.
    #[error(
        "signed envelope would be {len} bytes, more than the protocol ceiling of {max} bytes; send fewer or shorter completions"
    )]
    TooLarge {
        /// Encoded envelope length.
        len: usize,
        /// [`MAX_ENVELOPE_BYTES_CEILING`].
        max: usize,
    },
    /// The bundle could not be encoded.
    #[error(transparent)]
    Codec(#[from] CodecError),
}

/// Encodes and signs a bundle. The bundle's `author` must be `key`'s public key.
///
/// Checks only what would make every receiver reject the envelope regardless of its limits; run
/// [`crate::check_bundle`] first to check against the limits a receiver applies.
pub fn sign_bundle(bundle: &RolloutBundle, key: &SigningKey) -> Result<SignedEnvelope, SignError> {
    let signing_key = key.verifying_key().to_bytes();
    if bundle.author != signing_key {
        return Err(SignError::AuthorMismatch {
            bundle_author: bundle.author,
            signing_key,
        });
    }
    let payload = bundle.to_bytes()?;
    let len = payload.len() + codec::ENVELOPE_OVERHEAD;
    if len > MAX_ENVELOPE_BYTES_CEILING {
        return Err(SignError::TooLarge {
            len,
            max: MAX_ENVELOPE_BYTES_CEILING,
        });
    }
    Ok(SignedEnvelope::sign_payload(payload, key))
}

impl SignedEnvelope {
    /// Signs arbitrary payload bytes into a version-1 envelope, without checking that they decode.
    /// For conformance vectors and tests; publishers use [`sign_bundle`].
    pub fn sign_payload(payload: Vec<u8>, key: &SigningKey) -> Self {
        let signature = key.sign(&signing_input(&payload));
        SignedEnvelope {
            version: PROTOCOL_VERSION,
            signer: key.verifying_key().to_bytes(),
            payload,
            signature: signature.to_bytes(),
        }
    }

    /// Verifies the signature against `signer` strictly: small-order keys and `R` values and
    /// non-canonical `S` are refused (ed25519-dalek's `verify_strict`), so a message has no second valid
    /// signature under the same key. See PROTOCOL.md section 4.
    pub fn verify(&self) -> Result<(), ed25519_dalek::SignatureError> {
        let key = VerifyingKey::from_bytes(&self.signer)?;
        let signature = Signature::from_bytes(&self.signature);
        key.verify_strict(&signing_input(&self.payload), &signature)
    }
}
