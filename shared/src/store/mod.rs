//! The store port: what the domain needs from persistence, in domain types. Its one adapter is
//! [`dynamo::DynamoStore`], which the functions run against DynamoDB in AWS and against the
//! emulator locally and in tests.

pub mod cache;
pub mod dynamo;

use std::future::Future;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::domain::code::ReferralCode;
use crate::domain::event::Event;
use crate::domain::ledger::{Balance, BalanceEffect, Payout, Reward, RewardStatus};
use crate::domain::program::Program;
pub use crate::domain::promoter::CodeItem;
use crate::domain::promoter::{PayoutMethod, Promoter};
use crate::domain::referral::Referral;
use crate::domain::tenant::{ApiKey, Tenant, TenantStatus};
use crate::domain::webhook::WebhookEndpoint;
use crate::error::Result;
use crate::page::{Page, PageRequest};

pub use dynamo::DynamoStore;

/// The outcome of a conditional replace.
#[derive(Debug, PartialEq, Eq)]
pub enum Replaced {
    Done,
    /// Another writer changed the item since it was read; re-read and retry.
    Stale,
}

pub trait ProgramStore: Send + Sync {
    /// Writes a new program and its name guard atomically; 409 `conflict` if the name is taken.
    fn insert_program(&self, program: &Program) -> impl Future<Output = Result<()>> + Send;

    fn get_program(
        &self,
        tenant: &str,
        id: &str,
    ) -> impl Future<Output = Result<Option<Program>>> + Send;

    /// Newest first.
    fn list_programs(
        &self,
        tenant: &str,
        page: &PageRequest,
    ) -> impl Future<Output = Result<Page<Program>>> + Send;

    /// Replaces `current` by `next` if `current.version` is still the stored one; on a rename the
    /// name guard moves in the same transaction (409 `conflict` if the new name is taken).
    fn replace_program(
        &self,
        current: &Program,
        next: &Program,
    ) -> impl Future<Output = Result<Replaced>> + Send;

    /// Sets the status to archived; `None` if there is no such program.
    fn archive_program(
        &self,
        tenant: &str,
        id: &str,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<Option<Program>>> + Send;
}

/// The outcome of writing an entity together with its uniqueness guard.
#[derive(Debug, PartialEq, Eq)]
pub enum Inserted {
    Done,
    /// The entity's own key is taken (a code collision): try another.
    KeyTaken,
    /// The guard is taken: the entity exists already.
    GuardTaken,
}

/// What a promoter may change about themselves, or an admin about them.
#[derive(Clone, Debug, PartialEq)]
pub enum PromoterChange {
    PayoutMethod(PayoutMethod),
    MinWithdrawalBalance(i64),
    /// A per-promoter commission rate (percent), or `None` for the program's.
    CommissionRate(Option<f64>),
    /// Active or suspended (an admin).
    Status(crate::domain::promoter::PromoterStatus),
    /// Their own email (an admin), or `None` to forget it.
    Email(Option<String>),
    /// Digests of the IPs and devices they were seen on lately.
    Activity(Vec<String>),
}

pub trait PromoterStore: Send + Sync {
    /// The user's promoter through GSI1, with their balances: one `Query`.
    fn find_promoter(
        &self,
        tenant: &str,
        user: &str,
    ) -> impl Future<Output = Result<Option<Promoter>>> + Send;

    /// The user's promoter through its guard, strongly consistent, with their balances. Used
    /// after losing a creation race.
    fn read_promoter(
        &self,
        tenant: &str,
        user: &str,
    ) -> impl Future<Output = Result<Option<Promoter>>> + Send;

    /// Writes a new promoter and its user guard atomically.
    fn insert_promoter(&self, promoter: &Promoter)
    -> impl Future<Output = Result<Inserted>> + Send;

