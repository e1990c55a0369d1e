//! Standard Webhooks signatures (<https://www.standardwebhooks.com>): every event delivery and
//! every billing credit carries `webhook-id`, `webhook-timestamp` and `webhook-signature:
//! v1,<base64 HMAC-SHA256 over "{id}.{timestamp}.{body}">`, one signature per live secret (a
//! rotation's overlap sends two, space-separated). Secrets are `whsec_<base64 of 32 bytes>`
//! ([`crate::id::signing_secret`]);
//! the key is the decoded bytes. A secret without that form (an operator's own
//! `BILLING_SIGNING_SECRET`) keys the MAC with its UTF-8 bytes: a Standard Webhooks library then
//! verifies with `whsec_` + base64 of those bytes.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

pub const ID_HEADER: &str = "webhook-id";
pub const TIMESTAMP_HEADER: &str = "webhook-timestamp";
pub const SIGNATURE_HEADER: &str = "webhook-signature";
const PREFIX: &str = "whsec_";

/// The HMAC key of a secret.
fn key(secret: &str) -> Vec<u8> {
    secret
        .strip_prefix(PREFIX)
        .and_then(|encoded| {
            STANDARD
                .decode(encoded)
                .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(encoded))
                .ok()
        })
        .unwrap_or_else(|| secret.as_bytes().to_vec())
}

/// The three headers of one delivery of `body` as message `id` sent at `timestamp` (unix
/// seconds), signed with each of `secrets` (newest first).
pub fn headers(
    secrets: &[&str],
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> [(&'static str, String); 3] {
    let signatures: Vec<String> = secrets
        .iter()
        .map(|secret| {
            let mut mac = Hmac::<Sha256>::new_from_slice(&key(secret)).expect("HMAC takes any key");
            mac.update(format!("{id}.{timestamp}.").as_bytes());
            mac.update(body);
            format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
        })
        .collect();
    [
        (ID_HEADER, id.to_owned()),
        (TIMESTAMP_HEADER, timestamp.to_string()),
        (SIGNATURE_HEADER, signatures.join(" ")),
    ]
}

/// Signatures older or newer than this are refused by [`verify`] (the standard's tolerance).
pub const TOLERANCE_SECONDS: i64 = 300;

/// Checks a delivery the way a receiver should: the timestamp within [`TOLERANCE_SECONDS`] of
/// `now`, and one of the `v1,` signatures made with one of `secrets`, compared in constant time.
pub fn verify(
    secrets: &[&str],
    id: &str,
    timestamp: &str,
    signatures: &str,
    body: &[u8],
    now: i64,
) -> bool {
    let Ok(sent) = timestamp.parse::<i64>() else {
        return false;
    };
    if (now - sent).abs() > TOLERANCE_SECONDS {
        return false;
    }
    let candidates: Vec<Vec<u8>> = signatures
        .split(' ')
        .filter_map(|signature| STANDARD.decode(signature.strip_prefix("v1,")?).ok())
        .collect();
    secrets.iter().any(|secret| {
        candidates.iter().any(|candidate| {
            let mut mac = Hmac::<Sha256>::new_from_slice(&key(secret)).expect("HMAC takes any key");
            mac.update(format!("{id}.{sent}.").as_bytes());
            mac.update(body);
            mac.verify_slice(candidate).is_ok()
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_specifications_example_signs_as_published() {
        // A published example (secret, id, timestamp, body and signature), recomputed with
        // Python's hmac.
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let body = br#"{"test": 2432232314}"#;
        let [id, timestamp, signature] =
            headers(&[secret], "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body);
        assert_eq!(id.1, "msg_p5jXN8AQM9LWM0D4loKWxJek");
        assert_eq!(timestamp.1, "1614265330");
        assert_eq!(
            signature.1,
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn every_live_secret_signs_and_secrets_are_standard() {
        let (old, new) = (crate::id::signing_secret(), crate::id::signing_secret());
        assert!(new.starts_with("whsec_") && STANDARD.decode(&new[6..]).unwrap().len() == 32);
        assert_ne!(old, new);
        let [_, _, both] = headers(&[&new, &old], "evt_1", 1, b"{}");
        let [_, _, one] = headers(&[&new], "evt_1", 1, b"{}");
        assert_eq!(both.1.split(' ').count(), 2);
        assert!(both.1.starts_with(&one.1));
        assert!(verify(&[&old], "evt_1", "1", &both.1, b"{}", 1));
        assert!(verify(&[&new], "evt_1", "1", &one.1, b"{}", 300));
        assert!(
            !verify(&[&old], "evt_1", "1", &one.1, b"{}", 1),
            "other secret"
        );
        assert!(!verify(&[&new], "evt_2", "1", &one.1, b"{}", 1), "other id");
        assert!(
            !verify(&[&new], "evt_1", "1", &one.1, b"{ }", 1),
            "other body"
        );
        assert!(
            !verify(&[&new], "evt_1", "1", &one.1, b"{}", 302),
            "too old"
        );
        assert!(
            !verify(&[&new], "evt_1", "2", &one.1, b"{}", 2),
            "other time"
        );
        // A secret of another form keys with its bytes.
        assert_eq!(key("plain"), b"plain");
        assert_eq!(key("whsec_%%"), b"whsec_%%");
    }
}
