//! Referrals endpoint group (seeds 000, 002, 004): sign-ups and events from the tenant's backend
//! (role `service`), relations for admins and the backend, admin completion.
//!
//! | route                              | DynamoDB                                                            |
//! |------------------------------------|---------------------------------------------------------------------|
//! | `POST /v1/referrals`               | reads in parallel (code, programs, referee's promoter guard) + 1 `TransactWriteItems` |
//! | `GET /v1/referrals/{id}`           | 1 `Query` (GSI2)                                                    |
//! | `GET /v1/referrals?user=`          | 2 `Query`s in parallel (as referred, as referrer)                   |
//! | `GET /v1/referrals/{id}/explain`   | 1 `Query` + 3 reads in parallel (program, the two sides' rewards) (+ 1 `GetItem`: a `min_referrals` hold) |
//! | `POST /v1/referrals/{id}/complete` | 1 `Query` + 2 reads in parallel + 1 `TransactWriteItems`            |
//! | `POST /v1/referrals/complete`      | resolving each user (`GetItem` per code or email) + 1 `Query` + as above |
//! | `POST /v1/events/invoices`         | 1 `GetItem` (replay) + reads in parallel (relations, programs, promoter guard) + 1 `TransactWriteItems` |
//! | `POST /v1/events/verifications`    | as invoices, + 2 `Query`s of the relation's rewards on a first success |
//! | `POST /v1/events/refunds`          | 1 `GetItem` (replay) + reads in parallel (relations, programs), 2 `Query`s per paid relation (its rewards) + 1 `TransactWriteItems` |
//! | `GET /v1/rewards?status=failed`    | 1 `Query` (GSI2, the tenant's failed rewards)                       |
//! | `POST /v1/rewards/{id}/retry`      | 2 `Query`s (relation, its rewards) + 1 `UpdateItem`                 |
//! | `POST /v1/rewards/{id}/approve`, `/deny` | 3 `Query`s (relation, its two users' rewards) + 1 `TransactWriteItems` (reward, balance) |
//! | `POST /v1/rewards/approve` (≤ 100 ids) | 3 `Query`s per relation + 1 `TransactWriteItems` per 40 approvals |
//!
//! No route sends to SQS: a `pending` reward an operation commits reaches the billing queue
//! through the table's stream (the outbox dispatcher, `functions/dispatcher`).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use referral::Result;
use referral::domain::ledger::Reward;
use referral::domain::ledger::rewards;
use referral::domain::referral::{
    self as relations, CompleteByUsers, Completion, Invoice, InvoiceOutcome, Outcome, Referral,
    Refund, RefundOutcome, SignUp, Verification, VerificationResult,
};
use referral::http::{Admin, AppState, Backoffice, JsonBody, Pagination, QueryParams, Service};
use referral::page::Page;
use serde::Deserialize;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/referrals", post(sign_up).get(find))
        .route("/v1/referrals/{id}", get(read))
        .route("/v1/referrals/{id}/rewards", get(relation_rewards))
        .route("/v1/referrals/{id}/explain", get(explain))
        .route("/v1/referrals/complete", post(complete_between))
        .route("/v1/referrals/{id}/complete", post(complete))
        .route("/v1/events/invoices", post(invoice))
        .route("/v1/events/verifications", post(verification))
        .route("/v1/events/refunds", post(refund))
        .route("/v1/rewards", get(rewards))
        .route("/v1/rewards/{id}/retry", post(retry))
        .route("/v1/rewards/{id}/approve", post(approve))
        .route("/v1/rewards/{id}/deny", post(deny))
        .route("/v1/rewards/approve", post(approve_many))
}

#[derive(Deserialize)]
struct RewardQuery {
    status: Option<String>,
}

async fn rewards(
    State(state): State<AppState>,
    admin: Admin,
    QueryParams(query): QueryParams<RewardQuery>,
    Pagination(page): Pagination,
) -> Result<Json<Page<Reward>>> {
    Ok(Json(
        rewards::rewards_by_status(&state.store, &admin.tenant, query.status.as_deref(), &page)
            .await?,
    ))
}