    fn update_promoter(
        &self,
        promoter: &Promoter,
        change: &PromoterChange,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<Promoter>> + Send;

    /// Every balance of the user, strongly consistent: one `Query`.
    fn balances(
        &self,
        tenant: &str,
        user: &str,
    ) -> impl Future<Output = Result<crate::domain::ledger::Balances>> + Send;

    /// The user's balance in `currency`, strongly consistent.
    fn balance(
        &self,
        tenant: &str,
        user: &str,
        currency: &str,
    ) -> impl Future<Output = Result<Option<Balance>>> + Send;

    /// The user's rewards created at or after `since`: one `Query` on the ledger index.
    fn rewards_since(
        &self,
        tenant: &str,
        user: &str,
        since: OffsetDateTime,
    ) -> impl Future<Output = Result<Vec<Reward>>> + Send;

    /// A page of the user's rewards, newest first, of one status if given.
    fn rewards_of(
        &self,
        tenant: &str,
        user: &str,
        status: Option<RewardStatus>,
        page: &PageRequest,
    ) -> impl Future<Output = Result<Page<Reward>>> + Send;

    /// Every relation `referrer` referred, newest first.
    fn referrals_of(
        &self,
        tenant: &str,
        referrer: &str,
    ) -> impl Future<Output = Result<Vec<Referral>>> + Send;

    /// A page of the relations `referrer` referred, newest first: one `Query`.
    fn referrals_page(
        &self,
        tenant: &str,
        referrer: &str,
        page: &PageRequest,
    ) -> impl Future<Output = Result<Page<Referral>>> + Send;

    /// The user's payouts, newest first.
    fn payouts_of(
        &self,
        tenant: &str,
        user: &str,
        page: &PageRequest,
    ) -> impl Future<Output = Result<Page<Payout>>> + Send;

    /// Sets the balance `seen` to 0 and writes `payout`, if the balance is still the one read;
    /// `false` when it moved.
    fn request_payout(
        &self,
        seen: &Balance,
        payout: &Payout,
    ) -> impl Future<Output = Result<bool>> + Send;

    fn get_payout(
        &self,
        tenant: &str,
        id: &str,
    ) -> impl Future<Output = Result<Option<Payout>>> + Send;

    /// A page of the tenant's promoters of one status, by user id (those whose id starts with
    /// `user_prefix`, if given): one `Query` (GSI3). Balances are not read.
    fn promoters_by_status(
        &self,
        tenant: &str,
        status: crate::domain::promoter::PromoterStatus,
        user_prefix: Option<&str>,
        page: &PageRequest,
    ) -> impl Future<Output = Result<Page<Promoter>>> + Send;

    /// A page of the tenant's payouts of one status, newest first: one `Query` (GSI3).
    fn payouts_by_status(
        &self,
        tenant: &str,
        status: crate::domain::ledger::PayoutStatus,
        page: &PageRequest,
    ) -> impl Future<Output = Result<Page<Payout>>> + Send;

    /// Records that `user` pays out to `new` (and no longer to `old`): the tenant's promoters
    /// per payout address. Two `UpdateItem`s at most.
    fn register_payout_address(
        &self,
        tenant: &str,
        user: &str,
        old: Option<&PayoutMethod>,
        new: &PayoutMethod,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Marks `payout` paid and adds it to the user's `total_paid` in its currency; `false` if
    /// it was paid already.
    fn mark_paid(
        &self,
        payout: &Payout,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<bool>> + Send;
}

pub trait CodeStore: Send + Sync {
    fn get_code(&self, code: &str) -> impl Future<Output = Result<Option<CodeItem>>> + Send;

    /// The code and its referrals per program (`program id -> count`): one `Query`.
    fn code_with_counts(
        &self,
        code: &str,
    ) -> impl Future<Output = Result<Option<(CodeItem, BTreeMap<String, u64>)>>> + Send;

    /// Writes a new extra code; `false` when the code is taken.
    fn insert_code(&self, code: &ReferralCode) -> impl Future<Output = Result<bool>> + Send;

    /// Sets `is_active` on the tenant's code; `None` when the tenant has no such code.
    fn set_code_active(
        &self,
        tenant: &str,
        code: &str,
        active: bool,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<Option<CodeItem>>> + Send;

    /// Adds a click to an active code and notes its time (`last_click_at`: the table's stream
    /// carries it to the dispatcher, which counts the click in its owner's day figures). Answers
    /// whether it counted and the code's tenant (`None` for an unknown code; an inactive one
    /// costs a second read, to learn its tenant).
    fn count_click(
        &self,
        code: &str,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<Clicked>> + Send;

    /// A page of the user's extra codes, newest first: one `Query`.
    fn extra_codes(
        &self,
        tenant: &str,
        user: &str,
        page: &PageRequest,
    ) -> impl Future<Output = Result<Page<ReferralCode>>> + Send;
}

/// What counting a click found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Clicked {
    pub counted: bool,
    pub tenant: Option<String>,
}

/// Clicks a change of a code's item counted, as the stream tells them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClicksSeen {
    pub tenant: String,
    /// The code's owner.
    pub owner: String,
    /// An extra code's program.
    pub program_id: Option<String>,
    /// When the last of them was counted.
    pub at: OffsetDateTime,
    pub clicks: i64,
}

/// Everything one sign-up or event writes, applied atomically in one `TransactWriteItems`.
#[derive(Clone, Debug, Default)]
pub struct Plan {
    /// Relations: new (the "referred once per program" rule), or replacing the version before.
    pub relations: Vec<RelationWrite>,
    /// Counters of the codes relations came through and of the promoters they belong to;
    /// several entries of one code are added up into one update.
    pub codes: Vec<CodeCounts>,
    /// A sign-up's count in its code's program, under the limit.
    pub signup: Option<SignupCount>,
    /// The first relation of a program freezes its currency.
    pub program_lock: Option<ProgramLock>,
    /// New ledger entries (deterministic ids: a replay cannot write them twice).
    pub rewards: Vec<Reward>,
    /// Held rewards released, in their new state (only if still held as read).
    pub releases: Vec<Release>,
    /// Rewards a refund reduced, reversed or took back from (only if still as read).
    pub adjustments: Vec<Adjustment>,
    /// What the change adds to the day figures of the referrers and programs it concerns.
    pub days: Vec<DayCount>,
    /// What rewards add to (or give back to) a program's budget and a referrer's earnings in
    /// it, under their limits; one entry per counter.
    pub spend: Vec<SpendWrite>,
    /// Balance changes per user and currency.
    pub balances: BTreeMap<BalanceKey, BalanceChange>,
    /// Referrers' qualified counts this plan raises, or relies on (held rewards are booked on
    /// the count read, so the write is conditioned on it).
    pub stats: Vec<StatsWrite>,
    /// The event's record, with the answer a replay gets.
    pub event: Option<EventRecord>,
    /// The user an email belongs to, as a sign-up reported it (last sign-up wins).
    pub email_owner: Option<EmailOwner>,
    /// Releases too many for this transaction: recorded here, finished in chunks after it
    /// (and by the reconciler if that is interrupted).
    pub release_jobs: Vec<ReleaseJob>,
    /// Release jobs this plan finishes (deleted if still as read).
    pub finished_jobs: Vec<ReleaseJob>,
}

/// A held reward in its new state, written only if it is still held with `holds_before` holds
/// (holds only ever go away: the same number means nothing changed since it was read).
#[derive(Clone, Debug, PartialEq)]
pub struct Release {
    pub reward: Reward,
    pub holds_before: usize,
}

/// Whose figures of which UTC day (`yyyy-mm-dd`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Day {
    /// A promoter's, as referrer.
    Promoter {
        tenant: String,
        user: String,
        date: String,
    },
    Program {
        tenant: String,
        program_id: String,
        date: String,
    },
    /// A referrer's entry in a program's leaderboard of one period (`all`, or `yyyy-mm`):
    /// only `signups` and `earned` (cash) count there.
    Board {
        tenant: String,
        program_id: String,
        period: String,
        referrer: String,
    },
}

/// Whose days: a promoter's (as referrer) or a program's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DaysOf {
    Promoter { tenant: String, user: String },
    Program { tenant: String, program_id: String },
}

/// Additions to one day's figures.
#[derive(Clone, Debug, PartialEq)]
pub struct DayCount {
    pub day: Day,
    pub signups: i64,
    pub verified: i64,
    pub converted: i64,
    /// Per currency (`POINTS` for points); negative for what refunds and denials took back.
    pub earned: BTreeMap<String, i64>,
}

impl DayCount {
    pub fn is_empty(&self) -> bool {
        self.signups == 0
            && self.verified == 0
            && self.converted == 0
            && self.earned.values().all(|v| *v == 0)
    }
}

impl Plan {
    /// The additions to `day`'s figures, added to the plan if absent.
    pub fn day(&mut self, day: Day) -> &mut DayCount {
        let index = match self.days.iter().position(|d| d.day == day) {
            Some(index) => index,
            None => {
                self.days.push(DayCount {
                    day,
                    signups: 0,
                    verified: 0,
                    converted: 0,
                    earned: BTreeMap::new(),
                });
                self.days.len() - 1
            }
        };
        &mut self.days[index]
    }
}

/// A counter of what was paid under a limit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Counter {
    /// A program's spend in one budget period (`total` or `yyyy-mm`).
    Budget {
        tenant: String,
        program_id: String,
        bucket: String,
    },
    /// What a referrer earned in a program.
    Earnings {
        tenant: String,
        user: String,
        program_id: String,
    },
}

/// Adds `add` to a counter; with `limit`, only if it stays at or under it (exact under
/// concurrency: the condition is on the counter itself).
#[derive(Clone, Debug, PartialEq)]
pub struct SpendWrite {
    pub counter: Counter,
    pub add: i64,
    pub limit: Option<i64>,
}

/// Counters as read: a program's spend in the current budget period and a referrer's earnings
/// in it (0 where the program has no such limit).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Spent {
    pub budget: i64,
    pub earnings: i64,
}

