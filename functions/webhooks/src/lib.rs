//! Webhooks endpoint group (admin): a tenant's webhook endpoints, their signing secrets, test
//! events, replays of kept events and each endpoint's delivery log. Tests and replays are written
//! to the table and leave through the outbox like every event: no route sends to SQS.
//!
//! | route                                              | DynamoDB                                   |
//! |----------------------------------------------------|--------------------------------------------|
//! | `POST /v1/webhook-endpoints`                       | 1 `TransactWriteItems` (endpoint + counter) |
//! | `GET /v1/webhook-endpoints`                        | 1 `Query`                                  |
//! | `GET /v1/webhook-endpoints/{id}`                   | 1 `GetItem`                                |
//! | `PATCH /v1/webhook-endpoints/{id}`                 | 1 `GetItem` + 1 `PutItem` (versioned)      |
//! | `DELETE /v1/webhook-endpoints/{id}`                | 1 `GetItem` + 1 `TransactWriteItems` (endpoint + counter) |
//! | `POST /v1/webhook-endpoints/{id}/secret/rotate`    | 1 `GetItem` + 1 `PutItem` (versioned)      |
//! | `POST /v1/webhook-endpoints/{id}/test`             | 1 `GetItem` + 1 `PutItem` (the request)    |
//! | `GET /v1/webhook-endpoints/{id}/deliveries`        | 1 `GetItem` + 1 `Query`                    |
//! | `POST /v1/events/{id}/replay`                      | 1 `GetItem` (event) + 1 `Query` or `GetItem` (endpoints) + 1 `PutItem` |

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use referral::Result;
use referral::domain::webhook::EndpointView;
use referral::domain::webhook::delivery::{DeliveryLog, DeliveryRequested};
use referral::domain::webhook::manage::{
    self, CreatedEndpoint, EndpointInput, ReplayInput, RotatedEndpointSecret,
};
use referral::http::{Admin, AppState, JsonBody, OptionalJsonBody, Pagination};
use referral::page::Page;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/v1/webhook-endpoints",
            post(create_endpoint).get(list_endpoints),
        )
        .route(
            "/v1/webhook-endpoints/{id}",
            get(read_endpoint)
                .patch(change_endpoint)
                .delete(delete_endpoint),
        )
        .route(
            "/v1/webhook-endpoints/{id}/secret/rotate",
            post(rotate_secret),
        )
        .route("/v1/webhook-endpoints/{id}/test", post(send_test))
        .route("/v1/webhook-endpoints/{id}/deliveries", get(deliveries))
        .route("/v1/events/{id}/replay", post(replay))
}

async fn create_endpoint(
    State(state): State<AppState>,
    admin: Admin,
    JsonBody(input): JsonBody<EndpointInput>,
) -> Result<(StatusCode, Json<CreatedEndpoint>)> {
    let created =
        manage::create(&state.store, &admin.tenant, input, state.outbound_policy()).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

async fn list_endpoints(
    State(state): State<AppState>,
    admin: Admin,
) -> Result<Json<Page<EndpointView>>> {
    Ok(Json(manage::list(&state.store, &admin.tenant).await?))
}

async fn read_endpoint(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
) -> Result<Json<EndpointView>> {
    Ok(Json(
        manage::get(&state.store, &admin.tenant, &id).await?.view(),
    ))
}

async fn change_endpoint(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
    JsonBody(input): JsonBody<EndpointInput>,
) -> Result<Json<EndpointView>> {
    let policy = state.outbound_policy();
    Ok(Json(
        manage::change(&state.store, &admin.tenant, &id, input, policy).await?,
    ))
}

async fn delete_endpoint(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    manage::delete(&state.store, &admin.tenant, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn rotate_secret(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
) -> Result<Json<RotatedEndpointSecret>> {
    Ok(Json(
        manage::rotate_secret(&state.store, &admin.tenant, &id).await?,
    ))
}

async fn send_test(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<DeliveryRequested>)> {
    let requested = manage::test(&state.store, &admin.tenant, &id).await?;
    Ok((StatusCode::ACCEPTED, Json(requested)))
}

async fn deliveries(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
    Pagination(page): Pagination,
) -> Result<Json<Page<DeliveryLog>>> {
    Ok(Json(
        manage::deliveries(&state.store, &admin.tenant, &id, &page).await?,
    ))
}

async fn replay(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
    OptionalJsonBody(input): OptionalJsonBody<ReplayInput>,
) -> Result<(StatusCode, Json<DeliveryRequested>)> {
    let requested = manage::replay(&state.store, &admin.tenant, &id, input).await?;
    Ok((StatusCode::ACCEPTED, Json(requested)))
}
