//! Hostile input: nothing a client sends may panic the function, reach into another key, or
//! change a URL's path. Each case here failed before its fix (issue 12).

use axum::http::{Method, StatusCode};
use serde_json::json;

use crate::support::{Api, assert_error};

/// Seen: `9999-12-31T23:59:59-01:00` is year 10000 in UTC; converting it panicked and dropped
/// the connection (with `panic = "abort"` the Lambda died).
#[tokio::test]
async fn timestamps_past_the_representable_range_are_a_400() {
    let api = Api::new().await;
    for expires_at in [
        "9999-12-31T23:59:59-01:00",
        "9999-12-31T23:59:59-23:59",
        "+10000-01-01T00:00:00Z",
    ] {
        let refused = api
            .admin(
                Method::POST,
                "/v1/programs",
                Some(
                    json!({"name": format!("Far {expires_at}"), "currency": "USD",
                            "expires_at": expires_at}),
                ),
            )
            .await;
        assert_error(&refused, 400, "invalid_request");
        assert_eq!(refused.1["error"]["field"], "expires_at", "{expires_at}");
    }
    let id = api
        .program(json!({"name": "Far but fine", "currency": "USD",
                        "expires_at": "9999-12-31T22:00:00-01:00"}))
        .await;
    let (status, patched) = api
        .admin(
            Method::PATCH,
            &format!("/v1/programs/{id}"),
            Some(json!({"expires_at": "9999-12-31T23:30:00-00:45"})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{patched}");
}

/// Seen: `POST /v1/promoters/alice%23LEDGER/codes` answered 201 and afterwards alice's
/// `/me/earnings/recent` answered 500: the `#` of the path reached a key. Path identifiers are
/// validated like body identifiers.
#[tokio::test]
async fn path_identifiers_are_validated_like_body_identifiers() {
    let api = Api::new().await;
    let program = api
        .program(json!({"name": "Paths", "currency": "USD"}))
        .await;
    api.code_of("alice").await;
    for path in ["alice%23LEDGER", "%20", "..", "a%00b"] {
        let created = api
            .admin(
                Method::POST,
                &format!("/v1/promoters/{path}/codes"),
                Some(json!({"program_id": program})),
            )
            .await;
        assert_error(&created, 400, "invalid_request");
        assert_eq!(created.1["error"]["field"], "user_id", "{path}");
        let read = api
            .admin(Method::GET, &format!("/v1/promoters/{path}"), None)
            .await;
        assert_error(&read, 400, "invalid_request");
    }
    let (status, recent) = api
        .as_promoter(
            "alice",
            Method::GET,
            "/v1/promoters/me/earnings/recent",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{recent}");
}

/// Seen: a user id `..` changed the billing URL's path (`/credit/{user_id}` became `/`). Ids
/// made only of dots are refused wherever a user id enters.
#[tokio::test]
async fn dot_segments_are_not_user_ids() {
    let api = Api::new().await;
    api.program(json!({"name": "Dots", "currency": "USD"}))
        .await;
    let code = api.code_of("alice").await;
    for user in [".", ".."] {
        let refused = api
            .service(
                Method::POST,
                "/v1/referrals",
                Some(json!({"code": code, "referred_user_id": user})),
            )
            .await;
        assert_error(&refused, 400, "invalid_request");
        assert_eq!(refused.1["error"]["field"], "referred_user_id");
        let token = crate::support::token(&api.tenant, user, referral::http::auth::Role::Promoter);
        let (status, _) = api
            .call(Method::GET, "/v1/promoters/me", Some(&token), None)
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "sub {user}");
    }
}
