//! Money paths against an emulator that behaves like DynamoDB under load: transactions
//! cancelled by conflicts, throttling, 500s, commits whose answer is lost. What the tenant's
//! backend sends must be applied exactly once whatever the engine meets on the way.

use axum::http::{Method, StatusCode};
use futures::StreamExt;
use referral::http::auth::Role;
use serde_json::{Value, json};

use crate::support::{Api, FaultyEmulator, token};

pub async fn service(api: &Api, path: &str, body: Value) -> (StatusCode, Value) {
    let token = token(&api.tenant, "backend", Role::Service);
    api.call(Method::POST, path, Some(&token), Some(body)).await
}

pub async fn promoter(api: &Api, user: &str) -> Value {
    let token = token(&api.tenant, user, Role::Promoter);
    let (status, promoter) = api
        .call(Method::GET, "/v1/promoters/me", Some(&token), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{promoter}");
    promoter
}

/// Seen: 110 invoices, 4 at a time, for referees of one referrer answered 18 times 409
/// `conflict` and were never applied. Contention is the engine's own business: it re-reads and
/// decides again, so every invoice is applied once and the balance is their sum.
#[tokio::test]
async fn concurrent_invoices_for_one_referrer_are_all_applied_despite_conflicts() {
    let emulator = FaultyEmulator::start("conflict=0.25,seed=6");
    let api = Api::on_faulty(&emulator).await;
    let (status, program) = api
        .admin(
            Method::POST,
            "/v1/programs",
            Some(json!({"name": "Commission", "currency": "USD", "rewards": [
                {"recipient": "referrer", "trigger": "each_invoice", "kind": "cash",
                 "percent": 15.0, "delivery": "payout"}]})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{program}");
    let code = promoter(&api, "alice").await["referral_code"]
        .as_str()
        .unwrap()
        .to_owned();
    let users: Vec<String> = (0..110).map(|i| format!("friend-{i}")).collect();
    let signups = futures::stream::iter(users.iter().map(|user| {
        service(
            &api,
            "/v1/referrals",
            json!({"code": code, "referred_user_id": user}),
        )
    }))
    .buffer_unordered(4)
    .collect::<Vec<_>>()
    .await;
    for (status, answer) in &signups {
        assert_eq!(*status, StatusCode::CREATED, "{answer}");
    }
    let invoices = futures::stream::iter(users.iter().enumerate().map(|(i, user)| {
        service(
            &api,
            "/v1/events/invoices",
            json!({"event_id": format!("inv-{i}"), "user_id": user,
                   "amount_paid": 3000, "currency": "USD"}),
        )
    }))
    .buffer_unordered(4)
    .collect::<Vec<_>>()
    .await;
    let refused: Vec<&(StatusCode, Value)> = invoices
        .iter()
        .filter(|(status, _)| *status != StatusCode::OK)
        .collect();
    assert!(refused.is_empty(), "{} refused: {refused:?}", refused.len());
    let alice = promoter(&api, "alice").await;
    assert_eq!(alice["current_balance"], 110 * 450, "{alice}");
    assert_eq!(alice["total_earned"], 110 * 450, "{alice}");
    let conflicts = emulator.injected("conflict").await;
    assert!(conflicts > 20, "conflicts were injected: {conflicts}");
    println!("110 sign-ups and 110 invoices applied through {conflicts} injected conflicts");
}

/// Throttling and outages that outlast the SDK's own retries are 503 `unavailable` with
/// `Retry-After`, never a 500, and change nothing.
#[tokio::test]
async fn throttling_past_the_sdk_retries_is_503_with_retry_after() {
    let emulator = FaultyEmulator::start("");
    let api = Api::on_faulty(&emulator).await;
    emulator.set_faults("throttle=1.0,seed=1").await;
    let request = axum::http::Request::builder()
        .method(Method::POST)
        .uri("/v1/programs")
        .header("authorization", format!("Bearer {}", api.admin_token()))
        .body(axum::body::Body::from(
            json!({"name": "Throttled", "currency": "USD"}).to_string(),
        ))
        .unwrap();
    let response = tower::ServiceExt::oneshot(api.router.clone(), request)
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        response.headers().get("retry-after").unwrap(),
        &referral::Error::RETRY_AFTER_SECONDS.to_string()
    );
    let (_, body) = crate::support::read(response).await;
    assert_eq!(body["error"]["code"], "unavailable", "{body}");
    let throttled = emulator.injected("throttle").await;
    assert_eq!(
        throttled,
        u64::from(referral::config::AWS_MAX_ATTEMPTS),
        "the SDK tried {} times",
        referral::config::AWS_MAX_ATTEMPTS
    );
}

/// A commit whose answer is lost is retried by the SDK with the same client request token:
/// DynamoDB answers the first outcome, so the sign-up is answered 201 (not `already_referred`)
/// and written once.
#[tokio::test]
async fn sign_ups_whose_commit_answer_is_lost_are_answered_as_committed() {
    let emulator = FaultyEmulator::start("lost=0.5,seed=3");
    let api = Api::on_faulty(&emulator).await;
    let (status, _) = api
        .admin(
            Method::POST,
            "/v1/programs",
            Some(
                json!({"name": "Lost answers", "currency": "USD", "rewards": [
                {"recipient": "referrer", "trigger": "signup", "kind": "cash", "amount": 500,
                 "delivery": "payout"}]}),
            ),
        )
        .await;
    assert!(status == StatusCode::CREATED, "{status}");
    let code = promoter(&api, "alice").await["referral_code"]
        .as_str()
        .unwrap()
        .to_owned();
    for i in 0..20 {
        let (status, answer) = service(
            &api,
            "/v1/referrals",
            json!({"code": code, "referred_user_id": format!("friend-{i}")}),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{answer}");
    }
    let alice = promoter(&api, "alice").await;
    assert_eq!(alice["current_balance"], 20 * 500, "{alice}");
    assert_eq!(alice["total_referrals"], 20, "{alice}");
    let stats = emulator.stats().await;
    let lost = stats["counts"]["injected.lost"].as_u64().unwrap_or(0);
    let replayed = stats["counts"]["tokens.replayed"].as_u64().unwrap_or(0);
    assert!(lost >= 5, "answers were lost: {stats}");
    assert_eq!(
        replayed, lost,
        "every lost answer was replayed by its token: {stats}"
    );
}

/// Seen: `/r/{code}` answered 500 when counting the click failed. A click always redirects;
/// counting is best effort.
#[tokio::test]
async fn a_click_redirects_even_when_counting_fails() {
    let emulator = FaultyEmulator::start("");
    let api = Api::on_faulty(&emulator).await;
    let code = promoter(&api, "alice").await["referral_code"]
        .as_str()
        .unwrap()
        .to_owned();
    emulator.set_faults("throttle=1.0,seed=2").await;
    let request = axum::http::Request::builder()
        .uri(format!("/r/{}", code.to_lowercase()))
        .body(axum::body::Body::empty())
        .unwrap();
    let response = tower::ServiceExt::oneshot(api.router.clone(), request)
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FOUND);
    let location = response.headers()["location"].to_str().unwrap();
    assert!(
        location.ends_with(&format!("ref={code}")),
        "the visitor keeps the code they followed: {location}"
    );
    assert!(emulator.injected("throttle").await > 0);
}
