//! Codes endpoint group (seed 002): a promoter's codes, admin-made codes, and the public code
//! look-up and click redirect (no token).
//!
//! | route                                  | DynamoDB                                              |
//! |----------------------------------------|-------------------------------------------------------|
//! | `GET /v1/promoters/me/codes`           | 3 `Query`s in parallel (promoter, extra codes, latest 200 relations) |
//! | `GET /v1/promoters/{user_id}/codes`    | as `/me/codes` (admin; 404 if the user is no promoter) |
//! | `POST /v1/promoters/{user_id}/codes`   | 1 `GetItem` (program) + 1 `Query` (promoter) + 1 `PutItem` |
//! | `PATCH /v1/codes/{code}`               | 1 `UpdateItem`                                        |
//! | `GET /v1/codes/{code}` (public)        | 1 `Query` (the code and its counts per program) + 1 `Query` or `GetItem` (programs) |
//! | `GET /r/{code}` (public)               | 1 `UpdateItem`, best effort: the visitor is redirected whatever it answers; the code's tenant's landing URL (1 `GetItem` per tenant and container, cached) |

use axum::extract::{Path, State};
use axum::http::header::LOCATION;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch};
use axum::{Json, Router};
use referral::Result;
use referral::domain::code::{self, CodeChange, CodeView, NewCode, PublicCode};
use referral::http::{Admin, AppState, JsonBody, Pagination, PromoterUser, QueryParams};
use referral::page::Page;
use serde::Deserialize;

/// The header CloudFront sets to the viewer's country.
const VIEWER_COUNTRY: &str = "cloudfront-viewer-country";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/promoters/me/codes", get(my_codes))
        .route(
            "/v1/promoters/{user_id}/codes",
            axum::routing::post(create).get(codes_of_user),
        )
        .route("/v1/codes/{code}", patch(set_active).get(look_up))
        .route("/r/{code}", get(redirect))
}

async fn my_codes(
    State(state): State<AppState>,
    user: PromoterUser,
    Pagination(page): Pagination,
) -> Result<Json<Page<CodeView>>> {
    Ok(Json(
        code::codes_of(&state.store, &user.tenant, &user.user_id, true, &page).await?,
    ))
}

async fn codes_of_user(
    State(state): State<AppState>,
    admin: Admin,
    Path(user_id): Path<String>,
    Pagination(page): Pagination,
) -> Result<Json<Page<CodeView>>> {
    Ok(Json(
        code::codes_of(&state.store, &admin.tenant, &user_id, false, &page).await?,
    ))
}

async fn create(
    State(state): State<AppState>,
    admin: Admin,
    Path(user_id): Path<String>,
    JsonBody(input): JsonBody<NewCode>,
) -> Result<(StatusCode, Json<CodeView>)> {
    let code = code::create_code(&state.store, &admin.tenant, &user_id, &input).await?;
    Ok((StatusCode::CREATED, Json(code)))
}

async fn set_active(
    State(state): State<AppState>,
    admin: Admin,
    Path(code): Path<String>,
    JsonBody(change): JsonBody<CodeChange>,
) -> Result<Json<CodeView>> {
    Ok(Json(
        code::set_code_active(&state.store, &admin.tenant, &code, change.is_active).await?,
    ))
}

#[derive(Deserialize)]
struct LookUp {
    country: Option<String>,
}

async fn look_up(
    State(state): State<AppState>,
    Path(code): Path<String>,
    QueryParams(query): QueryParams<LookUp>,
    headers: HeaderMap,
) -> Result<Json<PublicCode>> {
    let country = query.country.or_else(|| {
        headers
            .get(VIEWER_COUNTRY)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
    });
    Ok(Json(
        code::public_code(&state.store, &code, country.as_deref()).await?,
    ))
}

/// Counts the click of an active code and sends the visitor to its tenant's landing URL (else
/// `LANDING_URL`) with `?ref={code}` added to the query it has; an unknown or inactive code
/// redirects to the plain landing URL, counting nothing. A click always redirects: counting it is
/// best effort, and when counting fails the visitor is sent on with the code they followed.
async fn redirect(State(state): State<AppState>, Path(code): Path<String>) -> Response {
    let click = match code::count_click(&state.store, &code).await {
        Ok(click) => click,
        Err(error) => {
            tracing::warn!(%error, "click not counted; redirected anyway");
            code::Click {
                counted: code::normalize(&code),
                tenant: None,
            }
        }
    };
    let tenant = match &click.tenant {
        Some(tenant) => state.auth.tenant(tenant).await.unwrap_or_else(|error| {
            tracing::warn!(%error, "tenant settings unavailable; the default landing URL serves");
            None
        }),
        None => None,
    };
    let landing = tenant
        .as_ref()
        .and_then(|tenant| tenant.landing_url.as_deref())
        .or(state.config.landing_url.as_deref())
        .unwrap_or("/");
    let location = match &click.counted {
        Some(code) => code::with_ref(landing, code),
        None => landing.to_owned(),
    };
    (StatusCode::FOUND, [(LOCATION, location)]).into_response()
}
