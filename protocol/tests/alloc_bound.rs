//! Decoding a message whose length prefixes claim 2^40 elements allocates nothing large.
//!
//! A counting global allocator records the largest single allocation; it is the only test in this
//! binary so no other test's allocations are counted.

// Implementing `GlobalAlloc` requires `unsafe impl`; this is the one place the crate needs it, and only
// in a test binary.
#![allow(unsafe_code)]

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use common::*;
use swarm_protocol::{
    DECODE_LIMIT_BYTES, PAYLOAD_LEN_OFFSET, RejectReason, RolloutBundle, SignedEnvelope, Validation,
};

struct LargestAllocation;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator; the wrapper only records sizes.
unsafe impl GlobalAlloc for LargestAllocation {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: LargestAllocation = LargestAllocation;

const HUGE: u64 = 1 << 40;

/// Largest single allocation made while running `f`.
fn largest_allocation_during<T>(f: impl FnOnce() -> T) -> (T, usize) {
    LARGEST.store(0, Ordering::Relaxed);
    let result = f();
    (result, LARGEST.load(Ordering::Relaxed))
}

/// Byte offset of the completion count in the test bundle's payload.
fn completions_count_offset(bundle: &RolloutBundle) -> usize {
    let mut without = bundle.clone();
    without.completions.clear();
    without.to_bytes().unwrap().len() - 8
}

#[test]
fn huge_length_prefixes_allocate_nothing_large() {
    let key = key(3);
    let bundle = example_bundle(&key);
    let envelope = signed_bytes(&bundle, &key);
    // Generous for the decoder's own bookkeeping, and far below 2^40 or the decode bound.
    let small = 64 * 1024;

    // 1. The envelope claims a 2^40-byte payload.
    let mut bytes = envelope.clone();
    bytes[PAYLOAD_LEN_OFFSET..PAYLOAD_LEN_OFFSET + 8].copy_from_slice(&HUGE.to_le_bytes());
    let (outcome, largest) = largest_allocation_during(|| validate_default(&bytes));
    assert_eq!(outcome, Validation::Reject(RejectReason::MalformedEnvelope));
    assert!(largest < small, "largest allocation {largest} bytes");
    let (decoded, largest) = largest_allocation_during(|| SignedEnvelope::from_bytes(&bytes));
    assert!(decoded.is_err());
    assert!(largest < small, "largest allocation {largest} bytes");

    // 2. A correctly signed payload claims 2^40 completions, so the payload decoder itself is reached.
    let mut payload = bundle.to_bytes().unwrap();
    let offset = completions_count_offset(&bundle);
    assert_eq!(
        payload[offset..offset + 8],
        2u64.to_le_bytes(),
        "offset of the completion count"
    );
    payload[offset..offset + 8].copy_from_slice(&HUGE.to_le_bytes());
    let bytes = SignedEnvelope::sign_payload(payload.clone(), &key).to_bytes();
    let (outcome, largest) = largest_allocation_during(|| validate_default(&bytes));
    assert_eq!(outcome, Validation::Reject(RejectReason::MalformedPayload));
    assert!(largest < small, "largest allocation {largest} bytes");

    // 3. The first completion's text claims 2^40 bytes (strings take the byte-vector fast path).
    payload[offset..offset + 8].copy_from_slice(&2u64.to_le_bytes());
    payload[offset + 8..offset + 16].copy_from_slice(&HUGE.to_le_bytes());
    let bytes = SignedEnvelope::sign_payload(payload.clone(), &key).to_bytes();
    let (outcome, largest) = largest_allocation_during(|| validate_default(&bytes));
    assert_eq!(outcome, Validation::Reject(RejectReason::MalformedPayload));
    assert!(largest < small, "largest allocation {largest} bytes");

    // 4. A claim just under the decode bound is allowed to allocate, but never more than the bound.
    let claim = (DECODE_LIMIT_BYTES / 4 - 1024) as u64;
    let text_len = bundle.completions[0].text.len();
    let token_count_offset = offset + 16 + text_len;
    assert_eq!(
        payload[token_count_offset..token_count_offset + 8],
        2u64.to_le_bytes()
    );
    payload[offset + 8..offset + 16].copy_from_slice(&(text_len as u64).to_le_bytes());
    payload[token_count_offset..token_count_offset + 8].copy_from_slice(&claim.to_le_bytes());
    let (decoded, largest) = largest_allocation_during(|| RolloutBundle::from_bytes(&payload));
    assert!(decoded.is_err());
    assert!(
        largest <= DECODE_LIMIT_BYTES,
        "largest allocation {largest} bytes"
    );
    // The same counter sees this bounded but large allocation, so the small figures above are real.
    assert!(largest > small, "largest allocation {largest} bytes");
}
