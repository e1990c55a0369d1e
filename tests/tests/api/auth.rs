//! Authentication, roles and tenant isolation on the programs routes.

use axum::http::Method;
use referral::http::auth::Role;
use serde_json::json;

use crate::support::{Api, SECRET, assert_error, token};

async fn program_path(api: &Api) -> String {
    let (status, program) = api
        .admin(
            Method::POST,
            "/v1/programs",
            Some(json!({"name": "Owned", "currency": "USD"})),
        )
        .await;
    assert_eq!(status, 201, "{program}");
    format!("/v1/programs/{}", program["id"].as_str().unwrap())
}

#[tokio::test]
async fn missing_forged_and_expired_tokens_are_401() {
    let api = Api::new().await;
    let path = program_path(&api).await;
    let forged = local_stack::token(
        "someone-elses-secret-0123456789",
        &api.tenant,
        "admin-1",
        Role::Admin,
        time::Duration::hours(1),
    );
    let expired = local_stack::token(
        SECRET,
        &api.tenant,
        "admin-1",
        Role::Admin,
        -time::Duration::hours(1),
    );
    let no_exp = {
        let json = json!({"sub": "admin-1", "tenant": api.tenant, "role": "admin"});
        unexpiring_token(&json)
    };
    for token in [
        None,
        Some("garbage"),
        Some(forged.as_str()),
        Some(expired.as_str()),
        Some(no_exp.as_str()),
    ] {
        for (method, route) in [
            (Method::GET, "/v1/programs"),
            (Method::GET, path.as_str()),
            (Method::DELETE, path.as_str()),
        ] {
            let answer = api.call(method.clone(), route, token, None).await;
            assert_error(&answer, 401, "unauthorized");
        }
        let answer = api
            .call(
                Method::POST,
                "/v1/programs",
                token,
                Some(json!({"name": "X", "currency": "USD"})),
            )
            .await;
        assert_error(&answer, 401, "unauthorized");
    }
    let (_, read) = api.admin(Method::GET, &path, None).await;
    assert_eq!(
        read["status"], "active",
        "no unauthenticated request changed anything"
    );
}

/// A token without `exp`, correctly signed: still refused, since `exp` is required.
fn unexpiring_token(claims: &serde_json::Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

#[tokio::test]
async fn promoter_and_service_tokens_are_403_on_admin_routes() {
    let api = Api::new().await;
    let path = program_path(&api).await;
    for role in [Role::Promoter, Role::Service] {
        let token = token(&api.tenant, "someone", role);
        let create = api
            .call(
                Method::POST,
                "/v1/programs",
                Some(&token),
                Some(json!({"name": "Mine", "currency": "USD"})),
            )
            .await;
        assert_error(&create, 403, "forbidden");
        let bad_body = api
            .call(Method::POST, "/v1/programs", Some(&token), Some(json!({})))
            .await;
        assert_error(&bad_body, 403, "forbidden");
        assert_error(
            &api.call(Method::GET, "/v1/programs", Some(&token), None)
                .await,
            403,
            "forbidden",
        );
        assert_error(
            &api.call(Method::GET, &path, Some(&token), None).await,
            403,
            "forbidden",
        );
        let patch = api
            .call(
                Method::PATCH,
                &path,
                Some(&token),
                Some(json!({"name": "Stolen"})),
            )
            .await;
        assert_error(&patch, 403, "forbidden");
        assert_error(
            &api.call(Method::DELETE, &path, Some(&token), None).await,
            403,
            "forbidden",
        );
    }
    let (_, read) = api.admin(Method::GET, &path, None).await;
    assert_eq!(
        (read["name"].as_str(), read["status"].as_str()),
        (Some("Owned"), Some("active"))
    );
}

#[tokio::test]
async fn another_tenant_gets_404_and_changes_nothing() {
    let owner = Api::new().await;
    let path = program_path(&owner).await;
    let (_, before) = owner.admin(Method::GET, &path, None).await;

    let intruder = owner.other_tenant();
    assert_error(
        &intruder.admin(Method::GET, &path, None).await,
        404,
        "not_found",
    );
    let patch = intruder
        .admin(Method::PATCH, &path, Some(json!({"name": "Mine now"})))
        .await;
    assert_error(&patch, 404, "not_found");
    assert_error(
        &intruder.admin(Method::DELETE, &path, None).await,
        404,
        "not_found",
    );
    let (_, list) = intruder.admin(Method::GET, "/v1/programs", None).await;
    assert_eq!(list["items"], json!([]));

    let (_, after) = owner.admin(Method::GET, &path, None).await;
    assert_eq!(before, after);
}
