//! The store port: what the domain needs from persistence, in domain types. Its one adapter is
//! [`dynamo::DynamoStore`], which the functions run against DynamoDB in AWS and against the
//! emulator locally and in tests.

pub mod dynamo;

use std::future::Future;

use time::OffsetDateTime;

use crate::domain::code::ReferralCode;
use crate::domain::ledger::{Payout, Reward};
use crate::domain::program::Program;
pub use crate::domain::promoter::CodeItem;
use crate::domain::promoter::{PayoutMethod, Promoter};
use crate::domain::referral::Referral;
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

/// What a promoter may change about themselves.
#[derive(Clone, Debug, PartialEq)]
pub enum PromoterChange {
    PayoutMethod(PayoutMethod),
    MinWithdrawalBalance(i64),
}

pub trait PromoterStore: Send + Sync {
    /// The user's promoter through GSI1: one `Query`.
    fn find_promoter(
        &self,
        tenant: &str,
        user: &str,
    ) -> impl Future<Output = Result<Option<Promoter>>> + Send;

    /// The user's promoter through its guard, strongly consistent: two `GetItem`s. Used after
    /// losing a creation race.
    fn read_promoter(
        &self,
        tenant: &str,
        user: &str,
    ) -> impl Future<Output = Result<Option<Promoter>>> + Send;

    /// The promoter in the item of its primary code, strongly consistent.
    fn promoter_by_code(&self, code: &str)
    -> impl Future<Output = Result<Option<Promoter>>> + Send;

    /// Writes a new promoter and its user guard atomically.
    fn insert_promoter(&self, promoter: &Promoter)
    -> impl Future<Output = Result<Inserted>> + Send;

