//! Fraud rules at sign-up (a program enables them): which flags a new relation gets. Pure;
//! the sign-up reads what they need (the referrer's promoter item, their recent sign-ups).
//! A flagged relation's rewards are held with the flag as the reason until an admin approves
//! one (which clears the relation's flags) or denies them.

use crate::domain::ledger::Hold;
use crate::domain::program::FraudRules;
use crate::domain::promoter::Promoter;

/// The mailbox an address delivers to: lower case, without a `+tag`, and without dots in the
/// local part at Gmail (where they do not matter).
pub fn mailbox(email: &str) -> Option<String> {
    let email = email.trim().to_lowercase();
    let (local, domain) = email.rsplit_once('@')?;
    let local = local.split('+').next().unwrap_or(local);
    let domain = match domain {
        "googlemail.com" => "gmail.com",
        other => other,
    };
    let local = if domain == "gmail.com" {
        local.replace('.', "")
    } else {
        local.to_owned()
    };
    (!local.is_empty() && !domain.is_empty()).then(|| format!("{local}@{domain}"))
}

/// Whether the address's domain is a disposable-mail one (a maintained list of ~72,000
/// domains, compiled in: the `disposable-emails` crate).
pub fn is_disposable(email: &str) -> bool {
    disposable_emails::is_disposable_email(email.trim())
}

/// The keys of the digests of what a device or connection is known by, kept on the promoter
/// instead of the value itself. Keyed (HMAC-SHA256), so that whoever reads the table cannot
/// enumerate the 2^32 IPv4 addresses back from a digest: the keys are derived from the
/// engine's signing keys (the current one, and the previous one after a rotation, so that
/// digests noted before it still match until the promoter is seen again).
#[derive(Clone)]
pub struct Fingerprints {
    current: Vec<u8>,
    previous: Option<Vec<u8>>,
}

impl Fingerprints {
    /// The keys derived from the engine's current signing key and the previous one.
    pub fn new(signing_key: &str, previous: Option<&str>) -> Fingerprints {
        let derive =
            |secret: &str| mac(secret.as_bytes(), b"referral-engine activity fingerprints");
        Fingerprints {
            current: derive(signing_key),
            previous: previous.map(derive),
        }
    }

    /// The digest noted for `value`, a `kind` (`ip`, `device`) of activity.
    pub fn digest(&self, kind: &str, value: &str) -> String {
        digest_with(&self.current, kind, value)
    }

    /// Whether `noted` holds `value`'s digest under the current key or the previous one.
    pub fn seen(&self, noted: &[String], kind: &str, value: &str) -> bool {
        std::iter::once(&self.current)
            .chain(self.previous.as_ref())
            .any(|key| noted.contains(&digest_with(key, kind, value)))
    }
}

fn mac(key: &[u8], message: &[u8]) -> Vec<u8> {
    use hmac::{KeyInit, Mac};
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).expect("HMAC takes any key");
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

fn digest_with(key: &[u8], kind: &str, value: &str) -> String {
    let digest = mac(key, format!("{kind}:{}", value.trim()).as_bytes());
    digest[..12].iter().map(|b| format!("{b:02x}")).collect()
}

/// What a sign-up tells the fraud rules.
#[derive(Clone, Copy, Debug, Default)]
pub struct SignUpFacts<'a> {
    pub referred_email: Option<&'a str>,
    pub ip: Option<&'a str>,
    pub device_id: Option<&'a str>,
    /// Sign-ups through the referrer within the velocity window, before this one.
    pub recent_signups: u64,
}

