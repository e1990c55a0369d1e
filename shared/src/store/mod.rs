//! The store port: what the domain needs from persistence, in domain types. Its one adapter is
//! [`dynamo::DynamoStore`], which the functions run against DynamoDB in AWS and against the
//! emulator locally and in tests.

pub mod dynamo;

use std::future::Future;

use time::OffsetDateTime;

use crate::error::Result;
use crate::page::{Page, PageRequest};
use crate::program::Program;

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
