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

/// A digest of what a device or connection is known by (`ip:...`, `device:...`), kept on the
/// promoter instead of the value itself.
pub fn activity_digest(kind: &str, value: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(format!("{kind}:{}", value.trim()).as_bytes());
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
            value.is_some_and(|value| {
                promoter
                    .recent_activity
                    .contains(&activity_digest(kind, value))
            })
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
        promoter.recent_activity = vec![activity_digest("ip", "203.0.113.7")];
        let facts = SignUpFacts {
            referred_email: Some("a.lice+2@gmail.com"),
            ip: Some("203.0.113.7"),
            device_id: None,
            recent_signups: 5,
        };
        assert!(sign_up_flags(&FraudRules::default(), Some(&promoter), &facts).is_empty());
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
            sign_up_flags(&all, Some(&promoter), &facts),
            [Hold::SameMailbox, Hold::Velocity, Hold::SameDevice]
        );
        let other = SignUpFacts {
            referred_email: Some("bob@mailinator.com"),
            ip: Some("198.51.100.1"),
            device_id: Some("d-1"),
            recent_signups: 4,
        };
        assert_eq!(
            sign_up_flags(&all, Some(&promoter), &other),
            [Hold::DisposableEmail]
        );
        assert!(!is_disposable("bob@gmail.com"));
    }
}