async fn relation_rewards(
    State(state): State<AppState>,
    caller: Backoffice,
    Path(id): Path<String>,
    Pagination(page): Pagination,
) -> Result<Json<Page<Reward>>> {
    Ok(Json(
        rewards::relation_rewards(&state.store, &caller.tenant, &id, &page).await?,
    ))
}

async fn retry(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Reward>)> {
    let reward = rewards::retry_reward(&state.store, &admin.tenant, &id).await?;
    Ok((StatusCode::ACCEPTED, Json(reward)))
}

async fn approve(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
) -> Result<Json<Reward>> {
    Ok(Json(
        rewards::decide(&state.store, &admin.tenant, &id, rewards::Decision::Approve).await?,
    ))
}

async fn deny(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
    JsonBody(denial): JsonBody<rewards::Denial>,
) -> Result<Json<Reward>> {
    let decision = denial.decision()?;
    Ok(Json(
        rewards::decide(&state.store, &admin.tenant, &id, decision).await?,
    ))
}

async fn approve_many(
    State(state): State<AppState>,
    admin: Admin,
    JsonBody(input): JsonBody<rewards::BulkApproval>,
) -> Result<Json<rewards::BulkApproved>> {
    Ok(Json(
        rewards::approve_many(&state.store, &admin.tenant, input).await?,
    ))
}

async fn sign_up(
    State(state): State<AppState>,
    service: Service,
    JsonBody(input): JsonBody<SignUp>,
) -> Result<(StatusCode, Json<Outcome>)> {
    let outcome =
        relations::register_referral(&state.store, &service.tenant, &input, &state.fingerprints)
            .await?;
    Ok((StatusCode::CREATED, Json(outcome)))
}

async fn explain(
    State(state): State<AppState>,
    caller: Backoffice,
    Path(id): Path<String>,
) -> Result<Json<relations::explain::Explanation>> {
    Ok(Json(
        relations::explain::explain_referral(&state.store, &caller.tenant, &id).await?,
    ))
}

async fn read(
    State(state): State<AppState>,
    caller: Backoffice,
    Path(id): Path<String>,
) -> Result<Json<Referral>> {
    Ok(Json(
        relations::read_referral(&state.store, &caller.tenant, &id).await?,
    ))
}

#[derive(Deserialize)]
struct ByUser {
    user: Option<String>,
}

async fn find(
    State(state): State<AppState>,
    caller: Backoffice,
    QueryParams(query): QueryParams<ByUser>,
    Pagination(page): Pagination,
) -> Result<Json<Page<Referral>>> {
    let user = query
        .user
        .ok_or_else(|| referral::Error::invalid("user", "is required: ?user=<user id>"))?;
    Ok(Json(
        relations::referrals_of_user(&state.store, &caller.tenant, &user, &page).await?,
    ))
}

async fn complete(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
) -> Result<Json<Completion>> {
    let completion = relations::complete_referral(&state.store, &admin.tenant, &id).await?;
    Ok(Json(completion))
}

async fn complete_between(
    State(state): State<AppState>,
    admin: Admin,
    JsonBody(input): JsonBody<CompleteByUsers>,
) -> Result<Json<Completion>> {
    let completion = relations::complete_between(&state.store, &admin.tenant, &input).await?;
    Ok(Json(completion))
}

async fn invoice(
    State(state): State<AppState>,
    service: Service,
    JsonBody(invoice): JsonBody<Invoice>,
) -> Result<Json<InvoiceOutcome>> {
    let outcome = relations::record_invoice(&state.store, &service.tenant, &invoice).await?;
    Ok(Json(outcome))
}

async fn refund(
    State(state): State<AppState>,
    service: Service,
    JsonBody(refund): JsonBody<Refund>,
) -> Result<Json<RefundOutcome>> {
    let outcome = relations::record_refund(&state.store, &service.tenant, &refund).await?;
    Ok(Json(outcome))
}

async fn verification(
    State(state): State<AppState>,
    service: Service,
    JsonBody(check): JsonBody<Verification>,
) -> Result<Json<VerificationResult>> {
    let result = relations::record_verification(&state.store, &service.tenant, &check).await?;
    Ok(Json(result))
}
