//! The SQS consumers' common loop: the messages of a batch handled concurrently, those to retry
//! reported as partial batch failures (SQS delivers only them again).

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};

/// What became of one message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Done {
    /// Delete it: handled, or nothing to do.
    Acknowledge,
    /// Report it as a batch item failure: SQS delivers it again (or moves it to the DLQ).
    Retry,
}

/// Runs `handle` on every message of `event` at once; answers the messages to retry.
pub async fn each<'a, F, Fut>(event: &'a SqsEvent, handle: F) -> SqsBatchResponse
where
    F: Fn(&'a SqsMessage) -> Fut,
    Fut: Future<Output = Done>,
{
    let outcomes = futures::future::join_all(event.records.iter().map(handle)).await;
    let mut response = SqsBatchResponse::default();
    for (message, done) in event.records.iter().zip(outcomes) {
        if done == Done::Retry {
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = message.message_id.clone().unwrap_or_default();
            response.batch_item_failures.push(failure);
        }
    }
    response
}
