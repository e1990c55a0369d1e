//! Ids: ULIDs (26 Crockford base-32 characters, time-ordered), so ids sort by creation time and
//! a listing by key is a listing by age.

/// Ids of one process are monotonic: two made in the same millisecond still sort in the order
/// they were made.
static GENERATOR: std::sync::Mutex<ulid::Generator> = std::sync::Mutex::new(ulid::Generator::new());

/// A new sortable id.
pub fn new_id() -> String {
    let mut generator = GENERATOR
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    match generator.generate() {
        Ok(id) => id.to_string(),
        // 2^80 ids in one millisecond: start afresh rather than fail.
        Err(_) => ulid::Ulid::generate().to_string(),
    }
}

/// The smallest id made at or after `at`: ids at or above it were made since then.
pub fn first_id_at(at: time::OffsetDateTime) -> String {
    let millis = u64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
    ulid::Ulid::from_parts(millis, 0).to_string()
}

/// What an identifier a client names (a user, a tenant) must be, wherever it enters (a token's
/// claims, a body, a path, a query): it ends up inside keys and in the billing URL's path.
pub const IDENTIFIER_RULE: &str =
    "must be 1-128 characters without '#' or control characters, and not '.' or '..'";

/// Whether `value` is a valid identifier (see [`IDENTIFIER_RULE`]): 1-128 bytes, no key
/// separator `#`, no control characters, and not a dot segment (`.` or `..` would change the
/// path of a URL it is put into).
pub fn is_identifier(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 128
        && !value.chars().any(|c| c == '#' || c.is_control())
        && value != "."
        && value != ".."
}

/// `bytes` random bytes from the operating system, base64url without padding: the secret part of
/// API keys, signing secrets and the like.
pub fn random_token(bytes: usize) -> String {
    use base64::Engine;
    let mut buffer = vec![0u8; bytes];
    getrandom::fill(&mut buffer).expect("the operating system provides randomness");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buffer)
}

/// A uniformly random fraction in `[0, 1)` (jitter).
pub fn random_fraction() -> f64 {
    let mut buffer = [0u8; 4];
    getrandom::fill(&mut buffer).expect("the operating system provides randomness");
    f64::from(u32::from_le_bytes(buffer)) / (f64::from(u32::MAX) + 1.0)
}

/// A new signing secret of the Standard Webhooks form: `whsec_` and the standard base64 of 32
/// random bytes (billing endpoints' and webhook endpoints' secrets).
pub fn signing_secret() -> String {
    use base64::Engine;
    let mut buffer = [0u8; 32];
    getrandom::fill(&mut buffer).expect("the operating system provides randomness");
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(buffer)
    )
}

/// Whether `candidate` has the form of an id this service issues. Used to answer a malformed id
/// in a path with 404 without a database round trip.
pub fn is_id(candidate: &str) -> bool {
    candidate.len() == ulid::ULID_LEN && ulid::Ulid::from_string(candidate).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_well_formed_unique_and_sortable() {
        let burst: Vec<String> = (0..1000).map(|_| new_id()).collect();
        assert!(
            burst.windows(2).all(|pair| pair[0] < pair[1]),
            "monotonic within a millisecond"
        );
        let first = new_id();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let second = new_id();
        assert!(is_id(&first) && is_id(&second));
        assert_ne!(first, second);
        assert!(first < second, "{first} < {second}");
        assert!(!is_id("not-an-id"));
        assert!(!is_id(""));
        assert!(!is_id("01ARZ3NDEKTSV4RRFFQ69G5FAV#"));
    }

    #[test]
    fn identifiers_keep_out_of_keys_and_url_paths() {
        for good in [
            "alice",
            "user-1",
            "a.b",
            "...",
            "ü@example.com",
            &"x".repeat(128),
        ] {
            assert!(is_identifier(good), "{good}");
        }
        for bad in [
            "",
            ".",
            "..",
            "a#b",
            "a\u{0}b",
            "tab\there",
            &"x".repeat(129),
        ] {
            assert!(!is_identifier(bad), "{bad:?}");
        }
    }
}
