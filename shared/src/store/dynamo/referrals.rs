//! Relations, rewards, balances and event records: a sign-up or an event is one [`Plan`]
//! applied in one `TransactWriteItems`, whose conditions carry every rule that must hold under
//! concurrency.

use std::collections::BTreeMap;

use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, Delete, Put, TransactWriteItem, Update,
};

use super::promoters::{referral_item, reward_item};
use super::{
    DynamoStore, Filter, Item, Outcome, from_item, invalid_cursor, key_item, keys, number, string,
    with_gsi2,
};
use crate::clock;
use crate::domain::ledger::{Reward, RewardStatus};
use crate::domain::promoter::PromoterStatus;
use crate::domain::referral::Referral;
use crate::error::{Error, Result};
use crate::store::{
    Adjustment, BalanceChange, BalanceKey, CodeCounts, Committed, Counter, Day, DaysOf,
    MAX_ACTIONS, Plan, RecordedEvent, ReferralStore, RelationWrite, ReleaseJob,
};
use keys::Key;

/// Event records are kept this long for idempotency, then expire through the table's TTL.
const EVENT_RECORD_DAYS: i64 = 400;

const BALANCE_ENTITY: &str = "balance";
const RELEASE_JOB_ENTITY: &str = "release_job";

/// What each action of a plan's transaction is, to read its cancellation reasons.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Action {
    Event,
    NewRelation,
    ReplacedRelation,
    /// A code a sign-up came through (active, of the tenant).
    SignupCode,
    /// Counters of a code that must exist.
    Code,
    /// The sign-up's count in the code's program, under the limit.
    Limit,
    ProgramLock,
    Balance,
    Reward,
    Release,
    Adjustment,
    /// A counter under a limit (a program's budget, a referrer's earnings cap).
    Spend,
    /// A day's figures (no condition).
    Day,
    Stats,
    EmailOwner,
    ReleaseJob,
    FinishedJob,
}

/// An update expression built from `SET` and `ADD` clauses, with its values and names.
#[derive(Default)]
struct Expression {
    set: Vec<String>,
    add: Vec<String>,
    values: Vec<(String, AttributeValue)>,
    names: Vec<(String, String)>,
}

impl Expression {
    fn value(&mut self, value: AttributeValue) -> String {
        let placeholder = format!(":v{}", self.values.len());
        self.values.push((placeholder.clone(), value));
        placeholder
    }

    fn name(&mut self, name: &str) -> String {
        let placeholder = format!("#n{}", self.names.len());
        self.names.push((placeholder.clone(), name.to_owned()));
        placeholder
    }

    fn set(&mut self, attribute: &str, value: AttributeValue) {
        let name = self.name(attribute);
        let value = self.value(value);
        self.set.push(format!("{name} = {value}"));
    }

    fn set_if_absent(&mut self, attribute: &str, value: AttributeValue) {
        let name = self.name(attribute);
        let value = self.value(value);
        self.set
            .push(format!("{name} = if_not_exists({name}, {value})"));
    }

    fn add(&mut self, attribute: &str, amount: i64) {
        if amount != 0 {
            let name = self.name(attribute);
            let value = self.value(number(amount));
            self.add.push(format!("{name} {value}"));
        }
    }

    /// Adds `amount` to the entry `key` of the map `attribute` (which must exist).
    fn add_to_map(&mut self, attribute: &str, key: &str, amount: i64) {
        if amount != 0 {
            let map = self.name(attribute);
            let entry = self.name(key);
            let zero = self.value(number(0));
            let value = self.value(number(amount));
            self.set.push(format!(
                "{map}.{entry} = if_not_exists({map}.{entry}, {zero}) + {value}"
            ));
        }
    }

    fn update(
        self,
        table: &str,
        key: &Key,
        condition: Option<(&str, Vec<(&str, AttributeValue)>)>,
    ) -> Result<TransactWriteItem> {
        let mut text = String::new();
        if !self.set.is_empty() {
            text.push_str(&format!("SET {}", self.set.join(", ")));
        }
        if !self.add.is_empty() {
            text.push_str(&format!(" ADD {}", self.add.join(", ")));
        }
        let mut update = Update::builder()
            .table_name(table)
            .set_key(Some(key_item(key)))
            .update_expression(text.trim());
        for (placeholder, value) in self.values {
            update = update.expression_attribute_values(placeholder, value);
        }
        for (placeholder, name) in self.names {
            update = update.expression_attribute_names(placeholder, name);
        }
        if let Some((condition, values)) = condition {
            update = update.condition_expression(condition);
            for (placeholder, value) in values {
                update = update.expression_attribute_values(placeholder, value);
            }
        }
        Ok(TransactWriteItem::builder()
            .update(update.build().map_err(Error::internal)?)
            .build())
    }
}

