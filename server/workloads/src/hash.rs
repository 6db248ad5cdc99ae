//! Stable, DNS-safe names derived from a template: the `pod-template-hash` of Deployments and
//! the ControllerRevision names of StatefulSets. Upstream hashes the object with FNV-32a and
//! encodes the decimal digits with a vowel-free alphabet (`rand.SafeEncodeString`), so names can
//! never spell words; we hash the canonical JSON instead of Go's object dump, which keeps the
//! hash stable across runs though not byte-identical to upstream's.

use serde::Serialize;

const SAFE_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

fn fnv32a(bytes: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in bytes {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// Maps each character to the safe alphabet, as upstream's `SafeEncodeString`.
pub fn safe_encode(s: &str) -> String {
    s.bytes().map(|b| SAFE_ALPHABET[usize::from(b) % SAFE_ALPHABET.len()] as char).collect()
}

/// The hash of `value` (canonical JSON) and an optional collision count, DNS-label safe.
pub fn compute_hash<T: Serialize>(value: &T, collision_count: Option<i32>) -> String {
    let mut bytes = serde_json::to_vec(value).unwrap_or_default();
    if let Some(c) = collision_count {
        bytes.extend_from_slice(&c.to_le_bytes());
    }
    safe_encode(&fnv32a(&bytes).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn hash_is_stable_safe_and_sensitive() {
        let a = compute_hash(&json!({"spec": {"image": "nginx:1"}}), None);
        assert_eq!(a, compute_hash(&json!({"spec": {"image": "nginx:1"}}), None));
        assert_ne!(a, compute_hash(&json!({"spec": {"image": "nginx:2"}}), None));
        assert_ne!(a, compute_hash(&json!({"spec": {"image": "nginx:1"}}), Some(1)));
        assert!(a.chars().all(|c| SAFE_ALPHABET.contains(&(c as u8))), "{a}");
        assert!(!a.is_empty() && a.len() <= 10);
    }

    #[test]
    fn fnv_matches_reference_vectors() {
        // Published FNV-1a 32-bit test vectors.
        assert_eq!(fnv32a(b""), 0x811c9dc5);
        assert_eq!(fnv32a(b"a"), 0xe40c292c);
        assert_eq!(fnv32a(b"foobar"), 0xbf9cf968);
        assert_eq!(safe_encode("0123456789"), "456789bcdf");
    }
}