impl Plan {
    /// Adds `add` to `counter` (under `limit` if given: the tightest limit of the entries wins).
    pub fn spend(&mut self, counter: Counter, add: i64, limit: Option<i64>) {
        match self.spend.iter_mut().find(|s| s.counter == counter) {
            Some(entry) => {
                entry.add += add;
                entry.limit = match (entry.limit, limit) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
            }
            None => self.spend.push(SpendWrite {
                counter,
                add,
                limit,
            }),
        }
    }

    /// What the plan adds to `counter` so far.
    pub fn spent_on(&self, counter: &Counter) -> i64 {
        self.spend
            .iter()
            .find(|s| s.counter == *counter)
            .map_or(0, |s| s.add)
    }
}

/// A reward in its new state after a refund, written only if it is still as `before` was
/// read (status, holds, what refunds took of it).
#[derive(Clone, Debug, PartialEq)]
pub struct Adjustment {
    pub before: Reward,
    pub after: Reward,
}

/// The most actions DynamoDB takes in one transaction.
pub const MAX_ACTIONS: usize = 100;

impl Plan {
    /// How many actions the plan's transaction has.
    pub fn actions(&self) -> usize {
        usize::from(self.event.is_some())
            + self.relations.len()
            + self.codes.len()
            + usize::from(self.signup.is_some())
            + usize::from(self.program_lock.is_some())
            + self.rewards.len()
            + self.releases.len()
            + self.adjustments.len()
            + self.spend.iter().filter(|s| s.add != 0).count()
            + self.days.iter().filter(|d| !d.is_empty()).count()
            + self
                .balances
                .values()
                .filter(|c| c.total_earned != 0 || c.current_balance != 0)
                .count()
            + self.stats.len()
            + usize::from(self.email_owner.is_some())
            + self.release_jobs.len()
            + self.finished_jobs.len()
    }