const COUNTER_ENTITY: &str = "spend_counter";
pub(super) const DAY_ENTITY: &str = "day";
const BOARD_ENTITY: &str = "board_entry";
/// Earnings of a day are attributes `earned_{CURRENCY}` (ADD creates them; a map entry could
/// not be added to before the map exists).
pub(super) const EARNED_PREFIX: &str = "earned_";

fn counter_key(counter: &Counter) -> Key {
    match counter {
        Counter::Budget {
            tenant,
            program_id,
            bucket,
        } => keys::program_budget(tenant, program_id, bucket),
        Counter::Earnings {
            tenant,
            user,
            program_id,
        } => keys::referrer_earnings(tenant, user, program_id),
    }
}

pub(super) fn day_key(day: &Day) -> (Key, &str) {
    match day {
        Day::Board {
            tenant,
            program_id,
            period,
            referrer,
        } => (
            keys::board_entry(tenant, program_id, period, referrer),
            tenant,
        ),
        Day::Promoter { tenant, user, date } => (keys::promoter_day(tenant, user, date), tenant),
        Day::Program {
            tenant,
            program_id,
            date,
        } => (keys::program_day(tenant, program_id, date), tenant),
    }
}

/// A day's figures from its item (its date from its sort key after `prefix`).
fn day_figures(item: &Item, prefix: &str) -> crate::domain::stats::DayFigures {
    let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned();
    let count = |value: &AttributeValue| {
        value
            .as_n()
            .ok()
            .and_then(|n| n.parse::<i64>().ok())
            .unwrap_or(0)
    };
    let of = |name: &str| item.get(name).map(count).unwrap_or(0);
    crate::domain::stats::DayFigures {
        date: text(keys::SK)
            .map(|sk| sk.trim_start_matches(prefix).to_owned())
            .unwrap_or_default(),
        clicks: of("clicks"),
        signups: of("signups"),
        verified: of("verified"),
        converted: of("converted"),
        earned: item
            .iter()
            .filter_map(|(name, value)| {
                name.strip_prefix(EARNED_PREFIX)
                    .map(|currency| (currency.to_owned(), count(value)))
            })
            .collect(),
    }
}

fn release_job_key(job: &ReleaseJob) -> Key {
    keys::release_job(
        &job.tenant,
        &job.user_id,
        &job.program_id,
        job.relation_id.as_deref(),
    )
}

impl DynamoStore {
    /// A `Put` of `item` conditioned on `condition`.
    fn put_if(
        &self,
        item: Item,
        condition: &str,
        values: Vec<(&str, AttributeValue)>,
    ) -> Result<TransactWriteItem> {
        let mut put = Put::builder()
            .table_name(self.table())
            .set_item(Some(item))
            .condition_expression(condition);
        if condition.contains("#status") {
            put = put.expression_attribute_names("#status", "status");
        }
        for (name, value) in values {
            put = put.expression_attribute_values(name, value);
        }
        Ok(TransactWriteItem::builder()
            .put(put.build().map_err(Error::internal)?)
            .build())
    }

    fn code_action(&self, code: &CodeCounts, now: &str) -> Result<(Action, TransactWriteItem)> {
        let mut expression = Expression::default();
        expression.set("updated", string(now));
        expression.add("total_referrals", code.referrals as i64);
        expression.add("all_referrals", code.all_referrals as i64);
        expression.add("verification_attempts", code.verification_attempts as i64);
        expression.add("verification_successes", code.verification_successes as i64);
        for (currency, amount) in &code.referrer_earned {
            expression.add_to_map("referrer_earned", currency, *amount);
        }
        for (currency, amount) in &code.referee_earned {
            expression.add_to_map("referee_earned", currency, *amount);
        }
        // The code's scalar totals are in the first currency it earned in (a money currency
        // before points).
        let earned = code.referrer_earned.iter().chain(&code.referee_earned);
        let first = earned
            .clone()
            .find(|(c, a)| **a != 0 && c.as_str() != crate::domain::money::POINTS)
            .or_else(|| earned.clone().find(|(_, a)| **a != 0));
        if let Some((currency, _)) = first {
            expression.set_if_absent("earnings_currency", string(currency));
        }
        let mut values = vec![(":tenant", string(&code.tenant))];
        // A sign-up needs the code active and its owner not suspended (the owner's item is
        // the one counting `all_referrals`: the primary code's).
        let mut not_suspended = || {
            let status = expression.name("status");
            format!("(attribute_not_exists({status}) OR {status} <> :suspended)")
        };
        let (kind, condition) = if code.referrals > 0 {
            values.push((":true", AttributeValue::Bool(true)));
            values.push((":suspended", string(PromoterStatus::Suspended.as_str())));
            (
                Action::SignupCode,
                format!(
                    "is_active = :true AND tenant = :tenant AND {}",
                    not_suspended()
                ),
            )
        } else if code.all_referrals > 0 {
            values.push((":suspended", string(PromoterStatus::Suspended.as_str())));
            (
                Action::SignupCode,
                format!(
                    "attribute_exists(PK) AND tenant = :tenant AND {}",
                    not_suspended()
                ),
            )
        } else {
            (
                Action::Code,
                "attribute_exists(PK) AND tenant = :tenant".to_owned(),
            )
        };
        Ok((
            kind,
            expression.update(
                self.table(),
                &keys::code(&code.code),
                Some((&condition, values)),
            )?,
        ))
    }

