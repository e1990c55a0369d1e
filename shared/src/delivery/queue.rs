//! The billing-credit producer: one SQS message per `pending` reward. A send that fails after
//! the database write loses nothing: the reward stays in the index of undelivered rewards, and
//! the reconciler sends it again.

use aws_sdk_sqs::types::SendMessageBatchRequestEntry;

use crate::delivery::billing::CreditMessage;
use crate::domain::ledger::{Reward, RewardStatus};

/// SQS takes at most this many messages in one call.
const BATCH: usize = 10;

#[derive(Clone, Debug)]
pub struct BillingQueue {
    client: aws_sdk_sqs::Client,
    url: String,
}

impl BillingQueue {
    pub fn new(client: aws_sdk_sqs::Client, url: &str) -> Self {
        BillingQueue {
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

    /// Sends a message for each `pending` reward among `rewards`, ten per call; answers how many
    /// were accepted. Failures are logged, never raised: the reconciler re-sends.
    pub async fn enqueue<'a>(&self, rewards: impl IntoIterator<Item = &'a Reward>) -> usize {
        let pending: Vec<&Reward> = rewards
            .into_iter()
            .filter(|reward| reward.status == RewardStatus::Pending)
            .collect();
        let mut sent = 0;
        for chunk in pending.chunks(BATCH) {
            let entries: Vec<SendMessageBatchRequestEntry> = chunk
                .iter()
                .enumerate()
                .filter_map(|(index, reward)| {
                    let body = serde_json::to_string(&CreditMessage::of(reward)).ok()?;
                    SendMessageBatchRequestEntry::builder()
                        .id(index.to_string())
                        .message_body(body)
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
                        tracing::warn!(entry = %failed.id, code = %failed.code, "billing message not sent; the reconciler will");
                    }
                }
                Err(error) => tracing::warn!(
                    error = %aws_sdk_sqs::error::DisplayErrorContext(&error),
                    "billing messages not sent; the reconciler will"
                ),
            }
        }
        sent
    }
}
