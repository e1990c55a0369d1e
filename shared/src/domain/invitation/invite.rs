//! Inviting emails, and asking who invited them.

use std::collections::BTreeMap;

use crate::clock;
use crate::domain::promoter;
use crate::error::{Error, Result};
use crate::store::{InvitationStore, Invited, PromoterStore};

use super::*;

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
