//! The table as the outbox: what the stream's item images are as entities, and the events kept
//! for replay.

use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};

use super::promoters::{PAYOUT_ENTITY, PROMOTER_ENTITY, REFERRAL_ENTITY, REWARD_ENTITY};
use super::{DynamoStore, Item, entity_item, key_item, number, sdk_error, string};
use crate::domain::event::{Entity, Event};
use crate::error::{Error, Result};
use crate::store::dynamo::keys;
use crate::store::{ClicksSeen, Day, OutboxStore};

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

/// The clicks a change of a code's item (a promoter's primary code, or an extra code) counted:
/// how much `link_clicks` grew, with the code's tenant, owner, program and the time of the last
/// click (`last_click_at`, written with it). Any other change counted none.
pub fn clicks(
    old: Option<&serde_dynamo::Item>,
    new: Option<&serde_dynamo::Item>,
) -> Option<ClicksSeen> {
    use serde_dynamo::AttributeValue::{N, S};
    let new = new?;
    let text = |item: &serde_dynamo::Item, name: &str| match item.get(name) {
        Some(S(value)) => Some(value.clone()),
        _ => None,
    };
    let count = |item: Option<&serde_dynamo::Item>| match item.and_then(|i| i.get("link_clicks")) {
        Some(N(value)) => value.parse::<i64>().unwrap_or(0),
        _ => 0,
    };
    let kind = text(new, keys::ENTITY_TYPE)?;
    if kind != PROMOTER_ENTITY && kind != super::codes::CODE_ENTITY {
        return None;
    }
    let clicks = count(Some(new)) - count(old);
    if clicks <= 0 {
        return None;
    }
    Some(ClicksSeen {
        tenant: text(new, "tenant")?,
        owner: text(new, "user_id")?,
        program_id: text(new, "program_id"),
        at: crate::clock::rfc3339::parse(&text(new, "last_click_at")?).ok()?,
        clicks,
    })
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

    async fn add_clicks(&self, clicks: &[(Day, i64)]) -> Result<()> {
        let writes = clicks.iter().map(|(day, count)| async move {
            let (key, tenant) = super::referrals::day_key(day);
            self.client()
                .update_item()
                .table_name(self.table())
                .set_key(Some(key_item(&key)))
                .update_expression("ADD clicks :count SET entity_type = :kind, tenant = :tenant")
                .expression_attribute_values(":count", number(*count))
                .expression_attribute_values(":kind", string(super::referrals::DAY_ENTITY))
                .expression_attribute_values(":tenant", string(tenant))
                .send()
                .await
                .map_err(|error| sdk_error("UpdateItem", error))
        });
        for result in futures::future::join_all(writes).await {
            result?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_dynamo::AttributeValue::{N, S};

    use super::*;

    fn code_item(kind: &str, clicks: i64, at: Option<&str>) -> serde_dynamo::Item {
        let mut item = std::collections::HashMap::from([
            (keys::ENTITY_TYPE.to_owned(), S(kind.to_owned())),
            ("tenant".to_owned(), S("acme".to_owned())),
            ("user_id".to_owned(), S("alice".to_owned())),
            ("link_clicks".to_owned(), N(clicks.to_string())),
        ]);
        if let Some(at) = at {
            item.insert("last_click_at".to_owned(), S(at.to_owned()));
        }
        item.into()
    }

    #[test]
    fn a_click_counts_on_the_day_it_was_made_and_nothing_else_counts() {
        let before = code_item(PROMOTER_ENTITY, 4, Some("2026-10-30T23:59:00.000Z"));
        let after = code_item(PROMOTER_ENTITY, 5, Some("2026-10-31T23:59:59.999Z"));
        let seen = clicks(Some(&before), Some(&after)).unwrap();
        assert_eq!((seen.clicks, seen.owner.as_str()), (1, "alice"));
        assert_eq!(crate::clock::format(seen.at), "2026-10-31T23:59:59.999Z");
        assert_eq!(seen.program_id, None);

        // An extra code, created and clicked: its program's day counts too.
        let mut extra = code_item(
            super::super::codes::CODE_ENTITY,
            2,
            Some("2026-11-01T00:00:00Z"),
        );
        extra.insert("program_id".to_owned(), S("p1".to_owned()));
        let seen = clicks(None, Some(&extra)).unwrap();
        assert_eq!((seen.clicks, seen.program_id.as_deref()), (2, Some("p1")));

        // A change that is no click (a sign-up's counters), a deletion, another entity.
        assert_eq!(clicks(Some(&after), Some(&after)), None);
        assert_eq!(clicks(Some(&after), None), None);
        let reward = code_item(REWARD_ENTITY, 9, Some("2026-11-01T00:00:00Z"));
        assert_eq!(clicks(None, Some(&reward)), None);
        // Clicks counted before clicks carried their time are not guessed.
        assert_eq!(
            clicks(None, Some(&code_item(PROMOTER_ENTITY, 1, None))),
            None
        );
    }
}
