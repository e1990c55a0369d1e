//! Billing credits (seed 000's callback): what is sent for a `pending` reward, how it is signed,
//! and what each answer of the billing system means. Pure; the SQS producer is
//! [`crate::delivery::queue`], the consumer is `functions/billing-consumer`.

use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::domain::ledger::Reward;
use crate::domain::program::RewardKind;

/// The header carrying the signature: `t=<unix seconds>,v1=<hex HMAC-SHA256>`.
pub const SIGNATURE_HEADER: &str = "X-Referral-Signature";
/// The header carrying the reward id, for the billing system to deduplicate.
pub const IDEMPOTENCY_HEADER: &str = "Idempotency-Key";
/// Signatures older than this are refused by [`verify_signature`].
pub const SIGNATURE_TOLERANCE_SECONDS: i64 = 300;
/// Characters of a refusing answer's body kept in `last_error`.
const EXCERPT_CHARS: usize = 300;

/// One billing credit: the SQS message body and, as JSON, the body POSTed to billing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreditMessage {
    pub reward_id: String,
    pub tenant: String,
    /// The recipient of the credit.
    pub user_id: String,
    /// The referrer (seed 000's `user_indicator_hash`).
    pub user_indicator_hash: String,
    /// Minor units (cash) or points.
    pub amount: i64,
    pub currency: String,
    pub kind: RewardKind,
    pub program_id: String,
    pub program_name: String,
    /// Why: `signup`, `paid_threshold`, `each_invoice`, `verified` or `completed_by_admin`.
    pub reason: String,
}

impl CreditMessage {
    pub fn of(reward: &Reward) -> CreditMessage {
        CreditMessage {
            reward_id: reward.id.clone(),
            tenant: reward.tenant.clone(),
            user_id: reward.user_id.clone(),
            user_indicator_hash: reward.referrer_user_id.clone().unwrap_or_default(),
            amount: reward.payable(),
            currency: reward.currency.clone(),
            kind: reward.kind,
            program_id: reward.program_id.clone(),
            program_name: reward.program_name.clone().unwrap_or_default(),
            reason: reward.reason.clone(),
        }
    }
}

/// The signature header value for `body` sent at `timestamp` (unix seconds):
/// `t=<timestamp>,v1=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`.
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    sign_all(&[secret], timestamp, body)
}

/// The signature header with one `v1=` per secret, newest first: during a rotation's overlap
/// billing verifies with either secret (as Stripe sends a signature per active secret).
pub fn sign_all(secrets: &[&str], timestamp: i64, body: &[u8]) -> String {
    let mut header = format!("t={timestamp}");
    for secret in secrets {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
        mac.update(format!("{timestamp}.").as_bytes());
        mac.update(body);
        header.push_str(",v1=");
        header.push_str(&hex(&mac.finalize().into_bytes()));
    }
    header
}

/// Checks a signature header the way a billing system should: a timestamp within
/// [`SIGNATURE_TOLERANCE_SECONDS`] of `now`, and any of its `v1=` MACs matching, in constant time.
pub fn verify_signature(secret: &str, header: &str, body: &[u8], now: i64) -> bool {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", value)) => timestamp = value.parse::<i64>().ok(),
            Some(("v1", value)) => signatures.extend(unhex(value)),
            _ => {}
        }
    }
    let Some(timestamp) = timestamp else {
        return false;
    };
    if (now - timestamp).abs() > SIGNATURE_TOLERANCE_SECONDS {
        return false;
    }
    signatures.iter().any(|signature| {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
        mac.update(format!("{timestamp}.").as_bytes());
        mac.update(body);
        mac.verify_slice(signature).is_ok()
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The billing URL for `user_id`: the template with `{user_id}` replaced (percent-encoded).
pub fn callback_url(template: &str, user_id: &str) -> String {
    let encoded: String = user_id
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect();
    template.replace("{user_id}", &encoded)
}

/// What an attempt at delivering a credit means.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// 2xx: the credit is booked.
    Credited,
    /// 408, 429, 5xx, a timeout or a connection failure: try again later.
    Retry(String),
    /// Any other answer: the billing system refuses it; do not retry.
    Refused(String),
}

/// Classifies an HTTP answer of the billing system.
pub fn classify(status: u16, body: &str) -> Verdict {
    let excerpt: String = body.chars().take(EXCERPT_CHARS).collect();
    match status {
        200..=299 => Verdict::Credited,
        408 | 429 | 500..=599 => Verdict::Retry(format!("billing answered {status}: {excerpt}")),
        _ => Verdict::Refused(format!("billing answered {status}: {excerpt}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_and_reject_tampering_and_age() {
        let body = br#"{"reward_id":"r1","amount":500}"#;
        let header = sign("secret-1", 1_800_000_000, body);
        // The same MAC as the README's Python example computes.
        assert_eq!(
            header,
            "t=1800000000,v1=8dfcc73cbe047c0ed0afcda7bc03a4ead9642c7b91c4a1dc8507a33d4b27bccf"
        );
        assert_eq!(header.len(), "t=1800000000,v1=".len() + 64);
        assert!(verify_signature("secret-1", &header, body, 1_800_000_100));
        assert!(
            !verify_signature("secret-2", &header, body, 1_800_000_100),
            "other secret"
        );
        assert!(
            !verify_signature("secret-1", &header, b"{\"amount\":5000}", 1_800_000_100),
            "other body"
        );
        assert!(
            !verify_signature("secret-1", &header, body, 1_800_000_301),
            "too old"
        );
        assert!(!verify_signature(
            "secret-1",
            "t=1800000000",
            body,
            1_800_000_000
        ));
        assert!(!verify_signature(
            "secret-1",
            "garbage",
            body,
            1_800_000_000
        ));
        let both = sign_all(&["secret-new", "secret-1"], 1_800_000_000, body);
        assert!(both.starts_with(&format!("{},v1=", sign("secret-new", 1_800_000_000, body))));
        assert!(verify_signature("secret-1", &both, body, 1_800_000_000));
        assert!(verify_signature("secret-new", &both, body, 1_800_000_000));
        assert!(!verify_signature("secret-2", &both, body, 1_800_000_000));
        let forged = header.replace("t=1800000000", "t=1800000001");
        assert!(
            !verify_signature("secret-1", &forged, body, 1_800_000_001),
            "timestamp is signed"
        );
    }

    #[test]
    fn the_callback_url_takes_the_user_id() {
        assert_eq!(
            callback_url("https://billing/credit/{user_id}", "u 1/2"),
            "https://billing/credit/u%201%2F2"
        );
        assert_eq!(
            callback_url("https://billing/credit", "u1"),
            "https://billing/credit"
        );
    }

    #[test]
    fn answers_are_classified_like_the_contract_says() {
        assert_eq!(classify(200, ""), Verdict::Credited);
        assert_eq!(classify(204, ""), Verdict::Credited);
        for retry in [408, 429, 500, 502, 503, 504] {
            assert!(
                matches!(classify(retry, "busy"), Verdict::Retry(_)),
                "{retry}"
            );
        }
        for refused in [400, 401, 403, 404, 409, 422, 301] {
            assert!(
                matches!(classify(refused, "no"), Verdict::Refused(_)),
                "{refused}"
            );
        }
        let Verdict::Refused(error) = classify(400, &"x".repeat(1000)) else {
            panic!()
        };
        assert!(error.len() < 400, "the body is cut to an excerpt");
    }
}
