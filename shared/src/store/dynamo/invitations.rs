//! Email invitations and email owners in the single table.

use aws_sdk_dynamodb::types::ReturnValue;
use futures::{StreamExt, TryStreamExt};

use super::{DynamoStore, conditional, entity_item, from_item, key_item, string};
use crate::domain::invitation::Invitation;
use crate::error::Result;
use crate::store::dynamo::keys;
use crate::store::{InvitationStore, Invited};

const INVITATION_ENTITY: &str = "invitation";
/// Invitations written at once.
const CONCURRENCY: usize = 16;

impl DynamoStore {
    async fn invite_one(&self, invitation: &Invitation) -> Result<Invited> {
        let item = entity_item(
            invitation,
            &keys::invitation(&invitation.tenant, &invitation.email),
            INVITATION_ENTITY,
            None,
        )?;
        let result = self
            .client()
            .put_item()
            .table_name(self.table())
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(PK) OR inviter_user_id = :me")
            .expression_attribute_values(":me", string(&invitation.inviter_user_id))
            .return_values(ReturnValue::None)
            .send()
            .await;
        Ok(match conditional("PutItem", result)? {
            Some(_) => Invited::Saved,
            None => Invited::TakenByAnother,
        })
    }
}

impl InvitationStore for DynamoStore {
    async fn invite(&self, invitations: &[Invitation]) -> Result<Vec<Invited>> {
        // Built up front: a closure inside the stream would not be `Send` for every lifetime.
        let writes: Vec<_> = invitations.iter().map(|i| self.invite_one(i)).collect();
        futures::stream::iter(writes)
            .buffered(CONCURRENCY)
            .try_collect()
            .await
    }

    async fn invitations(&self, tenant: &str, emails: &[String]) -> Result<Vec<Invitation>> {
        let keys = emails
            .iter()
            .map(|email| key_item(&keys::invitation(tenant, email)))
            .collect();
        self.batch_get(keys, true)
            .await?
            .into_iter()
            .map(from_item)
            .collect()
    }

    async fn email_owner(&self, tenant: &str, email: &str) -> Result<Option<String>> {
        Ok(self
            .get(&keys::email_owner(tenant, email))
            .await?
            .and_then(|item| item.get("user_id").and_then(|v| v.as_s().ok()).cloned()))
    }
}
