//! Promoters, their payouts, relations and ledger in the single table.

use aws_sdk_dynamodb::types::{ReturnValue, TransactWriteItem, Update};
use time::OffsetDateTime;

use super::{
    DynamoStore, Item, Outcome, decode_cursor, entity_item, from_item, key_item, number, sdk_error,
    string, with_gsi2,
};
use crate::clock;
use crate::domain::ledger::{Payout, PayoutStatus, Reward};
use crate::domain::promoter::Promoter;
use crate::domain::referral::Referral;
use crate::error::{Error, Result};
use crate::page::{Page, PageRequest};
use crate::store::dynamo::keys;
use crate::store::{Inserted, PromoterChange, PromoterStore};

pub(super) const PROMOTER_ENTITY: &str = "promoter";
const PROMOTER_GUARD_ENTITY: &str = "promoter_guard";
const PAYOUT_ENTITY: &str = "payout";
const REFERRAL_ENTITY: &str = "referral";
const REWARD_ENTITY: &str = "reward";

pub(super) fn promoter_item(promoter: &Promoter) -> Result<Item> {
    entity_item(
        promoter,
        &keys::code(&promoter.referral_code),
        PROMOTER_ENTITY,
        Some((
            keys::user_codes(&promoter.tenant, &promoter.user_id),
            keys::PROMOTER_GSI1SK.to_owned(),
        )),
    )
}

fn payout_item(payout: &Payout) -> Result<Item> {
    entity_item(
        payout,
        &keys::payout(&payout.tenant, &payout.id),
        PAYOUT_ENTITY,
        Some((
            keys::payouts_by_user(&payout.tenant, &payout.user_id),
            payout.id.clone(),
        )),
    )
}

/// A relation's item, keyed by referred user and program, indexed under its referrer (GSI1) and
/// by id (GSI2).
pub fn referral_item(referral: &Referral) -> Result<Item> {
    let item = entity_item(
        referral,
        &keys::referral(
            &referral.tenant,
            &referral.referred_user_id,
            &referral.program_id,
        ),
        REFERRAL_ENTITY,
        Some((
            keys::referrals_by_referrer(&referral.tenant, &referral.referrer_user_id),
            referral.id.clone(),
        )),
    )?;
    Ok(with_gsi2(
        item,
        keys::referral_by_id(&referral.tenant, &referral.id),
    ))
}

/// A ledger entry's item, in its recipient's partition and time-indexed in their ledger; a
/// `pending` one is also in the sparse index of rewards awaiting delivery to billing.
pub fn reward_item(reward: &Reward) -> Result<Item> {
    let item = entity_item(
        reward,
        &keys::reward(&reward.tenant, &reward.user_id, &reward.id),
        REWARD_ENTITY,
        Some((
            keys::ledger(&reward.tenant, &reward.user_id),
            keys::ledger_gsi1sk(&clock::format(reward.created), &reward.id),
        )),
    )?;
    Ok(
        if reward.status == crate::domain::ledger::RewardStatus::Pending {
            with_gsi2(
                item,
                keys::undelivered_reward(&clock::format(reward.updated), &reward.id),
            )
        } else {
            item
        },
    )
}

fn promoter_from(item: Item) -> Result<Promoter> {
    match item.get(keys::ENTITY_TYPE).and_then(|v| v.as_s().ok()) {
        Some(kind) if kind == PROMOTER_ENTITY => from_item(item),
        other => Err(Error::internal(format!(
            "expected a promoter item, found {other:?}"
        ))),
    }
}

impl DynamoStore {
    /// An update of the promoter item of `code` in a transaction.
    fn promoter_update(
        &self,
        code: &str,
        expression: &str,
        condition: Option<&str>,
        values: Vec<(&str, aws_sdk_dynamodb::types::AttributeValue)>,
    ) -> Result<TransactWriteItem> {
        let mut update = Update::builder()
            .table_name(self.table())
            .set_key(Some(key_item(&keys::code(code))))
            .update_expression(expression)
            .set_condition_expression(condition.map(str::to_owned));
        for (name, value) in values {
            update = update.expression_attribute_values(name, value);
        }
        Ok(TransactWriteItem::builder()
            .update(update.build().map_err(Error::internal)?)
            .build())
    }

