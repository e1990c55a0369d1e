//! Email invitations (seed 000): a promoter invites people by email; a later sign-up of an
//! invited email without a code is attributed to the inviter. An email belongs to the first
//! promoter of the tenant who invited it: another promoter's invitation is refused, never stolen.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};
use time::OffsetDateTime;

use crate::clock::{self, rfc3339};
use crate::error::{Error, Result};
use crate::promoter;
use crate::store::{InvitationStore, Invited, PromoterStore};

/// At most this many emails in one call.
pub const MAX_EMAILS: usize = 100;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Invitation {
    pub email: String,
    pub tenant: String,
    /// The promoter who invited the email.
    pub inviter_user_id: String,
    #[serde(with = "rfc3339")]
    pub created: OffsetDateTime,
}

/// A list of emails: a JSON array, or one comma-separated string (seed 000's form).
#[derive(Clone, Debug)]
pub struct Emails(pub Vec<String>);

impl<'de> Deserialize<'de> for Emails {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Form {
            List(Vec<String>),
            Joined(String),
        }
        let emails = match Form::deserialize(deserializer).map_err(|_| {
            serde::de::Error::custom("expected a list of emails or a comma-separated string")
        })? {
            Form::List(list) => list,
            Form::Joined(joined) => joined.split(',').map(str::to_owned).collect(),
        };
        Ok(Emails(
            emails
                .into_iter()
                .map(|e| e.trim().to_owned())
                .filter(|e| !e.is_empty())
                .collect(),
        ))
    }
}

/// Body of `POST /v1/invitations` and `POST /v1/invitations/verify`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailsBody {
    pub emails: Emails,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Rejected {
    pub email: String,
    /// `invalid_email` or `invited_by_another_promoter`.
    pub reason: &'static str,
}

/// `201 {saved_emails, rejected}`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct InvitationResult {
    pub saved_emails: Vec<String>,
    pub rejected: Vec<Rejected>,
}

/// The canonical form of an email (trimmed, lower case), if it is one.
pub fn normalize_email(email: &str) -> Option<String> {
    let email = email.trim().to_lowercase();
    (email.len() <= 254 && email_address::EmailAddress::is_valid(&email)).then_some(email)
}

fn checked(emails: &Emails) -> Result<()> {
    if emails.0.is_empty() {
        return Err(Error::invalid("emails", "at least one email is required"));
    }
    if emails.0.len() > MAX_EMAILS {
        return Err(Error::invalid(
            "emails",
            format!("at most {MAX_EMAILS} emails per call"),
        ));
    }
    Ok(())
}

/// Invites `emails` on behalf of the promoter `user` (created if needed). Each email is saved
/// unless it is malformed or another promoter of the tenant invited it first; inviting an email
/// again is harmless. One conditional `PutItem` per email, concurrently.
pub async fn invite(
    store: &(impl InvitationStore + PromoterStore),
    tenant: &str,
    user: &str,
    emails: &Emails,
) -> Result<InvitationResult> {
    checked(emails)?;
    promoter::get_or_create(store, tenant, user).await?;
    let mut result = InvitationResult {
        saved_emails: Vec::new(),
        rejected: Vec::new(),
    };
    let mut valid = Vec::new();
    for email in &emails.0 {
        match normalize_email(email) {
            Some(email) if !valid.contains(&email) => valid.push(email),
            Some(_) => {}
            None => result.rejected.push(Rejected {
                email: email.clone(),
                reason: "invalid_email",
            }),
        }
    }
    let now = clock::now();
    let invitations: Vec<Invitation> = valid
        .into_iter()
        .map(|email| Invitation {
            email,
            tenant: tenant.to_owned(),
            inviter_user_id: user.to_owned(),
            created: now,
        })
        .collect();
    for (invitation, outcome) in invitations.iter().zip(store.invite(&invitations).await?) {
        match outcome {
            Invited::Saved => result.saved_emails.push(invitation.email.clone()),
            Invited::TakenByAnother => result.rejected.push(Rejected {
                email: invitation.email.clone(),
                reason: "invited_by_another_promoter",
            }),
        }
    }
    Ok(result)
}

/// `{emails: {"a@x.com": "<inviter user id>" | null}}`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Verified {
    pub emails: BTreeMap<String, Option<String>>,
}

/// Who invited each email, if anyone (seed 000's `emailverification`). One `BatchGetItem`.
pub async fn verify(
    store: &impl InvitationStore,
    tenant: &str,
    emails: &Emails,
) -> Result<Verified> {
    checked(emails)?;
    let mut answer = BTreeMap::new();
    let mut valid = Vec::new();
    for email in &emails.0 {
        match normalize_email(email) {
            Some(email) => valid.push(email),
            None => {
                return Err(Error::invalid(
                    "emails",
                    format!("{email} is not an email address"),
                ));
            }
        }
    }
    valid.sort();
    valid.dedup();
    let found = store.invitations(tenant, &valid).await?;
    for email in valid {
        let inviter = found
            .iter()
            .find(|i| i.email == email)
            .map(|i| i.inviter_user_id.clone());
        answer.insert(email, inviter);
    }
    Ok(Verified { emails: answer })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_come_as_a_list_or_a_comma_separated_string() {
        let list: EmailsBody =
            crate::http::parse_json(br#"{"emails": ["a@x.com", " b@y.org "]}"#).unwrap();
        assert_eq!(list.emails.0, ["a@x.com", "b@y.org"]);
        let joined: EmailsBody =
            crate::http::parse_json(br#"{"emails": "a@x.com, b@y.org,,"}"#).unwrap();
        assert_eq!(joined.emails.0, ["a@x.com", "b@y.org"]);
        let wrong: Result<EmailsBody> = crate::http::parse_json(br#"{"emails": 5}"#);
        assert_eq!(
            wrong.unwrap_err().to_string().split(':').next(),
            Some("emails")
        );
    }

    #[test]
    fn emails_normalise_to_lower_case() {
        assert_eq!(
            normalize_email(" Ann@Example.COM ").as_deref(),
            Some("ann@example.com")
        );
        assert_eq!(normalize_email("nope"), None);
        assert_eq!(normalize_email("a@"), None);
    }
}