    /// The released rewards in their new state.
    pub fn released(&self) -> Vec<Reward> {
        self.releases.iter().map(|r| r.reward.clone()).collect()
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct EmailOwner {
    pub tenant: String,
    pub email: String,
    pub user_id: String,
}

/// Whose balance, in which currency.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct BalanceKey {
    pub tenant: String,
    pub user: String,
    pub currency: String,
}

/// A change of one balance.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BalanceChange {
    pub total_earned: i64,
    pub current_balance: i64,
}

impl Plan {
    /// Counts a new reward in its recipient's balance.
    pub fn earn(&mut self, reward: &Reward) {
        self.shift(reward, reward.balance_effect(), 1);
    }

    /// Counts a reward changing state from `before` to `after` (a release).
    pub fn change(&mut self, before: &Reward, after: &Reward) {
        self.shift(before, before.balance_effect(), -1);
        self.shift(after, after.balance_effect(), 1);
    }

    fn shift(&mut self, reward: &Reward, effect: BalanceEffect, sign: i64) {
        let change = self
            .balances
            .entry(BalanceKey {
                tenant: reward.tenant.clone(),
                user: reward.user_id.clone(),
                currency: reward.currency.clone(),
            })
            .or_default();
        change.total_earned += sign * effect.total_earned;
        change.current_balance += sign * effect.current_balance;
    }

