//! SQS producers: billing credits (one message per `pending` reward) and webhook deliveries
//! (one message per event and endpoint). Both queues are fed by the outbox dispatcher
//! ([`crate::delivery::outbox`]), which reads the table's stream: a request never sends to SQS.
//! A billing send lost anyway leaves the reward in the index of undelivered rewards, and the
//! reconciler sends it again.

use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use serde::Serialize;

use crate::delivery::billing::CreditMessage;
use crate::domain::ledger::{Reward, RewardStatus};

/// SQS takes at most this many messages in one call.
const BATCH: usize = 10;
/// The longest delay SQS gives one message.
pub const MAX_DELAY_SECONDS: i32 = 900;

/// One SQS queue.
#[derive(Clone, Debug)]
pub struct Queue {
    client: aws_sdk_sqs::Client,
    url: String,
}

/// The billing-credit queue.
pub type BillingQueue = Queue;

impl Queue {
    pub fn new(client: aws_sdk_sqs::Client, url: &str) -> Self {
        Queue {
            client,
            url: url.to_owned(),
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn client(&self) -> &aws_sdk_sqs::Client {
        &self.client
    }

    /// Sends a billing credit for each `pending` reward among `rewards`, ten per call; answers
    /// how many were accepted. Failures are logged: the reconciler re-sends.
    pub async fn enqueue<'a>(&self, rewards: impl IntoIterator<Item = &'a Reward>) -> usize {
        let credits: Vec<CreditMessage> = rewards
            .into_iter()
            .filter(|reward| reward.status == RewardStatus::Pending)
            .map(CreditMessage::of)
            .collect();
        self.send_all(&credits, 0).await
    }

    /// Sends each of `messages` as JSON, delayed by `delay_seconds` (at most
    /// [`MAX_DELAY_SECONDS`]), ten per call; answers how many SQS accepted. Failures are
    /// logged, never raised: callers compare the count.
    pub async fn send_all<T: Serialize>(&self, messages: &[T], delay_seconds: i32) -> usize {
        let mut sent = 0;
        for chunk in messages.chunks(BATCH) {
            let entries: Vec<SendMessageBatchRequestEntry> = chunk
                .iter()
                .enumerate()
                .filter_map(|(index, message)| {
                    let body = serde_json::to_string(message).ok()?;
                    SendMessageBatchRequestEntry::builder()
                        .id(index.to_string())
                        .message_body(body)
                        .delay_seconds(delay_seconds.clamp(0, MAX_DELAY_SECONDS))
                        .build()
                        .ok()
                })
                .collect();
            match self
                .client
                .send_message_batch()
                .queue_url(&self.url)
                .set_entries(Some(entries))
                .send()
                .await
            {
                Ok(output) => {
                    sent += output.successful.len();
                    for failed in &output.failed {
                        tracing::warn!(queue = %self.url, entry = %failed.id, code = %failed.code, "message not sent");
                    }
                }
                Err(error) => tracing::warn!(
                    queue = %self.url,
                    error = %aws_sdk_sqs::error::DisplayErrorContext(&error),
                    "messages not sent"
                ),
            }
        }
        sent
    }
}