    /// Writes a reward and applies its balance effect to the recipient's promoter item (when the
    /// recipient is a promoter), in one transaction; `false` if the reward exists already (a
    /// replayed event). The referrals issue builds sign-ups and invoices on this.
    pub async fn record_reward(
        &self,
        reward: &Reward,
        promoter_code: Option<&str>,
    ) -> Result<bool> {
        let mut actions = vec![self.put_new(reward_item(reward)?)?];
        if let Some(code) = promoter_code {
            let effect = reward.balance_effect();
            let mut values = vec![
                (":earned", number(effect.total_earned)),
                (":balance", number(effect.current_balance)),
                (":points", number(effect.points_earned)),
                (":now", string(clock::format(reward.updated))),
            ];
            let mut expression = "ADD total_earned :earned, current_balance :balance, points_earned :points SET updated = :now".to_owned();
            if reward.kind == crate::domain::program::RewardKind::Cash {
                expression.push_str(", currency = if_not_exists(currency, :currency)");
                values.push((":currency", string(&reward.currency)));
            }
            actions.push(self.promoter_update(
                code,
                &expression,
                Some("attribute_exists(PK)"),
                values,
            )?);
        }
        match self.transact(actions).await? {
            Outcome::Written => Ok(true),
            Outcome::ConditionsFailed(failed) if failed.first() == Some(&true) => Ok(false),
            Outcome::ConditionsFailed(_) => Err(Error::internal(format!(
                "reward {} names a promoter item that does not exist",
                reward.id
            ))),
        }
    }
}

impl PromoterStore for DynamoStore {
    async fn find_promoter(&self, tenant: &str, user: &str) -> Result<Option<Promoter>> {
        let items = self
            .query_gsi1(
                &keys::user_codes(tenant, user),
                Some(("=", keys::PROMOTER_GSI1SK)),
                false,
            )
            .await?;
        items.into_iter().next().map(promoter_from).transpose()
    }

    async fn read_promoter(&self, tenant: &str, user: &str) -> Result<Option<Promoter>> {
        let Some(guard) = self.get(&keys::promoter_guard(tenant, user)).await? else {
            return Ok(None);
        };
        let code = guard
            .get("owner_id")
            .and_then(|v| v.as_s().ok())
            .ok_or_else(|| Error::internal("promoter guard without owner_id"))?;
        self.promoter_by_code(code).await
    }

    async fn promoter_by_code(&self, code: &str) -> Result<Option<Promoter>> {
        self.get(&keys::code(code))
            .await?
            .map(promoter_from)
            .transpose()
    }

    async fn insert_promoter(&self, promoter: &Promoter) -> Result<Inserted> {
        let guard = super::guard_item(
            &keys::promoter_guard(&promoter.tenant, &promoter.user_id),
            PROMOTER_GUARD_ENTITY,
            &promoter.referral_code,
        );
        let actions = vec![
            self.put_new(promoter_item(promoter)?)?,
            self.put_new(guard)?,
        ];
        Ok(match self.transact(actions).await? {
            Outcome::Written => Inserted::Done,
            Outcome::ConditionsFailed(failed) if failed.get(1) == Some(&true) => {
                Inserted::GuardTaken
            }
            Outcome::ConditionsFailed(_) => Inserted::KeyTaken,
        })
    }

    async fn update_promoter(
        &self,
        promoter: &Promoter,
        change: &PromoterChange,
        now: OffsetDateTime,
    ) -> Result<Promoter> {
        let (attribute, value) = match change {
            PromoterChange::PayoutMethod(method) => (
                "payout_method",
                serde_dynamo::to_attribute_value(method).map_err(Error::internal)?,
            ),
            PromoterChange::MinWithdrawalBalance(minimum) => {
                ("min_withdrawal_balance", number(minimum))
            }
        };
        let output = self
            .client()
            .update_item()
            .table_name(self.table())
            .set_key(Some(key_item(&keys::code(&promoter.referral_code))))
            .update_expression("SET #attribute = :value, updated = :now")
            .condition_expression("attribute_exists(PK) AND tenant = :tenant AND user_id = :user")
            .expression_attribute_names("#attribute", attribute)
            .expression_attribute_values(":value", value)
            .expression_attribute_values(":now", string(clock::format(now)))
            .expression_attribute_values(":tenant", string(&promoter.tenant))
            .expression_attribute_values(":user", string(&promoter.user_id))
            .return_values(ReturnValue::AllNew)
            .send()
            .await
            .map_err(|error| sdk_error("UpdateItem", error))?;
        promoter_from(output.attributes.unwrap_or_default())
    }

