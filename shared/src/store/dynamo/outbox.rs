//! The table as the outbox: what the stream's item images are as entities, and the events kept
//! for replay.

use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};

use super::promoters::{PAYOUT_ENTITY, PROMOTER_ENTITY, REFERRAL_ENTITY, REWARD_ENTITY};
use super::{DynamoStore, Item, entity_item, sdk_error};
use crate::domain::event::{Entity, Event};
use crate::error::{Error, Result};
use crate::store::OutboxStore;
use crate::store::dynamo::keys;

use super::webhooks::{DELIVERY_REQUEST_ENTITY, WEBHOOK_ENDPOINT_ENTITY};

pub(super) const WEBHOOK_EVENT_ENTITY: &str = "webhook_event";

/// The entity an item image holds, if its changes are events (a corrupt image is logged and
/// skipped: it cannot become one).
pub fn entity(image: &serde_dynamo::Item) -> Option<Entity> {
    let entity_type = match image.get(keys::ENTITY_TYPE)? {
        serde_dynamo::AttributeValue::S(name) => name.as_str(),
        _ => return None,
    };
    let decoded = match entity_type {
        PROMOTER_ENTITY => serde_dynamo::from_item(image.clone()).map(Entity::Promoter),
        REFERRAL_ENTITY => serde_dynamo::from_item(image.clone()).map(Entity::Referral),
        REWARD_ENTITY => serde_dynamo::from_item(image.clone()).map(Entity::Reward),
        PAYOUT_ENTITY => serde_dynamo::from_item(image.clone()).map(Entity::Payout),
        WEBHOOK_ENDPOINT_ENTITY => {
            serde_dynamo::from_item(image.clone()).map(Entity::WebhookEndpoint)
        }
        DELIVERY_REQUEST_ENTITY => {
            serde_dynamo::from_item(image.clone()).map(Entity::DeliveryRequest)
        }
        _ => return None,
    };
    decoded
        .inspect_err(|error| tracing::error!(%error, entity_type, "a stream image does not decode"))
        .ok()
}

pub(super) fn event_item(event: &Event) -> Result<Item> {
    let mut item = entity_item(
        event,
        &keys::webhook_event(&event.tenant, &event.id),
        WEBHOOK_EVENT_ENTITY,
        None,
    )?;
    let expires = (crate::clock::now() + crate::domain::event::EVENT_RETENTION).unix_timestamp();
    item.insert(keys::TTL.to_owned(), super::number(expires));
    Ok(item)
}

impl OutboxStore for DynamoStore {
    async fn record_events(&self, events: &[Event]) -> Result<()> {
        let table = self.table().to_owned();
        for chunk in events.chunks(25) {
            let mut requests = chunk
                .iter()
                .map(|event| {
                    let put = PutRequest::builder()
                        .set_item(Some(event_item(event)?))
                        .build()
                        .map_err(Error::internal)?;
                    Ok(WriteRequest::builder().put_request(put).build())
                })
                .collect::<Result<Vec<_>>>()?;
            let mut backoff = crate::backoff::Backoff::within(std::time::Duration::from_secs(5));
            while !requests.is_empty() {
                let output = self
                    .client()
                    .batch_write_item()
                    .request_items(table.clone(), requests)
                    .send()
                    .await
                    .map_err(|error| sdk_error("BatchWriteItem", error))?;
                requests = output
                    .unprocessed_items
                    .and_then(|mut left| left.remove(&table))
                    .unwrap_or_default();
                if !requests.is_empty() {
                    let pause = backoff.next_pause().ok_or_else(|| {
                        Error::unavailable("BatchWriteItem: items left unprocessed")
                    })?;
                    tokio::time::sleep(pause).await;
                }
            }
        }
        Ok(())
    }
}
