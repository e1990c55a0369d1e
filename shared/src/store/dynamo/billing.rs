//! Delivery state of rewards: claims, credited and failed marks, and the two sparse indexes
//! (undelivered rewards, a tenant's failed rewards).

use aws_sdk_dynamodb::types::ReturnValue;
use time::OffsetDateTime;

use super::{
    DynamoStore, conditional, decode_cursor, from_item, index_start, invalid_cursor, key_item,
    number, string,
};
use crate::clock;
use crate::domain::ledger::{Reward, RewardStatus};
use crate::error::Result;
use crate::page::{Page, PageRequest};
use crate::store::dynamo::keys;
use crate::store::{BillingStore, Claim};

fn reward_key(reward: &Reward) -> keys::Key {
    keys::reward(&reward.tenant, &reward.user_id, &reward.id)
}

impl DynamoStore {
    /// An `UpdateItem` of a reward under `condition` (with `#status` and `:`-values); `false`
    /// when the condition failed.
    async fn update_reward(
        &self,
        reward: &Reward,
        expression: &str,
        condition: &str,
        values: Vec<(&str, aws_sdk_dynamodb::types::AttributeValue)>,
    ) -> Result<bool> {
        let mut update = self
            .client()
            .update_item()
            .table_name(self.table())
            .set_key(Some(key_item(&reward_key(reward))))
            .update_expression(expression)
            .condition_expression(condition)
            .expression_attribute_names("#status", "status");
        for (name, value) in values {
            update = update.expression_attribute_values(name, value);
        }
        Ok(conditional("UpdateItem", update.send().await)?.is_some())
    }
}