/// The flags `rules` give a sign-up by `referrer` (their promoter item, when they have one).
pub fn sign_up_flags(
    rules: &FraudRules,
    referrer: Option<&Promoter>,
    facts: &SignUpFacts,
    fingerprints: &Fingerprints,
) -> Vec<Hold> {
    let mut flags = Vec::new();
    if rules.same_mailbox
        && let (Some(theirs), Some(email)) = (
            referrer.and_then(|p| p.email.as_deref()),
            facts.referred_email,
        )
        && mailbox(theirs).is_some()
        && mailbox(theirs) == mailbox(email)
    {
        flags.push(Hold::SameMailbox);
    }
    if rules.disposable_email && facts.referred_email.is_some_and(is_disposable) {
        flags.push(Hold::DisposableEmail);
    }
    if let Some(velocity) = rules.velocity
        && facts.recent_signups >= u64::from(velocity.max_signups)
    {
        flags.push(Hold::Velocity);
    }
    if rules.same_device
        && let Some(promoter) = referrer
    {
        let seen = |kind: &str, value: Option<&str>| {
            value.is_some_and(|value| fingerprints.seen(&promoter.recent_activity, kind, value))
        };
        if seen("ip", facts.ip) || seen("device", facts.device_id) {
            flags.push(Hold::SameDevice);
        }
    }
    flags
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::program::Velocity;

    #[test]
    fn a_mailbox_ignores_tags_and_gmail_dots_only() {
        assert_eq!(
            mailbox("Al.Ice+promo@GMail.com").as_deref(),
            Some("alice@gmail.com")
        );
        assert_eq!(
            mailbox("a.lice@googlemail.com").as_deref(),
            Some("alice@gmail.com")
        );
        assert_eq!(
            mailbox("al.ice+x@example.com").as_deref(),
            Some("al.ice@example.com")
        );
        assert_ne!(mailbox("al.ice@example.com"), mailbox("alice@example.com"));
        assert_eq!(mailbox("nobody"), None);
    }

    #[test]
    fn each_rule_flags_only_when_enabled() {
        let mut promoter = Promoter::new(
            "acme",
            "alice",
            "ALICE".into(),
            time::OffsetDateTime::UNIX_EPOCH,
        );
        promoter.email = Some("alice@gmail.com".into());
        let keys = Fingerprints::new("a signing key of the engine", None);
        promoter.recent_activity = vec![keys.digest("ip", "203.0.113.7")];
        let facts = SignUpFacts {
            referred_email: Some("a.lice+2@gmail.com"),
            ip: Some("203.0.113.7"),
            device_id: None,
            recent_signups: 5,
        };
        assert!(sign_up_flags(&FraudRules::default(), Some(&promoter), &facts, &keys).is_empty());
        let all = FraudRules {
            same_mailbox: true,
            disposable_email: true,
            duplicate_payout_address: true,
            velocity: Some(Velocity {
                max_signups: 5,
                within_minutes: 10,
            }),
            same_device: true,
        };
        assert_eq!(
            sign_up_flags(&all, Some(&promoter), &facts, &keys),
            [Hold::SameMailbox, Hold::Velocity, Hold::SameDevice]
        );
        let other = SignUpFacts {
            referred_email: Some("bob@mailinator.com"),
            ip: Some("198.51.100.1"),
            device_id: Some("d-1"),
            recent_signups: 4,
        };
        assert_eq!(
            sign_up_flags(&all, Some(&promoter), &other, &keys),
            [Hold::DisposableEmail]
        );
        assert!(!is_disposable("bob@gmail.com"));
    }

    #[test]
    fn digests_are_keyed_and_survive_one_rotation_of_the_key() {
        let before = Fingerprints::new("key one", None);
        let noted = vec![before.digest("ip", "203.0.113.7")];
        // Not the bare SHA-256 of the value, and not another deployment's digest.
        assert_ne!(
            noted[0],
            Fingerprints::new("key two", None).digest("ip", "203.0.113.7")
        );
        assert_eq!(noted[0].len(), 24);
        assert!(before.seen(&noted, "ip", " 203.0.113.7 "));
        assert!(!before.seen(&noted, "device", "203.0.113.7"));
        // After a rotation the previous key still matches what was noted under it; the next
        // rotation forgets it.
        let rotated = Fingerprints::new("key two", Some("key one"));
        assert!(rotated.seen(&noted, "ip", "203.0.113.7"));
        assert!(!Fingerprints::new("key three", Some("key two")).seen(&noted, "ip", "203.0.113.7"));
    }
}
