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