    /// The counters of `code`, added to the plan if absent.
    pub fn code(&mut self, code: &str, tenant: &str) -> &mut CodeCounts {
        let index = match self.codes.iter().position(|c| c.code == code) {
            Some(index) => index,
            None => {
                self.codes.push(CodeCounts {
                    code: code.to_owned(),
                    tenant: tenant.to_owned(),
                    ..CodeCounts::default()
                });
                self.codes.len() - 1
            }
        };
        &mut self.codes[index]
    }

    /// Relies on (or raises, with `increment`) `referrer`'s qualified count read as `seen`.
    pub fn stats(
        &mut self,
        tenant: &str,
        referrer: &str,
        program_id: &str,
        seen: u64,
        increment: bool,
    ) {
        match self
            .stats
            .iter_mut()
            .find(|s| s.referrer == referrer && s.program_id == program_id)
        {
            Some(existing) => existing.increment |= increment,
            None => self.stats.push(StatsWrite {
                tenant: tenant.to_owned(),
                referrer: referrer.to_owned(),
                program_id: program_id.to_owned(),
                seen,
                increment,
            }),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum RelationWrite {
    New(Referral),
    /// Conditional on the stored version being `version - 1`.
    Replace(Referral),
}

/// Additions to a code's counters. A sign-up through the code (`referrals: 1`) needs it active.
/// `all_referrals` counts on the promoter item (the owner's primary code) every sign-up through
/// any of their codes.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CodeCounts {
    pub code: String,
    pub tenant: String,
    pub referrals: u64,
    pub all_referrals: u64,
    /// Per currency.
    pub referrer_earned: BTreeMap<String, i64>,
    pub referee_earned: BTreeMap<String, i64>,
    pub verification_attempts: u64,
    pub verification_successes: u64,
}

/// A sign-up counted in its code's program, under `limit` (the code's or the program's
/// `max_referrals`): exact under concurrency.
#[derive(Clone, Debug, PartialEq)]
pub struct SignupCount {
    pub tenant: String,
    pub code: String,
    pub program_id: String,
    pub limit: Option<u32>,
}

/// Marks a program as having relations (its currency is frozen), if its currency is still the
/// one the relation was decided in.
#[derive(Clone, Debug, PartialEq)]
pub struct ProgramLock {
    pub tenant: String,
    pub program_id: String,
    pub currency: String,
}

/// A referrer's qualified count in a program: read as `seen`; raised by one with `increment`,
/// else only checked.
#[derive(Clone, Debug, PartialEq)]
pub struct StatsWrite {
    pub tenant: String,
    pub referrer: String,
    pub program_id: String,
    pub seen: u64,
    pub increment: bool,
}

/// Held rewards of `user` in `program_id` to release: those of `relation_id` held for its
/// identity check (now passed), and with `min_referrals_met` the referrer's held for
/// `min_referrals`. What a plan could not hold, finished in chunks.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReleaseJob {
    pub tenant: String,
    pub user_id: String,
    pub program_id: String,
    pub relation_id: Option<String>,
    pub min_referrals_met: bool,
    #[serde(with = "crate::clock::rfc3339")]
    pub created: OffsetDateTime,
}

#[derive(Clone, Debug, PartialEq)]
pub struct EventRecord {
    pub tenant: String,
    pub kind: &'static str,
    pub event_id: String,
    /// A digest of the event's payload: the same id with another payload is refused.
    pub fingerprint: String,
    /// The JSON answer, replayed verbatim.
    pub response: String,
}

/// A processed event as recorded.
#[derive(Clone, Debug, PartialEq)]
pub struct RecordedEvent {
    pub fingerprint: Option<String>,
    pub response: String,
}

/// How applying a plan ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Committed {
    Done,
    /// The referred user already has a relation in this program.
    RelationTaken,
    /// The code is inactive or of another tenant.
    CodeRefused,
    /// The code has reached its limit in the program.
    LimitReached,
    /// The event was processed already.
    EventSeen,
    /// Something read has changed (relation version, qualified count, a held reward, the
    /// program's currency): re-read and decide again.
    Stale,
}

