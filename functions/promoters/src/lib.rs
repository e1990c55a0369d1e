//! Promoters endpoint group: a promoter's own data on `/v1/promoters/me…` (role `promoter`),
//! admin look-ups and payout settlement (role `admin`).
//!
//! | route                                        | DynamoDB                                         |
//! |----------------------------------------------|--------------------------------------------------|
//! | `GET /v1/promoters/me`                       | 1 `Query` (GSI1: promoter + balances); first call: + 1 `TransactWriteItems` + 1 `Query` (balances earned before) |
//! | `PATCH /v1/promoters/me/payout-method`       | 1 `Query` + 1 `UpdateItem`                       |
//! | `PATCH /v1/promoters/me/min-withdrawal-balance` | 1 `Query` + 1 `UpdateItem`                    |
//! | `GET /v1/promoters/me/earnings/recent`       | 2 `Query`s in parallel (ledger index, balances)  |
//! | `GET /v1/promoters/me/referrals`             | 1 `Query` (promoter) + 1 `Query` (the page) + 1 `BatchGetItem` (commission statuses); `?page=n` + the pages before it |
//! | `GET /v1/promoters/me/rewards`               | 1 `Query` (ledger index; a status filter reads on, at most 4) |
//! | `GET /v1/promoters/me/payouts`               | 1 `Query`                                        |
//! | `GET /v1/promoters/me/stats`                 | 1 `Query` (the promoter's day items of the range) |
//! | `POST /v1/promoters/me/payouts`              | 1 `Query` + 1 `TransactWriteItems`              |
//! | `GET /v1/promoters/me/statement`             | 3 `Query`s in parallel (relations, programs, balances) |
//! | `GET /v1/promoters`                          | 1 `Query` (GSI3: the tenant's promoters of a status, by user id); `?code=`: 1-2 `GetItem`s |
//! | `GET /v1/payouts`                            | 1 `Query` (GSI3: the tenant's payouts of a status, newest first) |
//! | `GET /v1/promoters/{user_id}`                | 1 `Query`                                        |
//! | `PATCH /v1/promoters/{user_id}`              | 1 `Query` + 1 `UpdateItem`                       |
//! | `GET /v1/promoters/{user_id}/statement`      | as `/me/statement`                               |
//! | `POST /v1/payouts/{id}/paid`                 | 1 `GetItem` + 1 `TransactWriteItems`             |

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::http::StatusCode;
use axum::routing::{get, patch, post};
use axum::{Json, Router};
use referral::Result;
use referral::domain::ledger::{Payout, Reward};
use referral::domain::promoter::{
    self, AdminChange, DayEarnings, MinWithdrawal, PayoutMethod, PromoterQuery, PromoterSummary,
    PromoterView, ReferralList, ReferralListQuery, Statement, Withdrawal,
};
use referral::http::{
    Admin, AppState, Backoffice, JsonBody, OptionalJsonBody, Pagination, PromoterUser,
    PublicBaseUrl, QueryParams,
};
use referral::page::Page;
use referral::store::PromoterChange;
use serde::Deserialize;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/promoters/me", get(me))
        .route("/v1/promoters/me/payout-method", patch(set_payout_method))
        .route(
            "/v1/promoters/me/min-withdrawal-balance",
            patch(set_min_withdrawal),
        )
        .route("/v1/promoters/me/earnings/recent", get(recent_earnings))
        .route("/v1/promoters/me/referrals", get(referrals))
        .route("/v1/promoters/me/payouts", get(payouts).post(withdraw))
        .route("/v1/promoters/me/statement", get(statement))
        .route("/v1/promoters/me/rewards", get(my_rewards))
        .route("/v1/promoters/me/stats", get(my_stats))
        .route("/v1/promoters", get(list_promoters))
        .route("/v1/payouts", get(list_payouts))
        .route(
            "/v1/promoters/{user_id}",
            get(promoter_of).patch(admin_change),
        )
        .route("/v1/promoters/{user_id}/statement", get(statement_of))
        .route("/v1/payouts/{id}/paid", post(mark_paid))
}

async fn list_promoters(
    State(state): State<AppState>,
    admin: Admin,
    QueryParams(query): QueryParams<PromoterQuery>,
    Pagination(page): Pagination,
) -> Result<Json<Page<PromoterSummary>>> {
    Ok(Json(
        promoter::list_promoters(&state.store, &admin.tenant, &query, &page).await?,
    ))
}

#[derive(Deserialize)]
struct PayoutQuery {
    status: Option<String>,
}

async fn list_payouts(
    State(state): State<AppState>,
    admin: Admin,
    QueryParams(query): QueryParams<PayoutQuery>,
    Pagination(page): Pagination,
) -> Result<Json<Page<Payout>>> {
    Ok(Json(
        promoter::list_payouts(&state.store, &admin.tenant, query.status.as_deref(), &page).await?,
    ))
}

async fn my_stats(
    State(state): State<AppState>,
    user: PromoterUser,
    QueryParams(range): QueryParams<referral::domain::stats::Range>,
) -> Result<Json<referral::domain::stats::Stats>> {
    Ok(Json(
        referral::domain::stats::promoter_stats(&state.store, &user.tenant, &user.user_id, &range)
            .await?,
    ))
}

