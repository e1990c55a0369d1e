//! Protecting the money from abuse: promoter suspension, and the fraud rules a program enables
//! (each holding the reward with its own reason for an admin to release or deny).

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::money::{all_rewards, assert_balances_match_ledger};
use crate::support::{Api, assert_error};

fn holds_of(rewards: &[Value], reason: &str) -> Vec<(String, Value)> {
    let mut found: Vec<(String, Value)> = rewards
        .iter()
        .filter(|r| r["reason"] == reason)
        .map(|r| (r["status"].as_str().unwrap().to_owned(), r["holds"].clone()))
        .collect();
    found.sort_by(|a, b| a.0.cmp(&b.0));
    found
}

#[tokio::test]
async fn a_suspended_promoter_refers_nobody_is_held_and_cannot_withdraw_until_reactivated() {
    let api = Api::new().await;
    api.program(
        json!({"name": "Suspendable", "currency": "USD", "rewards": [
        {"recipient": "referee", "trigger": "signup", "kind": "cash", "amount": 1000},
        {"recipient": "referrer", "trigger": "signup", "kind": "cash", "amount": 500},
        {"recipient": "referrer", "trigger": "each_invoice", "kind": "cash", "percent": 10.0,
         "delivery": "payout"}]}),
    )
    .await;
    let code = api.code_of("alice").await;
    api.signed_up(json!({"code": code, "referred_user_id": "bob"}))
        .await;
    api.invoiced(
        json!({"event_id": "in-1", "user_id": "bob", "amount_paid": 10000,
                        "currency": "USD"}),
    )
    .await;
    api.as_promoter(
        "alice",
        Method::PATCH,
        "/v1/promoters/me/payout-method",
        Some(json!({"method": "paypal", "payment_address": "alice@example.com"})),
    )
    .await;

    let path = "/v1/promoters/alice";
    for body in [
        json!({}),
        json!({"status": "banned"}),
        json!({"status": null}),
    ] {
        assert_error(
            &api.admin(Method::PATCH, path, Some(body)).await,
            400,
            "invalid_request",
        );
    }
    let (status, suspended) = api
        .admin(Method::PATCH, path, Some(json!({"status": "suspended"})))
        .await;
    assert_eq!(status, StatusCode::OK, "{suspended}");
    assert_eq!(suspended["status"], "suspended");
    // The pending credit is held; the referee's is not alice's: untouched. The credited
    // commission stays in her balance, which she cannot withdraw.
    let alice = all_rewards(&api, "alice").await;
    assert_eq!(
        holds_of(&alice, "signup"),
        [("held".to_owned(), json!(["promoter_suspended"]))]
    );
    assert_eq!(holds_of(&alice, "each_invoice")[0].0, "credited");
    assert_eq!(
        holds_of(&all_rewards(&api, "bob").await, "signup")[0].0,
        "pending"
    );
    assert_error(
        &api.as_promoter(
            "alice",
            Method::POST,
            "/v1/promoters/me/payouts",
            Some(json!({"currency": "USD"})),
        )
        .await,
        422,
        "promoter_suspended",
    );
    // Her code answers as inactive; a sign-up through it is refused, changing nothing.
    let (_, public) = api
        .call(Method::GET, &format!("/v1/codes/{code}"), None, None)
        .await;
    assert_eq!(
        (&public["is_active"], &public["is_valid"]),
        (&json!(false), &json!(false))
    );
    assert_error(
        &api.service(
            Method::POST,
            "/v1/referrals",
            Some(json!({"code": code, "referred_user_id": "carol"})),
        )
        .await,
        422,
        "code_inactive",
    );
    // New rewards for her are held too.
    let invoice = api
        .invoiced(
            json!({"event_id": "in-2", "user_id": "bob", "amount_paid": 5000,
                         "currency": "USD"}),
        )
        .await;
    assert_eq!(
        invoice["rewards"][0]["holds"],
        json!(["promoter_suspended"]),
        "{invoice}"
    );
    assert_balances_match_ledger(&api, "alice").await;

    // Reactivated: the holds are lifted, the commission joins her balance.
    let (status, active) = api
        .admin(Method::PATCH, path, Some(json!({"status": "active"})))
        .await;
    assert_eq!(
        (status, &active["status"]),
        (StatusCode::OK, &json!("active"))
    );
    let alice = all_rewards(&api, "alice").await;
    assert_eq!(
        holds_of(&alice, "signup"),
        [("pending".to_owned(), json!([]))]
    );
    assert_eq!(
        api.me("alice").await["balances"]["USD"]["current_balance"],
        1500
    );
    assert_balances_match_ledger(&api, "alice").await;
    api.signed_up(json!({"code": code, "referred_user_id": "carol"}))
        .await;
}
