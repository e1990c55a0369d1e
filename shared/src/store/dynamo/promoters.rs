//! Promoters, their balances, payouts, relations and ledger in the single table.

use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, TransactWriteItem, Update};
use time::OffsetDateTime;

use super::referrals::balances_from;
use super::{
    DynamoStore, Item, Outcome, decode_cursor, encode_cursor, entity_item, from_item, index_start,
    invalid_cursor, key_item, keys, number, sdk_error, string, with_gsi2,
};
use crate::clock;
use crate::domain::ledger::{Balance, Hold, Payout, PayoutStatus, Reward, RewardStatus};
use crate::domain::promoter::Promoter;
use crate::domain::referral::Referral;
use crate::error::{Error, Result};
use crate::page::{Page, PageRequest};
use crate::store::{Inserted, PromoterChange, PromoterStore};

pub(super) const PROMOTER_ENTITY: &str = "promoter";
const PROMOTER_GUARD_ENTITY: &str = "promoter_guard";
pub(super) const PAYOUT_ENTITY: &str = "payout";
pub(super) const REFERRAL_ENTITY: &str = "referral";
pub(super) const REWARD_ENTITY: &str = "reward";

pub(super) fn promoter_item(promoter: &Promoter) -> Result<Item> {
    let mut item = entity_item(
        promoter,
        &keys::code(&promoter.referral_code),
        PROMOTER_ENTITY,
        Some((
            keys::user_codes(&promoter.tenant, &promoter.user_id),
            keys::PROMOTER_GSI1SK.to_owned(),
        )),
    )?;
    let (pk, sk) = keys::promoters_by_status(
        &promoter.tenant,
        promoter.status.as_str(),
        &promoter.user_id,
    );
    item.insert(keys::GSI3PK.to_owned(), string(pk));
    item.insert(keys::GSI3SK.to_owned(), string(sk));
    Ok(item)
}

