//! Invitations endpoint group (seed 000): promoters invite people by email; the tenant's backend
//! asks who invited an email. A later sign-up of an invited email is attributed to the inviter.
//!
//! | route                             | DynamoDB                                                  |
//! |-----------------------------------|-----------------------------------------------------------|
//! | `POST /v1/invitations`            | 1 `Query` (promoter) + 1 conditional `PutItem` per email, 16 at a time |
//! | `POST /v1/invitations/verify`     | 1 `BatchGetItem`                                          |

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use referral::Result;
use referral::domain::invitation::{self, EmailsBody, InvitationResult, Verified};
use referral::http::{AppState, JsonBody, PromoterUser, Service};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/invitations", post(invite))
        .route("/v1/invitations/verify", post(verify))
}

async fn invite(
    State(state): State<AppState>,
    user: PromoterUser,
    JsonBody(body): JsonBody<EmailsBody>,
) -> Result<(StatusCode, Json<InvitationResult>)> {
    let result =
        invitation::invite(&state.store, &user.tenant, &user.user_id, &body.emails).await?;
    Ok((StatusCode::CREATED, Json(result)))
}

async fn verify(
    State(state): State<AppState>,
    service: Service,
    JsonBody(body): JsonBody<EmailsBody>,
) -> Result<Json<Verified>> {
    Ok(Json(
        invitation::verify(&state.store, &service.tenant, &body.emails).await?,
    ))
}
