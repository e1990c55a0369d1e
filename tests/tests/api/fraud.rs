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
    api.pays_out_to("alice", "alice@example.com").await;

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

/// `GET /v1/promoters/me` as `user` from `ip` on `device`: what the promoter's own sessions tell.
async fn seen_on(api: &Api, user: &str, ip: &str, device: &str) {
    use tower::ServiceExt;
    let token = crate::support::token(&api.tenant, user, referral::http::auth::Role::Promoter);
    let request = axum::http::Request::builder()
        .uri("/v1/promoters/me")
        .header("authorization", format!("Bearer {token}"))
        .header("x-forwarded-for", format!("{ip}, 10.0.0.1"))
        .header("x-device-id", device)
        .body(axum::body::Body::empty())
        .unwrap();
    let response = api.router.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

fn reward_holds(outcome: &Value) -> Vec<(String, Value)> {
    outcome["rewards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["recipient"].as_str().unwrap().to_owned(),
                r["holds"].clone(),
            )
        })
        .collect()
}

#[tokio::test]
async fn each_fraud_rule_holds_its_sign_ups_with_its_reason_until_an_admin_decides() {
    let api = Api::new().await;
    api.program(json!({"name": "Guarded", "currency": "USD", "fraud": {
            "same_mailbox": true, "disposable_email": true, "duplicate_payout_address": true,
            "velocity": {"max_signups": 4, "within_minutes": 60}, "same_device": true},
        "rewards": [
        {"recipient": "referee", "trigger": "signup", "kind": "cash", "amount": 1000},
        {"recipient": "referrer", "trigger": "signup", "kind": "cash", "amount": 500,
         "delivery": "payout"},
        {"recipient": "referrer", "trigger": "each_invoice", "kind": "cash", "percent": 10.0,
         "delivery": "payout"}]}))
        .await;
    let alice = api.code_of("alice").await;
    let (status, _) = api
        .admin(
            Method::PATCH,
            "/v1/promoters/alice",
            Some(json!({"email": "Alice@Gmail.com"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    seen_on(&api, "alice", "203.0.113.7", "dev-alice").await;

    let signed = |user: &str, extra: Value| {
        let mut body = json!({"code": alice, "referred_user_id": user});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        body
    };
    let both = |hold: &str| {
        vec![
            ("referee".to_owned(), json!([hold])),
            ("referrer".to_owned(), json!([hold])),
        ]
    };
    // The referrer's own mailbox (a +tag, Gmail dots).
    let mailbox = api
        .signed_up(signed(
            "u-mailbox",
            json!({"referred_email": "a.lice+deal@gmail.com"}),
        ))
        .await;
    assert_eq!(reward_holds(&mailbox), both("same_mailbox"), "{mailbox}");
    assert_eq!(mailbox["referral"]["flags"], json!(["same_mailbox"]));
    // A disposable domain (from the maintained list).
    let disposable = api
        .signed_up(signed(
            "u-disposable",
            json!({"referred_email": "x@mailinator.com"}),
        ))
        .await;
    assert_eq!(reward_holds(&disposable), both("disposable_email"));
    // The referrer's own IP, then their own device.
    let by_ip = api
        .signed_up(signed("u-ip", json!({"ip": "203.0.113.7"})))
        .await;
    assert_eq!(reward_holds(&by_ip), both("same_device"));
    let by_device = api
        .signed_up(signed(
            "u-device",
            json!({"device_id": "dev-alice", "ip": "198.51.100.4"}),
        ))
        .await;
    assert_eq!(reward_holds(&by_device), both("same_device"));
    // A fifth sign-up within the hour: velocity.
    let fast = api
        .signed_up(signed(
            "u-fast",
            json!({"referred_email": "fast@outlook.com"}),
        ))
        .await;
    assert_eq!(reward_holds(&fast), both("velocity"));

    // A payout address another promoter uses: the referrer's rewards are held (not the
    // referee's), for both of them.
    let carol = api.code_of("carol").await;
    for user in ["alice", "carol"] {
        api.pays_out_to(user, "shared@example.com").await;
    }
    let shared = api
        .signed_up(json!({"code": carol, "referred_user_id": "u-carol"}))
        .await;
    assert_eq!(
        reward_holds(&shared),
        [
            ("referee".to_owned(), json!([])),
            ("referrer".to_owned(), json!(["duplicate_payout_address"]))
        ]
    );
    // Carol moves to her own address: her next rewards pay.
    api.pays_out_to("carol", "carol@example.com").await;
    let clean = api
        .signed_up(json!({"code": carol, "referred_user_id": "u-carol-2",
                          "referred_email": "friend@outlook.com", "ip": "192.0.2.44"}))
        .await;
    assert_eq!(
        reward_holds(&clean),
        [
            ("referee".to_owned(), json!([])),
            ("referrer".to_owned(), json!([]))
        ]
    );

    // Released: an admin approves the mailbox relation's referrer reward; the relation is
    // cleared, so its next invoice pays at once. Denied: the disposable one never pays.
    let id_of = |outcome: &Value, recipient: &str| {
        outcome["rewards"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["recipient"] == recipient)
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let (status, approved) = api
        .admin(
            Method::POST,
            &format!("/v1/rewards/{}/approve", id_of(&mailbox, "referrer")),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{approved}");
    assert_eq!(approved["status"], "credited");
    let invoice = api
        .invoiced(json!({"event_id": "in-mailbox", "user_id": "u-mailbox",
                         "amount_paid": 2000, "currency": "USD"}))
        .await;
    assert_eq!(invoice["rewards"][0]["status"], "credited", "{invoice}");
    let (status, denied) = api
        .admin(
            Method::POST,
            &format!("/v1/rewards/{}/deny", id_of(&disposable, "referee")),
            Some(json!({"reason": "disposable address"})),
        )
        .await;
    assert_eq!(
        (status, denied["status"].as_str()),
        (StatusCode::OK, Some("reversed"))
    );
    // In bulk, the device and velocity ones.
    let (_, bulk) = api
        .admin(
            Method::POST,
            "/v1/rewards/approve",
            Some(
                json!({"ids": [id_of(&by_ip, "referrer"), id_of(&by_ip, "referee"),
                                id_of(&fast, "referrer")]}),
            ),
        )
        .await;
    assert_eq!(bulk["approved"].as_array().unwrap().len(), 3, "{bulk}");
    // Carol's reward held while her address was shared, released by an admin.
    let (status, released) = api
        .admin(
            Method::POST,
            &format!("/v1/rewards/{}/approve", id_of(&shared, "referrer")),
            None,
        )
        .await;
    assert_eq!(
        (status, released["status"].as_str()),
        (StatusCode::OK, Some("credited"))
    );
    assert_balances_match_ledger(&api, "alice").await;
    assert_balances_match_ledger(&api, "carol").await;
    let alice_rewards = all_rewards(&api, "alice").await;
    assert_eq!(
        api.me("alice").await["balances"]["USD"]["current_balance"],
        500 + 200 + 500 + 500,
        "{alice_rewards:?}"
    );

    // Rules are checked: a velocity needs a positive count and window.
    let (_, programs) = api.admin(Method::GET, "/v1/programs", None).await;
    let program = programs["items"][0]["id"].as_str().unwrap().to_owned();
    for bad in [
        json!({"velocity": {"max_signups": 0, "within_minutes": 10}}),
        json!({"velocity": {"max_signups": 3, "within_minutes": 10081}}),
        json!({"same_ip": true}),
    ] {
        assert_error(
            &api.admin(
                Method::PATCH,
                &format!("/v1/programs/{program}"),
                Some(json!({"fraud": bad})),
            )
            .await,
            400,
            "invalid_request",
        );
    }
}