fn payout_item(payout: &Payout) -> Result<Item> {
    let mut item = entity_item(
        payout,
        &keys::payout(&payout.tenant, &payout.id),
        PAYOUT_ENTITY,
        Some((
            keys::payouts_by_user(&payout.tenant, &payout.user_id),
            payout.id.clone(),
        )),
    )?;
    let (pk, sk) = keys::payouts_by_status(&payout.tenant, payout.status.as_str(), &payout.id);
    item.insert(keys::GSI3PK.to_owned(), string(pk));
    item.insert(keys::GSI3SK.to_owned(), string(sk));
    Ok(item)
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

/// A ledger entry's item, in its recipient's partition and time-indexed in their ledger (GSI1),
/// in the tenant's rewards of its status (GSI3); a `pending` one is also in the sparse index of
/// rewards awaiting delivery to billing (GSI2).
pub fn reward_item(reward: &Reward) -> Result<Item> {
    let mut item = entity_item(
        reward,
        &keys::reward(&reward.tenant, &reward.user_id, &reward.id),
        REWARD_ENTITY,
        Some((
            keys::ledger(&reward.tenant, &reward.user_id),
            keys::ledger_gsi1sk(&clock::format(reward.created), &reward.id),
        )),
    )?;
    let (gsi3pk, gsi3sk) = keys::rewards_by_status(
        &reward.tenant,
        reward.status.as_str(),
        &clock::format(reward.updated),
        &reward.id,
    );
    item.insert(keys::GSI3PK.to_owned(), string(gsi3pk));
    item.insert(keys::GSI3SK.to_owned(), string(gsi3sk));
    Ok(match (reward.status, reward.due_at) {
        (RewardStatus::Pending, _) => with_gsi2(
            item,
            keys::undelivered_reward(&clock::format(reward.updated), &reward.id),
        ),
        (RewardStatus::Held, Some(due)) if reward.holds.contains(&Hold::HoldingPeriod) => {
            with_gsi2(
                item,
                keys::held_until(
                    &clock::format(due),
                    &reward.tenant,
                    &reward.user_id,
                    &reward.id,
                ),
            )
        }
        _ => item,
    })
}

/// A promoter and their balances from the items of one GSI1 query (or reads).
fn promoter_from(items: Vec<Item>) -> Result<Option<Promoter>> {
    let mut promoter: Option<Promoter> = None;
    let mut others = Vec::new();
    for item in items {
        match item.get(keys::ENTITY_TYPE).and_then(|v| v.as_s().ok()) {
            Some(kind) if kind == PROMOTER_ENTITY => promoter = Some(from_item(item)?),
            _ => others.push(item),
        }
    }
    let Some(mut promoter) = promoter else {
        return Ok(None);
    };
    promoter.balances = balances_from(others)?;
    Ok(Some(promoter))
}

fn balance_key_of(payout: &Payout) -> keys::Key {
    keys::balance(&payout.tenant, &payout.user_id, &payout.currency)
}

impl DynamoStore {
    /// An update of one item in a transaction.
    fn update_action(
        &self,
        key: &keys::Key,
        expression: &str,
        condition: Option<&str>,
        values: Vec<(&str, AttributeValue)>,
    ) -> Result<TransactWriteItem> {
        let mut update = Update::builder()
            .table_name(self.table())
            .set_key(Some(key_item(key)))
            .update_expression(expression)
            .set_condition_expression(condition.map(str::to_owned));
        for (name, value) in values {
            update = update.expression_attribute_values(name, value);
        }
        if expression.contains("#status") || condition.is_some_and(|c| c.contains("#status")) {
            update = update.expression_attribute_names("#status", "status");
        }
        Ok(TransactWriteItem::builder()
            .update(update.build().map_err(Error::internal)?)
            .build())
    }

    /// A strongly consistent read of a user's balances.
    async fn balances_of(
        &self,
        tenant: &str,
        user: &str,
    ) -> Result<crate::domain::ledger::Balances> {
        balances_from(
            self.query_prefix(&keys::user_partition(tenant, user), "BALANCE#", None)
                .await?,
        )
    }
}

impl PromoterStore for DynamoStore {
    async fn find_promoter(&self, tenant: &str, user: &str) -> Result<Option<Promoter>> {
        let items = self
            .query_gsi1(
                &keys::user_codes(tenant, user),
                Some(("begins_with", keys::PROMOTER_GSI1SK)),
                false,
            )
            .await?;
        // Balances without a promoter (a referee who earned before their first visit) are
        // no promoter yet.
        promoter_from(items)
    }

    async fn read_promoter(&self, tenant: &str, user: &str) -> Result<Option<Promoter>> {
        let Some(guard) = self.get(&keys::promoter_guard(tenant, user)).await? else {
            return Ok(None);
        };
        let code = guard
            .get("owner_id")
            .and_then(|v| v.as_s().ok())
            .ok_or_else(|| Error::internal("promoter guard without owner_id"))?;
        let code_key = keys::code(code);
        let (item, balances) = tokio::join!(self.get(&code_key), self.balances_of(tenant, user));
        let Some(item) = item? else {
            return Ok(None);
        };
        let mut promoter: Promoter = from_item(item)?;
        promoter.balances = balances?;
        Ok(Some(promoter))
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
            PromoterChange::CommissionRate(Some(rate)) => ("commission_rate", number(rate)),
            PromoterChange::CommissionRate(None) => ("commission_rate", AttributeValue::Null(true)),
            PromoterChange::Status(status) => ("status", string(status.as_str())),
            PromoterChange::Email(Some(email)) => ("email", string(email)),
            PromoterChange::Email(None) => ("email", AttributeValue::Null(true)),
            PromoterChange::Activity(digests) => (
                "recent_activity",
                AttributeValue::L(digests.iter().map(string).collect()),
            ),
        };
        let mut update = self
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
            .expression_attribute_values(":user", string(&promoter.user_id));
        // A change of status moves the promoter to the list of its new status (GSI3).
        if let PromoterChange::Status(status) = change {
            let (pk, sk) =
                keys::promoters_by_status(&promoter.tenant, status.as_str(), &promoter.user_id);
            update = update
                .update_expression(
                    "SET #attribute = :value, updated = :now, GSI3PK = :listed, GSI3SK = :sorted",
                )
                .expression_attribute_values(":listed", string(pk))
                .expression_attribute_values(":sorted", string(sk));
        }
        let output = update
            .return_values(ReturnValue::AllNew)
            .send()
            .await
            .map_err(|error| sdk_error("UpdateItem", error))?;
        let mut updated: Promoter = from_item(output.attributes.unwrap_or_default())?;
        updated.balances = promoter.balances.clone();
        Ok(updated)
    }

    async fn promoters_by_status(
        &self,
        tenant: &str,
        status: crate::domain::promoter::PromoterStatus,
        user_prefix: Option<&str>,
        page: &PageRequest,
    ) -> Result<Page<Promoter>> {
        let partition = keys::promoters_by_status_partition(tenant, status.as_str());
        // The cursor names the last promoter: its user id (GSI3 sort key) and code (its key).
        let start = match &page.cursor {
            Some(cursor) => {
                let decoded = decode_cursor(cursor, "")?;
                let (user, code) = decoded.rsplit_once('|').ok_or_else(invalid_cursor)?;
                Some(index_start(
                    &keys::code(code),
                    (keys::GSI3PK, &partition),
                    (keys::GSI3SK, user),
                ))
            }
            None => None,
        };
        self.query_page(
            Some((keys::GSI3, keys::GSI3PK, keys::GSI3SK)),
            &partition,
            user_prefix,
            false,
            page,
            start,
            |p: &Promoter| format!("{}|{}", p.user_id, p.referral_code),
        )
        .await
    }

    async fn payouts_by_status(
        &self,
        tenant: &str,
        status: PayoutStatus,
        page: &PageRequest,
    ) -> Result<Page<Payout>> {
        let partition = keys::payouts_by_status_partition(tenant, status.as_str());
        let start = match &page.cursor {
            Some(cursor) => {
                let id = decode_cursor(cursor, "")?;
                Some(index_start(
                    &keys::payout(tenant, &id),
                    (keys::GSI3PK, &partition),
                    (keys::GSI3SK, &id),
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
            |p: &Payout| p.id.clone(),
        )
        .await
    }

    async fn register_payout_address(
        &self,
        tenant: &str,
        user: &str,
        old: Option<&crate::domain::ledger::PayoutMethod>,
        new: &crate::domain::ledger::PayoutMethod,
    ) -> Result<()> {
        let change = |method: &crate::domain::ledger::PayoutMethod, add: bool| {
            let mut values = std::collections::HashMap::from([(
                ":user".to_owned(),
                AttributeValue::Ss(vec![user.to_owned()]),
            )]);
            if add {
                values.insert(":kind".to_owned(), string("payout_address"));
            }
            self.client()
                .update_item()
                .table_name(self.table())
                .set_key(Some(key_item(&keys::payout_address(
                    tenant,
                    &method.digest(),
                ))))
                .update_expression(if add {
                    "ADD #users :user SET entity_type = :kind"
                } else {
                    "DELETE #users :user"
                })
                .expression_attribute_names("#users", "users")
                .set_expression_attribute_values(Some(values))
                .send()
        };
        if let Some(old) = old.filter(|old| old.digest() != new.digest()) {
            change(old, false)
                .await
                .map_err(|error| sdk_error("UpdateItem", error))?;
        }
        change(new, true)
            .await
            .map_err(|error| sdk_error("UpdateItem", error))?;
        Ok(())
    }

    async fn balances(&self, tenant: &str, user: &str) -> Result<crate::domain::ledger::Balances> {
        self.balances_of(tenant, user).await
    }

    async fn balance(&self, tenant: &str, user: &str, currency: &str) -> Result<Option<Balance>> {
        self.get(&keys::balance(tenant, user, currency))
            .await?
            .map(from_item)
            .transpose()
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

    async fn rewards_of(
        &self,
        tenant: &str,
        user: &str,
        status: Option<RewardStatus>,
        page: &PageRequest,
    ) -> Result<Page<Reward>> {
        let partition = keys::ledger(tenant, user);
        let key_of = |gsi1sk: &str| -> Option<Item> {
            let (_, id) = gsi1sk.split_once('#')?;
            Some(index_start(
                &keys::reward(tenant, user, id),
                (keys::GSI1PK, &partition),
                (keys::GSI1SK, gsi1sk),
            ))
        };
        let mut start = match &page.cursor {
            Some(cursor) => Some(key_of(&decode_cursor(cursor, "")?).ok_or_else(invalid_cursor)?),
            None => None,
        };
        // With a status filter a read may match few items: read on, at most a few times the
        // page, and hand back a cursor where the reading stopped.
        let mut items: Vec<Reward> = Vec::new();
        let mut reads = 0;
        loop {
            let mut query = self
                .client()
                .query()
                .table_name(self.table())
                .index_name(keys::GSI1)
                .key_condition_expression("#pk = :pk")
                .expression_attribute_names("#pk", keys::GSI1PK)
                .expression_attribute_values(":pk", string(&partition))
                .scan_index_forward(false)
                .limit(i32::try_from(page.limit + 1).unwrap_or(i32::MAX))
                .set_exclusive_start_key(start.take());
            if let Some(status) = status {
                query = query
                    .filter_expression("#status = :status")
                    .expression_attribute_names("#status", "status")
                    .expression_attribute_values(":status", string(status.as_str()));
            }
            let output = query
                .send()
                .await
                .map_err(|error| sdk_error("Query", error))?;
            reads += 1;
            for item in output.items.unwrap_or_default() {
                items.push(from_item(item)?);
            }
            let more = output.last_evaluated_key;
            if items.len() > page.limit {
                items.truncate(page.limit);
                let last = &items[page.limit - 1];
                let cursor = keys::ledger_gsi1sk(&clock::format(last.created), &last.id);
                return Ok(Page {
                    items,
                    next_cursor: Some(encode_cursor(&cursor)),
                });
            }
            match more {
                None => {
                    return Ok(Page {
                        items,
                        next_cursor: None,
                    });
                }
                Some(key) if reads >= 4 => {
                    let cursor = key
                        .get(keys::GSI1SK)
                        .and_then(|v| v.as_s().ok())
                        .cloned()
                        .unwrap_or_default();
                    return Ok(Page {
                        items,
                        next_cursor: Some(encode_cursor(&cursor)),
                    });
                }
                Some(key) => start = Some(key),
            }
        }
    }

    async fn referrals_of(&self, tenant: &str, referrer: &str) -> Result<Vec<Referral>> {
        self.query_gsi1(&keys::referrals_by_referrer(tenant, referrer), None, true)
            .await?
            .into_iter()
            .map(from_item)
            .collect()
    }

    async fn referrals_page(
        &self,
        tenant: &str,
        referrer: &str,
        page: &PageRequest,
    ) -> Result<Page<Referral>> {
        let partition = keys::referrals_by_referrer(tenant, referrer);
        // The cursor names the last relation: its id, referred user and program (its key).
        let start = match &page.cursor {
            Some(cursor) => {
                let text = decode_cursor(cursor, "")?;
                let mut parts = text.splitn(3, '#');
                let (Some(id), Some(program), Some(referred)) =
                    (parts.next(), parts.next(), parts.next())
                else {
                    return Err(invalid_cursor());
                };
                Some(index_start(
                    &keys::referral(tenant, referred, program),
                    (keys::GSI1PK, &partition),
                    (keys::GSI1SK, id),
                ))
            }
            None => None,
        };
        self.query_page(
            Some((keys::GSI1, keys::GSI1PK, keys::GSI1SK)),
            &partition,
            None,
            true,
            page,
            start,
            |r: &Referral| format!("{}#{}#{}", r.id, r.program_id, r.referred_user_id),
        )
        .await
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
                    return Err(invalid_cursor());
                }
                Some(index_start(
                    &keys::payout(tenant, &id),
                    (keys::GSI1PK, &partition),
                    (keys::GSI1SK, &id),
                ))
            }
            None => None,
        };
        self.query_page(
            Some((keys::GSI1, keys::GSI1PK, keys::GSI1SK)),
            &partition,
            None,
            true,
            page,
            start,
            |payout: &Payout| payout.id.clone(),
        )
        .await
    }

    async fn request_payout(&self, seen: &Balance, payout: &Payout) -> Result<bool> {
        let actions = vec![
            self.update_action(
                &balance_key_of(payout),
                "SET current_balance = :zero, updated = :now",
                Some("current_balance = :seen"),
                vec![
                    (":zero", number(0)),
                    (":seen", number(seen.current_balance)),
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
        let actions = vec![
            self.update_action(
                &keys::payout(&payout.tenant, &payout.id),
                "SET #status = :paid, paid_at = :now, GSI3PK = :listed, GSI3SK = :sorted",
                Some("#status = :requested"),
                vec![
                    (":paid", string(PayoutStatus::Paid.as_str())),
                    (":requested", string(PayoutStatus::Requested.as_str())),
                    (":now", string(clock::format(now))),
                    (
                        ":listed",
                        string(keys::payouts_by_status_partition(
                            &payout.tenant,
                            PayoutStatus::Paid.as_str(),
                        )),
                    ),
                    (":sorted", string(&payout.id)),
                ],
            )?,
            self.update_action(
                &balance_key_of(payout),
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
                "payout {} names a balance that does not exist",
                payout.id
            ))),
        }
    }
}