    fn update_promoter(
        &self,
        promoter: &Promoter,
        change: &PromoterChange,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<Promoter>> + Send;

    /// The user's rewards created at or after `since`: one `Query` on the ledger index.
    fn rewards_since(
        &self,
        tenant: &str,
        user: &str,
        since: OffsetDateTime,
    ) -> impl Future<Output = Result<Vec<Reward>>> + Send;

    /// Every relation `referrer` referred, newest first.
    fn referrals_of(
        &self,
        tenant: &str,
        referrer: &str,
    ) -> impl Future<Output = Result<Vec<Referral>>> + Send;

    /// The user's payouts, newest first.
    fn payouts_of(
        &self,
        tenant: &str,
        user: &str,
        page: &PageRequest,
    ) -> impl Future<Output = Result<Page<Payout>>> + Send;

    /// Sets the balance of `seen` to 0 and writes `payout`, if the balance is still the one
    /// read; `false` when it moved.
    fn request_payout(
        &self,
        seen: &Promoter,
        payout: &Payout,
    ) -> impl Future<Output = Result<bool>> + Send;

    fn get_payout(
        &self,
        tenant: &str,
        id: &str,
    ) -> impl Future<Output = Result<Option<Payout>>> + Send;

    /// Marks `payout` paid and adds it to the promoter's `total_paid`; `false` if it was paid
    /// already.
    fn mark_paid(
        &self,
        payout: &Payout,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<bool>> + Send;
}

pub trait CodeStore: Send + Sync {
    fn get_code(&self, code: &str) -> impl Future<Output = Result<Option<CodeItem>>> + Send;

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

    /// Adds a click to an active code; `false` (nothing counted) for an unknown or inactive one.
    fn count_click(&self, code: &str) -> impl Future<Output = Result<bool>> + Send;

    /// The user's codes (promoter item first, then extra codes): one `Query`.
    fn codes_of(
        &self,
        tenant: &str,
        user: &str,
    ) -> impl Future<Output = Result<Vec<CodeItem>>> + Send;
}

/// Everything one sign-up or event writes, applied atomically in one `TransactWriteItems`.
#[derive(Clone, Debug, Default)]
pub struct Plan {
    /// Relations: new (the "referred once per program" rule), or replacing the version before.
    pub relations: Vec<RelationWrite>,
    /// Counters of the codes relations came through (and a sign-up's limit); several entries of
    /// one code are added up into one update.
    pub codes: Vec<CodeCounts>,
    /// New ledger entries (deterministic ids: a replay cannot write them twice).
    pub rewards: Vec<Reward>,
    /// Held rewards released, in their new state (only if still held).
    pub releases: Vec<Reward>,
    /// Balance changes per promoter item (keyed by the promoter's primary code).
    pub balances: std::collections::BTreeMap<String, Balance>,
    /// A referral qualifying towards the referrer's `min_referrals`.
    pub qualified: Option<Qualification>,
    /// The event's record, with the answer a replay gets.
    pub event: Option<EventRecord>,
    /// The user an email belongs to, as a sign-up reported it (last sign-up wins).
    pub email_owner: Option<EmailOwner>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct EmailOwner {
    pub tenant: String,
    pub email: String,
    pub user_id: String,
}

/// A change of a promoter's balances; `currency` sets the balances' currency if unset.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Balance {
    pub effect: crate::domain::ledger::BalanceEffect,
    pub currency: Option<String>,
}

impl Balance {
    /// Counts a new reward.
    pub fn add(&mut self, reward: &Reward) {
        self.shift(reward.balance_effect(), 1);
        if reward.kind == crate::domain::program::RewardKind::Cash && self.currency.is_none() {
            self.currency = Some(reward.currency.clone());
        }
    }

    /// Counts a reward changing state from `before` to `after` (a release).
    pub fn change(&mut self, before: &Reward, after: &Reward) {
        self.shift(before.balance_effect(), -1);
        self.add(after);
    }

    fn shift(&mut self, effect: crate::domain::ledger::BalanceEffect, sign: i64) {
        self.effect.total_earned += sign * effect.total_earned;
        self.effect.current_balance += sign * effect.current_balance;
        self.effect.points_earned += sign * effect.points_earned;
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum RelationWrite {
    New(Referral),
    /// Conditional on the stored version being `version - 1`.
    Replace(Referral),
}

impl Plan {
    /// The counters of `code`, added to the plan if absent.
    pub fn code(&mut self, code: &str, tenant: &str) -> &mut CodeCounts {
        match self.codes.iter().position(|c| c.code == code) {
            Some(index) => &mut self.codes[index],
            None => {
                self.codes.push(CodeCounts {
                    code: code.to_owned(),
                    tenant: tenant.to_owned(),
                    ..CodeCounts::default()
                });
                self.codes.last_mut().expect("just pushed")
            }
        }
    }
}

/// Additions to a code's counters. A sign-up (`referrals: 1`) needs the code active and, with a
/// `limit`, fewer referrals than it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CodeCounts {
    pub code: String,
    pub tenant: String,
    pub referrals: u64,
    pub limit: Option<u32>,
    pub referrer_earned: i64,
    pub referee_earned: i64,
    pub verification_attempts: u64,
    pub verification_successes: u64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Qualification {
    pub tenant: String,
    pub referrer: String,
    pub program_id: String,
    /// The count read; the increment is conditional on it, so a release decision is exact.
    pub seen: u64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct EventRecord {
    pub tenant: String,
    pub kind: &'static str,
    pub event_id: String,
    /// The JSON answer, replayed verbatim.
    pub response: String,
}

/// How applying a plan ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Committed {
    Done,
    /// The referred user already has a relation in this program.
    RelationTaken,
    /// The code is inactive, of another tenant, or at its limit.
    CodeRefused,
    /// The event was processed already.
    EventSeen,
    /// Something read has changed (relation version, qualified count, a held reward): re-read
    /// and decide again.
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

    /// The held referrer rewards of `program_id` in `referrer`'s ledger: one `Query`.
    fn held_referrer_rewards(
        &self,
        tenant: &str,
        referrer: &str,
        program_id: &str,
    ) -> impl Future<Output = Result<Vec<Reward>>> + Send;

    /// The recorded answer of a processed event.
    fn event_response(
        &self,
        tenant: &str,
        kind: &str,
        event_id: &str,
    ) -> impl Future<Output = Result<Option<String>>> + Send;

    /// Qualified referrals of `referrer` in `program_id`.
    fn qualified_referrals(
        &self,
        tenant: &str,
        referrer: &str,
        program_id: &str,
    ) -> impl Future<Output = Result<u64>> + Send;

    /// The primary code of `user`'s promoter, if the user is one: one `GetItem` of the guard.
    fn promoter_code_of(
        &self,
        tenant: &str,
        user: &str,
    ) -> impl Future<Output = Result<Option<String>>> + Send;
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

    /// The tenant's failed rewards.
    fn failed_rewards(
        &self,
        tenant: &str,
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