    fn balance_action(
        &self,
        key: &BalanceKey,
        change: &BalanceChange,
        now: &str,
    ) -> Result<TransactWriteItem> {
        let (gsi1pk, gsi1sk) = keys::balance_gsi1(&key.tenant, &key.user, &key.currency);
        let mut expression = Expression::default();
        expression.set(keys::ENTITY_TYPE, string(BALANCE_ENTITY));
        expression.set("tenant", string(&key.tenant));
        expression.set("user_id", string(&key.user));
        expression.set("currency", string(&key.currency));
        expression.set(keys::GSI1PK, string(gsi1pk));
        expression.set(keys::GSI1SK, string(gsi1sk));
        expression.set("updated", string(now));
        expression.set_if_absent("created", string(now));
        expression.add("total_earned", change.total_earned);
        expression.add("current_balance", change.current_balance);
        expression.update(
            self.table(),
            &keys::balance(&key.tenant, &key.user, &key.currency),
            None,
        )
    }

    fn plan_actions(&self, plan: &Plan) -> Result<Vec<(Action, TransactWriteItem)>> {
        let now = clock::now();
        let now_text = clock::format(now);
        let mut actions = Vec::new();
        if let Some(event) = &plan.event {
            let mut item = key_item(&keys::event(&event.tenant, event.kind, &event.event_id));
            item.insert(keys::ENTITY_TYPE.to_owned(), string("event"));
            item.insert("response".to_owned(), string(&event.response));
            item.insert("fingerprint".to_owned(), string(&event.fingerprint));
            item.insert("created".to_owned(), string(&now_text));
            let expiry = now + time::Duration::days(EVENT_RECORD_DAYS);
            item.insert(keys::TTL.to_owned(), number(expiry.unix_timestamp()));
            actions.push((Action::Event, self.put_new(item)?));
        }
        for relation in &plan.relations {
            actions.push(match relation {
                RelationWrite::New(relation) => {
                    (Action::NewRelation, self.put_new(referral_item(relation)?)?)
                }
                RelationWrite::Replace(relation) => (
                    Action::ReplacedRelation,
                    self.put_if(
                        referral_item(relation)?,
                        "version = :previous",
                        vec![(":previous", number(relation.version - 1))],
                    )?,
                ),
            });
        }
        for code in &plan.codes {
            actions.push(self.code_action(code, &now_text)?);
        }
        if let Some(signup) = &plan.signup {
            let mut expression = Expression::default();
            expression.set(keys::ENTITY_TYPE, string("code_program"));
            expression.set("tenant", string(&signup.tenant));
            expression.add("referrals", 1);
            let condition = signup.limit.map(|limit| {
                (
                    "attribute_not_exists(referrals) OR referrals < :limit",
                    vec![(":limit", number(limit))],
                )
            });
            actions.push((
                Action::Limit,
                expression.update(
                    self.table(),
                    &keys::code_program(&signup.code, &signup.program_id),
                    condition,
                )?,
            ));
        }
        if let Some(lock) = &plan.program_lock {
            let mut expression = Expression::default();
            expression.set("has_relations", AttributeValue::Bool(true));
            expression.set("updated", string(&now_text));
            expression.add("version", 1);
            let currency = expression.name("currency");
            let condition = format!("{currency} = :currency");
            actions.push((
                Action::ProgramLock,
                expression.update(
                    self.table(),
                    &keys::program(&lock.tenant, &lock.program_id),
                    Some((&condition, vec![(":currency", string(&lock.currency))])),
                )?,
            ));
        }
        for (key, change) in &plan.balances {
            if change.total_earned != 0 || change.current_balance != 0 {
                actions.push((
                    Action::Balance,
                    self.balance_action(key, change, &now_text)?,
                ));
            }
        }
        for reward in &plan.rewards {
            actions.push((Action::Reward, self.put_new(reward_item(reward)?)?));
        }
        for release in &plan.releases {
            let reward = &release.reward;
            actions.push((
                Action::Release,
                self.put_if(
                    reward_item(reward)?,
                    &format!(
                        "#status = :held AND size(holds) = :holds AND {}",
                        unrefunded(reward)
                    ),
                    vec![
                        (":held", string(RewardStatus::Held.as_str())),
                        (":holds", number(release.holds_before)),
                        (":reduced", number(reward.reduced)),
                        (":taken_back", number(reward.taken_back)),
                    ],
                )?,
            ));
        }
        for adjustment in &plan.adjustments {
            actions.push((Action::Adjustment, self.adjustment_action(adjustment)?));
        }
        for day in plan.days.iter().filter(|d| !d.is_empty()) {
            let mut expression = Expression::default();
            let (key, tenant) = day_key(&day.day);
            expression.set("tenant", string(tenant));
            if let Day::Board { referrer, .. } = &day.day {
                expression.set(keys::ENTITY_TYPE, string(BOARD_ENTITY));
                expression.set("user_id", string(referrer));
                expression.add(keys::BOARD_SIGNUPS_ATTRIBUTE, day.signups);
                expression.add(keys::BOARD_EARNED_ATTRIBUTE, day.earned.values().sum());
            } else {
                expression.set(keys::ENTITY_TYPE, string(DAY_ENTITY));
                expression.add("signups", day.signups);
                expression.add("verified", day.verified);
                expression.add("converted", day.converted);
                for (currency, amount) in &day.earned {
                    expression.add(&format!("{EARNED_PREFIX}{currency}"), *amount);
                }
            }
            actions.push((Action::Day, expression.update(self.table(), &key, None)?));
        }
        for spend in plan.spend.iter().filter(|s| s.add != 0) {
            let mut expression = Expression::default();
            expression.set(keys::ENTITY_TYPE, string(COUNTER_ENTITY));
            expression.set("updated", string(&now_text));
            expression.add("used", spend.add);
            let room = spend.limit.filter(|_| spend.add > 0).map(|limit| {
                (
                    "attribute_not_exists(used) OR used <= :room",
                    vec![(":room", number(limit - spend.add))],
                )
            });
            actions.push((
                Action::Spend,
                expression.update(self.table(), &counter_key(&spend.counter), room)?,
            ));
        }
        for stats in &plan.stats {
            let key = keys::referrer_stats(&stats.tenant, &stats.referrer, &stats.program_id);
            let condition = if stats.seen == 0 {
                "attribute_not_exists(qualified) OR qualified = :seen"
            } else {
                "qualified = :seen"
            };
            let action = if stats.increment {
                let mut expression = Expression::default();
                expression.set(keys::ENTITY_TYPE, string("referrer_stats"));
                expression.add("qualified", 1);
                expression.update(
                    self.table(),
                    &key,
                    Some((condition, vec![(":seen", number(stats.seen))])),
                )?
            } else {
                let check = ConditionCheck::builder()
                    .table_name(self.table())
                    .set_key(Some(key_item(&key)))
                    .condition_expression(condition)
                    .expression_attribute_values(":seen", number(stats.seen))
                    .build()
                    .map_err(Error::internal)?;
                TransactWriteItem::builder().condition_check(check).build()
            };
            actions.push((Action::Stats, action));
        }
        if let Some(owner) = &plan.email_owner {
            let mut item = key_item(&keys::email_owner(&owner.tenant, &owner.email));
            item.insert(keys::ENTITY_TYPE.to_owned(), string("email_owner"));
            item.insert("user_id".to_owned(), string(&owner.user_id));
            actions.push((Action::EmailOwner, self.put_any(item)?));
        }
        for job in &plan.release_jobs {
            let key = release_job_key(job);
            let mut item: Item = serde_dynamo::to_item(job).map_err(Error::internal)?;
            item.extend(key_item(&key));
            item.insert(keys::ENTITY_TYPE.to_owned(), string(RELEASE_JOB_ENTITY));
            let item = with_gsi2(
                item,
                keys::release_job_pending(&clock::format(job.created), &key),
            );
            actions.push((Action::ReleaseJob, self.put_any(item)?));
        }
        for job in &plan.finished_jobs {
            let delete = Delete::builder()
                .table_name(self.table())
                .set_key(Some(key_item(&release_job_key(job))))
                .condition_expression("attribute_not_exists(PK) OR created = :created")
                .expression_attribute_values(":created", string(clock::format(job.created)))
                .build()
                .map_err(Error::internal)?;
            actions.push((
                Action::FinishedJob,
                TransactWriteItem::builder().delete(delete).build(),
            ));
        }
        check_actions(&actions)?;
        Ok(actions)
    }
}

