//! Tenants endpoint group: who owns what. The operator (`OPERATOR_KEY`) creates, lists, changes
//! and suspends tenants; a tenant's admin reads and changes its settings, rotates its billing
//! secret and manages its API keys; its backend (or an admin) opens promoter sessions. Plus the
//! unauthenticated `GET /health` and `GET /openapi.yaml` (the API reference).
//!
//! | route                                    | DynamoDB                                       |
//! |------------------------------------------|------------------------------------------------|
//! | `POST /v1/tenants` (operator)            | 1 `TransactWriteItems` (tenant + first key)    |
//! | `GET /v1/tenants` (operator)             | 1 `Query` (GSI1 `TENANTS`)                     |
//! | `GET /v1/tenants/{id}` (operator)        | 1 `GetItem`                                    |
//! | `PATCH /v1/tenants/{id}` (operator)      | 1 `GetItem` + 1 `TransactWriteItems` (tenant, and each key on a status change) |
//! | `GET /v1/tenant` (admin)                 | 1 `GetItem` (cached per container)             |
//! | `PATCH /v1/tenant` (admin)               | 1 `GetItem` + 1 `TransactWriteItems`           |
//! | `POST /v1/tenant/billing-secret/rotate`  | 1 `GetItem` + 1 `TransactWriteItems`           |
//! | `POST /v1/api-keys` (admin)              | 1 `GetItem` + 1 `TransactWriteItems` (tenant + key) |
//! | `GET /v1/api-keys` (admin)               | 1 `GetItem` + 1 `BatchGetItem`                 |
//! | `DELETE /v1/api-keys/{id}` (admin)       | 1 `GetItem` + 1 `TransactWriteItems`           |
//! | `POST /v1/promoters/{user_id}/sessions`  | none (signed with the engine's current key)    |
//! | `GET /health`, `GET /openapi.yaml`       | none                                           |

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use referral::Result;
use referral::domain::tenant::{
    self, ApiKeyView, Changer, CreatedTenant, IssuedApiKey, NewApiKey, RotatedSecret, TenantInput,
    TenantView,
};
use referral::error::Error;
use referral::http::credentials::{Session, SessionRequest};
use referral::http::{
    Admin, AppState, Backoffice, JsonBody, Operator, OptionalJsonBody, Pagination,
};
use referral::page::Page;

/// The API reference this build answers at `GET /openapi.yaml`.
pub const OPENAPI: &str = include_str!("../../../openapi.yaml");

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/tenants", post(create_tenant).get(list_tenants))
        .route("/v1/tenants/{id}", get(read_tenant).patch(change_tenant))
        .route("/v1/tenant", get(own_tenant).patch(change_own_tenant))
        .route(
            "/v1/tenant/billing-secret/rotate",
            post(rotate_billing_secret),
        )
        .route("/v1/api-keys", post(issue_key).get(list_keys))
        .route("/v1/api-keys/{id}", delete(revoke_key))
        .route("/v1/promoters/{user_id}/sessions", post(open_session))
        .route("/health", get(health))
        .route("/openapi.yaml", get(openapi))
}

async fn create_tenant(
    State(state): State<AppState>,
    _: Operator,
    JsonBody(input): JsonBody<TenantInput>,
) -> Result<(StatusCode, Json<CreatedTenant>)> {
    let created = tenant::create(&state.store, input, state.outbound_policy()).await?;
    state.auth.forget_tenant(&created.tenant.id);
    Ok((StatusCode::CREATED, Json(created)))
}

async fn list_tenants(
    State(state): State<AppState>,
    _: Operator,
    Pagination(page): Pagination,
) -> Result<Json<Page<TenantView>>> {
    Ok(Json(tenant::list(&state.store, &page).await?))
}

async fn read_tenant(
    State(state): State<AppState>,
    _: Operator,
    Path(id): Path<String>,
) -> Result<Json<TenantView>> {
    Ok(Json(tenant::get(&state.store, &id).await?.view()))
}

async fn change_tenant(
    State(state): State<AppState>,
    _: Operator,
    Path(id): Path<String>,
    JsonBody(input): JsonBody<TenantInput>,
) -> Result<Json<TenantView>> {
    let changed = tenant::change(
        &state.store,
        &id,
        input,
        Changer::Operator,
        state.outbound_policy(),
    )
    .await?;
    state.auth.forget_tenant(&id);
    for digest in changed.api_keys.values() {
        state.auth.forget_key(digest);
    }
    Ok(Json(changed.view()))
}

/// A tenant the operator never created has no settings to read or change.
fn no_record(error: Error, tenant: &str) -> Error {
    match error {
        Error::NotFound(_) => Error::NotFound(format!(
            "the tenant '{tenant}' has no settings record: the operator creates tenants \
             (POST /v1/tenants); until then the engine's defaults apply"
        )),
        other => other,
    }
}

async fn own_tenant(State(state): State<AppState>, admin: Admin) -> Result<Json<TenantView>> {
    let tenant = tenant::get(&state.store, &admin.tenant)
        .await
        .map_err(|error| no_record(error, &admin.tenant))?;
    Ok(Json(tenant.view()))
}

async fn change_own_tenant(
    State(state): State<AppState>,
    admin: Admin,
    JsonBody(input): JsonBody<TenantInput>,
) -> Result<Json<TenantView>> {
    let changed = tenant::change(
        &state.store,
        &admin.tenant,
        input,
        Changer::Admin,
        state.outbound_policy(),
    )
    .await
    .map_err(|error| no_record(error, &admin.tenant))?;
    state.auth.forget_tenant(&admin.tenant);
    Ok(Json(changed.view()))
}

async fn rotate_billing_secret(
    State(state): State<AppState>,
    admin: Admin,
) -> Result<Json<RotatedSecret>> {
    let rotated = tenant::rotate_billing_secret(&state.store, &admin.tenant)
        .await
        .map_err(|error| no_record(error, &admin.tenant))?;
    state.auth.forget_tenant(&admin.tenant);
    Ok(Json(rotated))
}

async fn issue_key(
    State(state): State<AppState>,
    admin: Admin,
    JsonBody(input): JsonBody<NewApiKey>,
) -> Result<(StatusCode, Json<IssuedApiKey>)> {
    let issued = tenant::issue_key(&state.store, &admin.tenant, input)
        .await
        .map_err(|error| no_record(error, &admin.tenant))?;
    Ok((StatusCode::CREATED, Json(issued)))
}

#[derive(serde::Serialize)]
struct KeyList {
    items: Vec<ApiKeyView>,
}

async fn list_keys(State(state): State<AppState>, admin: Admin) -> Result<Json<KeyList>> {
    let items = tenant::keys(&state.store, &admin.tenant)
        .await
        .map_err(|error| no_record(error, &admin.tenant))?;
    Ok(Json(KeyList { items }))
}

async fn revoke_key(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    let digest = tenant::revoke_key(&state.store, &admin.tenant, &id).await?;
    state.auth.forget_key(&digest);
    Ok(StatusCode::NO_CONTENT)
}

async fn open_session(
    State(state): State<AppState>,
    caller: Backoffice,
    Path(user_id): Path<String>,
    OptionalJsonBody(request): OptionalJsonBody<SessionRequest>,
) -> Result<(StatusCode, Json<Session>)> {
    let session = state.auth.session(&caller.tenant, &user_id, &request)?;
    Ok((StatusCode::CREATED, Json(session)))
}

async fn health() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "ok"}))
}

async fn openapi() -> impl IntoResponse {
    ([(CONTENT_TYPE, "application/yaml")], OPENAPI)
}
