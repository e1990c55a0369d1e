//! The outbox dispatcher: the table's stream is the outbox. Every committed change of a reward,
//! relation, promoter, payout or webhook endpoint reaches it (a DynamoDB Stream in AWS, through
//! Lambda's event source mapping; the emulator's stream, polled, locally). From each change it
//! derives the events of the catalogue ([`crate::domain::event`]), keeps them for replay, and
//! fans them out to the webhook queue (one message per event and subscribed endpoint, and per
//! endpoint of a test or replay an admin requested); a reward
//! that became `pending` goes to the billing queue. So a request makes no SQS call, and nothing a
//! transaction committed can be forgotten: a batch that fails is read again from the stream.
//! Clicks on referral links are counted into their owners' day figures here too (one
//! `UpdateItem` per day and batch), so that the click itself is one `UpdateItem`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::delivery::queue::Queue;
use crate::domain::event::{Entity, Event, events_of};
use crate::domain::ledger::{Reward, RewardStatus};
use crate::error::{Error, Result};
use crate::store::dynamo::outbox::{clicks, entity};
use crate::store::{ClicksSeen, Day, OutboxStore};

/// One committed change of one item, as the stream tells it.
#[derive(Clone, Debug, Default)]
pub struct Change {
    /// The stream's sequence number (what a partial batch failure names).
    pub sequence: String,
    pub old: Option<serde_dynamo::Item>,
    pub new: Option<serde_dynamo::Item>,
}

/// One webhook delivery to make: an event for one endpoint, attempt `attempt` (1: the first),
/// not before `not_before` (a retry waiting longer than SQS delays one message is sent again
/// until it is due).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeliveryMessage {
    pub endpoint_id: String,
    pub attempt: u32,
    pub event: Event,
    #[serde(default, with = "crate::clock::rfc3339::option")]
    pub not_before: Option<time::OffsetDateTime>,
}

impl DeliveryMessage {
    pub fn first(endpoint_id: &str, event: &Event) -> DeliveryMessage {
        DeliveryMessage {
            endpoint_id: endpoint_id.to_owned(),
            attempt: 1,
            event: event.clone(),
            not_before: None,
        }
    }
}

/// What one batch of changes produced.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Dispatched {
    pub events: usize,
    pub credits: usize,
    pub deliveries: usize,
}

/// The dispatcher over the store and the two queues.
#[derive(Clone)]
pub struct Outbox<S> {
    store: S,
    billing: Queue,
    webhooks: Queue,
}

/// A reward that has just become `pending` (new, or released, or retried): it is owed a
/// billing credit.
fn owes_credit(old: Option<&Entity>, new: Option<&Entity>) -> Option<Reward> {
    let Some(Entity::Reward(new)) = new else {
        return None;
    };
    let was_pending =
        matches!(old, Some(Entity::Reward(old)) if old.status == RewardStatus::Pending);
    (new.status == RewardStatus::Pending && !was_pending).then(|| (**new).clone())
}

/// Adds `seen` to the day figures of the code's owner (and of an extra code's program) on the
/// UTC day of the click.
fn add_clicks(days: &mut Vec<(Day, i64)>, seen: &ClicksSeen) {
    let mut targets = vec![crate::domain::stats::promoter_day(
        &seen.tenant,
        &seen.owner,
        seen.at,
    )];
    if let Some(program) = &seen.program_id {
        targets.push(crate::domain::stats::program_day(
            &seen.tenant,
            program,
            seen.at,
        ));
    }
    for day in targets {
        match days.iter_mut().find(|(known, _)| *known == day) {
            Some((_, count)) => *count += seen.clicks,
            None => days.push((day, seen.clicks)),
        }
    }
}

impl<S: OutboxStore> Outbox<S> {
    pub fn new(store: S, billing: Queue, webhooks: Queue) -> Self {
        Outbox {
            store,
            billing,
            webhooks,
        }
    }

    /// Dispatches `changes` (in stream order). An error means some of it may not have left:
    /// the caller hands the batch back to the stream, which delivers it again (events keep
    /// their ids, a credit is claimed once, a delivery may repeat: receivers deduplicate by
    /// `webhook-id`).
    pub async fn dispatch(&self, changes: &[Change]) -> Result<Dispatched> {
        let mut events = Vec::new();
        let mut credits = Vec::new();
        let mut requested = Vec::new();
        let mut days: Vec<(Day, i64)> = Vec::new();
        for change in changes {
            let old = change.old.as_ref().and_then(entity);
            let new = change.new.as_ref().and_then(entity);
            credits.extend(owes_credit(old.as_ref(), new.as_ref()));
            events.extend(events_of(old.as_ref(), new.as_ref()));
            if let Some(seen) = clicks(change.old.as_ref(), change.new.as_ref()) {
                add_clicks(&mut days, &seen);
            }
            if let (None, Some(Entity::DeliveryRequest(request))) = (&old, &new) {
                requested.extend(
                    request
                        .endpoint_ids
                        .iter()
                        .map(|id| DeliveryMessage::first(id, &request.event)),
                );
            }
        }
        let sent = self.billing.enqueue(&credits).await;
        self.store.record_events(&events).await?;
        let mut deliveries = self.fan_out(&events).await?;
        deliveries.extend(requested);
        let queued = self.webhooks.send_all(&deliveries, 0).await;
        if sent < credits.len() || queued < deliveries.len() {
            return Err(Error::unavailable(format!(
                "SQS took {sent} of {} credits and {queued} of {} deliveries",
                credits.len(),
                deliveries.len()
            )));
        }
        // Last, once the rest has left: a batch read again would count its clicks twice. Best
        // effort, like the click itself: a failure is logged, and the batch is not read again.
        if !days.is_empty()
            && let Err(error) = self.store.add_clicks(&days).await
        {
            tracing::warn!(%error, days = days.len(), "clicks were not added to the day figures");
        }
        Ok(Dispatched {
            events: events.len(),
            credits: credits.len(),
            deliveries: deliveries.len(),
        })
    }

    /// A delivery per event and enabled endpoint of its tenant that wants its type: one `Query`
    /// per tenant in the batch.
    async fn fan_out(&self, events: &[Event]) -> Result<Vec<DeliveryMessage>> {
        let mut by_tenant: BTreeMap<&str, Vec<&Event>> = BTreeMap::new();
        for event in events {
            by_tenant.entry(&event.tenant).or_default().push(event);
        }
        let mut deliveries = Vec::new();
        for (tenant, events) in by_tenant {
            let endpoints = self.store.webhook_endpoints(tenant).await?;
            for event in events {
                for endpoint in &endpoints {
                    if endpoint.enabled && endpoint.wants(event.event_type) {
                        deliveries.push(DeliveryMessage::first(&endpoint.id, event));
                    }
                }
            }
        }
        Ok(deliveries)
    }
}