/// The condition that no refund touched a reward since it was read (`:reduced`, `:taken_back`:
/// what it was read with): a release or a decision cannot write back what a refund changed.
fn unrefunded(read: &Reward) -> String {
    let unchanged = |attribute: &str, value: i64| {
        if value == 0 {
            format!("(attribute_not_exists({attribute}) OR {attribute} = :{attribute})")
        } else {
            format!("{attribute} = :{attribute}")
        }
    };
    format!(
        "{} AND {}",
        unchanged("reduced", read.reduced),
        unchanged("taken_back", read.taken_back)
    )
}

impl DynamoStore {
    /// A refund's change of a reward, if it is still as read. Taken back after delivery (a
    /// pending or credited reward keeps its status): only what refunds track is updated, so a
    /// delivery's claim on it stays. Otherwise (reduced or reversed before delivery: held or
    /// failed, never claimed) the reward is written whole, its indexes with it.
    fn adjustment_action(&self, adjustment: &Adjustment) -> Result<TransactWriteItem> {
        let (before, after) = (&adjustment.before, &adjustment.after);
        let values = vec![
            (":status", string(before.status.as_str())),
            (":holds", number(before.holds.len())),
            (":reduced", number(before.reduced)),
            (":taken_back", number(before.taken_back)),
        ];
        if before.status == after.status && before.reduced == after.reduced {
            let mut expression = Expression::default();
            let status = expression.name("status");
            expression.set("taken_back", number(after.taken_back));
            expression.set("updated", string(clock::format(after.updated)));
            if let Some(reason) = after.refund_reason {
                expression.set("refund_reason", string(reason.as_str()));
            }
            if let Some(invoice) = &after.invoice {
                expression.set(
                    "invoice",
                    serde_dynamo::to_attribute_value(invoice).map_err(Error::internal)?,
                );
            }
            let condition = format!(
                "{status} = :status AND size(holds) = :holds AND {}",
                unrefunded(before)
            );
            return expression.update(
                self.table(),
                &keys::reward(&after.tenant, &after.user_id, &after.id),
                Some((&condition, values)),
            );
        }
        // A pending reward leaves `pending` only while no delivery has claimed it.
        let mut values = values;
        let unclaimed = if before.status == RewardStatus::Pending {
            values.push((":now", string(clock::format(clock::now()))));
            " AND (attribute_not_exists(claimed_until) OR claimed_until < :now)"
        } else {
            ""
        };
        self.put_if(
            reward_item(after)?,
            &format!(
                "#status = :status AND size(holds) = :holds AND {}{unclaimed}",
                unrefunded(before)
            ),
            values,
        )
    }
}