async fn me(
    State(state): State<AppState>,
    user: PromoterUser,
    PublicBaseUrl(base): PublicBaseUrl,
    headers: HeaderMap,
) -> Result<Json<PromoterView>> {
    let mut promoter = promoter::get_or_create(&state.store, &user.tenant, &user.user_id).await?;
    // The promoter's own connection and device (API Gateway sets X-Forwarded-For; the
    // tenant's front end may send X-Device-Id): for the fraud rule `same_device`.
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let ip = header("x-forwarded-for")
        .and_then(|v| v.split(',').next())
        .map(str::trim);
    promoter::note_activity(
        &state.store,
        &mut promoter,
        ip,
        header("x-device-id"),
        &state.fingerprints,
    )
    .await;
    Ok(Json(promoter.view(&base)))
}

async fn set_payout_method(
    State(state): State<AppState>,
    user: PromoterUser,
    PublicBaseUrl(base): PublicBaseUrl,
    JsonBody(method): JsonBody<PayoutMethod>,
) -> Result<Json<PromoterView>> {
    let change = PromoterChange::PayoutMethod(method.validated()?);
    let promoter = promoter::change(&state.store, &user.tenant, &user.user_id, change).await?;
    Ok(Json(promoter.view(&base)))
}

async fn set_min_withdrawal(
    State(state): State<AppState>,
    user: PromoterUser,
    PublicBaseUrl(base): PublicBaseUrl,
    JsonBody(minimum): JsonBody<MinWithdrawal>,
) -> Result<Json<PromoterView>> {
    let change = PromoterChange::MinWithdrawalBalance(minimum.validated()?);
    let promoter = promoter::change(&state.store, &user.tenant, &user.user_id, change).await?;
    Ok(Json(promoter.view(&base)))
}

async fn recent_earnings(
    State(state): State<AppState>,
    user: PromoterUser,
) -> Result<Json<Vec<DayEarnings>>> {
    Ok(Json(
        promoter::recent(&state.store, &user.tenant, &user.user_id).await?,
    ))
}

async fn referrals(
    State(state): State<AppState>,
    user: PromoterUser,
    QueryParams(query): QueryParams<ReferralListQuery>,
) -> Result<Json<ReferralList>> {
    Ok(Json(
        promoter::referrals(&state.store, &user.tenant, &user.user_id, &query).await?,
    ))
}

async fn payouts(
    State(state): State<AppState>,
    user: PromoterUser,
    Pagination(page): Pagination,
) -> Result<Json<Page<Payout>>> {
    Ok(Json(
        promoter::payouts(&state.store, &user.tenant, &user.user_id, &page).await?,
    ))
}

async fn withdraw(
    State(state): State<AppState>,
    user: PromoterUser,
    OptionalJsonBody(input): OptionalJsonBody<Withdrawal>,
) -> Result<(StatusCode, Json<Payout>)> {
    let payout =
        promoter::request_payout(&state.store, &user.tenant, &user.user_id, &input).await?;
    Ok((StatusCode::CREATED, Json(payout)))
}

#[derive(Deserialize)]
struct RewardQuery {
    status: Option<String>,
}

async fn my_rewards(
    State(state): State<AppState>,
    user: PromoterUser,
    QueryParams(query): QueryParams<RewardQuery>,
    Pagination(page): Pagination,
) -> Result<Json<Page<Reward>>> {
    Ok(Json(
        promoter::rewards(
            &state.store,
            &user.tenant,
            &user.user_id,
            query.status.as_deref(),
            &page,
        )
        .await?,
    ))
}

async fn admin_change(
    State(state): State<AppState>,
    admin: Admin,
    PublicBaseUrl(base): PublicBaseUrl,
    Path(user_id): Path<String>,
    JsonBody(input): JsonBody<AdminChange>,
) -> Result<Json<PromoterView>> {
    let promoter = promoter::admin_change(&state.store, &admin.tenant, &user_id, &input).await?;
    Ok(Json(promoter.view(&base)))
}

async fn statement_of(
    State(state): State<AppState>,
    caller: Backoffice,
    Path(user_id): Path<String>,
) -> Result<Json<Statement>> {
    Ok(Json(
        promoter::statement_of(&state.store, &caller.tenant, &user_id).await?,
    ))
}

async fn statement(State(state): State<AppState>, user: PromoterUser) -> Result<Json<Statement>> {
    Ok(Json(
        promoter::statement_of(&state.store, &user.tenant, &user.user_id).await?,
    ))
}

async fn promoter_of(
    State(state): State<AppState>,
    admin: Admin,
    PublicBaseUrl(base): PublicBaseUrl,
    Path(user_id): Path<String>,
) -> Result<Json<PromoterView>> {
    let promoter = promoter::get(&state.store, &admin.tenant, &user_id).await?;
    Ok(Json(promoter.view(&base)))
}

async fn mark_paid(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
) -> Result<Json<Payout>> {
    Ok(Json(
        promoter::mark_paid(&state.store, &admin.tenant, &id).await?,
    ))
}