impl BillingStore for DynamoStore {
    async fn claim(
        &self,
        tenant: &str,
        user: &str,
        reward_id: &str,
        now: OffsetDateTime,
        lease: time::Duration,
    ) -> Result<Claim> {
        let key = keys::reward(tenant, user, reward_id);
        let result = self
            .client()
            .update_item()
            .table_name(self.table())
            .set_key(Some(key_item(&key)))
            .update_expression("SET claimed_until = :until ADD attempts :one")
            .condition_expression(
                "#status = :pending AND (attribute_not_exists(claimed_until) OR claimed_until < :now)",
            )
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":pending", string(RewardStatus::Pending.as_str()))
            .expression_attribute_values(":now", string(clock::format(now)))
            .expression_attribute_values(":until", string(clock::format(now + lease)))
            .expression_attribute_values(":one", number(1))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        if let Some(output) = conditional("UpdateItem", result)? {
            return from_item(output.attributes.unwrap_or_default())
                .map(|reward| Claim::Deliver(Box::new(reward)));
        }
        let Some(item) = self.get(&key).await? else {
            return Ok(Claim::Missing);
        };
        let reward: Reward = from_item(item)?;
        Ok(if reward.status == RewardStatus::Pending {
            Claim::Busy
        } else {
            Claim::Settled
        })
    }

    async fn mark_credited(&self, reward: &Reward, now: OffsetDateTime) -> Result<bool> {
        let now = clock::format(now);
        let (gsi3pk, gsi3sk) = keys::rewards_by_status(
            &reward.tenant,
            RewardStatus::Credited.as_str(),
            &now,
            &reward.id,
        );
        self.update_reward(
            reward,
            "SET #status = :credited, updated = :now, last_error = :none, GSI3PK = :gsi3pk, GSI3SK = :gsi3sk REMOVE GSI2PK, GSI2SK, claimed_until",
            "#status = :pending",
            vec![
                (":credited", string(RewardStatus::Credited.as_str())),
                (":pending", string(RewardStatus::Pending.as_str())),
                (":now", string(now)),
                (":none", aws_sdk_dynamodb::types::AttributeValue::Null(true)),
                (":gsi3pk", string(gsi3pk)),
                (":gsi3sk", string(gsi3sk)),
            ],
        )
        .await
    }

    async fn mark_failed(&self, reward: &Reward, error: &str, now: OffsetDateTime) -> Result<bool> {
        let now = clock::format(now);
        let (gsi3pk, gsi3sk) = keys::rewards_by_status(
            &reward.tenant,
            RewardStatus::Failed.as_str(),
            &now,
            &reward.id,
        );
        self.update_reward(
            reward,
            "SET #status = :failed, updated = :now, last_error = :error, GSI3PK = :gsi3pk, GSI3SK = :gsi3sk REMOVE GSI2PK, GSI2SK, claimed_until",
            "#status = :pending",
            vec![
                (":failed", string(RewardStatus::Failed.as_str())),
                (":pending", string(RewardStatus::Pending.as_str())),
                (":now", string(now)),
                (":error", string(error)),
                (":gsi3pk", string(gsi3pk)),
                (":gsi3sk", string(gsi3sk)),
            ],
        )
        .await
    }

    async fn record_attempt(&self, reward: &Reward, error: &str) -> Result<()> {
        self.update_reward(
            reward,
            "SET last_error = :error REMOVE claimed_until",
            "#status = :pending",
            vec![
                (":error", string(error)),
                (":pending", string(RewardStatus::Pending.as_str())),
            ],
        )
        .await
        .map(drop)
    }

    async fn undelivered_before(
        &self,
        before: OffsetDateTime,
        limit: usize,
    ) -> Result<Vec<Reward>> {
        self.gsi2_before(keys::UNDELIVERED_REWARDS, &clock::format(before), limit)
            .await?
            .into_iter()
            .map(from_item)
            .collect()
    }

    async fn rewards_by_status(
        &self,
        tenant: &str,
        status: RewardStatus,
        page: &PageRequest,
    ) -> Result<Page<Reward>> {
        let partition = keys::rewards_by_status_partition(tenant, status.as_str());
        // The cursor names the last reward: its GSI3 sort key and its recipient (its key).
        let start = match &page.cursor {
            Some(cursor) => {
                let decoded = decode_cursor(cursor, "")?;
                let (sort, user) = decoded.rsplit_once('|').ok_or_else(invalid_cursor)?;
                let (_, id) = sort.split_once('#').ok_or_else(invalid_cursor)?;
                Some(index_start(
                    &keys::reward(tenant, user, id),
                    (keys::GSI3PK, &partition),
                    (keys::GSI3SK, sort),
                ))
            }
            None => None,
        };
        self.query_page(
            Some((keys::GSI3, keys::GSI3PK, keys::GSI3SK)),
            &partition,
            None,
            true,
            page,
            start,
            |reward: &Reward| {
                let (_, sort) = keys::rewards_by_status(
                    &reward.tenant,
                    reward.status.as_str(),
                    &clock::format(reward.updated),
                    &reward.id,
                );
                format!("{sort}|{}", reward.user_id)
            },
        )
        .await
    }

    async fn requeue(&self, reward: &Reward, now: OffsetDateTime) -> Result<bool> {
        let now_text = clock::format(now);
        let (pk, sk) = keys::undelivered_reward(&now_text, &reward.id);
        let (gsi3pk, gsi3sk) = keys::rewards_by_status(
            &reward.tenant,
            RewardStatus::Pending.as_str(),
            &now_text,
            &reward.id,
        );
        self.update_reward(
            reward,
            "SET #status = :pending, updated = :now, GSI2PK = :pk, GSI2SK = :sk, GSI3PK = :gsi3pk, GSI3SK = :gsi3sk",
            "#status = :failed",
            vec![
                (":pending", string(RewardStatus::Pending.as_str())),
                (":failed", string(RewardStatus::Failed.as_str())),
                (":now", string(now_text)),
                (":pk", string(pk)),
                (":sk", string(sk)),
                (":gsi3pk", string(gsi3pk)),
                (":gsi3sk", string(gsi3sk)),
            ],
        )
        .await
    }
}