/// A plan's transaction is checked before DynamoDB sees it: at most [`MAX_ACTIONS`] actions and
/// no item written twice (either is a `ValidationException` there, and a bug here: the domain
/// keeps plans within both).
fn check_actions(actions: &[(Action, TransactWriteItem)]) -> Result<()> {
    if actions.len() > MAX_ACTIONS {
        return Err(Error::internal(format!(
            "a plan of {} writes exceeds one transaction",
            actions.len()
        )));
    }
    let mut seen = std::collections::HashSet::new();
    for (kind, action) in actions {
        let key = action
            .put()
            .map(|put| put.item())
            .or_else(|| action.update().map(|update| update.key()))
            .or_else(|| action.delete().map(|delete| delete.key()))
            .or_else(|| action.condition_check().map(|check| check.key()));
        let Some(key) = key else { continue };
        let pk = key.get(keys::PK).and_then(|v| v.as_s().ok()).cloned();
        let sk = key.get(keys::SK).and_then(|v| v.as_s().ok()).cloned();
        if !seen.insert((pk.clone(), sk.clone())) {
            return Err(Error::internal(format!(
                "a plan writes the item {pk:?}/{sk:?} twice ({kind:?})"
            )));
        }
    }
    Ok(())
}

impl ReferralStore for DynamoStore {
    async fn apply(&self, plan: &Plan) -> Result<Committed> {
        let (kinds, actions): (Vec<Action>, Vec<TransactWriteItem>) =
            self.plan_actions(plan)?.into_iter().unzip();
        if actions.is_empty() {
            return Ok(Committed::Done);
        }
        let failed = match self.transact(actions).await? {
            Outcome::Written => return Ok(Committed::Done),
            Outcome::ConditionsFailed(failed) => failed,
        };
        let failed: Vec<Action> = kinds
            .iter()
            .zip(failed)
            .filter_map(|(kind, failed)| failed.then_some(*kind))
            .collect();
        // The most telling failure decides: a seen event, a taken relation, a refused code.
        Ok(if failed.contains(&Action::Event) {
            Committed::EventSeen
        } else if failed.contains(&Action::NewRelation) {
            Committed::RelationTaken
        } else if failed.contains(&Action::SignupCode) {
            Committed::CodeRefused
        } else if failed.contains(&Action::Limit) {
            Committed::LimitReached
        } else if failed.contains(&Action::Code) {
            return Err(Error::internal(
                "a plan counts on a code item that does not exist",
            ));
        } else {
            Committed::Stale
        })
    }

