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

async fn refunded(api: &Api, body: Value) -> Value {
    let (status, answer) = api
        .service(Method::POST, "/v1/events/refunds", Some(body))
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    answer
}

fn balance(promoter: &Value) -> (i64, i64) {
    (
        promoter["balances"]["USD"]["current_balance"]
            .as_i64()
            .unwrap(),
        promoter["balances"]["USD"]["total_earned"]
            .as_i64()
            .unwrap(),
    )
}

#[tokio::test]
async fn a_refund_after_withdrawal_leaves_a_negative_balance_the_next_reward_nets() {
    let api = Api::new().await;
    api.program(json!({"name": "Commission", "currency": "USD", "rewards": [
        {"recipient": "referrer", "trigger": "each_invoice", "kind": "cash", "percent": 15.0,
         "delivery": "payout"}]}))
        .await;
    let code = api.code_of("alice").await;
    api.signed_up(json!({"code": code, "referred_user_id": "bob"}))
        .await;
    api.invoiced(
        json!({"event_id": "in-1", "user_id": "bob", "amount_paid": 20000,
                        "currency": "USD"}),
    )
    .await;
    api.pays_out_to("alice", "alice@example.com").await;
    let (status, payout) = api
        .as_promoter(
            "alice",
            Method::POST,
            "/v1/promoters/me/payouts",
            Some(json!({"currency": "USD"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{payout}");
    assert_eq!(balance(&api.me("alice").await), (0, 3000));

    // The whole invoice refunded after the withdrawal: a take-back of 3000, credited at once.
    let answer = refunded(
        &api,
        json!({"event_id": "re-1", "user_id": "bob", "invoice_event_id": "in-1",
               "amount_refunded": 20000, "currency": "usd"}),
    )
    .await;
    assert_eq!(answer["reason"], "refund");
    assert_eq!(
        (
            answer["take_backs"][0]["amount"].as_i64(),
            answer["take_backs"][0]["status"].as_str(),
            answer["take_backs"][0]["reverses"].as_str()
        ),
        (
            Some(-3000),
            Some("credited"),
            answer["adjusted"][0]["id"].as_str()
        ),
        "{answer}"
    );
    assert_eq!(answer["relations"][0]["paid_total"], 0);
    assert_eq!(balance(&api.me("alice").await), (-3000, 0));
    assert_balances_match_ledger(&api, "alice").await;
    // A negative balance cannot be withdrawn; the next commission nets against it.
    assert_error(
        &api.as_promoter(
            "alice",
            Method::POST,
            "/v1/promoters/me/payouts",
            Some(json!({"currency": "USD"})),
        )
        .await,
        422,
        "below_min_withdrawal_balance",
    );
    api.invoiced(
        json!({"event_id": "in-2", "user_id": "bob", "amount_paid": 30000,
                        "currency": "USD"}),
    )
    .await;
    assert_eq!(balance(&api.me("alice").await), (1500, 4500));

    // Partial refunds take back in proportion, half-even, and add up to the whole: 15 % of
    // 10001 is 1500; 5000 of it refunded takes back 750 (749.93), the other 5001 the rest.
    api.invoiced(
        json!({"event_id": "in-3", "user_id": "bob", "amount_paid": 10001,
                        "currency": "USD"}),
    )
    .await;
    assert_eq!(balance(&api.me("alice").await), (3000, 6000));
    let first = refunded(
        &api,
        json!({"event_id": "re-2", "user_id": "bob", "invoice_event_id": "in-3",
               "amount_refunded": 5000, "currency": "USD"}),
    )
    .await;
    assert_eq!(first["take_backs"][0]["amount"], -750, "{first}");
    let second = refunded(
        &api,
        json!({"event_id": "re-3", "user_id": "bob", "invoice_event_id": "in-3",
               "amount_refunded": 9000, "currency": "USD"}),
    )
    .await;
    assert_eq!(second["take_backs"][0]["amount"], -750, "{second}");
    assert_eq!(second["adjusted"][0]["taken_back"], 1500);
    assert_eq!(second["adjusted"][0]["invoice"]["refunded"], 10001);
    // Nothing is left to take back: a third refund of it moves only the paid total.
    let third = refunded(
        &api,
        json!({"event_id": "re-4", "user_id": "bob", "invoice_event_id": "in-3",
               "amount_refunded": 1, "currency": "USD"}),
    )
    .await;
    assert_eq!(third["take_backs"], json!([]), "{third}");
    assert_eq!(balance(&api.me("alice").await), (1500, 4500));
    assert_balances_match_ledger(&api, "alice").await;

    // Idempotent on event_id; another payload under it is refused; bad input changes nothing.
    let again = refunded(
        &api,
        json!({"event_id": "re-2", "user_id": "bob", "invoice_event_id": "in-3",
               "amount_refunded": 5000, "currency": "USD"}),
    )
    .await;
    assert_eq!(again, first);
    assert_error(
        &api.service(
            Method::POST,
            "/v1/events/refunds",
            Some(
                json!({"event_id": "re-2", "user_id": "bob", "amount_refunded": 4000,
                        "currency": "USD"}),
            ),
        )
        .await,
        409,
        "idempotency_key_reused",
    );
    for (body, field) in [
        (
            json!({"event_id": "x", "user_id": "bob", "amount_refunded": 0, "currency": "USD"}),
            "amount_refunded",
        ),
        (
            json!({"event_id": "x", "user_id": "bob", "amount_refunded": -5, "currency": "USD"}),
            "amount_refunded",
        ),
        (
            json!({"event_id": "x", "user_id": "bob", "amount_refunded": 5, "currency": "XXY"}),
            "currency",
        ),
        (
            json!({"event_id": "x", "user_id": "bob", "amount_refunded": 5, "currency": "USD",
                   "invoice_event_id": "no spaces"}),
            "invoice_event_id",
        ),
        (
            json!({"event_id": "x", "user_id": "bob", "amount_refunded": 5, "currency": "USD",
                   "reason": "regret"}),
            "reason",
        ),
    ] {
        let answer = api
            .service(Method::POST, "/v1/events/refunds", Some(body))
            .await;
        assert_error(&answer, 400, "invalid_request");
        assert_eq!(answer.1["error"]["field"], field, "{}", answer.1);
    }
    assert_error(
        &api.admin(
            Method::POST,
            "/v1/events/refunds",
            Some(
                json!({"event_id": "x", "user_id": "bob", "amount_refunded": 5,
                        "currency": "USD"}),
            ),
        )
        .await,
        403,
        "forbidden",
    );
    assert_eq!(balance(&api.me("alice").await), (1500, 4500));

    // A refund that names no invoice takes the paid total to 0 and the invoice's commission
    // stays; a later refund naming the invoice still finds and takes it.
    api.invoiced(
        json!({"event_id": "in-4", "user_id": "bob", "amount_paid": 1000,
                        "currency": "USD"}),
    )
    .await;
    let total = refunded(
        &api,
        json!({"event_id": "re-5", "user_id": "bob", "amount_refunded": 1000000,
               "currency": "USD"}),
    )
    .await;
    assert_eq!(
        (&total["relations"][0]["paid_total"], &total["take_backs"]),
        (&json!(0), &json!([]))
    );
    let named = refunded(
        &api,
        json!({"event_id": "re-6", "user_id": "bob", "invoice_event_id": "in-4",
               "amount_refunded": 1000, "currency": "USD"}),
    )
    .await;
    assert_eq!(named["take_backs"][0]["amount"], -150, "{named}");
    assert_eq!(balance(&api.me("alice").await), (1500, 4500));
    assert_balances_match_ledger(&api, "alice").await;
}

#[tokio::test]
async fn refunds_reduce_undelivered_rewards_in_place_and_reverse_them_when_whole() {
    // The release reads a table-wide index: a table of its own.
    let api = Api::isolated().await;
    api.program(
        json!({"name": "Held commission", "currency": "USD", "hold_days": 30,
        "clawback_days": 90, "rewards": [
        {"recipient": "referrer", "trigger": "each_invoice", "kind": "cash", "percent": 10.0,
         "delivery": "payout"},
        {"recipient": "referrer", "trigger": "paid_threshold", "threshold_amount": 5000,
         "kind": "cash", "amount": 2000, "delivery": "payout"}]}),
    )
    .await;
    let code = api.code_of("alice").await;
    api.signed_up(json!({"code": code, "referred_user_id": "bob"}))
        .await;
    let invoice = api
        .invoiced(
            json!({"event_id": "in-1", "user_id": "bob", "amount_paid": 8000,
                         "currency": "USD"}),
        )
        .await;
    assert_eq!(invoice["rewards"].as_array().unwrap().len(), 2, "{invoice}");
    assert_eq!(balance(&api.me("alice").await), (0, 2800));
    // A quarter refunded: still above the threshold; the commission loses 200 in place.
    let answer = refunded(
        &api,
        json!({"event_id": "re-1", "user_id": "bob", "invoice_event_id": "in-1",
               "amount_refunded": 2000, "currency": "USD"}),
    )
    .await;
    assert_eq!(answer["take_backs"], json!([]), "{answer}");
    let adjusted = &answer["adjusted"][0];
    assert_eq!(
        (
            adjusted["status"].as_str(),
            adjusted["reduced"].as_i64(),
            adjusted["amount"].as_i64()
        ),
        (Some("held"), Some(200), Some(800)),
        "{answer}"
    );
    assert_eq!(balance(&api.me("alice").await), (0, 2600));
    // Then below the threshold (a chargeback without naming the invoice): the threshold
    // reward, held still, is reversed whole; the commission keeps its 600.
    let answer = refunded(
        &api,
        json!({"event_id": "cb-1", "user_id": "bob", "amount_refunded": 2000,
               "currency": "USD", "reason": "chargeback"}),
    )
    .await;
    let reversed = &answer["adjusted"][0];
    assert_eq!(
        (
            reversed["status"].as_str(),
            reversed["reduced"].as_i64(),
            reversed["refund_reason"].as_str()
        ),
        (Some("reversed"), Some(2000), Some("chargeback")),
        "{answer}"
    );
    assert_eq!(answer["relations"][0]["paid_total"], 4000);
    assert_eq!(balance(&api.me("alice").await), (0, 600));
    assert_balances_match_ledger(&api, "alice").await;
    // Released when due, the commission pays what is left of it: 600.
    let released = release_due(&api.store, referral::clock::now() + Duration::days(31))
        .await
        .unwrap();
    assert!(released.iter().any(|r| r.payable() == 600), "{released:?}");
    assert_eq!(balance(&api.me("alice").await), (600, 600));
    assert_balances_match_ledger(&api, "alice").await;
    // The window: a program whose clawback_days is 0 never takes a threshold back.
    let path = format!(
        "/v1/programs/{}",
        invoice["relations"][0]["program_id"].as_str().unwrap()
    );
    for bad in [json!(-1), json!(366), json!(null)] {
        assert_error(
            &api.admin(Method::PATCH, &path, Some(json!({"clawback_days": bad})))
                .await,
            400,
            "invalid_request",
        );
    }
}

#[tokio::test]
async fn concurrent_partial_refunds_take_back_exactly_the_whole() {
    let api = Api::new().await;
    api.program(json!({"name": "Split", "currency": "USD", "rewards": [
        {"recipient": "referrer", "trigger": "each_invoice", "kind": "cash", "percent": 10.0,
         "delivery": "payout"},
        {"recipient": "referee", "trigger": "each_invoice", "kind": "cash", "percent": 5.0,
         "delivery": "payout"}]}))
        .await;
    let code = api.code_of("alice").await;
    api.signed_up(json!({"code": code, "referred_user_id": "bob"}))
        .await;
    api.invoiced(
        json!({"event_id": "in-1", "user_id": "bob", "amount_paid": 7001,
                        "currency": "USD"}),
    )
    .await;
    // 7 refunds of 1000 and one of 1 at once: every one conditioned on the reward as read.
    let refunds = (0..8).map(|i| {
        let amount = if i == 7 { 1 } else { 1000 };
        let api = &api;
        async move {
            crate::money::retried_when_busy(|| {
                api.service(
                    Method::POST,
                    "/v1/events/refunds",
                    Some(json!({"event_id": format!("re-{i}"), "user_id": "bob",
                                "invoice_event_id": "in-1", "amount_refunded": amount,
                                "currency": "USD"})),
                )
            })
            .await
        }
    });
    for (status, answer) in futures::future::join_all(refunds).await {
        assert_eq!(status, StatusCode::OK, "{answer}");
    }
    // 10 % of 7001 is 700, 5 % is 350: all taken back, not a cent more.
    assert_eq!(balance(&api.me("alice").await), (0, 0));
    assert_eq!(api.me("bob").await["balances"]["USD"]["total_earned"], 0);
    for user in ["alice", "bob"] {
        assert_balances_match_ledger(&api, user).await;
        let taken: i64 = all_rewards(&api, user)
            .await
            .iter()
            .filter(|r| r["reverses"].is_string())
            .map(|r| r["amount"].as_i64().unwrap())
            .sum();
        assert_eq!(taken, if user == "alice" { -700 } else { -350 });
    }
}

async fn budget_used(api: &Api, program: &str) -> Value {
    let (status, state) = api
        .admin(Method::GET, &format!("/v1/programs/{program}"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{state}");
    state["budget_used"].clone()
}

#[tokio::test]
async fn a_budget_reached_by_concurrent_sign_ups_holds_exactly_the_rest_for_an_admin() {
    let api = Api::new().await;
    let program = api
        .program(
            json!({"name": "Budgeted", "currency": "USD", "budget": 5000,
            "rewards": [
            {"recipient": "referee", "trigger": "signup", "kind": "cash", "amount": 1000},
            {"recipient": "referee", "trigger": "signup", "kind": "points", "amount": 10}]}),
        )
        .await;
    assert_eq!(budget_used(&api, &program).await, 0);
    let code = api.code_of("alice").await;
    let signups = (0..8).map(|i| {
        let (api, code) = (&api, &code);
        async move {
            crate::money::retried_when_busy(|| {
                api.service(
                    Method::POST,
                    "/v1/referrals",
                    Some(json!({"code": code, "referred_user_id": format!("user-{i}")})),
                )
            })
            .await
        }
    });
    let mut held = Vec::new();
    let mut paid = 0;
    for (status, outcome) in futures::future::join_all(signups).await {
        assert_eq!(status, StatusCode::CREATED, "{outcome}");
        for reward in outcome["rewards"].as_array().unwrap() {
            if reward["currency"] == "POINTS" {
                // Points are not the program's currency: never held for its budget.
                assert_eq!(reward["status"], "pending", "{reward}");
            } else if reward["status"] == "held" {
                assert_eq!(reward["holds"], json!(["budget_exhausted"]), "{reward}");
                held.push(reward["id"].as_str().unwrap().to_owned());
            } else {
                assert_eq!(reward["status"], "pending", "{reward}");
                assert_eq!(reward["budget_bucket"], "total");
                paid += 1;
            }
        }
    }
    assert_eq!((paid, held.len()), (5, 3), "exactly the budget: 5 × 1000");
    assert_eq!(budget_used(&api, &program).await, 5000);

    // An admin cannot release one while the budget is spent; raised, one fits, then no more.
    let approve = |id: &str| format!("/v1/rewards/{id}/approve");
    assert_error(
        &api.admin(Method::POST, &approve(&held[0]), None).await,
        409,
        "conflict",
    );
    let path = format!("/v1/programs/{program}");
    let (status, _) = api
        .admin(Method::PATCH, &path, Some(json!({"budget": 6000})))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, released) = api.admin(Method::POST, &approve(&held[0]), None).await;
    assert_eq!(status, StatusCode::OK, "{released}");
    assert_eq!(
        (released["status"].as_str(), &released["holds"]),
        (Some("pending"), &json!([]))
    );
    assert_eq!(budget_used(&api, &program).await, 6000);
    let (status, bulk) = api
        .admin(
            Method::POST,
            "/v1/rewards/approve",
            Some(json!({"ids": [held[1], held[2]]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{bulk}");
    assert_eq!(bulk["approved"], json!([]), "{bulk}");
    let reasons: Vec<&str> = bulk["refused"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["reason"].as_str().unwrap())
        .collect();
    assert_eq!(reasons, ["budget_exhausted", "budget_exhausted"]);
    // Denied, a held reward never pays; denying a counted one gives its amount back.
    let (status, denied) = api
        .admin(
            Method::POST,
            &format!("/v1/rewards/{}/deny", held[1]),
            Some(json!({"reason": "over budget"})),
        )
        .await;
    assert_eq!(
        (status, denied["status"].as_str()),
        (StatusCode::OK, Some("reversed"))
    );
    assert_eq!(budget_used(&api, &program).await, 6000);
    let (_, bulk) = api
        .admin(
            Method::POST,
            "/v1/rewards/approve",
            Some(json!({"ids": [held[2]]})),
        )
        .await;
    assert_eq!(bulk["refused"][0]["reason"], "budget_exhausted", "{bulk}");
    // Limits are positive amounts, or null for none.
    for bad in [
        json!(0),
        json!(-5),
        json!("100"),
        json!(100_000_000_001_i64),
    ] {
        assert_error(
            &api.admin(Method::PATCH, &path, Some(json!({"budget": bad})))
                .await,
            400,
            "invalid_request",
        );
    }
    let (_, cleared) = api
        .admin(Method::PATCH, &path, Some(json!({"budget": null})))
        .await;
    assert_eq!(cleared["budget"], Value::Null);
    assert_eq!(budget_used(&api, &program).await, Value::Null, "absent");
}

#[tokio::test]
async fn a_promoter_cap_and_a_monthly_budget_count_each_referrer_and_refunds_give_back() {
    let api = Api::new().await;
    let program = api
        .program(
            json!({"name": "Capped", "currency": "USD", "budget": 100000,
            "budget_period": "month", "max_earnings_per_promoter": 1500,
            "approval": "manual", "rewards": [
            {"recipient": "referrer", "trigger": "signup", "kind": "cash", "amount": 500,
             "delivery": "payout"},
            {"recipient": "referrer", "trigger": "each_invoice", "kind": "cash",
             "percent": 10.0, "delivery": "payout"}]}),
        )
        .await;
    let alice = api.code_of("alice").await;
    let carol = api.code_of("carol").await;
    let mut holds = Vec::new();
    for (code, user) in [
        (&alice, "u1"),
        (&alice, "u2"),
        (&alice, "u3"),
        (&alice, "u4"),
        (&carol, "u5"),
    ] {
        let outcome = api
            .signed_up(json!({"code": code, "referred_user_id": user}))
            .await;
        holds.push(outcome["rewards"][0]["holds"].clone());
    }
    // Every reward waits for approval; alice's fourth also for her cap (counted in nothing).
    assert_eq!(
        holds,
        [
            json!(["awaiting_approval"]),
            json!(["awaiting_approval"]),
            json!(["awaiting_approval"]),
            json!(["awaiting_approval", "earnings_cap_reached"]),
            json!(["awaiting_approval"]),
        ]
    );
    let month = {
        let now = referral::clock::now();
        format!("{:04}-{:02}", now.year(), u8::from(now.month()))
    };
    let (_, state) = api
        .admin(Method::GET, &format!("/v1/programs/{program}"), None)
        .await;
    assert_eq!(
        (&state["budget_used"], &state["budget_bucket"]),
        (&json!(2000), &json!(month))
    );
    // A refund gives back what it takes: u1's invoice earns alice nothing (cap reached), u5's
    // earns carol 100 and its refund gives the budget back.
    let invoice = api
        .invoiced(
            json!({"event_id": "in-u1", "user_id": "u1", "amount_paid": 1000,
                         "currency": "USD"}),
        )
        .await;
    assert_eq!(
        invoice["rewards"][0]["holds"],
        json!(["awaiting_approval", "earnings_cap_reached"])
    );
    api.invoiced(
        json!({"event_id": "in-u5", "user_id": "u5", "amount_paid": 1000,
                        "currency": "USD"}),
    )
    .await;
    assert_eq!(budget_used(&api, &program).await, 2100);
    refunded(
        &api,
        json!({"event_id": "re-u5", "user_id": "u5", "invoice_event_id": "in-u5",
               "amount_refunded": 1000, "currency": "USD"}),
    )
    .await;
    assert_eq!(budget_used(&api, &program).await, 2000);
    // Denying one of alice's counted rewards gives it back to her cap and the budget: her
    // fourth, held for the cap, then fits and is approved (counted now).
    let (_, ledger) = api
        .admin(Method::GET, "/v1/rewards?status=held&limit=100", None)
        .await;
    let alice_held: Vec<&Value> = ledger["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["user_id"] == "alice" && r["reason"] == "signup")
        .collect();
    let counted = alice_held
        .iter()
        .find(|r| r["counts_to_cap"] == true)
        .unwrap();
    let capped = alice_held
        .iter()
        .find(|r| r["holds"].as_array().unwrap().len() == 2)
        .unwrap();
    assert_error(
        &api.admin(
            Method::POST,
            &format!("/v1/rewards/{}/approve", capped["id"].as_str().unwrap()),
            None,
        )
        .await,
        409,
        "conflict",
    );
    let (status, _) = api
        .admin(
            Method::POST,
            &format!("/v1/rewards/{}/deny", counted["id"].as_str().unwrap()),
            Some(json!({"reason": "duplicate account"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(budget_used(&api, &program).await, 1500);
    let (status, approved) = api
        .admin(
            Method::POST,
            &format!("/v1/rewards/{}/approve", capped["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{approved}");
    assert_eq!(
        (&approved["status"], &approved["counts_to_cap"]),
        (&json!("credited"), &json!(true))
    );
    assert_eq!(budget_used(&api, &program).await, 2000);
    assert_balances_match_ledger(&api, "alice").await;
    assert_balances_match_ledger(&api, "carol").await;
}

#[tokio::test]
async fn explain_tells_for_every_rule_what_fired_and_exactly_why_not() {
    let api = Api::new().await;
    let program = api
        .program(
            json!({"name": "Explained", "currency": "USD", "requires_verification": true,
            "rewards": [
            {"recipient": "referee", "trigger": "signup", "kind": "cash", "amount": 1000},
            {"recipient": "referee", "trigger": "verified", "kind": "cash", "amount": 200},
            {"recipient": "referrer", "trigger": "paid_threshold", "threshold_amount": 5000,
             "kind": "cash", "amount": 2500},
            {"recipient": "referrer", "trigger": "each_invoice", "kind": "cash",
             "percent": 10.0, "delivery": "payout", "max_invoices": 1}]}),
        )
        .await;
    let code = api.code_of("alice").await;
    let signup = api
        .signed_up(json!({"code": code, "referred_user_id": "bob"}))
        .await;
    let id = signup["referral"]["id"].as_str().unwrap().to_owned();
    for (event, amount) in [("in-1", 2000), ("in-2", 1000)] {
        api.invoiced(
            json!({"event_id": event, "user_id": "bob", "amount_paid": amount,
                            "currency": "USD"}),
        )
        .await;
    }
    let path = format!("/v1/referrals/{id}/explain");
    let (status, explained) = api.service(Method::GET, &path, None).await;
    assert_eq!(status, StatusCode::OK, "{explained}");
    assert_eq!(explained["program"]["open"], true);
    let rules = explained["rules"].as_array().unwrap();
    let rule = |key: &str| rules.iter().find(|r| r["key"] == key).unwrap().clone();
    let signup_rule = rule("referee.signup");
    assert_eq!(signup_rule["fired"], true);
    assert_eq!(
        signup_rule["rewards"][0]["reasons"][0]["code"],
        "held_for_verification"
    );
    assert_eq!(rule("referee.verified")["why_not"]["code"], "not_verified");
    let threshold = rule("referrer.paid_threshold.5000");
    assert_eq!(
        (
            &threshold["fired"],
            &threshold["why_not"]["code"],
            &threshold["why_not"]["message"]
        ),
        (
            &json!(false),
            &json!("threshold_not_reached"),
            &json!("30.00 USD of 50.00 USD paid")
        )
    );
    let commission = rule("referrer.each_invoice");
    assert_eq!(commission["rewards"].as_array().unwrap().len(), 1);
    assert_eq!(commission["rewards"][0]["invoice_event_id"], "in-1");
    assert_eq!(commission["why_not"]["code"], "max_invoices_reached");

    // Paused: what has not fired says so; admins may ask too; other tenants may not.
    api.admin(
        Method::PATCH,
        &format!("/v1/programs/{program}"),
        Some(json!({"status": "paused"})),
    )
    .await;
    api.service(
        Method::POST,
        "/v1/events/verifications",
        Some(json!({"event_id": "v-1", "user_id": "bob", "outcome": "succeeded"})),
    )
    .await;
    let (status, explained) = api.admin(Method::GET, &path, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(explained["program"]["closed_because"], "paused");
    let verified = explained["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["key"] == "referee.verified")
        .unwrap()
        .clone();
    assert_eq!(verified["why_not"]["code"], "program_closed", "{verified}");
    assert_error(
        &api.other_tenant().admin(Method::GET, &path, None).await,
        404,
        "not_found",
    );
    assert_error(
        &api.as_promoter("alice", Method::GET, &path, None).await,
        403,
        "forbidden",
    );
}
