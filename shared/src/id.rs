//! Ids: ULIDs (26 Crockford base-32 characters, time-ordered), so ids sort by creation time and
//! a listing by key is a listing by age.

/// A new sortable id.
pub fn new_id() -> String {
    ulid::Ulid::generate().to_string()
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
}