    async fn relations_of_referred(&self, tenant: &str, user: &str) -> Result<Vec<Referral>> {
        self.query_prefix(&keys::referred(tenant, user), "PROGRAM#", None)
            .await?
            .into_iter()
            .map(from_item)
            .collect()
    }

    async fn relation_by_id(&self, tenant: &str, id: &str) -> Result<Option<Referral>> {
        let (pk, sk) = keys::referral_by_id(tenant, id);
        self.query_index(
            (keys::GSI2, keys::GSI2PK, keys::GSI2SK),
            &pk,
            Some(("=", &sk)),
            false,
        )
        .await?
        .into_iter()
        .next()
        .map(from_item)
        .transpose()
    }

    async fn relation_rewards(&self, relation: &Referral) -> Result<Vec<Reward>> {
        let prefix = keys::relation_rewards_prefix(&relation.id);
        let referrer_partition = keys::user_partition(&relation.tenant, &relation.referrer_user_id);
        let referred_partition = keys::user_partition(&relation.tenant, &relation.referred_user_id);
        let (referrer, referred) = tokio::join!(
            self.query_prefix(&referrer_partition, &prefix, None),
            self.query_prefix(&referred_partition, &prefix, None),
        );
        referrer?
            .into_iter()
            .chain(referred?)
            .map(from_item)
            .collect()
    }

    async fn relation_rewards_page(
        &self,
        relation: &Referral,
        page: &crate::page::PageRequest,
    ) -> Result<crate::page::Page<Reward>> {
        // The cursor is `{side}|{last reward id}`: the referrer's partition is read first.
        let prefix = keys::relation_rewards_prefix(&relation.id);
        let sides = [&relation.referrer_user_id, &relation.referred_user_id];
        let (mut side, mut after) = match &page.cursor {
            Some(cursor) => {
                let text = super::decode_cursor(cursor, "")?;
                let (side, id) = text.split_once('|').ok_or_else(invalid_cursor)?;
                let side: usize = side
                    .parse()
                    .ok()
                    .filter(|s| *s < 2)
                    .ok_or_else(invalid_cursor)?;
                (side, Some(id.to_owned()))
            }
            None => (0, None),
        };
        let mut items = Vec::new();
        while side < 2 && items.len() < page.limit {
            let partition = keys::user_partition(&relation.tenant, sides[side]);
            let start = after
                .take()
                .map(|id| key_item(&keys::reward(&relation.tenant, sides[side], &id)));
            let request = crate::page::PageRequest {
                limit: page.limit - items.len(),
                cursor: None,
            };
            let found: crate::page::Page<Reward> = self
                .query_page(
                    None,
                    &partition,
                    Some(&prefix),
                    false,
                    &request,
                    start,
                    |r: &Reward| r.id.clone(),
                )
                .await?;
            let more = found.next_cursor.is_some();
            items.extend(found.items);
            if more {
                let last = items
                    .last()
                    .map(|r: &Reward| r.id.clone())
                    .unwrap_or_default();
                return Ok(crate::page::Page {
                    items,
                    next_cursor: Some(super::encode_cursor(&format!("{side}|{last}"))),
                });
            }
            side += 1;
        }
        let next_cursor = (side < 2).then(|| {
            let last = items.last().map(|r| r.id.clone()).unwrap_or_default();
            super::encode_cursor(&format!("{}|{last}", side.saturating_sub(1)))
        });
        Ok(crate::page::Page { items, next_cursor })
    }

