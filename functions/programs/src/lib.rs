//! Programs endpoint group (admin): referral programs of the caller's tenant.
//!
//! | route                       | DynamoDB                                          |
//! |-----------------------------|---------------------------------------------------|
//! | `POST /v1/programs`         | 1 `TransactWriteItems` (program + name guard); without a currency the tenant's default (cached) |
//! | `GET /v1/programs`          | 1 `Query`                                         |
//! | `GET /v1/programs/{id}`     | 1 `GetItem` (+ 1 for the budget used, with a budget) |
//! | `PATCH /v1/programs/{id}`   | 1 `GetItem` + 1 `PutItem` (rename: `TransactWriteItems`) |
//! | `DELETE /v1/programs/{id}`  | 1 `UpdateItem`                                    |
//! | `GET /v1/programs/{id}/stats` | 1 `GetItem` + 1 `Query` (the program's day items), in parallel |
//! | `GET /v1/programs/{id}/leaderboard` | 1 `GetItem` + 1 `Query` of at most 100 items (a numeric index), in parallel |

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use referral::Result;
use referral::domain::program::{self, Program, ProgramInput, ProgramState};
use referral::http::{Admin, AppState, JsonBody, Pagination, QueryParams};
use referral::page::Page;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/programs", post(create).get(list))
        .route("/v1/programs/{id}", get(read).patch(update).delete(archive))
        .route("/v1/programs/{id}/stats", get(stats))
        .route("/v1/programs/{id}/leaderboard", get(leaderboard))
}

async fn create(
    State(state): State<AppState>,
    admin: Admin,
    JsonBody(mut input): JsonBody<ProgramInput>,
) -> Result<(StatusCode, Json<Program>)> {
    if input.currency.is_none() {
        // The tenant's default currency (its settings, cached per container).
        input.currency = state
            .auth
            .tenant(&admin.tenant)
            .await?
            .and_then(|tenant| tenant.default_currency.clone());
    }
    let program = program::create_program(&state.store, &admin.tenant, &input).await?;
    Ok((StatusCode::CREATED, Json(program)))
}

async fn list(
    State(state): State<AppState>,
    admin: Admin,
    Pagination(page): Pagination,
) -> Result<Json<Page<Program>>> {
    Ok(Json(
        program::list_programs(&state.store, &admin.tenant, &page).await?,
    ))
}

async fn read(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
) -> Result<Json<ProgramState>> {
    Ok(Json(
        program::program_state(&state.store, &admin.tenant, &id).await?,
    ))
}

async fn stats(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
    QueryParams(range): QueryParams<referral::domain::stats::Range>,
) -> Result<Json<referral::domain::stats::Stats>> {
    Ok(Json(
        referral::domain::stats::program_stats(&state.store, &admin.tenant, &id, &range).await?,
    ))
}

async fn leaderboard(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
    QueryParams(query): QueryParams<referral::domain::stats::BoardQuery>,
) -> Result<Json<referral::domain::stats::Leaderboard>> {
    Ok(Json(
        referral::domain::stats::leaderboard(&state.store, &admin.tenant, &id, &query).await?,
    ))
}

async fn update(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
    JsonBody(input): JsonBody<ProgramInput>,
) -> Result<Json<Program>> {
    Ok(Json(
        program::update_program(&state.store, &admin.tenant, &id, &input).await?,
    ))
}

async fn archive(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
) -> Result<Json<Program>> {
    Ok(Json(
        program::archive_program(&state.store, &admin.tenant, &id).await?,
    ))
}