pub trait ReferralStore: Send + Sync {
    fn apply(&self, plan: &Plan) -> impl Future<Output = Result<Committed>> + Send;

    /// The relations in which `user` was referred (one per program): one `Query`.
    fn relations_of_referred(
        &self,
        tenant: &str,
        user: &str,
    ) -> impl Future<Output = Result<Vec<Referral>>> + Send;

    /// A relation by id: one `Query` on GSI2.
    fn relation_by_id(
        &self,
        tenant: &str,
        id: &str,
    ) -> impl Future<Output = Result<Option<Referral>>> + Send;

    /// The rewards a relation gave: one `Query` per recipient partition.
    fn relation_rewards(
        &self,
        relation: &Referral,
    ) -> impl Future<Output = Result<Vec<Reward>>> + Send;

    /// A page of a relation's rewards: the referrer's, then the referred user's, each by id.
    fn relation_rewards_page(
        &self,
        relation: &Referral,
        page: &PageRequest,
    ) -> impl Future<Output = Result<Page<Reward>>> + Send;

    /// `user`'s held rewards in `program_id` (of one relation, if given), as recipient
    /// `recipient` if given: one `Query`, strongly consistent.
    fn held_rewards(
        &self,
        tenant: &str,
        user: &str,
        program_id: &str,
        relation_id: Option<&str>,
    ) -> impl Future<Output = Result<Vec<Reward>>> + Send;

    /// The record of a processed event.
    fn recorded_event(
        &self,
        tenant: &str,
        kind: &str,
        event_id: &str,
    ) -> impl Future<Output = Result<Option<RecordedEvent>>> + Send;

    /// Qualified referrals of `referrer` in `program_id`.
    fn qualified_referrals(
        &self,
        tenant: &str,
        referrer: &str,
        program_id: &str,
    ) -> impl Future<Output = Result<u64>> + Send;

    /// Rewards by (recipient, id), those that exist: one `BatchGetItem` per hundred.
    fn rewards_by_id(
        &self,
        tenant: &str,
        ids: &[(String, String)],
    ) -> impl Future<Output = Result<Vec<Reward>>> + Send;