    async fn held_rewards(
        &self,
        tenant: &str,
        user: &str,
        program_id: &str,
        relation_id: Option<&str>,
    ) -> Result<Vec<Reward>> {
        let filter = Filter {
            expression: "#status = :fheld AND program_id = :fprogram",
            names: vec![("#status", "status")],
            values: vec![
                (":fheld", string(RewardStatus::Held.as_str())),
                (":fprogram", string(program_id)),
            ],
        };
        let prefix = match relation_id {
            Some(relation) => keys::relation_rewards_prefix(relation),
            None => keys::REWARD_PREFIX.to_owned(),
        };
        self.query_prefix(&keys::user_partition(tenant, user), &prefix, Some(filter))
            .await?
            .into_iter()
            .map(from_item)
            .collect()
    }

    async fn recorded_event(
        &self,
        tenant: &str,
        kind: &str,
        event_id: &str,
    ) -> Result<Option<RecordedEvent>> {
        let Some(item) = self.get(&keys::event(tenant, kind, event_id)).await? else {
            return Ok(None);
        };
        let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned();
        Ok(text("response").map(|response| RecordedEvent {
            fingerprint: text("fingerprint"),
            response,
        }))
    }

    async fn qualified_referrals(
        &self,
        tenant: &str,
        referrer: &str,
        program_id: &str,
    ) -> Result<u64> {
        Ok(self
            .get(&keys::referrer_stats(tenant, referrer, program_id))
            .await?
            .and_then(|item| item.get("qualified").and_then(|v| v.as_n().ok()).cloned())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0))
    }

    async fn rewards_by_id(&self, tenant: &str, ids: &[(String, String)]) -> Result<Vec<Reward>> {
        let mut unique: Vec<&(String, String)> = ids.iter().collect();
        unique.sort();
        unique.dedup();
        let keys = unique
            .into_iter()
            .map(|(user, id)| key_item(&keys::reward(tenant, user, id)))
            .collect();
        self.batch_get(keys, false)
            .await?
            .into_iter()
            .map(from_item)
            .collect()
    }

    async fn due_rewards(
        &self,
        before: time::OffsetDateTime,
        limit: usize,
    ) -> Result<Vec<crate::domain::ledger::Reward>> {
        let before = format!("{}~", clock::format(before));
        self.gsi2_before(keys::HELD_UNTIL, &before, limit)
            .await?
            .into_iter()
            .map(from_item)
            .collect()
    }

    async fn payout_address_users(
        &self,
        tenant: &str,
        method: &crate::domain::ledger::PayoutMethod,
    ) -> Result<Vec<String>> {
        let item = self
            .get(&keys::payout_address(tenant, &method.digest()))
            .await?;
        Ok(item
            .and_then(|item| item.get("users").cloned())
            .and_then(|users| users.as_ss().ok().cloned())
            .unwrap_or_default())
    }

    async fn referrals_since(
        &self,
        tenant: &str,
        referrer: &str,
        since: time::OffsetDateTime,
    ) -> Result<u64> {
        let output = self
            .client()
            .query()
            .table_name(self.table())
            .index_name(keys::GSI1)
            .key_condition_expression("#pk = :pk AND #sk >= :since")
            .expression_attribute_names("#pk", keys::GSI1PK)
            .expression_attribute_names("#sk", keys::GSI1SK)
            .expression_attribute_values(
                ":pk",
                string(keys::referrals_by_referrer(tenant, referrer)),
            )
            .expression_attribute_values(":since", string(crate::id::first_id_at(since)))
            .select(aws_sdk_dynamodb::types::Select::Count)
            .send()
            .await
            .map_err(|error| super::sdk_error("Query", error))?;
        Ok(u64::try_from(output.count).unwrap_or(0))
    }

    async fn days(
        &self,
        of: &DaysOf,
        from: &str,
        to: &str,
    ) -> Result<Vec<crate::domain::stats::DayFigures>> {
        let (partition, prefix) = match of {
            DaysOf::Promoter { tenant, user } => (
                keys::user_partition(tenant, user),
                keys::PROMOTER_DAY_PREFIX,
            ),
            DaysOf::Program { tenant, program_id } => (keys::program_days(tenant, program_id), ""),
        };
        let mut days = Vec::new();
        let mut start = None;
        loop {
            let output = self
                .client()
                .query()
                .table_name(self.table())
                .key_condition_expression("#pk = :pk AND #sk BETWEEN :from AND :to")
                .expression_attribute_names("#pk", keys::PK)
                .expression_attribute_names("#sk", keys::SK)
                .expression_attribute_values(":pk", string(&partition))
                .expression_attribute_values(":from", string(format!("{prefix}{from}")))
                .expression_attribute_values(":to", string(format!("{prefix}{to}")))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|error| super::sdk_error("Query", error))?;
            for item in output.items.unwrap_or_default() {
                days.push(day_figures(&item, prefix));
            }
            match output.last_evaluated_key {
                Some(key) => start = Some(key),
                None => return Ok(days),
            }
        }
    }

    async fn leaders(
        &self,
        tenant: &str,
        program_id: &str,
        period: &str,
        by_earnings: bool,
        limit: usize,
    ) -> Result<Vec<crate::domain::stats::Leader>> {
        let (index, attribute) = if by_earnings {
            (keys::BOARD_EARNED, keys::BOARD_EARNED_ATTRIBUTE)
        } else {
            (keys::BOARD_SIGNUPS, keys::BOARD_SIGNUPS_ATTRIBUTE)
        };
        let output = self
            .client()
            .query()
            .table_name(self.table())
            .index_name(index)
            .key_condition_expression("#pk = :pk AND #score > :zero")
            .expression_attribute_names("#pk", keys::PK)
            .expression_attribute_names("#score", attribute)
            .expression_attribute_values(":pk", string(keys::board(tenant, program_id, period)))
            .expression_attribute_values(":zero", number(0))
            .scan_index_forward(false)
            .limit(i32::try_from(limit).unwrap_or(100))
            .send()
            .await
            .map_err(|error| super::sdk_error("Query", error))?;
        let of = |item: &Item, name: &str| {
            item.get(name)
                .and_then(|v| v.as_n().ok())
                .and_then(|n| n.parse::<i64>().ok())
                .unwrap_or(0)
        };
        Ok(output
            .items
            .unwrap_or_default()
            .iter()
            .map(|item| crate::domain::stats::Leader {
                user_id: item
                    .get(keys::SK)
                    .and_then(|v| v.as_s().ok())
                    .cloned()
                    .unwrap_or_default(),
                signups: of(item, keys::BOARD_SIGNUPS_ATTRIBUTE),
                earned: of(item, keys::BOARD_EARNED_ATTRIBUTE),
            })
            .collect())
    }

    async fn counters(&self, counters: &[Counter]) -> Result<Vec<i64>> {
        let reads = futures::future::join_all(
            counters
                .iter()
                .map(|counter| async move { self.get(&counter_key(counter)).await }),
        )
        .await;
        reads
            .into_iter()
            .map(|item| {
                Ok(item?
                    .and_then(|item| item.get("used").cloned())
                    .and_then(|used| used.as_n().ok().and_then(|n| n.parse::<i64>().ok()))
                    .unwrap_or(0))
            })
            .collect()
    }

    async fn release_jobs_before(
        &self,
        before: time::OffsetDateTime,
        limit: usize,
    ) -> Result<Vec<ReleaseJob>> {
        self.gsi2_before(keys::RELEASES_PENDING, &clock::format(before), limit)
            .await?
            .into_iter()
            .map(from_item)
            .collect()
    }
}

