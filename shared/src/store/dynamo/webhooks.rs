//! Webhook endpoints (beside the tenant's programs in its partition, counted by a counter item
//! that caps them), the events kept for replay, deliveries an admin requested (read back from the
//! stream by the outbox), and the delivery log (one item per endpoint and event, its attempts
//! appended by one `UpdateItem` each).

use aws_sdk_dynamodb::types::{Delete, TransactWriteItem, Update};

use super::{
    DynamoStore, Outcome, decode_cursor, entity_item, from_item, key_item, number, sdk_error,
    string,
};
use crate::domain::event::Event;
use crate::domain::webhook::WebhookEndpoint;
use crate::domain::webhook::delivery::{AttemptRecord, DeliveryLog, DeliveryRequest};
use crate::error::{Error, Result};
use crate::page::{Page, PageRequest};
use crate::store::dynamo::keys;
use crate::store::{Replaced, WebhookStore};

pub(super) const WEBHOOK_ENDPOINT_ENTITY: &str = "webhook_endpoint";
pub(super) const DELIVERY_REQUEST_ENTITY: &str = "delivery_request";
const DELIVERY_ENTITY: &str = "webhook_delivery";
const COUNT: &str = "endpoints";
/// A requested delivery's item is only needed until the stream has carried it.
const REQUEST_RETENTION: time::Duration = time::Duration::days(1);

fn endpoint_item(endpoint: &WebhookEndpoint) -> Result<super::Item> {
    entity_item(
        endpoint,
        &keys::webhook_endpoint(&endpoint.tenant, &endpoint.id),
        WEBHOOK_ENDPOINT_ENTITY,
        None,
    )
}

fn expires_after(retention: time::Duration) -> aws_sdk_dynamodb::types::AttributeValue {
    number((crate::clock::now() + retention).unix_timestamp())
}

impl DynamoStore {
    /// Adds `by` to the tenant's endpoint count; raising it needs the count below `max`.
    fn count_endpoints(&self, tenant: &str, by: i64, max: usize) -> Result<TransactWriteItem> {
        let mut update = Update::builder()
            .table_name(self.table())
            .set_key(Some(key_item(&keys::webhook_endpoint_count(tenant))))
            .update_expression("ADD #n :by")
            .expression_attribute_names("#n", COUNT)
            .expression_attribute_values(":by", number(by));
        if by > 0 {
            update = update
                .condition_expression("attribute_not_exists(#n) OR #n < :max")
                .expression_attribute_values(":max", number(max));
        }
        Ok(TransactWriteItem::builder()
            .update(update.build().map_err(Error::internal)?)
            .build())
    }
}

impl WebhookStore for DynamoStore {
    async fn webhook_endpoints(&self, tenant: &str) -> Result<Vec<WebhookEndpoint>> {
        self.query_prefix(&keys::tenant(tenant), keys::WEBHOOK_PREFIX, None)
            .await?
            .into_iter()
            .map(from_item)
            .collect()
    }

    async fn insert_endpoint(&self, endpoint: &WebhookEndpoint, max: usize) -> Result<bool> {
        let actions = vec![
            self.count_endpoints(&endpoint.tenant, 1, max)?,
            self.put_new(endpoint_item(endpoint)?)?,
        ];
        match self.transact(actions).await? {
            Outcome::Written => Ok(true),
            Outcome::ConditionsFailed(failed) if failed.first() == Some(&true) => Ok(false),
            Outcome::ConditionsFailed(_) => Err(Error::internal("a new endpoint id was taken")),
        }
    }

    async fn get_endpoint(&self, tenant: &str, id: &str) -> Result<Option<WebhookEndpoint>> {
        self.get(&keys::webhook_endpoint(tenant, id))
            .await?
            .map(from_item)
            .transpose()
    }

    async fn replace_endpoint(&self, expected: u64, next: &WebhookEndpoint) -> Result<Replaced> {
        let put = self.put_versioned(endpoint_item(next)?, expected)?;
        Ok(if self.put(put).await? {
            Replaced::Done
        } else {
            Replaced::Stale
        })
    }

