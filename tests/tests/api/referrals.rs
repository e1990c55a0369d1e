//! Sign-ups, events and completion against the emulator, following the seeds' own scenarios.
//! After every scenario each promoter's balances equal the sum of their ledger entries.

use axum::http::{Method, StatusCode};
use futures::future::join_all;
use referral::domain::ledger::{Reward, RewardStatus};
use referral::domain::program::{Delivery, RewardKind};
use referral::http::auth::Role;
use referral::store::{ProgramStore, PromoterStore};
use serde_json::{Value, json};

use crate::support::{Api, assert_error, token};

async fn service(api: &Api, method: Method, path: &str, body: Value) -> (StatusCode, Value) {
    let token = token(&api.tenant, "backend", Role::Service);
    api.call(method, path, Some(&token), Some(body)).await
}

async fn program(api: &Api, body: Value) -> String {
    let (status, program) = api.admin(Method::POST, "/v1/programs", Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{program}");
    program["id"].as_str().unwrap().to_owned()
}

/// The user's promoter (created if needed); answers their primary code.
async fn code_of(api: &Api, user: &str) -> String {
    let token = token(&api.tenant, user, Role::Promoter);
    let (status, promoter) = api
        .call(Method::GET, "/v1/promoters/me", Some(&token), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    promoter["referral_code"].as_str().unwrap().to_owned()
}

async fn sign_up(api: &Api, body: Value) -> (StatusCode, Value) {
    service(api, Method::POST, "/v1/referrals", body).await
}

async fn signed_up(api: &Api, body: Value) -> Value {
    let (status, outcome) = sign_up(api, body).await;
    assert_eq!(status, StatusCode::CREATED, "{outcome}");
    outcome
}

async fn invoice(api: &Api, body: Value) -> Value {
    let (status, answer) = service(api, Method::POST, "/v1/events/invoices", body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    answer
}

async fn promoter(api: &Api, user: &str) -> Value {
    let (status, promoter) = api
        .admin(Method::GET, &format!("/v1/promoters/{user}"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{promoter}");
    promoter
}

/// Balances are what the ledger says: `total_earned` every cash reward, `current_balance` the
/// credited `payout` ones less what was withdrawn, `points_earned` every points reward.
async fn assert_balances_match_ledger(api: &Api, user: &str) {
    let promoter = promoter(api, user).await;
    let ledger = api
        .store
        .rewards_since(&api.tenant, user, time::OffsetDateTime::UNIX_EPOCH)
        .await
        .unwrap();
    let cash = |r: &&referral::domain::ledger::Reward| {
        r.kind == RewardKind::Cash && r.status != RewardStatus::Reversed
    };
    let earned: i64 = ledger.iter().filter(cash).map(|r| r.amount).sum();
    let withdrawable: i64 = ledger
        .iter()
        .filter(cash)
        .filter(|r| r.delivery == Delivery::Payout && r.status == RewardStatus::Credited)
        .map(|r| r.amount)
        .sum();
    let points: i64 = ledger
        .iter()
        .filter(|r| r.kind == RewardKind::Points)
        .map(|r| r.amount)
        .sum();
    let withdrawn = promoter["total_paid"].as_i64().unwrap();
    let payouts = api
        .store
        .payouts_of(&api.tenant, user, &Default::default())
        .await
        .unwrap();
    let requested: i64 = payouts.items.iter().map(|p| p.amount).sum();
    assert_eq!(
        promoter["total_earned"].as_i64(),
        Some(earned),
        "{user}: total_earned"
    );
    assert_eq!(
        promoter["current_balance"].as_i64(),
        Some(withdrawable - requested),
        "{user}: current_balance"
    );
    assert_eq!(
        promoter["points_earned"].as_i64(),
        Some(points),
        "{user}: points_earned"
    );
    assert!(withdrawn <= requested);
}

#[tokio::test]
async fn seed_000_register_invoices_replay_and_statement() {
    let api = Api::new().await;
    let program_id = program(&api, json!({"name": "Seed 000", "currency": "BRL", "rewards": [
        {"recipient": "referee", "trigger": "signup", "kind": "cash", "amount": 1000},
        {"recipient": "referrer", "trigger": "paid_threshold", "threshold_amount": 5000, "kind": "cash", "amount": 5000}
    ]}))
    .await;
    let code = code_of(&api, "indicator").await;
    let outcome = signed_up(
        &api,
        json!({"code": code, "referred_user_id": "indicated", "referred_email": "New@Example.com"}),
    )
    .await;
    let relation = &outcome["referral"];
    assert_eq!(
        (
            relation["program_id"].as_str(),
            relation["referrer_user_id"].as_str()
        ),
        (Some(program_id.as_str()), Some("indicator"))
    );
    assert_eq!(relation["referred_email"], "new@example.com");
    assert_eq!(relation["invitation_method"], "code");
    assert_eq!(outcome["rewards"].as_array().unwrap().len(), 1);
    assert_eq!(outcome["rewards"][0]["user_id"], "indicated");
    assert_eq!(
        (
            outcome["rewards"][0]["amount"].as_i64(),
            outcome["rewards"][0]["status"].as_str()
        ),
        (Some(1000), Some("pending"))
    );

    let first = invoice(&api, json!({"event_id": "inv-1", "user_id": "indicated", "amount_paid": 3000, "currency": "BRL"})).await;
    assert_eq!(
        first,
        json!({"acquired_credit": 0, "rewards": [], "relations": [
            {"referral_id": relation["id"], "program_id": program_id, "outcome": "counted",
             "paid_total": 3000}]})
    );
    let second = invoice(&api, json!({"event_id": "inv-2", "user_id": "indicated", "amount_paid": 2500, "currency": "BRL"})).await;
    assert_eq!(second["acquired_credit"], 5000);
    assert_eq!(second["rewards"][0]["user_id"], "indicator");
    assert_eq!(second["rewards"][0]["reason"], "paid_threshold");
    let replay = invoice(&api, json!({"event_id": "inv-2", "user_id": "indicated", "amount_paid": 2500, "currency": "BRL"})).await;
    assert_eq!(replay, second, "a replay answers the same");
    let cumulative = invoice(&api, json!({"event_id": "inv-3", "user_id": "indicated", "total_amount_paid": 4000, "currency": "BRL"})).await;
    assert_eq!(
        cumulative["acquired_credit"], 0,
        "a lower cumulative total changes nothing"
    );

    let (_, read) = service(
        &api,
        Method::GET,
        &format!("/v1/referrals/{}", relation["id"].as_str().unwrap()),
        Value::Null,
    )
    .await;
    assert_eq!(read["paid_total"], 5500);
    assert_eq!(read["status"], "converted");

    let promoter_token = token(&api.tenant, "indicator", Role::Promoter);
    let (_, statement) = api
        .call(
            Method::GET,
            "/v1/promoters/me/statement",
            Some(&promoter_token),
            None,
        )
        .await;
    assert_eq!(
        (
            statement["acquired_credit"].as_i64(),
            statement["potential_credit"].as_i64()
        ),
        (Some(5000), Some(0))
    );
    let indicator = promoter(&api, "indicator").await;
    assert_eq!(
        (
            indicator["total_earned"].as_i64(),
            indicator["current_balance"].as_i64()
        ),
        (Some(5000), Some(0)),
        "billing credit, not balance"
    );
    assert_balances_match_ledger(&api, "indicator").await;

    let nobody = invoice(
        &api,
        json!({"event_id": "inv-9", "user_id": "stranger", "amount_paid": 100, "currency": "BRL"}),
    )
    .await;
    assert_eq!(
        nobody,
        json!({"acquired_credit": 0, "rewards": [], "relations": []})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_replays_of_one_invoice_credit_once() {
    let api = Api::new().await;
    program(&api, json!({"name": "Threshold", "currency": "USD", "rewards": [
        {"recipient": "referrer", "trigger": "paid_threshold", "threshold_amount": 1000, "kind": "cash", "amount": 700, "delivery": "payout"}
    ]}))
    .await;
    let code = code_of(&api, "alice").await;
    signed_up(&api, json!({"code": code, "referred_user_id": "bob"})).await;
    let body =
        json!({"event_id": "pay-77", "user_id": "bob", "amount_paid": 1500, "currency": "USD"});
    let calls = (0..8).map(|_| {
        let (api, body) = (api.clone(), body.clone());
        tokio::spawn(async move { service(&api, Method::POST, "/v1/events/invoices", body).await })
    });
    let answers: Vec<_> = join_all(calls)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    for (status, answer) in &answers {
        assert_eq!(*status, StatusCode::OK, "{answer}");
        assert_eq!(answer, &answers[0].1, "every replay answers the same");
    }
    assert_eq!(answers[0].1["acquired_credit"], 700);
    let alice = promoter(&api, "alice").await;
    assert_eq!(
        (
            alice["total_earned"].as_i64(),
            alice["current_balance"].as_i64()
        ),
        (Some(700), Some(700))
    );
    assert_balances_match_ledger(&api, "alice").await;
}

#[tokio::test]
async fn seed_001_commission_is_fifteen_percent_of_each_invoice() {
    let api = Api::new().await;
    program(&api, json!({"name": "Commission", "currency": "USD", "rewards": [
        {"recipient": "referrer", "trigger": "each_invoice", "kind": "cash", "percent": 15.0, "delivery": "payout"}
    ]}))
    .await;
    let code = code_of(&api, "promoter").await;
    let outcome = signed_up(&api, json!({"code": code, "referred_user_id": "customer"})).await;
    assert_eq!(outcome["referral"]["commission_rate"], 15.0);
    for (id, amount, expected) in [("i1", 10_000, 1500), ("i2", 2_999, 450), ("i3", 30, 4)] {
        let answer = invoice(&api, json!({"event_id": id, "user_id": "customer", "amount_paid": amount, "currency": "USD"})).await;
        assert_eq!(answer["acquired_credit"], expected, "{id}");
    }
    let promoter_json = promoter(&api, "promoter").await;
    assert_eq!(promoter_json["current_balance"], 1954);
    let promoter_token = token(&api.tenant, "promoter", Role::Promoter);
    let (_, list) = api
        .call(
            Method::GET,
            "/v1/promoters/me/referrals",
            Some(&promoter_token),
            None,
        )
        .await;
    assert_eq!(list["results"][0]["commission_amount"], 1954);
    assert_eq!(list["results"][0]["commission_status"], "credited");
    let (_, days) = api
        .call(
            Method::GET,
            "/v1/promoters/me/earnings/recent",
            Some(&promoter_token),
            None,
        )
        .await;
    assert_eq!(days[6]["value"], 1954);
    assert_balances_match_ledger(&api, "promoter").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn seed_002_a_code_limit_of_five_holds_under_twenty_concurrent_sign_ups() {
    let api = Api::new().await;
    let program_id = program(&api, json!({"name": "Limited", "currency": "USD", "rewards": [
        {"recipient": "referrer", "trigger": "signup", "kind": "cash", "amount": 500, "delivery": "payout"}
    ]}))
    .await;
    let (status, extra) = api
        .admin(
            Method::POST,
            "/v1/promoters/alice/codes",
            Some(json!({"program_id": program_id, "max_referrals": 5, "referrer_amount": 300})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let code = extra["code"].as_str().unwrap().to_owned();
    let calls = (0..20).map(|i| {
        let (api, code) = (api.clone(), code.clone());
        tokio::spawn(async move {
            sign_up(
                &api,
                json!({"code": code, "referred_user_id": format!("friend-{i}")}),
            )
            .await
        })
    });
    let answers: Vec<_> = join_all(calls)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let statuses: Vec<u16> = answers.iter().map(|a| a.0.as_u16()).collect();
    let created = statuses.iter().filter(|s| **s == 201).count();
    assert_eq!(created, 5, "{statuses:?}");
    for refused in answers.iter().filter(|a| a.0 != StatusCode::CREATED) {
        assert_error(refused, 422, "max_referrals_reached");
    }
    let (_, public_code) = api
        .call(Method::GET, &format!("/v1/codes/{code}"), None, None)
        .await;
    assert_eq!(public_code["programs"][0]["total_referrals"], 5);
    assert_eq!(public_code["is_valid"], false);
    let alice = promoter(&api, "alice").await;
    assert_eq!(alice["current_balance"], 1500, "5 x the code's own 300");
    assert_balances_match_ledger(&api, "alice").await;
}

#[tokio::test]
async fn seed_002_verification_gates_rewards_and_country_overrides_apply() {
    let api = Api::new().await;
    program(&api, json!({"name": "Verified", "currency": "USD", "requires_verification": true,
        "country_overrides": {"BR": {"referee_amount": 100, "referrer_amount": 50}},
        "rewards": [
            {"recipient": "referrer", "trigger": "signup", "kind": "cash", "amount": 500, "delivery": "payout"},
            {"recipient": "referee", "trigger": "signup", "kind": "cash", "amount": 2500},
            {"recipient": "referee", "trigger": "verified", "kind": "points", "amount": 10}
        ]}))
    .await;
    let code = code_of(&api, "alice").await;
    let outcome = signed_up(
        &api,
        json!({"code": code, "referred_user_id": "bob", "country": "br"}),
    )
    .await;
    let amounts: Vec<(i64, &str)> = outcome["rewards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["amount"].as_i64().unwrap(), r["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        amounts,
        [(50, "held"), (100, "held")],
        "Brazil's amounts, held for the check"
    );
    assert_eq!(promoter(&api, "alice").await["current_balance"], 0);

    let path = "/v1/events/verifications";
    let (status, attempt) = service(
        &api,
        Method::POST,
        path,
        json!({"event_id": "v1", "user_id": "bob", "outcome": "attempted"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{attempt}");
    let (_, success) = service(
        &api,
        Method::POST,
        path,
        json!({"event_id": "v2", "user_id": "bob", "outcome": "succeeded"}),
    )
    .await;
    assert_eq!(
        success["released"].as_array().unwrap().len(),
        2,
        "{success}"
    );
    assert_eq!(success["rewards"][0]["kind"], "points");
    let (_, replay) = service(
        &api,
        Method::POST,
        path,
        json!({"event_id": "v2", "user_id": "bob", "outcome": "succeeded"}),
    )
    .await;
    assert_eq!(replay, success);
    let (_, again) = service(
        &api,
        Method::POST,
        path,
        json!({"event_id": "v3", "user_id": "bob", "outcome": "succeeded"}),
    )
    .await;
    assert!(
        again["rewards"].as_array().unwrap().is_empty()
            && again["released"].as_array().unwrap().is_empty(),
        "a second success pays nothing"
    );

    let alice = promoter(&api, "alice").await;
    assert_eq!(
        (
            alice["current_balance"].as_i64(),
            alice["total_earned"].as_i64()
        ),
        (Some(50), Some(50))
    );
    let alice_token = token(&api.tenant, "alice", Role::Promoter);
    let (_, codes) = api
        .call(
            Method::GET,
            "/v1/promoters/me/codes",
            Some(&alice_token),
            None,
        )
        .await;
    assert_eq!(
        (
            codes["items"][0]["verification_attempts"].as_u64(),
            codes["items"][0]["verification_successes"].as_u64()
        ),
        (Some(1), Some(2))
    );
    assert_eq!(codes["items"][0]["referred_users"][0]["status"], "verified");
    assert_balances_match_ledger(&api, "alice").await;
}

#[tokio::test]
async fn seed_003_points_on_both_sides_min_referrals_hold_and_release_and_expiry() {
    let api = Api::new().await;
    let program_id = program(&api, json!({"name": "Points", "currency": "POINTS", "min_referrals": 2, "audience": "agent",
        "rewards": [
            {"recipient": "referrer", "trigger": "signup", "kind": "points", "amount": 100, "delivery": "payout"},
            {"recipient": "referee", "trigger": "signup", "kind": "points", "amount": 40}
        ]}))
    .await;
    let code = code_of(&api, "agent").await;
    let first = signed_up(&api, json!({"code": code, "referred_user_id": "c1"})).await;
    let statuses: Vec<&str> = first["rewards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        ["held", "pending"],
        "the referrer waits for a second referral"
    );
    assert_eq!(promoter(&api, "agent").await["points_earned"], 100);
    let second = signed_up(&api, json!({"code": code, "referred_user_id": "c2"})).await;
    assert_eq!(
        second["rewards"][0]["status"], "credited",
        "the second qualifies the referrer"
    );
    let ledger = api
        .store
        .rewards_since(&api.tenant, "agent", time::OffsetDateTime::UNIX_EPOCH)
        .await
        .unwrap();
    assert!(
        ledger.iter().all(|r| r.status == RewardStatus::Credited),
        "the first one was released: {ledger:?}"
    );
    assert_balances_match_ledger(&api, "agent").await;

    // Time passes: the program expires (the API refuses a past expiry, so age it in the store).
    let current = api
        .store
        .get_program(&api.tenant, &program_id)
        .await
        .unwrap()
        .unwrap();
    let mut aged = current.clone();
    aged.expires_at = Some(referral::clock::now() - time::Duration::hours(1));
    aged.version += 1;
    assert_eq!(
        api.store.replace_program(&current, &aged).await.unwrap(),
        referral::store::Replaced::Done
    );
    assert_error(
        &sign_up(&api, json!({"code": code, "referred_user_id": "c3"})).await,
        422,
        "program_expired",
    );
    let (status, _) = api
        .admin(
            Method::PATCH,
            &format!("/v1/programs/{program_id}"),
            Some(json!({"status": "paused", "expires_at": null})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_error(
        &sign_up(&api, json!({"code": code, "referred_user_id": "c3"})).await,
        422,
        "program_inactive",
    );
}

#[tokio::test]
async fn sign_ups_are_refused_for_the_documented_reasons() {
    let api = Api::new().await;
    let program_id = program(&api, json!({"name": "Main", "currency": "USD"})).await;
    let code = code_of(&api, "alice").await;
    signed_up(&api, json!({"code": code, "referred_user_id": "bob"})).await;
    assert_error(
        &sign_up(&api, json!({"code": code, "referred_user_id": "bob"})).await,
        409,
        "already_referred",
    );
    assert_error(
        &sign_up(&api, json!({"code": code, "referred_user_id": "alice"})).await,
        422,
        "self_referral",
    );
    let by_user = sign_up(
        &api,
        json!({"referrer_user_id": "alice", "referred_user_id": "carol"}),
    )
    .await;
    assert_eq!(by_user.0, StatusCode::CREATED, "{}", by_user.1);
    assert_eq!(by_user.1["referral"]["invitation_method"], "link");
    for (body, field) in [
        (
            json!({"code": "NOSUCHCODE", "referred_user_id": "x"}),
            "code",
        ),
        (json!({"referred_user_id": "x"}), "code"),
        (json!({"code": code}), "body"),
        (
            json!({"code": code, "referred_user_id": "a#b"}),
            "referred_user_id",
        ),
        (
            json!({"code": code, "referred_user_id": "x", "country": "XX"}),
            "country",
        ),
        (
            json!({"code": code, "referred_user_id": "x", "referred_email": "nope"}),
            "referred_email",
        ),
        (
            json!({"code": code, "referred_user_id": "x", "program_id": referral::id::new_id()}),
            "program_id",
        ),
    ] {
        let answer = sign_up(&api, body.clone()).await;
        assert_error(&answer, 400, "invalid_request");
        assert_eq!(answer.1["error"]["field"], field, "{body}");
    }
    let mismatch = sign_up(
        &api,
        json!({"code": code, "referrer_user_id": "someone-else", "referred_user_id": "x"}),
    )
    .await;
    assert_error(&mismatch, 400, "multiple_parameter_mismatch");

    program(&api, json!({"name": "Second", "currency": "USD"})).await;
    let several = sign_up(&api, json!({"code": code, "referred_user_id": "dave"})).await;
    assert_error(&several, 400, "invalid_request");
    assert_eq!(several.1["error"]["field"], "program_id");
    let named = sign_up(
        &api,
        json!({"code": code, "referred_user_id": "dave", "program_id": program_id}),
    )
    .await;
    assert_eq!(named.0, StatusCode::CREATED);

    api.admin(
        Method::PATCH,
        &format!("/v1/codes/{code}"),
        Some(json!({"is_active": false})),
    )
    .await;
    assert_error(
        &sign_up(
            &api,
            json!({"code": code, "referred_user_id": "erin", "program_id": program_id}),
        )
        .await,
        422,
        "code_inactive",
    );
    api.admin(
        Method::PATCH,
        &format!("/v1/codes/{code}"),
        Some(json!({"is_active": true})),
    )
    .await;
    api.admin(Method::DELETE, &format!("/v1/programs/{program_id}"), None)
        .await;
    assert_error(
        &sign_up(
            &api,
            json!({"code": code, "referred_user_id": "erin", "program_id": program_id}),
        )
        .await,
        422,
        "program_inactive",
    );

    let admin = api
        .admin(
            Method::POST,
            "/v1/referrals",
            Some(json!({"code": code, "referred_user_id": "z"})),
        )
        .await;
    assert_error(&admin, 403, "forbidden");
    let other = api.other_tenant();
    let other_token = token(&other.tenant, "backend", Role::Service);
    let foreign = other
        .call(
            Method::POST,
            "/v1/referrals",
            Some(&other_token),
            Some(json!({"code": code, "referred_user_id": "z"})),
        )
        .await;
    assert_error(&foreign, 400, "invalid_request");
}

#[tokio::test]
async fn seed_004_completion_rewards_the_referrer_once() {
    let api = Api::new().await;
    program(&api, json!({"name": "Complete", "currency": "EUR", "rewards": [
        {"recipient": "referrer", "trigger": "paid_threshold", "threshold_amount": 10000, "kind": "cash", "amount": 1000, "delivery": "payout"}
    ]}))
    .await;
    let code = code_of(&api, "janneke").await;
    let outcome = signed_up(&api, json!({"code": code, "referred_user_id": "referred"})).await;
    let id = outcome["referral"]["id"].as_str().unwrap();
    let path = format!("/v1/referrals/{id}/complete");
    let (status, done) = api.admin(Method::POST, &path, None).await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(done["award"]["amount"], 1000);
    assert_eq!(done["award"]["currency"], "EUR");
    assert!(done["award"]["reason"].as_str().is_some());
    assert_eq!(done["referral"]["status"], "completed");
    assert!(done["referral"]["redeemed_at"].as_str().is_some());
    assert_error(
        &api.admin(Method::POST, &path, None).await,
        409,
        "referral_relation_already_redeemed",
    );
    let later = invoice(
        &api,
        json!({"event_id": "big", "user_id": "referred", "amount_paid": 20000, "currency": "EUR"}),
    )
    .await;
    assert_eq!(
        later["acquired_credit"], 0,
        "the threshold reward was granted by the completion"
    );
    assert_eq!(promoter(&api, "janneke").await["current_balance"], 1000);
    assert_balances_match_ledger(&api, "janneke").await;

    let unknown = format!("/v1/referrals/{}/complete", referral::id::new_id());
    assert_error(
        &api.admin(Method::POST, &unknown, None).await,
        404,
        "not_found",
    );
    assert_error(
        &api.other_tenant().admin(Method::POST, &path, None).await,
        404,
        "not_found",
    );
    let service_token = token(&api.tenant, "backend", Role::Service);
    assert_error(
        &api.call(Method::POST, &path, Some(&service_token), None)
            .await,
        403,
        "forbidden",
    );

    let (status, found) = api
        .admin(Method::GET, "/v1/referrals?user=janneke", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(found["items"][0]["id"], id);
    let (_, found) = api
        .admin(Method::GET, "/v1/referrals?user=referred", None)
        .await;
    assert_eq!(found["items"].as_array().unwrap().len(), 1);
    assert_error(
        &api.admin(Method::GET, "/v1/referrals", None).await,
        400,
        "invalid_request",
    );
}

#[tokio::test]
async fn events_validate_their_input() {
    let api = Api::new().await;
    for (body, field) in [
        (
            json!({"event_id": "e1", "user_id": "u", "currency": "USD"}),
            "amount_paid",
        ),
        (
            json!({"event_id": "e1", "user_id": "u", "amount_paid": 1, "total_amount_paid": 2, "currency": "USD"}),
            "amount_paid",
        ),
        (
            json!({"event_id": "e1", "user_id": "u", "amount_paid": -1, "currency": "USD"}),
            "amount_paid",
        ),
        (
            json!({"event_id": "e1", "user_id": "u", "amount_paid": 1, "currency": "dollars"}),
            "currency",
        ),
        (
            json!({"event_id": "has space", "user_id": "u", "amount_paid": 1, "currency": "USD"}),
            "event_id",
        ),
        (
            json!({"event_id": "e1", "user_id": "", "amount_paid": 1, "currency": "USD"}),
            "user_id",
        ),
    ] {
        let answer = service(&api, Method::POST, "/v1/events/invoices", body.clone()).await;
        assert_error(&answer, 400, "invalid_request");
        assert_eq!(answer.1["error"]["field"], field, "{body}");
    }
    let answer = service(
        &api,
        Method::POST,
        "/v1/events/verifications",
        json!({"event_id": "e", "user_id": "u", "outcome": "maybe"}),
    )
    .await;
    assert_error(&answer, 400, "invalid_request");
    assert_eq!(answer.1["error"]["field"], "outcome");
}

#[tokio::test]
async fn pending_rewards_wait_in_the_sparse_index_for_billing() {
    let api = Api::new().await;
    program(&api, json!({"name": "Gated", "currency": "USD", "requires_verification": true, "rewards": [
        {"recipient": "referee", "trigger": "signup", "kind": "cash", "amount": 1000},
        {"recipient": "referrer", "trigger": "signup", "kind": "cash", "amount": 300, "delivery": "payout"}
    ]}))
    .await;
    let code = code_of(&api, "alice").await;
    signed_up(&api, json!({"code": code, "referred_user_id": "bob"})).await;
    let pending_here = || async {
        let all = undelivered(&api).await;
        all.into_iter()
            .filter(|r| r.tenant == api.tenant)
            .collect::<Vec<_>>()
    };
    assert!(
        pending_here().await.is_empty(),
        "held rewards are not awaiting billing"
    );
    let (status, _) = service(
        &api,
        Method::POST,
        "/v1/events/verifications",
        json!({"event_id": "ok", "user_id": "bob", "outcome": "succeeded"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let pending = pending_here().await;
    assert_eq!(
        pending.len(),
        1,
        "only the billing-credit reward, not the payout one: {pending:?}"
    );
    assert_eq!(
        (
            pending[0].user_id.as_str(),
            pending[0].amount,
            pending[0].status
        ),
        ("bob", 1000, RewardStatus::Pending)
    );
    assert_balances_match_ledger(&api, "alice").await;
}

#[tokio::test]
async fn sign_ups_and_invoices_cost_one_round_of_reads_and_one_transaction() {
    let api = Api::new().await;
    program(&api, json!({"name": "Budget", "currency": "USD", "rewards": [
        {"recipient": "referrer", "trigger": "each_invoice", "kind": "cash", "percent": 10, "delivery": "payout"}
    ]}))
    .await;
    let code = code_of(&api, "alice").await;
    let sorted = |mut ops: Vec<String>| {
        ops.sort();
        ops
    };
    api.round_trips.take();
    signed_up(&api, json!({"code": code, "referred_user_id": "bob"})).await;
    // In parallel: the code and the programs; then the transaction.
    assert_eq!(
        sorted(api.round_trips.take()),
        ["GetItem", "Query", "TransactWriteItems"]
    );
    invoice(
        &api,
        json!({"event_id": "i1", "user_id": "bob", "amount_paid": 1000, "currency": "USD"}),
    )
    .await;
    // In parallel: the user's relations and the programs; then (the program pays referrers a
    // percent) the referrer's own rate, on their promoter item; then the transaction.
    assert_eq!(
        sorted(api.round_trips.take()),
        ["GetItem", "Query", "Query", "TransactWriteItems"]
    );
    invoice(
        &api,
        json!({"event_id": "i1", "user_id": "bob", "amount_paid": 1000, "currency": "USD"}),
    )
    .await;
    // A replay: the same, the transaction refused on the event record, which is then read.
    assert_eq!(
        sorted(api.round_trips.take()),
        ["GetItem", "GetItem", "Query", "Query", "TransactWriteItems"]
    );
}

/// Every reward awaiting delivery to billing (the sparse index the reconciler reads).
async fn undelivered(api: &Api) -> Vec<Reward> {
    use referral::store::BillingStore;
    let later = referral::clock::now() + time::Duration::days(1);
    api.store.undelivered_before(later, 1000).await.unwrap()
}

/// Seen: the programs a sign-up decides on were read with an eventually consistent query (a
/// program just paused could still take a sign-up). Every read of the table a sign-up or an
/// invoice decides on is strongly consistent.
#[tokio::test]
async fn sign_ups_and_invoices_decide_on_consistent_reads() {
    let bodies = crate::support::RequestBodies::default();
    let sdk = referral::config::aws().await;
    let client = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&sdk)
            .interceptor(bodies.clone())
            .build(),
    );
    crate::support::dynamodb(&Default::default()).await;
    let state = referral::http::AppState::new(crate::support::config(), client, None);
    let api = Api {
        store: state.store.clone(),
        router: local_stack::app(state),
        ..Api::new().await
    };
    program(&api, json!({"name": "Consistent", "currency": "USD", "min_referrals": 1, "rewards": [
        {"recipient": "referrer", "trigger": "each_invoice", "kind": "cash", "percent": 10, "delivery": "payout"}
    ]}))
    .await;
    let code = code_of(&api, "alice").await;
    bodies.take();
    signed_up(&api, json!({"code": code, "referred_user_id": "bob"})).await;
    invoice(
        &api,
        json!({"event_id": "i1", "user_id": "bob", "amount_paid": 1000, "currency": "USD"}),
    )
    .await;
    let reads: Vec<(String, String)> = bodies
        .take()
        .into_iter()
        .filter(|(operation, body)| {
            matches!(operation.as_str(), "GetItem" | "Query") && !body.contains("\"IndexName\"")
        })
        .collect();
    assert!(reads.len() >= 5, "{reads:?}");
    for (operation, body) in reads {
        assert!(
            body.contains("\"ConsistentRead\":true"),
            "{operation} read eventually consistent: {body}"
        );
    }
}