/// Balances of one user, per currency, from their items.
pub(super) fn balances_from(items: Vec<Item>) -> Result<crate::domain::ledger::Balances> {
    let mut balances = Vec::new();
    for item in items {
        if item
            .get(keys::ENTITY_TYPE)
            .and_then(|v| v.as_s().ok())
            .map(String::as_str)
            == Some(BALANCE_ENTITY)
        {
            balances.push(from_item(item)?);
        }
    }
    Ok(crate::domain::ledger::Balances(balances))
}

/// Balances a test or a tool writes with a reward: the reward's effect on its recipient.
pub(super) fn balance_of(reward: &Reward) -> BTreeMap<BalanceKey, BalanceChange> {
    let mut plan = Plan::default();
    plan.earn(reward);
    plan.balances
}

impl DynamoStore {
    /// Writes a reward and its effect on its recipient's balance, in one transaction; `false`
    /// if the reward exists already. For tests and tools that seed a ledger.
    pub async fn record_reward(&self, reward: &Reward) -> Result<bool> {
        let now = clock::format(reward.updated);
        let mut actions = vec![self.put_new(reward_item(reward)?)?];
        for (key, change) in balance_of(reward) {
            actions.push(self.balance_action(&key, &change, &now)?);
        }
        match self.transact(actions).await? {
            Outcome::Written => Ok(true),
            Outcome::ConditionsFailed(_) => Ok(false),
        }
    }
}
