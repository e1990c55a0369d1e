//! The outbox dispatcher Lambda: a DynamoDB Stream batch in (Lambda's event source mapping, with
//! `ReportBatchItemFailures`), the batch dispatched ([`referral::delivery::outbox`]), and on a
//! failure the batch's first record named, so that the mapping hands the whole batch again
//! (what was dispatched before the failure repeats: event ids are stable, a credit is claimed
//! once, receivers deduplicate deliveries by `webhook-id`).

use aws_lambda_events::event::dynamodb::{Event, EventRecord};
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use referral::delivery::outbox::{Change, Outbox};
use referral::store::OutboxStore;

/// A stream record as the dispatcher reads it (a missing image is an empty map in the event).
pub fn change(record: EventRecord) -> Change {
    let image = |item: serde_dynamo::Item| (!item.is_empty()).then_some(item);
    Change {
        sequence: record.change.sequence_number.unwrap_or_default(),
        old: image(record.change.old_image),
        new: image(record.change.new_image),
    }
}

pub async fn handle<S: OutboxStore>(outbox: &Outbox<S>, event: Event) -> DynamoDbEventResponse {
    let changes: Vec<Change> = event.records.into_iter().map(change).collect();
    let mut response = DynamoDbEventResponse::default();
    match outbox.dispatch(&changes).await {
        Ok(dispatched) => tracing::info!(
            records = changes.len(),
            events = dispatched.events,
            credits = dispatched.credits,
            deliveries = dispatched.deliveries,
            "dispatched"
        ),
        Err(error) => {
            tracing::warn!(%error, records = changes.len(), "dispatch failed; the batch is handed again");
            if let Some(first) = changes.first() {
                let mut failure = DynamoDbBatchItemFailure::default();
                failure.item_identifier = Some(first.sequence.clone());
                response.batch_item_failures.push(failure);
            }
        }
    }
    response
}
