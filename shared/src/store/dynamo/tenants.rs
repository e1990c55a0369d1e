//! Tenants and their API keys: the tenant item in its own partition (listed for the operator
//! through GSI1 `TENANTS`), one item per key under the key's digest. A tenant write is conditional
//! on its version and carries the key writes of the same change in one transaction.

use aws_sdk_dynamodb::types::{Delete, TransactWriteItem, Update};

use super::{
    DynamoStore, Outcome, conditional, decode_cursor, entity_item, from_item, index_start,
    key_item, string,
};
use crate::domain::tenant::{ApiKey, Tenant};
use crate::error::{Error, Result};
use crate::page::{Page, PageRequest};
use crate::store::dynamo::keys;
use crate::store::{KeyWrite, Replaced, TenantStore};

const TENANT_ENTITY: &str = "tenant";
const API_KEY_ENTITY: &str = "api_key";

fn tenant_item(tenant: &Tenant) -> Result<super::Item> {
    entity_item(
        tenant,
        &keys::tenant_item(&tenant.id),
        TENANT_ENTITY,
        Some((keys::TENANTS.to_owned(), keys::tenant_gsi1sk(&tenant.id))),
    )
}

impl DynamoStore {
    fn key_write(&self, write: &KeyWrite) -> Result<TransactWriteItem> {
        Ok(match write {
            KeyWrite::Insert(key) => self.put_new(entity_item(
                key,
                &keys::api_key(&key.digest),
                API_KEY_ENTITY,
                None,
            )?)?,
            KeyWrite::Delete(digest) => TransactWriteItem::builder()
                .delete(
                    Delete::builder()
                        .table_name(self.table())
                        .set_key(Some(key_item(&keys::api_key(digest))))
                        .build()
                        .map_err(Error::internal)?,
                )
                .build(),
            KeyWrite::Status(digest, status) => TransactWriteItem::builder()
                .update(
                    Update::builder()
                        .table_name(self.table())
                        .set_key(Some(key_item(&keys::api_key(digest))))
                        .condition_expression("attribute_exists(#pk)")
                        .update_expression("SET #status = :status")
                        .expression_attribute_names("#pk", keys::PK)
                        .expression_attribute_names("#status", "tenant_status")
                        .expression_attribute_values(
                            ":status",
                            serde_dynamo::to_attribute_value(status).map_err(Error::internal)?,
                        )
                        .build()
                        .map_err(Error::internal)?,
                )
                .build(),
        })
    }
}

impl TenantStore for DynamoStore {
    async fn write_tenant(
        &self,
        expected: Option<u64>,
        next: &Tenant,
        keys: &[KeyWrite],
    ) -> Result<Replaced> {
        let item = tenant_item(next)?;
        let tenant_write = match expected {
            None => self.put_new(item)?,
            Some(version) => TransactWriteItem::builder()
                .put(self.put_versioned(item, version)?)
                .build(),
        };
        let mut actions = vec![tenant_write];
        for write in keys {
            actions.push(self.key_write(write)?);
        }
        match self.transact(actions).await? {
            Outcome::Written => Ok(Replaced::Done),
            Outcome::ConditionsFailed(failed) if failed.first() == Some(&true) => {
                Ok(Replaced::Stale)
            }
            // A key changed under a tenant write of the same version: only a lost race of two
            // writers that read the same version can get here; the caller re-reads.
            Outcome::ConditionsFailed(_) => Ok(Replaced::Stale),
        }
    }

    async fn get_tenant(&self, id: &str) -> Result<Option<Tenant>> {
        self.get(&keys::tenant_item(id))
            .await?
            .map(from_item)
            .transpose()
    }

    async fn list_tenants(&self, page: &PageRequest) -> Result<Page<Tenant>> {
        let prefix = keys::tenant_gsi1sk("");
        let start = match &page.cursor {
            Some(cursor) => {
                let sort = decode_cursor(cursor, &prefix)?;
                let id = &sort[prefix.len()..];
                let key = keys::tenant_item(id);
                Some(index_start(
                    &key,
                    (keys::GSI1PK, keys::TENANTS),
                    (keys::GSI1SK, &sort),
                ))
            }
            None => None,
        };
        self.query_page(
            Some((keys::GSI1, keys::GSI1PK, keys::GSI1SK)),
            keys::TENANTS,
            None,
            false,
            page,
            start,
            |tenant: &Tenant| keys::tenant_gsi1sk(&tenant.id),
        )
        .await
    }

    async fn get_api_key(&self, digest: &str) -> Result<Option<ApiKey>> {
        self.get(&keys::api_key(digest))
            .await?
            .map(from_item)
            .transpose()
    }

    async fn api_keys(&self, digests: Vec<String>) -> Result<Vec<ApiKey>> {
        let keys = digests
            .iter()
            .map(|digest| key_item(&keys::api_key(digest)))
            .collect();
        self.batch_get(keys, true)
            .await?
            .into_iter()
            .map(from_item)
            .collect()
    }

    async fn touch_api_key(
        &self,
        digest: &str,
        now: time::OffsetDateTime,
        stale_before: time::OffsetDateTime,
    ) -> Result<()> {
        let result = self
            .client()
            .update_item()
            .table_name(self.table())
            .set_key(Some(key_item(&keys::api_key(digest))))
            .condition_expression(
                "attribute_exists(#pk) AND (attribute_not_exists(#used) OR #used < :stale)",
            )
            .update_expression("SET #used = :now")
            .expression_attribute_names("#pk", keys::PK)
            .expression_attribute_names("#used", "last_used_at")
            .expression_attribute_values(":now", string(crate::clock::format(now)))
            .expression_attribute_values(":stale", string(crate::clock::format(stale_before)))
            .send()
            .await;
        conditional("UpdateItem", result)?;
        Ok(())
    }
}