    /// Rewards held for a holding period that ended by `before`, soonest first, at most
    /// `limit`: one `Query` on the sparse index of held rewards by due time (eventually
    /// consistent; releases are conditioned on what they read).
    fn due_rewards(
        &self,
        before: OffsetDateTime,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Reward>>> + Send;

    /// The tenant's promoters paying out to `method`'s address: one `GetItem`.
    fn payout_address_users(
        &self,
        tenant: &str,
        method: &PayoutMethod,
    ) -> impl Future<Output = Result<Vec<String>>> + Send;

    /// The relations `referrer` referred since `since` (their ids are ULIDs: time-ordered): one
    /// `Query` (GSI1, `Select: COUNT`).
    fn referrals_since(
        &self,
        tenant: &str,
        referrer: &str,
        since: OffsetDateTime,
    ) -> impl Future<Output = Result<u64>> + Send;

    /// The days of `of` from `from` to `to` (UTC dates, inclusive) that have figures: one `Query`.
    fn days(
        &self,
        of: &DaysOf,
        from: &str,
        to: &str,
    ) -> impl Future<Output = Result<Vec<crate::domain::stats::DayFigures>>> + Send;

    /// The top `limit` referrers of a program's leaderboard of one period by sign-ups or by
    /// earnings: one `Query` of a numeric index, descending.
    fn leaders(
        &self,
        tenant: &str,
        program_id: &str,
        period: &str,
        by_earnings: bool,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<crate::domain::stats::Leader>>> + Send;

    /// The counters `counters` as read (strongly consistent; absent ones are 0), in order.
    fn counters(&self, counters: &[Counter]) -> impl Future<Output = Result<Vec<i64>>> + Send;

    /// Release jobs not finished, created before `before`, oldest first, at most `limit`.
    fn release_jobs_before(
        &self,
        before: OffsetDateTime,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<ReleaseJob>>> + Send;
}

/// How one email's invitation went.
#[derive(Debug, PartialEq, Eq)]
pub enum Invited {
    /// Saved (or already this promoter's).
    Saved,
    /// Another promoter of the tenant invited it first.
    TakenByAnother,
}

pub trait InvitationStore: Send + Sync {
    /// Writes each invitation unless another promoter holds the email; answers in order.
    fn invite(
        &self,
        invitations: &[crate::domain::invitation::Invitation],
    ) -> impl Future<Output = Result<Vec<Invited>>> + Send;

    /// The invitations of those emails that have one.
    fn invitations(
        &self,
        tenant: &str,
        emails: &[String],
    ) -> impl Future<Output = Result<Vec<crate::domain::invitation::Invitation>>> + Send;

    /// The user a sign-up reported `email` for, if any.
    fn email_owner(
        &self,
        tenant: &str,
        email: &str,
    ) -> impl Future<Output = Result<Option<String>>> + Send;
}

/// Whether a reward may be delivered now.
#[derive(Debug, PartialEq)]
pub enum Claim {
    /// Claimed for `lease`: deliver it.
    Deliver(Box<Reward>),
    /// Credited or failed already: nothing to do.
    Settled,
    /// Another delivery holds it: try later.
    Busy,
    /// No such reward.
    Missing,
}

pub trait BillingStore: Send + Sync {
    /// Claims a `pending` reward for delivery until `now + lease`, so that duplicates of its
    /// message call billing once. One `UpdateItem` (+ one `GetItem` when refused).
    fn claim(
        &self,
        tenant: &str,
        user: &str,
        reward_id: &str,
        now: OffsetDateTime,
        lease: time::Duration,
    ) -> impl Future<Output = Result<Claim>> + Send;

    /// Billing accepted it: `credited`, out of the undelivered index. Once.
    fn mark_credited(
        &self,
        reward: &Reward,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<bool>> + Send;

    /// Billing refused it, or retries ran out: `failed` with `error`, in the tenant's failed index.
    fn mark_failed(
        &self,
        reward: &Reward,
        error: &str,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<bool>> + Send;

    /// An attempt failed and will be retried: records the error and frees the claim.
    fn record_attempt(
        &self,
        reward: &Reward,
        error: &str,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Rewards `pending` since before `before`, oldest first, at most `limit`.
    fn undelivered_before(
        &self,
        before: OffsetDateTime,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Reward>>> + Send;

    /// A page of the tenant's rewards of one status, latest change first: one `Query` (GSI3).
    fn rewards_by_status(
        &self,
        tenant: &str,
        status: RewardStatus,
        page: &PageRequest,
    ) -> impl Future<Output = Result<Page<Reward>>> + Send;

    /// A failed reward back to `pending` (and into the undelivered index); `false` if it is not
    /// failed (anymore).
    fn requeue(
        &self,
        reward: &Reward,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<bool>> + Send;
}

/// A write to an API key that goes with a write of its tenant (in one transaction).
#[derive(Clone, Debug, PartialEq)]
pub enum KeyWrite {
    /// A new key (its digest must be new).
    Insert(ApiKey),
    /// Revocation: the key with this digest is deleted.
    Delete(String),
    /// The tenant's status, copied onto the key with this digest (which must exist).
    Status(String, TenantStatus),
}

pub trait TenantStore: Send + Sync {
    /// Writes `next` if the stored tenant has version `expected` (`None`: only if the id is
    /// free), with `keys` in the same transaction; `Stale` if the version (or the id) was taken.
    fn write_tenant(
        &self,
        expected: Option<u64>,
        next: &Tenant,
        keys: &[KeyWrite],
    ) -> impl Future<Output = Result<Replaced>> + Send;

    fn get_tenant(&self, id: &str) -> impl Future<Output = Result<Option<Tenant>>> + Send;

    /// Every tenant, by id.
    fn list_tenants(&self, page: &PageRequest)
    -> impl Future<Output = Result<Page<Tenant>>> + Send;

    /// The key with this digest: one `GetItem`.
    fn get_api_key(&self, digest: &str) -> impl Future<Output = Result<Option<ApiKey>>> + Send;

    /// The keys with these digests (those that exist): one `BatchGetItem`.
    fn api_keys(&self, digests: Vec<String>) -> impl Future<Output = Result<Vec<ApiKey>>> + Send;

    /// Sets the key's `last_used_at` to `now` if it is older than `stale_before` (or unset).
    fn touch_api_key(
        &self,
        digest: &str,
        now: OffsetDateTime,
        stale_before: OffsetDateTime,
    ) -> impl Future<Output = Result<()>> + Send;
}

/// The outbox's storage: events kept for replay (and the endpoints events fan out to, from
/// [`WebhookStore`]).
pub trait OutboxStore: WebhookStore {
    /// Keeps `events` (written again unchanged if the same change is read twice).
    fn record_events(&self, events: &[Event]) -> impl Future<Output = Result<()>> + Send;

    /// Adds clicks to days' figures: one `UpdateItem` per day, in parallel.
    fn add_clicks(&self, clicks: &[(Day, i64)]) -> impl Future<Output = Result<()>> + Send;
}

/// Webhook endpoints, the events kept for replay, deliveries requested and the delivery log.
pub trait WebhookStore: Send + Sync {
    /// A tenant's webhook endpoints, enabled or not, oldest first: one `Query`.
    fn webhook_endpoints(
        &self,
        tenant: &str,
    ) -> impl Future<Output = Result<Vec<WebhookEndpoint>>> + Send;

    /// Writes a new endpoint and counts it, unless the tenant has `max` already (`false`).
    fn insert_endpoint(
        &self,
        endpoint: &WebhookEndpoint,
        max: usize,
    ) -> impl Future<Output = Result<bool>> + Send;

    fn get_endpoint(
        &self,
        tenant: &str,
        id: &str,
    ) -> impl Future<Output = Result<Option<WebhookEndpoint>>> + Send;

    /// Replaces the endpoint if its stored version is still `expected`.
    fn replace_endpoint(
        &self,
        expected: u64,
        next: &WebhookEndpoint,
    ) -> impl Future<Output = Result<Replaced>> + Send;

    /// Deletes the endpoint and uncounts it, if it is still the version read (`false`: it
    /// changed; re-read).
    fn delete_endpoint(
        &self,
        endpoint: &WebhookEndpoint,
    ) -> impl Future<Output = Result<bool>> + Send;

    /// A kept event.
    fn get_event(
        &self,
        tenant: &str,
        id: &str,
    ) -> impl Future<Output = Result<Option<Event>>> + Send;

    /// Writes a request for deliveries (the outbox dispatcher sends them).
    fn request_deliveries(
        &self,
        request: &crate::domain::webhook::delivery::DeliveryRequest,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Adds an attempt to the delivery log of its (endpoint, event): one `UpdateItem`.
    fn record_attempt(
        &self,
        record: &crate::domain::webhook::delivery::AttemptRecord,
    ) -> impl Future<Output = Result<()>> + Send;

    /// A page of an endpoint's delivery log, newest event first: one `Query`.
    fn deliveries(
        &self,
        tenant: &str,
        endpoint_id: &str,
        page: &PageRequest,
    ) -> impl Future<Output = Result<Page<crate::domain::webhook::delivery::DeliveryLog>>> + Send;
}