    async fn delete_endpoint(&self, endpoint: &WebhookEndpoint) -> Result<bool> {
        let delete = Delete::builder()
            .table_name(self.table())
            .set_key(Some(key_item(&keys::webhook_endpoint(
                &endpoint.tenant,
                &endpoint.id,
            ))))
            .condition_expression("#version = :expected")
            .expression_attribute_names("#version", "version")
            .expression_attribute_values(":expected", number(endpoint.version))
            .build()
            .map_err(Error::internal)?;
        let actions = vec![
            TransactWriteItem::builder().delete(delete).build(),
            self.count_endpoints(&endpoint.tenant, -1, 0)?,
        ];
        Ok(matches!(self.transact(actions).await?, Outcome::Written))
    }

    async fn get_event(&self, tenant: &str, id: &str) -> Result<Option<Event>> {
        if !id.starts_with("evt_") {
            return Ok(None);
        }
        self.get(&keys::webhook_event(tenant, id))
            .await?
            .map(from_item)
            .transpose()
    }

    async fn request_deliveries(&self, request: &DeliveryRequest) -> Result<()> {
        let mut item = entity_item(
            request,
            &keys::delivery_request(&request.tenant, &request.id),
            DELIVERY_REQUEST_ENTITY,
            None,
        )?;
        item.insert(keys::TTL.to_owned(), expires_after(REQUEST_RETENTION));
        self.client()
            .put_item()
            .table_name(self.table())
            .set_item(Some(item))
            .send()
            .await
            .map_err(|error| sdk_error("PutItem", error))?;
        Ok(())
    }

    async fn record_attempt(&self, record: &AttemptRecord) -> Result<()> {
        let now = string(crate::clock::format(record.attempt.at));
        let attempt = serde_dynamo::to_attribute_value(&record.attempt).map_err(Error::internal)?;
        let mut update = self
            .client()
            .update_item()
            .table_name(self.table())
            .set_key(Some(key_item(&keys::webhook_delivery(
                &record.tenant,
                &record.endpoint_id,
                &record.event_id,
            ))))
            .expression_attribute_names("#type", keys::ENTITY_TYPE)
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#ttl", keys::TTL)
            .expression_attribute_values(":type", string(DELIVERY_ENTITY))
            .expression_attribute_values(":endpoint", string(&record.endpoint_id))
            .expression_attribute_values(":event", string(&record.event_id))
            .expression_attribute_values(":event_type", string(record.event_type.as_str()))
            .expression_attribute_values(
                ":status",
                serde_dynamo::to_attribute_value(record.status).map_err(Error::internal)?,
            )
            .expression_attribute_values(":now", now)
            .expression_attribute_values(
                ":attempt",
                aws_sdk_dynamodb::types::AttributeValue::L(vec![attempt]),
            )
            .expression_attribute_values(
                ":none",
                aws_sdk_dynamodb::types::AttributeValue::L(Vec::new()),
            )
            .expression_attribute_values(
                ":ttl",
                expires_after(crate::domain::event::EVENT_RETENTION),
            );
        let set = "SET #type = :type, endpoint_id = :endpoint, event_id = :event, \
                   event_type = :event_type, #status = :status, updated_at = :now, \
                   created_at = if_not_exists(created_at, :now), #ttl = :ttl, \
                   attempts = list_append(if_not_exists(attempts, :none), :attempt)";
        update = match record.next_attempt_at {
            Some(next) => update
                .update_expression(format!("{set}, next_attempt_at = :next"))
                .expression_attribute_values(":next", string(crate::clock::format(next))),
            None => update.update_expression(format!("{set} REMOVE next_attempt_at")),
        };
        update
            .send()
            .await
            .map_err(|error| sdk_error("UpdateItem", error))?;
        Ok(())
    }

    async fn deliveries(
        &self,
        tenant: &str,
        endpoint_id: &str,
        page: &PageRequest,
    ) -> Result<Page<DeliveryLog>> {
        let partition = keys::webhook_deliveries(tenant, endpoint_id);
        let start = match &page.cursor {
            Some(cursor) => {
                let sort = decode_cursor(cursor, keys::DELIVERY_PREFIX)?;
                let event_id = &sort[keys::DELIVERY_PREFIX.len()..];
                Some(key_item(&keys::webhook_delivery(
                    tenant,
                    endpoint_id,
                    event_id,
                )))
            }
            None => None,
        };
        self.query_page(
            None,
            &partition,
            Some(keys::DELIVERY_PREFIX),
            true,
            page,
            start,
            |log: &DeliveryLog| keys::webhook_delivery(tenant, endpoint_id, &log.event_id).sk,
        )
        .await
    }
}
