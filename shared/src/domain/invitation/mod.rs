//! Email invitations (seed 000): a promoter invites people by email; a later sign-up of an
//! invited email without a code is attributed to the inviter. An email belongs to the first
//! promoter of the tenant who invited it: another promoter's invitation is refused, never stolen.

use serde::{Deserialize, Deserializer, Serialize};
use time::OffsetDateTime;

use crate::clock::rfc3339;
use crate::error::{Error, Result};
pub mod invite;

pub use invite::*;

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_come_as_a_list_or_a_comma_separated_string() {
        let list: EmailsBody =
            crate::json::parse(br#"{"emails": ["a@x.com", " b@y.org "]}"#).unwrap();
        assert_eq!(list.emails.0, ["a@x.com", "b@y.org"]);
        let joined: EmailsBody =
            crate::json::parse(br#"{"emails": "a@x.com, b@y.org,,"}"#).unwrap();
        assert_eq!(joined.emails.0, ["a@x.com", "b@y.org"]);
        let wrong: Result<EmailsBody> = crate::json::parse(br#"{"emails": 5}"#);
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
