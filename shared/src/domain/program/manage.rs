//! What the programs routes do, over the store port: create, read, list, update, archive.

use crate::clock;
use crate::error::{Error, Result};
use crate::id;
use crate::page::{Page, PageRequest};
use crate::store::{ProgramStore, Replaced};

use super::{Program, ProgramInput};

/// Creates a program; its name is unique in the tenant (409 otherwise). One `TransactWriteItems`.
pub async fn create_program(
    store: &impl ProgramStore,
    tenant: &str,
    input: &ProgramInput,
) -> Result<Program> {
    let program = Program::create(id::new_id(), tenant, input, clock::now())?;
    store.insert_program(&program).await?;
    Ok(program)
}

/// The tenant's program `id`; 404 when it does not exist in this tenant. One `GetItem`.
pub async fn get_program(store: &impl ProgramStore, tenant: &str, id: &str) -> Result<Program> {
    if !id::is_id(id) {
        return Err(not_found(id));
    }
    store
        .get_program(tenant, id)
        .await?
        .ok_or_else(|| not_found(id))
}

/// A program as an admin reads it: with what it spent of its budget in the current period.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ProgramState {
    #[serde(flatten)]
    pub program: Program,
    /// Spent of `budget` in the current period (`budget_bucket`): rewards counted when earned
    /// (or released by an admin), less what reversals and refunds gave back. Absent without a
    /// budget.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub budget_used: Option<i64>,
    /// The current budget period: `total` or the month (`2026-11`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub budget_bucket: Option<String>,
}

/// The tenant's program `id` with its budget's state: one `GetItem`, and one more when it has
/// a budget.
pub async fn program_state(
    store: &(impl ProgramStore + crate::store::ReferralStore),
    tenant: &str,
    id: &str,
) -> Result<ProgramState> {
    use crate::domain::referral::booking::{budget_bucket, budget_counter};
    let program = get_program(store, tenant, id).await?;
    let (budget_used, bucket) = if program.budget.is_some() {
        let bucket = budget_bucket(&program, clock::now());
        let used = store
            .counters(&[budget_counter(tenant, &program.id, &bucket)])
            .await?;
        (used.first().copied(), Some(bucket))
    } else {
        (None, None)
    };
    Ok(ProgramState {
        program,
        budget_used,
        budget_bucket: bucket,
    })
}

/// A page of the tenant's programs, newest first. One `Query`.
pub async fn list_programs(
    store: &impl ProgramStore,
    tenant: &str,
    page: &PageRequest,
) -> Result<Page<Program>> {
    store.list_programs(tenant, page).await
}

/// Applies a partial update. The write is conditional on the version read, and a rename moves
/// the name guard in the same transaction, so concurrent updates neither lose changes nor break
/// name uniqueness. One `GetItem` plus one `PutItem` (a `TransactWriteItems` on rename).
pub async fn update_program(
    store: &impl ProgramStore,
    tenant: &str,
    id: &str,
    input: &ProgramInput,
) -> Result<Program> {
    let mut backoff = crate::backoff::Backoff::new();
    loop {
        let current = get_program(store, tenant, id).await?;
        if input.is_empty() {
            return Ok(current);
        }
        let next = current.patched(input, clock::now())?;
        match store.replace_program(&current, &next).await? {
            Replaced::Done => return Ok(next),
            Replaced::Stale => backoff.wait().await?,
        }
    }
}

/// Archives a program (no new referrals; history and name stay). Archiving an archived program
/// answers it unchanged. One `UpdateItem`.
pub async fn archive_program(store: &impl ProgramStore, tenant: &str, id: &str) -> Result<Program> {
    if !id::is_id(id) {
        return Err(not_found(id));
    }
    store
        .archive_program(tenant, id, clock::now())
        .await?
        .ok_or_else(|| not_found(id))
}

fn not_found(id: &str) -> Error {
    Error::NotFound(format!("no program {id}"))
}

/// Every program of the tenant, following pages (strongly consistent: sign-ups and events
/// decide on them).
pub async fn all_programs(store: &impl ProgramStore, tenant: &str) -> Result<Vec<Program>> {
    let mut programs = Vec::new();
    let mut page = PageRequest {
        limit: crate::page::MAX_LIMIT,
        cursor: None,
    };
    loop {
        let batch = store.list_programs(tenant, &page).await?;
        programs.extend(batch.items);
        match batch.next_cursor {
            Some(cursor) => page.cursor = Some(cursor),
            None => return Ok(programs),
        }
    }
}
