//! Referrals endpoint group (seeds 000, 002, 004): sign-ups and events from the tenant's backend
//! (role `service`), relations for admins and the backend, admin completion.
//!
//! | route                              | DynamoDB                                                            |
//! |------------------------------------|---------------------------------------------------------------------|
//! | `POST /v1/referrals`               | reads in parallel (code, programs, referee's promoter guard) + 1 `TransactWriteItems` |
//! | `GET /v1/referrals/{id}`           | 1 `Query` (GSI2)                                                    |
//! | `GET /v1/referrals?user=`          | 2 `Query`s in parallel (as referred, as referrer)                   |
//! | `POST /v1/referrals/{id}/complete` | 1 `Query` + 2 reads in parallel + 1 `TransactWriteItems`            |
//! | `POST /v1/referrals/complete`      | resolving each user (`GetItem` per code or email) + 1 `Query` + as above |
//! | `POST /v1/events/invoices`         | 1 `GetItem` (replay) + reads in parallel (relations, programs, promoter guard) + 1 `TransactWriteItems` |
//! | `POST /v1/events/verifications`    | as invoices, + 2 `Query`s of the relation's rewards on a first success |

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use referral::Result;
use referral::http::{Admin, AppState, Backoffice, JsonBody, QueryParams, Service};
use referral::page::Page;
use referral::referral::{
    self as relations, CompleteByUsers, Completion, Invoice, InvoiceOutcome, Outcome, Referral,
    SignUp, Verification, VerificationResult,
};
use serde::Deserialize;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/referrals", post(sign_up).get(find))
        .route("/v1/referrals/{id}", get(read))
        .route("/v1/referrals/complete", post(complete_between))
        .route("/v1/referrals/{id}/complete", post(complete))
        .route("/v1/events/invoices", post(invoice))
        .route("/v1/events/verifications", post(verification))
}

async fn sign_up(
    State(state): State<AppState>,
    service: Service,
    JsonBody(input): JsonBody<SignUp>,
) -> Result<(StatusCode, Json<Outcome>)> {
    let outcome = relations::register_referral(&state.store, &service.tenant, &input).await?;
    Ok((StatusCode::CREATED, Json(outcome)))
}

async fn read(
    State(state): State<AppState>,
    caller: Backoffice,
    Path(id): Path<String>,
) -> Result<Json<Referral>> {
    Ok(Json(
        relations::get_referral(&state.store, &caller.tenant, &id).await?,
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
) -> Result<Json<Page<Referral>>> {
    let user = query
        .user
        .ok_or_else(|| referral::Error::invalid("user", "is required: ?user=<user id>"))?;
    let items = relations::referrals_of_user(&state.store, &caller.tenant, &user).await?;
    Ok(Json(Page {
        items,
        next_cursor: None,
    }))
}

async fn complete(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
) -> Result<Json<Completion>> {
    Ok(Json(
        relations::complete_referral(&state.store, &admin.tenant, &id).await?,
    ))
}

async fn complete_between(
    State(state): State<AppState>,
    admin: Admin,
    JsonBody(input): JsonBody<CompleteByUsers>,
) -> Result<Json<Completion>> {
    Ok(Json(
        relations::complete_between(&state.store, &admin.tenant, &input).await?,
    ))
}

async fn invoice(
    State(state): State<AppState>,
    service: Service,
    JsonBody(invoice): JsonBody<Invoice>,
) -> Result<Json<InvoiceOutcome>> {
    Ok(Json(
        relations::record_invoice(&state.store, &service.tenant, &invoice).await?,
    ))
}

async fn verification(
    State(state): State<AppState>,
    service: Service,
    JsonBody(check): JsonBody<Verification>,
) -> Result<Json<VerificationResult>> {
    Ok(Json(
        relations::record_verification(&state.store, &service.tenant, &check).await?,
    ))
}
