//! Relations, rewards and event records: a sign-up or an event is one [`Plan`] applied in one
//! `TransactWriteItems`, whose conditions carry every rule that must hold under concurrency.

use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};

use super::promoters::{referral_item, reward_item};
use super::{DynamoStore, Filter, Item, Outcome, from_item, key_item, number, string};
use crate::clock;
use crate::domain::ledger::{Reward, RewardStatus};
use crate::domain::referral::Referral;
use crate::error::{Error, Result};
use crate::store::dynamo::keys::{self, Key};
use crate::store::{Balance, Committed, Plan, ReferralStore, RelationWrite};

/// Event records are kept this long for idempotency, then expire through the table's TTL.
const EVENT_RECORD_DAYS: i64 = 400;
/// DynamoDB's limit of actions in one transaction.
const MAX_ACTIONS: usize = 100;

/// What each action of a plan's transaction is, to read its cancellation reasons.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Action {
    Event,
    NewRelation,
    ReplacedRelation,
    Code,
    Balance,
    Reward,
    Release,
    Qualification,
    EmailOwner,
}

/// An `Update` of counters: `ADD` every non-zero addition, `SET updated` (and the balances'
/// currency if unset), under `condition`.
struct Counters<'a> {
    key: Key,
    adds: Vec<(&'static str, i64)>,
    currency: Option<&'a str>,
    condition: String,
    values: Vec<(&'static str, AttributeValue)>,
}

impl Counters<'_> {
    fn balance(&mut self, balance: &Balance) {
        self.adds.extend([
            ("total_earned", balance.effect.total_earned),
            ("current_balance", balance.effect.current_balance),
            ("points_earned", balance.effect.points_earned),
        ]);
    }

    fn build(self, table: &str, now: &str) -> Result<TransactWriteItem> {
        let mut update = Update::builder()
            .table_name(table)
            .set_key(Some(key_item(&self.key)))
            .condition_expression(self.condition)
            .expression_attribute_values(":now", string(now));
        let mut adds = Vec::new();
        for (index, (attribute, amount)) in self.adds.iter().enumerate() {
            if *amount != 0 {
                adds.push(format!("{attribute} :a{index}"));
                update = update.expression_attribute_values(format!(":a{index}"), number(amount));
            }
        }
        let mut expression = String::from("SET updated = :now");
        if let Some(currency) = self.currency {
            expression.push_str(", currency = if_not_exists(currency, :currency)");
            update = update.expression_attribute_values(":currency", string(currency));
        }
        if !adds.is_empty() {
            expression.push_str(&format!(" ADD {}", adds.join(", ")));
        }
        for (name, value) in self.values {
            update = update.expression_attribute_values(name, value);
        }
        Ok(TransactWriteItem::builder()
            .update(
                update
                    .update_expression(expression)
                    .build()
                    .map_err(Error::internal)?,
            )
            .build())
    }
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

    fn plan_actions(&self, plan: &Plan) -> Result<Vec<(Action, TransactWriteItem)>> {
        let now = clock::now();
        let now_text = clock::format(now);
        let mut actions = Vec::new();
        if let Some(event) = &plan.event {
            let mut item = key_item(&keys::event(&event.tenant, event.kind, &event.event_id));
            item.insert(keys::ENTITY_TYPE.to_owned(), string("event"));
            item.insert("response".to_owned(), string(&event.response));
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
        let mut balances = plan.balances.clone();
        for code in &plan.codes {
            let mut values = vec![(":tenant", string(&code.tenant))];
            let condition = if code.referrals > 0 {
                values.push((":true", AttributeValue::Bool(true)));
                match code.limit {
                    Some(limit) => {
                        values.push((":limit", number(limit)));
                        "is_active = :true AND tenant = :tenant AND total_referrals < :limit"
                    }
                    None => "is_active = :true AND tenant = :tenant",
                }
            } else {
                "attribute_exists(PK) AND tenant = :tenant"
            };
            let mut counters = Counters {
                key: keys::code(&code.code),
                adds: vec![
                    ("total_referrals", code.referrals as i64),
                    ("total_referrer_earned", code.referrer_earned),
                    ("total_referee_earned", code.referee_earned),
                    ("verification_attempts", code.verification_attempts as i64),
                    ("verification_successes", code.verification_successes as i64),
                ],
                currency: None,
                condition: condition.to_owned(),
                values,
            };
            // A primary code's item is its promoter: one update carries both.
            let merged = balances.remove(&code.code);
            if let Some(balance) = &merged {
                counters.balance(balance);
                counters.currency = balance.currency.as_deref();
            }
            actions.push((Action::Code, counters.build(self.table(), &now_text)?));
        }
        for (promoter_code, balance) in &balances {
            let mut counters = Counters {
                key: keys::code(promoter_code),
                adds: Vec::new(),
                currency: balance.currency.as_deref(),
                condition: "attribute_exists(PK)".to_owned(),
                values: Vec::new(),
            };
            counters.balance(balance);
            actions.push((Action::Balance, counters.build(self.table(), &now_text)?));
        }
        for reward in &plan.rewards {
            actions.push((Action::Reward, self.put_new(reward_item(reward)?)?));
        }
        for reward in &plan.releases {
            actions.push((
                Action::Release,
                self.put_if(
                    reward_item(reward)?,
                    "#status = :held",
                    vec![(":held", string(RewardStatus::Held.as_str()))],
                )?,
            ));
        }
        if let Some(qualification) = &plan.qualified {
            let key = keys::referrer_stats(
                &qualification.tenant,
                &qualification.referrer,
                &qualification.program_id,
            );
            let condition = if qualification.seen == 0 {
                "attribute_not_exists(qualified) OR qualified = :seen"
            } else {
                "qualified = :seen"
            };
            let update = Update::builder()
                .table_name(self.table())
                .set_key(Some(key_item(&key)))
                .update_expression("SET entity_type = :type ADD qualified :one")
                .condition_expression(condition)
                .expression_attribute_values(":type", string("referrer_stats"))
                .expression_attribute_values(":one", number(1))
                .expression_attribute_values(":seen", number(qualification.seen))
                .build()
                .map_err(Error::internal)?;
            actions.push((
                Action::Qualification,
                TransactWriteItem::builder().update(update).build(),
            ));
        }
        if let Some(owner) = &plan.email_owner {
            let mut item = key_item(&keys::email_owner(&owner.tenant, &owner.email));
            item.insert(keys::ENTITY_TYPE.to_owned(), string("email_owner"));
            item.insert("user_id".to_owned(), string(&owner.user_id));
            let put = Put::builder()
                .table_name(self.table())
                .set_item(Some(item))
                .build()
                .map_err(Error::internal)?;
            actions.push((
                Action::EmailOwner,
                TransactWriteItem::builder().put(put).build(),
            ));
        }
        if actions.len() > MAX_ACTIONS {
            return Err(Error::internal(format!(
                "a plan of {} writes exceeds one transaction",
                actions.len()
            )));
        }
        Ok(actions)
    }
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
        } else if failed.contains(&Action::Code) {
            Committed::CodeRefused
        } else if failed.contains(&Action::Balance) {
            return Err(Error::internal(
                "a reward names a promoter item that does not exist",
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
        let mut rewards = Vec::new();
        for user in [&relation.referrer_user_id, &relation.referred_user_id] {
            let partition = keys::user_partition(&relation.tenant, user);
            for item in self.query_prefix(&partition, &prefix, None).await? {
                rewards.push(from_item(item)?);
            }
        }
        Ok(rewards)
    }

    async fn held_referrer_rewards(
        &self,
        tenant: &str,
        referrer: &str,
        program_id: &str,
    ) -> Result<Vec<Reward>> {
        let filter = Filter {
            expression: "#status = :fheld AND program_id = :fprogram AND recipient = :freferrer",
            names: vec![("#status", "status")],
            values: vec![
                (":fheld", string(RewardStatus::Held.as_str())),
                (":fprogram", string(program_id)),
                (":freferrer", string("referrer")),
            ],
        };
        self.query_prefix(
            &keys::user_partition(tenant, referrer),
            keys::REWARD_PREFIX,
            Some(filter),
        )
        .await?
        .into_iter()
        .map(from_item)
        .collect()
    }

    async fn event_response(
        &self,
        tenant: &str,
        kind: &str,
        event_id: &str,
    ) -> Result<Option<String>> {
        Ok(self
            .get(&keys::event(tenant, kind, event_id))
            .await?
            .and_then(|item| item.get("response").and_then(|v| v.as_s().ok()).cloned()))
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

    async fn promoter_code_of(&self, tenant: &str, user: &str) -> Result<Option<String>> {
        Ok(self
            .get(&keys::promoter_guard(tenant, user))
            .await?
            .and_then(|item| item.get("owner_id").and_then(|v| v.as_s().ok()).cloned()))
    }
}
