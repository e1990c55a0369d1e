//! The codes API against the emulator (seed 002): a promoter's codes, admin-made codes, the public
//! look-up and the click redirect.

use axum::http::{Method, Request, StatusCode};
use referral::http::auth::Role;
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::support::{Api, LANDING, assert_error, seed, token};

async fn promoter(api: &Api, user: &str) -> Value {
    let token = token(&api.tenant, user, Role::Promoter);
    let (status, body) = api
        .call(Method::GET, "/v1/promoters/me", Some(&token), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

async fn program(api: &Api, body: Value) -> String {
    let (status, program) = api.admin(Method::POST, "/v1/programs", Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{program}");
    program["id"].as_str().unwrap().to_owned()
}

fn spring() -> Value {
    json!({"name": "Spring", "message": "Both get a bonus", "currency": "USD", "max_referrals": 10,
    "country_overrides": {"BR": {"referee_amount": 100}},
    "rewards": [
        {"recipient": "referee", "trigger": "signup", "kind": "cash", "amount": 1000},
        {"recipient": "referrer", "trigger": "signup", "kind": "cash", "amount": 500},
        {"recipient": "referee", "trigger": "each_invoice", "kind": "cash", "percent": 5}
    ]})
}

/// `GET` without a token; answers status, `Location` and JSON body.
async fn public(
    api: &Api,
    path: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, Option<String>, Value) {
    let mut request = Request::builder().uri(path);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = api
        .router
        .clone()
        .oneshot(request.body(axum::body::Body::empty()).unwrap())
        .await
        .unwrap();
    let location = response
        .headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_owned());
    let (status, body) = crate::support::read(response).await;
    (status, location, body)
}

#[tokio::test]
async fn admins_give_promoters_extra_codes_tied_to_a_program() {
    let api = Api::new().await;
    let program_id = program(&api, spring()).await;
    let path = "/v1/promoters/alice/codes";
    let (status, code) = api
        .admin(Method::POST, path, Some(json!({"program_id": program_id, "referrer_amount": 700, "referee_amount": 2500, "max_referrals": 3})))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{code}");
    assert_eq!(code["program_id"], program_id.as_str());
    assert_eq!(
        (
            code["referrer_amount"].as_i64(),
            code["referee_amount"].as_i64(),
            code["max_referrals"].as_i64()
        ),
        (Some(700), Some(2500), Some(3))
    );
    assert_eq!(
        (code["is_active"].as_bool(), code["is_primary"].as_bool()),
        (Some(true), Some(false))
    );

    let (status, custom) = api
        .admin(
            Method::POST,
            path,
            Some(json!({"program_id": program_id, "code": "vip-alice"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{custom}");
    assert_eq!(custom["code"], "VIP-ALICE");
    let taken = api
        .other_tenant()
        .admin(
            Method::POST,
            "/v1/promoters/bob/codes",
            Some(json!({"program_id": program_id, "code": "VIP-ALICE"})),
        )
        .await;
    assert_error(&taken, 400, "invalid_request");
    let taken = api
        .admin(
            Method::POST,
            "/v1/promoters/bob/codes",
            Some(json!({"program_id": program_id, "code": "Vip-Alice"})),
        )
        .await;
    assert_error(&taken, 409, "conflict");

    for (body, field) in [
        (json!({"program_id": referral::id::new_id()}), "program_id"),
        (
            json!({"program_id": program_id, "referrer_amount": -1}),
            "referrer_amount",
        ),
        (
            json!({"program_id": program_id, "max_referrals": -2}),
            "max_referrals",
        ),
        (
            json!({"program_id": program_id, "code": "no spaces"}),
            "code",
        ),
        (json!({"referrer_amount": 5}), "body"),
    ] {
        let answer = api.admin(Method::POST, path, Some(body.clone())).await;
        assert_error(&answer, 400, "invalid_request");
        assert_eq!(answer.1["error"]["field"], field, "{body}");
    }
    let promoter_token = token(&api.tenant, "alice", Role::Promoter);
    let forbidden = api
        .call(
            Method::POST,
            path,
            Some(&promoter_token),
            Some(json!({"program_id": program_id})),
        )
        .await;
    assert_error(&forbidden, 403, "forbidden");

    let (status, archived) = api
        .admin(Method::DELETE, &format!("/v1/programs/{program_id}"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{archived}");
    assert_error(
        &api.admin(Method::POST, path, Some(json!({"program_id": program_id})))
            .await,
        422,
        "program_inactive",
    );

    // The promoter sees the primary code first, then the extra ones, with referred users.
    let primary = promoter(&api, "alice").await["referral_code"]
        .as_str()
        .unwrap()
        .to_owned();
    let relation = seed::relation(&api, "alice", "friend-1", &program_id, Some("VIP-ALICE"));
    seed::put_relation(&api, &relation).await;
    let (status, mine) = api
        .call(
            Method::GET,
            "/v1/promoters/me/codes",
            Some(&promoter_token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let items = mine["items"].as_array().unwrap();
    assert_eq!(items.len(), 3);
    assert_eq!(
        (items[0]["code"].as_str(), items[0]["is_primary"].as_bool()),
        (Some(primary.as_str()), Some(true))
    );
    let vip = items.iter().find(|c| c["code"] == "VIP-ALICE").unwrap();
    assert_eq!(vip["referred_users"][0]["user_id"], "friend-1");
    for field in [
        "total_referrals",
        "verification_attempts",
        "verification_successes",
        "total_referrer_earned",
        "total_referee_earned",
        "created",
        "max_referrals",
        "referrer_amount",
        "referee_amount",
    ] {
        assert!(vip.get(field).is_some(), "{field}");
    }
}

#[tokio::test]
async fn admins_switch_codes_of_their_tenant_on_and_off() {
    let api = Api::new().await;
    let code = promoter(&api, "alice").await["referral_code"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/v1/codes/{code}");
    let (status, off) = api
        .admin(Method::PATCH, &path, Some(json!({"is_active": false})))
        .await;
    assert_eq!(status, StatusCode::OK, "{off}");
    assert_eq!(off["is_active"], false);
    let (_, public_view, body) = public(&api, &path, &[]).await;
    assert!(public_view.is_none());
    assert_eq!(
        (body["is_active"].as_bool(), body["is_valid"].as_bool()),
        (Some(false), Some(false))
    );

    assert_error(
        &api.other_tenant()
            .admin(Method::PATCH, &path, Some(json!({"is_active": true})))
            .await,
        404,
        "not_found",
    );
    assert_error(
        &api.admin(
            Method::PATCH,
            "/v1/codes/NOSUCHCODE",
            Some(json!({"is_active": true})),
        )
        .await,
        404,
        "not_found",
    );
    assert_error(
        &api.admin(Method::PATCH, &path, Some(json!({"is_active": "yes"})))
            .await,
        400,
        "invalid_request",
    );
    let promoter_token = token(&api.tenant, "alice", Role::Promoter);
    assert_error(
        &api.call(
            Method::PATCH,
            &path,
            Some(&promoter_token),
            Some(json!({"is_active": true})),
        )
        .await,
        403,
        "forbidden",
    );
    let (_, on) = api
        .admin(
            Method::PATCH,
            &format!("/v1/codes/{}", code.to_lowercase()),
            Some(json!({"is_active": true})),
        )
        .await;
    assert_eq!(on["is_active"], true);
}

#[tokio::test]
async fn the_public_look_up_shows_the_offer_and_nothing_private() {
    let api = Api::new().await;
    let program_id = program(&api, spring()).await;
    let code = promoter(&api, "alice").await["referral_code"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, _, body) = public(&api, &format!("/v1/codes/{}", code.to_lowercase()), &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (body["code"].as_str(), body["is_valid"].as_bool()),
        (Some(code.as_str()), Some(true))
    );
    let offer = &body["programs"][0];
    assert_eq!(
        (
            offer["program_id"].as_str(),
            offer["name"].as_str(),
            offer["message"].as_str()
        ),
        (
            Some(program_id.as_str()),
            Some("Spring"),
            Some("Both get a bonus")
        )
    );
    assert_eq!(
        (
            offer["max_referrals"].as_u64(),
            offer["total_referrals"].as_u64()
        ),
        (Some(10), Some(0))
    );
    assert_eq!(
        offer["referee_rewards"][0],
        json!({"trigger": "signup", "kind": "cash", "amount": 1000})
    );
    assert_eq!(
        offer["referee_rewards"][1],
        json!({"trigger": "each_invoice", "kind": "cash", "percent": 5.0})
    );
    assert_eq!(
        offer["referee_rewards"].as_array().unwrap().len(),
        2,
        "the referrer's side is not shown"
    );

    let (_, _, brazil) = public(&api, &format!("/v1/codes/{code}?country=br"), &[]).await;
    assert_eq!(brazil["country"], "BR");
    assert_eq!(brazil["programs"][0]["referee_rewards"][0]["amount"], 100);
    let (_, _, by_header) = public(
        &api,
        &format!("/v1/codes/{code}"),
        &[("CloudFront-Viewer-Country", "BR")],
    )
    .await;
    assert_eq!(
        by_header["programs"][0]["referee_rewards"][0]["amount"],
        100
    );
    let (_, _, elsewhere) = public(&api, &format!("/v1/codes/{code}?country=DE"), &[]).await;
    assert_eq!(
        elsewhere["programs"][0]["referee_rewards"][0]["amount"],
        1000
    );
    let (status, _, bad) = public(&api, &format!("/v1/codes/{code}?country=XX"), &[]).await;
    assert_error(&(status, bad), 400, "invalid_request");

    let text = body.to_string();
    for private in [
        "current_balance",
        "total_earned",
        "total_paid",
        "payout_method",
        "min_withdrawal_balance",
        "user_id",
        "tenant",
        "alice",
        "referrer_amount",
    ] {
        assert!(!text.contains(private), "{private} leaked: {text}");
    }

    // An extra code applies its own amounts, then the country's.
    let (_, extra) = api
        .admin(
            Method::POST,
            "/v1/promoters/alice/codes",
            Some(json!({"program_id": program_id, "referee_amount": 2500, "max_referrals": 2})),
        )
        .await;
    let extra_code = extra["code"].as_str().unwrap();
    let (_, _, extra_view) = public(&api, &format!("/v1/codes/{extra_code}"), &[]).await;
    assert_eq!(
        extra_view["programs"][0]["referee_rewards"][0]["amount"],
        2500
    );
    assert_eq!(extra_view["programs"][0]["max_referrals"], 2);
    let (_, _, extra_br) = public(&api, &format!("/v1/codes/{extra_code}?country=BR"), &[]).await;
    assert_eq!(extra_br["programs"][0]["referee_rewards"][0]["amount"], 100);

    let (status, _, missing) = public(&api, "/v1/codes/NOSUCHCODE", &[]).await;
    assert_error(&(status, missing), 404, "not_found");
    let (status, _, junk) = public(&api, "/v1/codes/%23bad", &[]).await;
    assert_error(&(status, junk), 404, "not_found");
}

#[tokio::test]
async fn clicks_count_once_per_visit_and_always_redirect() {
    let api = Api::new().await;
    let code = promoter(&api, "alice").await["referral_code"]
        .as_str()
        .unwrap()
        .to_owned();
    api.round_trips.take();
    for _ in 0..3 {
        let (status, location, _) = public(&api, &format!("/r/{code}"), &[]).await;
        assert_eq!(status, StatusCode::FOUND);
        assert_eq!(
            location.as_deref(),
            Some(format!("{LANDING}?ref={code}").as_str())
        );
    }
    assert_eq!(
        api.round_trips.take(),
        ["UpdateItem"; 3],
        "per click: one UpdateItem of the code (the stream counts it in its owner's day)"
    );
    let (_, location, _) = public(&api, &format!("/r/{}", code.to_lowercase()), &[]).await;
    assert_eq!(
        location.as_deref(),
        Some(format!("{LANDING}?ref={code}").as_str())
    );
    assert_eq!(promoter(&api, "alice").await["link_clicks"], 4);

    for unknown in ["/r/NOSUCHCODE", "/r/x"] {
        let (status, location, _) = public(&api, unknown, &[]).await;
        assert_eq!(
            (status, location.as_deref()),
            (StatusCode::FOUND, Some(LANDING))
        );
    }
    api.admin(
        Method::PATCH,
        &format!("/v1/codes/{code}"),
        Some(json!({"is_active": false})),
    )
    .await;
    let (status, location, _) = public(&api, &format!("/r/{code}"), &[]).await;
    assert_eq!(
        (status, location.as_deref()),
        (StatusCode::FOUND, Some(LANDING))
    );
    assert_eq!(
        promoter(&api, "alice").await["link_clicks"],
        4,
        "an inactive code counts nothing"
    );
    let (status, _, codes) = public(&api, &format!("/v1/codes/{code}"), &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(codes.get("link_clicks").is_none());
}

#[tokio::test]
async fn browsers_may_call_the_api_from_any_origin_preflights_included() {
    use tower::ServiceExt;
    let api = Api::new().await;
    let code = promoter(&api, "alice").await["referral_code"]
        .as_str()
        .unwrap()
        .to_owned();
    let preflight = axum::http::Request::builder()
        .method(Method::OPTIONS)
        .uri("/v1/promoters/me")
        .header("origin", "https://app.example.com")
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "authorization")
        .body(axum::body::Body::empty())
        .unwrap();
    let answer = api.router.clone().oneshot(preflight).await.unwrap();
    assert_eq!(answer.status(), StatusCode::NO_CONTENT);
    let header = |answer: &axum::response::Response, name: &str| {
        answer
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    assert_eq!(
        header(&answer, "access-control-allow-origin").as_deref(),
        Some("*")
    );
    assert!(
        header(&answer, "access-control-allow-headers")
            .unwrap()
            .contains("authorization")
    );
    // A public look-up from a tenant's sign-up page ("you get $10"), and an error answer, both
    // readable by the page.
    for path in [
        format!("/v1/codes/{code}"),
        "/v1/codes/NOSUCHCODE".to_owned(),
    ] {
        let request = axum::http::Request::builder()
            .uri(&path)
            .header("origin", "https://shop.example.org")
            .body(axum::body::Body::empty())
            .unwrap();
        let answer = api.router.clone().oneshot(request).await.unwrap();
        assert_eq!(
            header(&answer, "access-control-allow-origin").as_deref(),
            Some("*"),
            "{path}"
        );
    }
}
