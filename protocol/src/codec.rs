//! The byte codec: one bincode 2 configuration, a hard bound on what any decode may claim, and
//! rejection of trailing bytes so that every value has exactly one encoding.

use bincode::config::{Configuration, Fixint, Limit, LittleEndian};
use bincode::error::DecodeError;

use crate::PROTOCOL_VERSION;
use crate::limits::MAX_ENVELOPE_BYTES_CEILING;
use crate::wire::{RolloutBundle, SignedEnvelope};

/// Upper bound on the bytes a single decode may claim, whatever its input says.
///
/// bincode checks every length prefix against this bound *before* allocating: a container claims
/// `len * size_of::<T>()` up front, so a prefix of 2^40 fails at once and the largest allocation a lying
/// prefix can cause is this many bytes. In-memory sizes exceed wire sizes only for the completion list
/// (80 bytes per entry against at least 29 on the wire, at most a few KiB for a legitimate bundle), so
/// 1 MiB (above the ceiling on envelopes) plus 64 KiB decodes every envelope a node can be configured to
/// accept.
pub const DECODE_LIMIT_BYTES: usize = (1 << 20) + 64 * 1024;

/// Fixed-width little-endian integers: every integer and length prefix has one size, so a client in
/// another language needs no varint decoder and the byte offsets of the envelope header are constant.
type WireConfig = Configuration<LittleEndian, Fixint, Limit<DECODE_LIMIT_BYTES>>;

const fn wire_config() -> WireConfig {
    bincode::config::standard()
        .with_little_endian()
        .with_fixed_int_encoding()
        .with_limit::<DECODE_LIMIT_BYTES>()
}

/// Byte offset of the payload length in a version-1 envelope: after version (2) and signer (32).
pub const PAYLOAD_LEN_OFFSET: usize = 2 + 32;
/// Byte offset of the payload in a version-1 envelope.
pub const PAYLOAD_OFFSET: usize = PAYLOAD_LEN_OFFSET + 8;
/// Envelope bytes that are not payload: header (42) plus signature (64).
pub const ENVELOPE_OVERHEAD: usize = PAYLOAD_OFFSET + 64;

/// Why bytes could not be encoded or decoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// The input is longer than the applicable limit; nothing was decoded.
    #[error("message is {len} bytes, more than the limit of {max} bytes")]
    TooLarge {
        /// Input length.
        len: usize,
        /// The limit it exceeded.
        max: usize,
    },
    /// The envelope's first two bytes name a version this node does not implement.
    #[error(
        "envelope has protocol version {found}; this node implements version {PROTOCOL_VERSION} only"
    )]
    UnsupportedVersion {
        /// The version found on the wire.
        found: u16,
    },
    /// The bytes do not follow the layout of PROTOCOL.md.
    #[error("malformed {what}: {detail}")]
    Malformed {
        /// `envelope` or `payload`.
        what: &'static str,
        /// What the decoder found wrong.
        detail: String,
    },
    /// A complete value was decoded but bytes were left over; accepting them would give one value
    /// many encodings (and many message ids).
    #[error("{what} has {extra} trailing bytes after a complete value")]
    TrailingBytes {
        /// `envelope` or `payload`.
        what: &'static str,
        /// How many bytes were left over.
        extra: usize,
    },
    /// Encoding failed; the detail comes from the encoder.
    #[error("could not encode {what}: {detail}")]
    Encode {
        /// What was being encoded.
        what: &'static str,
        /// What the encoder reported.
        detail: String,
    },
}

fn decode_exact<T: bincode::Decode<()>>(bytes: &[u8], what: &'static str) -> Result<T, CodecError> {
    let (value, read) =
        bincode::decode_from_slice::<T, _>(bytes, wire_config()).map_err(|err| {
            CodecError::Malformed {
                what,
                detail: describe(&err),
            }
        })?;
    if read != bytes.len() {
        return Err(CodecError::TrailingBytes {
            what,
            extra: bytes.len() - read,
        });
    }
    Ok(value)
}

fn describe(err: &DecodeError) -> String {
    match err {
        DecodeError::LimitExceeded => format!(
            "a length prefix claims more than the decode bound of {DECODE_LIMIT_BYTES} bytes"
        ),
        other => other.to_string(),
    }
}

impl RolloutBundle {
    /// Encodes the bundle as an envelope payload.
    pub fn to_bytes(&self) -> Result<Vec<u8>, CodecError> {
        bincode::encode_to_vec(self, wire_config()).map_err(|err| CodecError::Encode {
            what: "rollout bundle",
            detail: err.to_string(),
        })
    }

    /// Decodes a payload. Fails on inputs over [`MAX_ENVELOPE_BYTES_CEILING`], on any layout error and
    /// on trailing bytes; never allocates more than [`DECODE_LIMIT_BYTES`] for a lying length prefix.
    /// Checks no limit or semantic rule: use [`crate::validate`] for untrusted messages.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CodecError> {
        if bytes.len() > MAX_ENVELOPE_BYTES_CEILING {
            return Err(CodecError::TooLarge {
                len: bytes.len(),
                max: MAX_ENVELOPE_BYTES_CEILING,
            });
        }
        decode_exact(bytes, "payload")
    }
}

impl SignedEnvelope {
    /// Encodes the envelope: version, signer, payload length, payload, signature.
    pub fn to_bytes(&self) -> Vec<u8> {
        // Written by hand rather than through bincode because this framing cannot fail and is the part
        // of the format other clients parse first; a test pins it to the bincode encoding.
        let mut out = Vec::with_capacity(ENVELOPE_OVERHEAD + self.payload.len());
        out.extend_from_slice(&self.version.to_le_bytes());
        out.extend_from_slice(&self.signer);
        out.extend_from_slice(&(self.payload.len() as u64).to_le_bytes());
        out.extend_from_slice(&self.payload);
        out.extend_from_slice(&self.signature);
        out
    }

    /// Decodes an envelope without verifying it. Reads the version first, so an envelope of another
    /// version is reported as [`CodecError::UnsupportedVersion`] rather than as malformed.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CodecError> {
        if bytes.len() > MAX_ENVELOPE_BYTES_CEILING {
            return Err(CodecError::TooLarge {
                len: bytes.len(),
                max: MAX_ENVELOPE_BYTES_CEILING,
            });
        }
        let found = peek_version(bytes).ok_or_else(|| CodecError::Malformed {
            what: "envelope",
            detail: format!(
                "{} bytes is too short to hold the 2-byte version",
                bytes.len()
            ),
        })?;
        if found != PROTOCOL_VERSION {
            return Err(CodecError::UnsupportedVersion { found });
        }
        decode_exact(bytes, "envelope")
    }
}

/// The version field of an envelope: its first two bytes, little-endian, in every protocol version.
pub fn peek_version(envelope: &[u8]) -> Option<u16> {
    match envelope {
        [lo, hi, ..] => Some(u16::from_le_bytes([*lo, *hi])),
        _ => None,
    }
}
