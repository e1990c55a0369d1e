//! The reward lifecycle beyond earning: holding periods released by the scheduled reconciler
//! through the sparse index of held rewards by due time.

use axum::http::{Method, StatusCode};
use referral::delivery::reconcile::release_due;
use serde_json::{Value, json};
use time::Duration;

use crate::money::{all_rewards, assert_balances_match_ledger};
use crate::support::{Api, assert_error};

fn statuses(rewards: &[Value]) -> Vec<(String, String, Value)> {
    let mut found: Vec<(String, String, Value)> = rewards
        .iter()
        .map(|r| {
            (
                r["user_id"].as_str().unwrap().to_owned(),
                r["status"].as_str().unwrap().to_owned(),
                r["holds"].clone(),
            )
        })
        .collect();
    found.sort_by(|a, b| a.0.cmp(&b.0));
    found
}

#[tokio::test]
async fn rewards_wait_out_the_holding_period_and_the_scheduler_releases_them_once() {
    // The release reads a table-wide index: a table of its own.
    let api = Api::isolated().await;
    api.program(
        json!({"name": "Held", "currency": "USD", "hold_days": 14, "rewards": [
        {"recipient": "referee", "trigger": "signup", "kind": "cash", "amount": 1000},
        {"recipient": "referrer", "trigger": "signup", "kind": "cash", "amount": 500,
         "delivery": "payout"}]}),
    )
    .await;
    let code = api.code_of("alice").await;
    let outcome = api
        .signed_up(json!({"code": code, "referred_user_id": "bob"}))
        .await;
    let now = referral::clock::now();
    let rewards = outcome["rewards"].as_array().unwrap();
    assert_eq!(rewards.len(), 2);
    for reward in rewards {
        assert_eq!(reward["status"], "held", "{reward}");
        assert_eq!(reward["holds"], json!(["holding_period"]));
        let due = referral::clock::rfc3339::parse(reward["due_at"].as_str().unwrap()).unwrap();
        assert!(
            (due - (now + Duration::days(14))).abs() < Duration::minutes(1),
            "{due}"
        );
    }
    let alice = api.me("alice").await;
    assert_eq!(
        (
            alice["balances"]["USD"]["total_earned"].as_i64(),
            alice["balances"]["USD"]["current_balance"].as_i64()
        ),
        (Some(500), Some(0)),
        "{alice}"
    );

    // Not due yet: nothing moves.
    assert!(release_due(&api.store, now).await.unwrap().is_empty());
    assert!(
        release_due(&api.store, now + Duration::days(13))
            .await
            .unwrap()
            .is_empty()
    );
    // Due: released once, the referee's credit to billing, the referrer's to their balance.
    let released = release_due(&api.store, now + Duration::days(15))
        .await
        .unwrap();
    assert_eq!(released.len(), 2, "{released:?}");
    let mut ledger = all_rewards(&api, "alice").await;
    ledger.extend(all_rewards(&api, "bob").await);
    assert_eq!(
        statuses(&ledger),
        [
            ("alice".to_owned(), "credited".to_owned(), json!([])),
            ("bob".to_owned(), "pending".to_owned(), json!([]))
        ]
    );
    assert_eq!(
        api.me("alice").await["balances"]["USD"]["current_balance"],
        500
    );
    assert_balances_match_ledger(&api, "alice").await;
    api.me("bob").await;
    assert_balances_match_ledger(&api, "bob").await;
    let (_, pending) = api
        .admin(Method::GET, "/v1/rewards?status=pending", None)
        .await;
    assert_eq!(pending["items"].as_array().unwrap().len(), 1, "{pending}");
    // Idempotent: a second pass finds nothing (released rewards left the index).
    assert!(
        release_due(&api.store, now + Duration::days(16))
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn a_holding_period_ends_beside_other_holds_and_hold_days_are_checked() {
    let api = Api::isolated().await;
    let program = api
        .program(json!({"name": "Checked", "currency": "USD", "hold_days": 7,
            "requires_verification": true, "rewards": [
            {"recipient": "referee", "trigger": "signup", "kind": "cash", "amount": 1000}]}))
        .await;
    let code = api.code_of("alice").await;
    let outcome = api
        .signed_up(json!({"code": code, "referred_user_id": "bob"}))
        .await;
    assert_eq!(
        outcome["rewards"][0]["holds"],
        json!(["verification", "holding_period"])
    );
    let now = referral::clock::now();
    // The period ends first: still held, for the check only, and out of the due index.
    let released = release_due(&api.store, now + Duration::days(8))
        .await
        .unwrap();
    assert_eq!(released.len(), 1);
    let bob = all_rewards(&api, "bob").await;
    assert_eq!(
        statuses(&bob),
        [("bob".to_owned(), "held".to_owned(), json!(["verification"]))]
    );
    assert!(
        release_due(&api.store, now + Duration::days(9))
            .await
            .unwrap()
            .is_empty()
    );
    // The check passes: pending.
    let (status, _) = api
        .service(
            Method::POST,
            "/v1/events/verifications",
            Some(json!({"event_id": "v1", "user_id": "bob", "outcome": "succeeded"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        statuses(&all_rewards(&api, "bob").await),
        [("bob".to_owned(), "pending".to_owned(), json!([]))]
    );

    // hold_days: 0 to 365, changed by PATCH (new rewards only).
    let path = format!("/v1/programs/{program}");
    for bad in [json!(-1), json!(366), json!("7"), json!(null)] {
        assert_error(
            &api.admin(Method::PATCH, &path, Some(json!({"hold_days": bad})))
                .await,
            400,
            "invalid_request",
        );
    }
    let (status, changed) = api
        .admin(Method::PATCH, &path, Some(json!({"hold_days": 0})))
        .await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(changed["hold_days"], 0);
}

#[tokio::test]
async fn manual_approval_holds_rewards_until_an_admin_approves_or_denies_them() {
    let api = Api::new().await;
    api.program(
        json!({"name": "Approved", "currency": "USD", "approval": "manual", "rewards": [
        {"recipient": "referee", "trigger": "signup", "kind": "cash", "amount": 1000},
        {"recipient": "referrer", "trigger": "signup", "kind": "cash", "amount": 500,
         "delivery": "payout"}]}),
    )
    .await;
    let code = api.code_of("alice").await;
    let mut ids: Vec<(String, String)> = Vec::new();
    for user in ["bob", "carol", "dave", "erin"] {
        let outcome = api
            .signed_up(json!({"code": code, "referred_user_id": user}))
            .await;
        for reward in outcome["rewards"].as_array().unwrap() {
            assert_eq!(reward["status"], "held");
            assert_eq!(reward["holds"], json!(["awaiting_approval"]));
            ids.push((
                reward["user_id"].as_str().unwrap().to_owned(),
                reward["id"].as_str().unwrap().to_owned(),
            ));
        }
    }
    let of = |user: &str| -> Vec<String> {
        ids.iter()
            .filter(|(u, _)| u == user)
            .map(|(_, id)| id.clone())
            .collect()
    };
    let alice_ids = of("alice");
    assert_eq!(
        api.me("alice").await["balances"]["USD"]["total_earned"],
        2000
    );

    // One approved: bob's credit goes to billing; once only.
    let bob = &of("bob")[0];
    let (status, approved) = api
        .admin(Method::POST, &format!("/v1/rewards/{bob}/approve"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{approved}");
    assert_eq!(
        (approved["status"].as_str(), &approved["holds"]),
        (Some("pending"), &json!([]))
    );
    assert_error(
        &api.admin(Method::POST, &format!("/v1/rewards/{bob}/approve"), None)
            .await,
        409,
        "conflict",
    );
    assert_error(
        &api.other_tenant()
            .admin(Method::POST, &format!("/v1/rewards/{bob}/approve"), None)
            .await,
        404,
        "not_found",
    );
    // One denied, with a reason: never pays, leaves total_earned.
    let first = &alice_ids[0];
    let deny = format!("/v1/rewards/{first}/deny");
    for body in [
        json!({}),
        json!({"reason": "  "}),
        json!({"reason": "x".repeat(501)}),
    ] {
        assert_error(
            &api.admin(Method::POST, &deny, Some(body)).await,
            400,
            "invalid_request",
        );
    }
    let (status, denied) = api
        .admin(
            Method::POST,
            &deny,
            Some(json!({"reason": "the same household"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{denied}");
    assert_eq!(
        (denied["status"].as_str(), denied["denial"].as_str()),
        (Some("reversed"), Some("the same household"))
    );
    assert_eq!(
        api.me("alice").await["balances"]["USD"]["total_earned"],
        1500
    );
    assert_error(
        &api.admin(Method::POST, &format!("/v1/rewards/{first}/approve"), None)
            .await,
        409,
        "conflict",
    );

    // In bulk: the rest of alice's, carol's, an unknown id and bob's (already approved).
    let mut bulk: Vec<String> = alice_ids[1..].to_vec();
    bulk.extend(of("carol"));
    let unknown = format!("{}.referee.signup", referral::id::new_id());
    bulk.extend([unknown.clone(), bob.clone(), bulk[0].clone()]);
    let (status, answer) = api
        .admin(
            Method::POST,
            "/v1/rewards/approve",
            Some(json!({"ids": bulk})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let approved: Vec<&str> = answer["approved"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(approved.len(), 4, "{answer}");
    let mut refused: Vec<(String, String)> = answer["refused"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["id"].as_str().unwrap().to_owned(),
                r["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    refused.sort();
    let mut expected = vec![
        (unknown, "not_found".to_owned()),
        (bob.clone(), "not_awaiting_approval".to_owned()),
    ];
    expected.sort();
    assert_eq!(refused, expected);
    let alice = api.me("alice").await;
    assert_eq!(
        (
            alice["balances"]["USD"]["total_earned"].as_i64(),
            alice["balances"]["USD"]["current_balance"].as_i64()
        ),
        (Some(1500), Some(1500)),
        "{alice}"
    );
    assert_balances_match_ledger(&api, "alice").await;
    for body in [
        json!({"ids": []}),
        json!({"ids": vec!["x"; 101]}),
        json!({}),
    ] {
        assert_error(
            &api.admin(Method::POST, "/v1/rewards/approve", Some(body))
                .await,
            400,
            "invalid_request",
        );
    }
    // dave's and erin's still wait.
    let (_, held) = api
        .admin(Method::GET, "/v1/rewards?status=held", None)
        .await;
    assert_eq!(held["items"].as_array().unwrap().len(), 2, "{held}");
}

#[tokio::test]
async fn a_recurring_commission_stops_after_its_invoices_or_its_months() {
    use referral::store::ReferralStore;
    let api = Api::new().await;
    api.program(json!({"name": "Recurring", "currency": "USD", "rewards": [
        {"recipient": "referrer", "trigger": "each_invoice", "kind": "cash", "percent": 10.0,
         "delivery": "payout", "max_invoices": 2, "max_months": 12}]}))
        .await;
    let code = api.code_of("alice").await;
    for user in ["bob", "carol", "dave"] {
        api.signed_up(json!({"code": code, "referred_user_id": user}))
            .await;
    }
    // bob: three invoices, two pay.
    let mut credits = Vec::new();
    for i in 1..=3 {
        let outcome = api
            .invoiced(json!({"event_id": format!("bob-{i}"), "user_id": "bob",
                             "amount_paid": 1000, "currency": "USD"}))
            .await;
        credits.push(outcome["acquired_credit"].as_i64().unwrap());
    }
    assert_eq!(credits, [100, 100, 0]);
    // carol's relation began 13 months ago, dave's 11: only dave's invoice pays.
    for (user, days) in [("carol", 396), ("dave", 335)] {
        let mut relation = api
            .store
            .relations_of_referred(&api.tenant, user)
            .await
            .unwrap()
            .remove(0);
        relation.created = referral::clock::now() - Duration::days(days);
        crate::support::seed::put_relation(&api, &relation).await;
    }
    let carol = api
        .invoiced(
            json!({"event_id": "carol-1", "user_id": "carol", "amount_paid": 1000,
                         "currency": "USD"}),
        )
        .await;
    let dave = api
        .invoiced(
            json!({"event_id": "dave-1", "user_id": "dave", "amount_paid": 1000,
                         "currency": "USD"}),
        )
        .await;
    assert_eq!(
        (
            carol["acquired_credit"].as_i64(),
            dave["acquired_credit"].as_i64()
        ),
        (Some(0), Some(100))
    );
    assert_eq!(
        api.me("alice").await["balances"]["USD"]["current_balance"],
        300
    );
    assert_balances_match_ledger(&api, "alice").await;
    // The limits belong to each_invoice rules, within bounds.
    for (rule, field) in [
        (
            json!({"recipient": "referrer", "trigger": "signup", "kind": "cash", "amount": 1,
                "max_invoices": 2}),
            "rewards[0].max_invoices",
        ),
        (
            json!({"recipient": "referrer", "trigger": "each_invoice", "kind": "cash",
                "percent": 5.0, "max_months": 0}),
            "rewards[0].max_months",
        ),
        (
            json!({"recipient": "referrer", "trigger": "each_invoice", "kind": "cash",
                "percent": 5.0, "max_invoices": 1001}),
            "rewards[0].max_invoices",
        ),
    ] {
        let answer = api
            .admin(
                Method::POST,
                "/v1/programs",
                Some(json!({"name": "Bad", "currency": "USD", "rewards": [rule]})),
            )
            .await;
        assert_error(&answer, 400, "invalid_request");
        assert_eq!(answer.1["error"]["field"], field, "{}", answer.1);
    }
}

#[tokio::test]
async fn max_invoices_is_exact_under_concurrent_invoices() {
    let api = Api::new().await;
    api.program(json!({"name": "Capped", "currency": "USD", "rewards": [
        {"recipient": "referrer", "trigger": "each_invoice", "kind": "cash", "amount": 50,
         "delivery": "payout", "max_invoices": 3}]}))
        .await;
    let code = api.code_of("alice").await;
    api.signed_up(json!({"code": code, "referred_user_id": "bob"}))
        .await;
    // Contention on one relation can outlast a request's deadline on a loaded machine (503,
    // nothing written): resent, as a client does (the event id makes it idempotent).
    let invoices = (0..8).map(|i| {
        let api = &api;
        crate::money::retried_when_busy(move || {
            api.service(
                Method::POST,
                "/v1/events/invoices",
                Some(json!({"event_id": format!("c-{i}"), "user_id": "bob",
                            "amount_paid": 100, "currency": "USD"})),
            )
        })
    });
    let answers = futures::future::join_all(invoices).await;
    let paid: i64 = answers
        .iter()
        .map(|(status, outcome)| {
            assert_eq!(*status, StatusCode::OK, "{outcome}");
            outcome["acquired_credit"].as_i64().unwrap()
        })
        .sum();
    assert_eq!(paid, 150);
    assert_eq!(all_rewards(&api, "alice").await.len(), 3);
    assert_balances_match_ledger(&api, "alice").await;
}