    async fn rewards_since(
        &self,
        tenant: &str,
        user: &str,
        since: OffsetDateTime,
    ) -> Result<Vec<Reward>> {
        self.query_gsi1(
            &keys::ledger(tenant, user),
            Some((">=", &clock::format(since))),
            false,
        )
        .await?
        .into_iter()
        .map(from_item)
        .collect()
    }

    async fn referrals_of(&self, tenant: &str, referrer: &str) -> Result<Vec<Referral>> {
        self.query_gsi1(&keys::referrals_by_referrer(tenant, referrer), None, true)
            .await?
            .into_iter()
            .map(from_item)
            .collect()
    }

    async fn payouts_of(
        &self,
        tenant: &str,
        user: &str,
        page: &PageRequest,
    ) -> Result<Page<Payout>> {
        let partition = keys::payouts_by_user(tenant, user);
        let start = match &page.cursor {
            Some(cursor) => {
                let id = decode_cursor(cursor, "")?;
                if !crate::id::is_id(&id) {
                    return Err(Error::invalid(
                        "cursor",
                        "is not a cursor this list returned",
                    ));
                }
                let mut key = key_item(&keys::payout(tenant, &id));
                key.insert(keys::GSI1PK.to_owned(), string(&partition));
                key.insert(keys::GSI1SK.to_owned(), string(&id));
                Some(key)
            }
            None => None,
        };
        self.query_page(
            Some((keys::GSI1, keys::GSI1PK)),
            &partition,
            None,
            true,
            page,
            start,
            |payout: &Payout| payout.id.clone(),
        )
        .await
    }

    async fn request_payout(&self, seen: &Promoter, payout: &Payout) -> Result<bool> {
        let actions = vec![
            self.promoter_update(
                &seen.referral_code,
                "SET current_balance = :zero, updated = :now",
                Some("current_balance = :seen AND tenant = :tenant"),
                vec![
                    (":zero", number(0)),
                    (":seen", number(seen.current_balance)),
                    (":tenant", string(&seen.tenant)),
                    (":now", string(clock::format(payout.created))),
                ],
            )?,
            self.put_new(payout_item(payout)?)?,
        ];
        match self.transact(actions).await? {
            Outcome::Written => Ok(true),
            Outcome::ConditionsFailed(failed) if failed.first() == Some(&true) => Ok(false),
            Outcome::ConditionsFailed(_) => {
                Err(Error::internal(format!("payout id {} is taken", payout.id)))
            }
        }
    }

    async fn get_payout(&self, tenant: &str, id: &str) -> Result<Option<Payout>> {
        self.get(&keys::payout(tenant, id))
            .await?
            .map(from_item)
            .transpose()
    }

    async fn mark_paid(&self, payout: &Payout, now: OffsetDateTime) -> Result<bool> {
        let mark = Update::builder()
            .table_name(self.table())
            .set_key(Some(key_item(&keys::payout(&payout.tenant, &payout.id))))
            .update_expression("SET #status = :paid, paid_at = :now")
            .condition_expression("#status = :requested")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":paid", string(PayoutStatus::Paid.as_str()))
            .expression_attribute_values(":requested", string(PayoutStatus::Requested.as_str()))
            .expression_attribute_values(":now", string(clock::format(now)))
            .build()
            .map_err(Error::internal)?;
        let actions = vec![
            TransactWriteItem::builder().update(mark).build(),
            self.promoter_update(
                &payout.promoter_code,
                "ADD total_paid :amount SET updated = :now",
                Some("attribute_exists(PK)"),
                vec![
                    (":amount", number(payout.amount)),
                    (":now", string(clock::format(now))),
                ],
            )?,
        ];
        match self.transact(actions).await? {
            Outcome::Written => Ok(true),
            Outcome::ConditionsFailed(failed) if failed.first() == Some(&true) => Ok(false),
            Outcome::ConditionsFailed(_) => Err(Error::internal(format!(
                "payout {} names a promoter item that does not exist",
                payout.id
            ))),
        }
    }
}
