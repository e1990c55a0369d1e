//! The store port: what the domain needs from persistence, in domain types. Its one adapter is
//! [`dynamo::DynamoStore`], which the functions run against DynamoDB in AWS and against the
//! emulator locally and in tests.

pub mod dynamo;

use std::future::Future;

use time::OffsetDateTime;

pub use crate::code::CodeItem;
use crate::code::ReferralCode;
use crate::error::Result;
use crate::ledger::{Payout, Reward};
use crate::page::{Page, PageRequest};
use crate::program::Program;
use crate::promoter::{PayoutMethod, Promoter};
use crate::referral::Referral;

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
