//! The promoters API against the emulator (seed 001).

use axum::http::{Method, StatusCode};
use futures::future::join_all;
use referral::http::auth::Role;
use serde_json::{Value, json};

use crate::support::{Api, TestOutbox, assert_error, seed, token};

fn promoter_token(api: &Api, user: &str) -> String {
    token(&api.tenant, user, Role::Promoter)
}

async fn as_promoter(
    api: &Api,
    user: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    api.call(method, path, Some(&promoter_token(api, user)), body)
        .await
}

async fn me(api: &Api, user: &str) -> Value {
    let (status, promoter) = as_promoter(api, user, Method::GET, "/v1/promoters/me", None).await;
    assert_eq!(status, StatusCode::OK, "{promoter}");
    promoter
}

#[tokio::test]
async fn the_first_call_creates_the_promoter_and_later_calls_read_it() {
    let api = Api::new().await;
    let promoter = me(&api, "alice").await;
    let code = promoter["referral_code"].as_str().unwrap();
    assert_eq!(code.len(), 8);
    assert!(!code.contains(['0', 'O', '1', 'I']), "{code}");
    assert_eq!(
        promoter["referral_link"],
        format!("https://refer.example.com/r/{code}")
    );
    for zero in [
        "current_balance",
        "total_earned",
        "total_paid",
        "link_clicks",
        "points_earned",
    ] {
        assert_eq!(promoter[zero], 0, "{zero}");
    }
    assert_eq!(promoter["min_withdrawal_balance"], 2000);
    assert_eq!(promoter["commission_rate"], Value::Null);
    assert_eq!(promoter["payout_method"], Value::Null);
    assert_eq!(promoter["user_id"], "alice");
    assert!(promoter["created"].as_str().is_some() && promoter["updated"].as_str().is_some());

    api.round_trips.take();
    assert_eq!(me(&api, "alice").await, promoter);
    assert_eq!(
        api.round_trips.take(),
        ["Query"],
        "an existing promoter is one Query"
    );
    assert_ne!(
        me(&api, "bob").await["referral_code"],
        promoter["referral_code"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_concurrent_first_calls_create_one_promoter_and_one_code() {
    let api = Api::new().await;
    let calls = (0..10).map(|_| {
        let api = api.clone();
        tokio::spawn(async move {
            as_promoter(&api, "racer", Method::GET, "/v1/promoters/me", None).await
        })
    });
    let answers: Vec<_> = join_all(calls)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let codes: std::collections::HashSet<_> = answers
        .iter()
        .map(|(status, body)| {
            assert_eq!(*status, StatusCode::OK, "{body}");
            body["referral_code"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(codes.len(), 1, "{codes:?}");
    let (_, codes) = as_promoter(&api, "racer", Method::GET, "/v1/promoters/me/codes", None).await;
    assert_eq!(codes["items"].as_array().unwrap().len(), 1, "{codes}");
}

#[tokio::test]
async fn payout_methods_are_validated_per_method() {
    let api = Api::new().await;
    let path = "/v1/promoters/me/payout-method";
    let good = [
        ("wise", "example@gmail.com", "example@gmail.com"),
        ("paypal", "pay@example.org", "pay@example.org"),
        (
            "crypto",
            "0x52908400098527886E0F7030069857D2E4169EE7",
            "0x52908400098527886E0F7030069857D2E4169EE7",
        ),
        (
            "bank_transfer",
            "GB82 WEST 1234 5698 7654 32",
            "GB82WEST12345698765432",
        ),
    ];
    for (method, address, stored) in good {
        let (status, promoter) = as_promoter(
            &api,
            "alice",
            Method::PATCH,
            path,
            Some(json!({"method": method, "payment_address": address})),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{promoter}");
        assert_eq!(
            promoter["payout_method"],
            json!({"method": method, "payment_address": stored})
        );
    }
    let bad = [
        (
            json!({"method": "wise", "payment_address": "not-an-email"}),
            "payment_address",
        ),
        (
            json!({"method": "paypal", "payment_address": "0x52908400098527886E0F7030069857D2E4169EE7"}),
            "payment_address",
        ),
        (
            json!({"method": "crypto", "payment_address": "hello"}),
            "payment_address",
        ),
        (
            json!({"method": "bank_transfer", "payment_address": "GB83 WEST 1234 5698 7654 32"}),
            "payment_address",
        ),
        (
            json!({"method": "cheque", "payment_address": "x"}),
            "method",
        ),
        (json!({"method": "wise"}), "body"),
        (
            json!({"method": "wise", "payment_address": 5}),
            "payment_address",
        ),
    ];
    for (body, field) in bad {
        let answer = as_promoter(&api, "alice", Method::PATCH, path, Some(body.clone())).await;
        assert_error(&answer, 400, "invalid_request");
        assert_eq!(answer.1["error"]["field"], field, "{body}");
    }
    assert_eq!(
        me(&api, "alice").await["payout_method"]["method"],
        "bank_transfer",
        "refused changes wrote nothing"
    );
}

#[tokio::test]
async fn the_minimum_withdrawal_balance_is_non_negative_and_bounded() {
    let api = Api::new().await;
    let path = "/v1/promoters/me/min-withdrawal-balance";
    let (status, promoter) = as_promoter(
        &api,
        "alice",
        Method::PATCH,
        path,
        Some(json!({"min_withdrawal_balance": 5000})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(promoter["min_withdrawal_balance"], 5000);
    for bad in [json!(-1), json!(10_000_001), json!("50.00"), json!(20.5)] {
        let answer = as_promoter(
            &api,
            "alice",
            Method::PATCH,
            path,
            Some(json!({"min_withdrawal_balance": bad})),
        )
        .await;
        assert_error(&answer, 400, "invalid_request");
        assert_eq!(answer.1["error"]["field"], "min_withdrawal_balance");
    }
    assert_eq!(me(&api, "alice").await["min_withdrawal_balance"], 5000);
}

#[tokio::test]
async fn recent_earnings_are_seven_utc_days_from_the_ledger() {
    let api = Api::new().await;
    me(&api, "alice").await;
    let today = time::OffsetDateTime::now_utc().date();
    let day = |back: i64, hour: u8| {
        (today - time::Duration::days(back))
            .with_hms(hour, 0, 0)
            .unwrap()
            .assume_utc()
    };
    for (back, amount) in [(0, 500), (0, 250), (2, 300), (6, 100), (7, 9999), (8, 7777)] {
        let reward = seed::payout_reward(&api, "alice", amount, day(back, 1));
        seed::record(&api, &reward).await;
    }
    api.round_trips.take();
    let (status, days) = as_promoter(
        &api,
        "alice",
        Method::GET,
        "/v1/promoters/me/earnings/recent",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        api.round_trips.take(),
        ["Query", "Query"],
        "the ledger and the balances (the main currency), in parallel"
    );
    let days = days.as_array().unwrap();
    assert_eq!(days.len(), 7);
    let values: Vec<i64> = days.iter().map(|d| d["value"].as_i64().unwrap()).collect();
    assert_eq!(
        values,
        [100, 0, 0, 0, 300, 0, 750],
        "oldest first, zero-filled"
    );
    assert_eq!(days[6]["date"], today.to_string());
    assert_eq!(days[6]["day"], &today.weekday().to_string()[..3]);
    assert_eq!(
        days[0]["date"],
        (today - time::Duration::days(6)).to_string()
    );
}

#[tokio::test]
async fn the_referral_list_pages_in_the_seed_shape() {
    let api = Api::new().await;
    api.program(json!({"name": "Pages", "currency": "USD"}))
        .await;
    let code = api.code_of("alice").await;
    for i in 0..120 {
        api.signed_up(json!({"code": code, "referred_user_id": format!("friend-{i:03}")}))
            .await;
    }
    let bob = api.code_of("bob").await;
    api.signed_up(json!({"code": bob, "referred_user_id": "not-alice"}))
        .await;
    let path = "/v1/promoters/me/referrals";
    let (status, first) = as_promoter(&api, "alice", Method::GET, path, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (first["count"].as_u64(), first["pages"].as_u64()),
        (Some(120), Some(3))
    );
    let results = first["results"].as_array().unwrap();
    assert_eq!(results.len(), 50);
    assert_eq!(results[0]["user_id"], "friend-119", "newest first");
    for field in [
        "user_id",
        "email",
        "status",
        "invitation_method",
        "commission_rate",
        "commission_amount",
        "commission_status",
    ] {
        assert!(results[0].get(field).is_some(), "{field}");
    }
    let (_, third) = as_promoter(&api, "alice", Method::GET, &format!("{path}?page=3"), None).await;
    let third = third["results"].as_array().unwrap();
    assert_eq!(third.len(), 20);
    assert_eq!(third[19]["user_id"], "friend-000");
    let (_, beyond) =
        as_promoter(&api, "alice", Method::GET, &format!("{path}?page=4"), None).await;
    assert_eq!(beyond["results"], json!([]));
    let (_, sized) = as_promoter(
        &api,
        "alice",
        Method::GET,
        &format!("{path}?page=2&page_size=100"),
        None,
    )
    .await;
    assert_eq!(
        (
            sized["pages"].as_u64(),
            sized["results"].as_array().unwrap().len()
        ),
        (Some(2), 20)
    );
    // Past `?page=`'s reach, the cursor pages on, one page at a time.
    let mut seen = results.len();
    let mut cursor = first["next_cursor"].as_str().map(str::to_owned);
    while let Some(next) = cursor {
        let (status, page) = as_promoter(
            &api,
            "alice",
            Method::GET,
            &format!("{path}?cursor={next}"),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{page}");
        assert_eq!(page["page"], Value::Null);
        seen += page["results"].as_array().unwrap().len();
        cursor = page["next_cursor"].as_str().map(str::to_owned);
    }
    assert_eq!(seen, 120);
    for bad in [
        "page=0",
        "page=x",
        "page_size=201",
        "page=41",
        "cursor=%25%25",
    ] {
        assert_error(
            &as_promoter(&api, "alice", Method::GET, &format!("{path}?{bad}"), None).await,
            400,
            "invalid_request",
        );
    }
}

async fn fund(api: &Api, user: &str, amount: i64) -> String {
    let code = me(api, user).await["referral_code"]
        .as_str()
        .unwrap()
        .to_owned();
    let reward = seed::payout_reward(api, user, amount, referral::clock::now());
    seed::record(api, &reward).await;
    code
}

async fn set_wise(api: &Api, user: &str) {
    let body = json!({"method": "wise", "payment_address": format!("{user}@example.com")});
    let (status, _) = as_promoter(
        api,
        user,
        Method::PATCH,
        "/v1/promoters/me/payout-method",
        Some(body),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn withdrawals_take_the_whole_balance_once_it_reaches_the_minimum() {
    let api = Api::new().await;
    let path = "/v1/promoters/me/payouts";
    assert_error(
        &as_promoter(&api, "alice", Method::POST, path, None).await,
        422,
        "below_min_withdrawal_balance",
    );

    fund(&api, "alice", 1500).await;
    assert_error(
        &as_promoter(&api, "alice", Method::POST, path, None).await,
        422,
        "below_min_withdrawal_balance",
    );
    fund(&api, "alice", 1500).await;
    let promoter = me(&api, "alice").await;
    assert_eq!(
        (
            promoter["current_balance"].as_i64(),
            promoter["total_earned"].as_i64()
        ),
        (Some(3000), Some(3000))
    );
    assert_eq!(promoter["currency"], "USD");
    assert_error(
        &as_promoter(&api, "alice", Method::POST, path, None).await,
        422,
        "payout_method_missing",
    );

    set_wise(&api, "alice").await;
    let (status, payout) = as_promoter(&api, "alice", Method::POST, path, None).await;
    assert_eq!(status, StatusCode::CREATED, "{payout}");
    assert_eq!(
        (payout["amount"].as_i64(), payout["status"].as_str()),
        (Some(3000), Some("requested"))
    );
    assert_eq!(
        payout["payout_method"]["payment_address"],
        "alice@example.com"
    );
    let promoter = me(&api, "alice").await;
    assert_eq!(
        (
            promoter["current_balance"].as_i64(),
            promoter["total_earned"].as_i64(),
            promoter["total_paid"].as_i64()
        ),
        (Some(0), Some(3000), Some(0))
    );
    assert_error(
        &as_promoter(&api, "alice", Method::POST, path, None).await,
        422,
        "below_min_withdrawal_balance",
    );

    let (status, list) = as_promoter(&api, "alice", Method::GET, path, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["items"], json!([payout.clone()]));
    assert_eq!(list["next_cursor"], Value::Null);

    let id = payout["id"].as_str().unwrap();
    let paid_path = format!("/v1/payouts/{id}/paid");
    assert_error(
        &as_promoter(&api, "alice", Method::POST, &paid_path, None).await,
        403,
        "forbidden",
    );
    assert_error(
        &api.other_tenant()
            .admin(Method::POST, &paid_path, None)
            .await,
        404,
        "not_found",
    );
    let (status, paid) = api.admin(Method::POST, &paid_path, None).await;
    assert_eq!(status, StatusCode::OK, "{paid}");
    assert_eq!(paid["status"], "paid");
    assert!(paid["paid_at"].as_str().is_some());
    assert_error(
        &api.admin(Method::POST, &paid_path, None).await,
        409,
        "conflict",
    );
    let promoter = me(&api, "alice").await;
    assert_eq!(
        (
            promoter["current_balance"].as_i64(),
            promoter["total_paid"].as_i64()
        ),
        (Some(0), Some(3000)),
        "paid once"
    );
    let unknown = format!("/v1/payouts/{}/paid", referral::id::new_id());
    assert_error(
        &api.admin(Method::POST, &unknown, None).await,
        404,
        "not_found",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_concurrent_withdrawals_of_one_balance_pay_once() {
    let api = Api::new().await;
    fund(&api, "alice", 5000).await;
    set_wise(&api, "alice").await;
    let attempts = (0..2).map(|_| {
        let api = api.clone();
        tokio::spawn(async move {
            as_promoter(
                &api,
                "alice",
                Method::POST,
                "/v1/promoters/me/payouts",
                None,
            )
            .await
        })
    });
    let answers: Vec<_> = join_all(attempts)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let created: Vec<_> = answers
        .iter()
        .filter(|a| a.0 == StatusCode::CREATED)
        .collect();
    assert_eq!(created.len(), 1, "{answers:?}");
    let refused = answers.iter().find(|a| a.0 != StatusCode::CREATED).unwrap();
    assert_error(refused, 422, "below_min_withdrawal_balance");
    let (_, list) = as_promoter(&api, "alice", Method::GET, "/v1/promoters/me/payouts", None).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    assert_eq!(list["items"][0]["amount"], 5000);
    assert_eq!(me(&api, "alice").await["current_balance"], 0);
}

#[tokio::test]
async fn payouts_page_newest_first() {
    let api = Api::new().await;
    set_wise(&api, "alice").await;
    for amount in [2000, 3000, 4000] {
        fund(&api, "alice", amount).await;
        let (status, _) = as_promoter(
            &api,
            "alice",
            Method::POST,
            "/v1/promoters/me/payouts",
            None,
        )
        .await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let (_, first) = as_promoter(
        &api,
        "alice",
        Method::GET,
        "/v1/promoters/me/payouts?limit=2",
        None,
    )
    .await;
    let amounts: Vec<_> = first["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["amount"].as_i64().unwrap())
        .collect();
    assert_eq!(amounts, [4000, 3000]);
    let cursor = first["next_cursor"].as_str().unwrap();
    let (_, second) = as_promoter(
        &api,
        "alice",
        Method::GET,
        &format!("/v1/promoters/me/payouts?limit=2&cursor={cursor}"),
        None,
    )
    .await;
    assert_eq!(second["items"][0]["amount"], 2000);
    assert_eq!(second["next_cursor"], Value::Null);
}

#[tokio::test]
async fn the_statement_sums_acquired_and_potential_credit_per_program() {
    let api = Api::new().await;
    let (status, program) = api
        .admin(Method::POST, "/v1/programs", Some(json!({"name": "Refer", "currency": "USD", "rewards": [
            {"recipient": "referee", "trigger": "signup", "kind": "cash", "amount": 1000},
            {"recipient": "referrer", "trigger": "signup", "kind": "cash", "amount": 300},
            {"recipient": "referrer", "trigger": "paid_threshold", "threshold_amount": 5000, "kind": "cash", "amount": 2500},
            {"recipient": "referrer", "trigger": "each_invoice", "kind": "cash", "percent": 10}
        ]})))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let program_id = program["id"].as_str().unwrap();
    let mut first = seed::relation(&api, "alice", "f1", program_id, None);
    first.fired_rules = vec!["referrer.signup".into()];
    first.referrer_earned = 300;
    let mut second = seed::relation(&api, "alice", "f2", program_id, None);
    second.fired_rules = vec![
        "referrer.signup".into(),
        "referrer.paid_threshold.5000".into(),
    ];
    second.referrer_earned = 2800;
    for relation in [&first, &second] {
        seed::put_relation(&api, relation).await;
    }
    let (status, statement) = as_promoter(
        &api,
        "alice",
        Method::GET,
        "/v1/promoters/me/statement",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{statement}");
    assert_eq!(statement["acquired_credit"], 3100);
    assert_eq!(statement["potential_credit"], 2500);
    assert_eq!(statement["programs"][0]["program_name"], "Refer");
    assert_eq!(statement["programs"][0]["referrals"], 2);
    let (_, empty) =
        as_promoter(&api, "bob", Method::GET, "/v1/promoters/me/statement", None).await;
    assert_eq!(
        empty,
        json!({"currency": null, "acquired_credit": 0, "potential_credit": 0,
               "by_currency": {}, "programs": []})
    );
}

#[tokio::test]
async fn admins_read_promoters_of_their_tenant_only() {
    let api = Api::new().await;
    let promoter = me(&api, "alice").await;
    let (status, read) = api.admin(Method::GET, "/v1/promoters/alice", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(read, promoter);
    assert_error(
        &api.admin(Method::GET, "/v1/promoters/nobody", None).await,
        404,
        "not_found",
    );
    assert_error(
        &api.other_tenant()
            .admin(Method::GET, "/v1/promoters/alice", None)
            .await,
        404,
        "not_found",
    );
    assert_error(
        &as_promoter(&api, "alice", Method::GET, "/v1/promoters/alice", None).await,
        403,
        "forbidden",
    );
}

#[tokio::test]
async fn me_routes_are_for_promoter_tokens() {
    let api = Api::new().await;
    for role in [Role::Admin, Role::Service] {
        let token = token(&api.tenant, "alice", role);
        for (method, path) in [
            (Method::GET, "/v1/promoters/me"),
            (Method::GET, "/v1/promoters/me/earnings/recent"),
            (Method::GET, "/v1/promoters/me/referrals"),
            (Method::GET, "/v1/promoters/me/payouts"),
            (Method::POST, "/v1/promoters/me/payouts"),
            (Method::GET, "/v1/promoters/me/statement"),
            (Method::GET, "/v1/promoters/me/codes"),
        ] {
            assert_error(
                &api.call(method, path, Some(&token), None).await,
                403,
                "forbidden",
            );
        }
    }
    assert_error(
        &api.call(Method::GET, "/v1/promoters/me", None, None).await,
        401,
        "unauthorized",
    );
    assert!(
        api.round_trips.take().is_empty(),
        "refused requests touch no table"
    );
}

/// Seed 001's `commission_rate` could never be set. An admin sets a promoter's own rate; it
/// replaces the program's percent on their next invoices, and `null` returns to the program's.
#[tokio::test]
async fn admins_set_a_promoters_own_commission_rate() {
    let api = Api::new().await;
    api.program(json!({"name": "Commission", "currency": "USD", "rewards": [
        {"recipient": "referrer", "trigger": "each_invoice", "kind": "cash", "percent": 10.0,
         "delivery": "payout"}]}))
        .await;
    let code = api.code_of("alice").await;
    api.signed_up(json!({"code": code, "referred_user_id": "bob"}))
        .await;
    let pay = |event: &'static str| {
        let api = api.clone();
        async move {
            api.invoiced(
                json!({"event_id": event, "user_id": "bob", "amount_paid": 1000,
                                "currency": "USD"}),
            )
            .await["acquired_credit"]
                .as_i64()
                .unwrap()
        }
    };
    assert_eq!(pay("inv-1").await, 100, "the program's 10 %");
    let (status, alice) = api
        .admin(
            Method::PATCH,
            "/v1/promoters/alice",
            Some(json!({"commission_rate": 25.0})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{alice}");
    assert_eq!(alice["commission_rate"], 25.0);
    assert_eq!(pay("inv-2").await, 250, "her own 25 %");
    let (_, list) = as_promoter(
        &api,
        "alice",
        Method::GET,
        "/v1/promoters/me/referrals",
        None,
    )
    .await;
    assert_eq!(list["results"][0]["commission_rate"], 25.0, "{list}");
    api.admin(
        Method::PATCH,
        "/v1/promoters/alice",
        Some(json!({"commission_rate": null})),
    )
    .await;
    assert_eq!(pay("inv-3").await, 100, "back to the program's");
    let (_, list) = as_promoter(
        &api,
        "alice",
        Method::GET,
        "/v1/promoters/me/referrals",
        None,
    )
    .await;
    assert_eq!(list["results"][0]["commission_rate"], 10.0, "{list}");
    for bad in [
        json!({"commission_rate": 0}),
        json!({"commission_rate": 101}),
        json!({}),
    ] {
        assert_error(
            &api.admin(Method::PATCH, "/v1/promoters/alice", Some(bad))
                .await,
            400,
            "invalid_request",
        );
    }
    assert_error(
        &api.admin(
            Method::PATCH,
            "/v1/promoters/nobody",
            Some(json!({"commission_rate": 5})),
        )
        .await,
        404,
        "not_found",
    );
    let forbidden = as_promoter(
        &api,
        "alice",
        Method::PATCH,
        "/v1/promoters/alice",
        Some(json!({"commission_rate": 90})),
    )
    .await;
    assert_error(&forbidden, 403, "forbidden");
}

/// The statement (seed 000) and a promoter's codes (seed 002) were only the promoter's own:
/// the tenant's backend and admins read them for any user.
#[tokio::test]
async fn admins_and_the_backend_read_any_statement_and_admins_any_codes() {
    let api = Api::new().await;
    let program = api
        .program(json!({"name": "Statements", "currency": "USD", "rewards": [
            {"recipient": "referrer", "trigger": "signup", "kind": "cash", "amount": 300}]}))
        .await;
    let code = api.code_of("alice").await;
    api.signed_up(json!({"code": code, "referred_user_id": "bob"}))
        .await;
    let (_, own) = as_promoter(
        &api,
        "alice",
        Method::GET,
        "/v1/promoters/me/statement",
        None,
    )
    .await;
    let (status, by_admin) = api
        .admin(Method::GET, "/v1/promoters/alice/statement", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{by_admin}");
    assert_eq!(by_admin, own);
    assert_eq!(by_admin["acquired_credit"], 300);
    let (status, by_backend) = api
        .service(Method::GET, "/v1/promoters/alice/statement", None)
        .await;
    assert_eq!((status, &by_backend), (StatusCode::OK, &own));

    api.admin(
        Method::POST,
        "/v1/promoters/alice/codes",
        Some(json!({"program_id": program, "code": "ALICE-2"})),
    )
    .await;
    let (_, mine) = as_promoter(&api, "alice", Method::GET, "/v1/promoters/me/codes", None).await;
    let (status, theirs) = api
        .admin(Method::GET, "/v1/promoters/alice/codes", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{theirs}");
    assert_eq!(theirs, mine);
    let codes: Vec<&str> = theirs["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, [code.as_str(), "ALICE-2"]);
    assert_eq!(theirs["items"][0]["referred_users"][0]["user_id"], "bob");
    assert_error(
        &api.admin(Method::GET, "/v1/promoters/nobody/codes", None)
            .await,
        404,
        "not_found",
    );
    assert_error(
        &as_promoter(
            &api,
            "alice",
            Method::GET,
            "/v1/promoters/alice/codes",
            None,
        )
        .await,
        403,
        "forbidden",
    );
}

#[tokio::test]
async fn admins_list_promoters_by_status_and_payouts_to_pay() {
    let api = Api::new().await;
    api.program(json!({"name": "Listed", "currency": "USD", "rewards": [
        {"recipient": "referrer", "trigger": "signup", "kind": "cash", "amount": 2500,
         "delivery": "payout"}]}))
        .await;
    let mut codes = std::collections::BTreeMap::new();
    for user in ["carol", "alice", "bob", "alex"] {
        codes.insert(user, api.code_of(user).await);
    }
    api.admin(
        Method::PATCH,
        "/v1/promoters/bob",
        Some(json!({"status": "suspended"})),
    )
    .await;
    let users = |page: &Value| -> Vec<String> {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["user_id"].as_str().unwrap().to_owned())
            .collect()
    };
    let (status, active) = api.admin(Method::GET, "/v1/promoters", None).await;
    assert_eq!(status, StatusCode::OK, "{active}");
    assert_eq!(users(&active), ["alex", "alice", "carol"]);
    let (_, suspended) = api
        .admin(Method::GET, "/v1/promoters?status=suspended", None)
        .await;
    assert_eq!(users(&suspended), ["bob"]);
    assert_eq!(suspended["items"][0]["status"], "suspended");
    let (_, found) = api.admin(Method::GET, "/v1/promoters?q=al", None).await;
    assert_eq!(users(&found), ["alex", "alice"]);
    let by_code = format!("/v1/promoters?code={}", codes["carol"].to_lowercase());
    let (_, owner) = api.admin(Method::GET, &by_code, None).await;
    assert_eq!(users(&owner), ["carol"]);
    let (_, first) = api.admin(Method::GET, "/v1/promoters?limit=2", None).await;
    assert_eq!(users(&first), ["alex", "alice"]);
    let next = format!(
        "/v1/promoters?limit=2&cursor={}",
        first["next_cursor"].as_str().unwrap()
    );
    let (_, second) = api.admin(Method::GET, &next, None).await;
    assert_eq!(
        (users(&second), &second["next_cursor"]),
        (vec!["carol".to_owned()], &Value::Null)
    );
    assert_error(
        &api.admin(Method::GET, "/v1/promoters?status=banned", None)
            .await,
        400,
        "invalid_request",
    );
    assert_error(
        &api.as_promoter("alice", Method::GET, "/v1/promoters", None)
            .await,
        403,
        "forbidden",
    );
    let (_, elsewhere) = api
        .other_tenant()
        .admin(Method::GET, "/v1/promoters", None)
        .await;
    assert_eq!(elsewhere["items"], json!([]));

    // Payouts to pay: alice withdraws; the list shows it until it is paid.
    api.signed_up(json!({"code": codes["alice"], "referred_user_id": "zed"}))
        .await;
    api.pays_out_to("alice", "alice@example.com").await;
    let (status, payout) = api
        .as_promoter("alice", Method::POST, "/v1/promoters/me/payouts", None)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{payout}");
    let (_, requested) = api.admin(Method::GET, "/v1/payouts", None).await;
    assert_eq!(requested["items"], json!([payout.clone()]));
    let id = payout["id"].as_str().unwrap();
    api.admin(Method::POST, &format!("/v1/payouts/{id}/paid"), None)
        .await;
    let (_, requested) = api.admin(Method::GET, "/v1/payouts", None).await;
    assert_eq!(requested["items"], json!([]));
    let (_, paid) = api
        .admin(Method::GET, "/v1/payouts?status=paid", None)
        .await;
    assert_eq!(paid["items"][0]["id"], id);
    assert_eq!(paid["items"][0]["status"], "paid");
    assert_error(
        &api.admin(Method::GET, "/v1/payouts?status=late", None)
            .await,
        400,
        "invalid_request",
    );
}

#[tokio::test]
async fn day_figures_count_clicks_sign_ups_conversions_and_earnings_as_they_happen() {
    let api = Api::new().await;
    let program = api
        .program(json!({"name": "Counted", "currency": "USD", "rewards": [
            {"recipient": "referee", "trigger": "signup", "kind": "cash", "amount": 1000},
            {"recipient": "referrer", "trigger": "each_invoice", "kind": "cash",
             "percent": 10.0, "delivery": "payout"}]}))
        .await;
    // Clicks reach the day figures through the table's stream, as the dispatcher counts them.
    let mut outbox = TestOutbox::new(&api).await;
    let code = api.code_of("alice").await;
    let (status, extra) = api
        .admin(
            Method::POST,
            "/v1/promoters/alice/codes",
            Some(json!({"program_id": program})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{extra}");
    for clicked in [&code, &code, &code, &code, extra["code"].as_str().unwrap()] {
        let (status, _) = api
            .call(Method::GET, &format!("/r/{clicked}"), None, None)
            .await;
        assert_eq!(status, StatusCode::FOUND);
    }
    for user in ["bob", "carol"] {
        api.signed_up(json!({"code": code, "referred_user_id": user}))
            .await;
    }
    api.service(
        Method::POST,
        "/v1/events/verifications",
        Some(json!({"event_id": "v-1", "user_id": "bob", "outcome": "succeeded"})),
    )
    .await;
    api.invoiced(
        json!({"event_id": "in-1", "user_id": "bob", "amount_paid": 5000,
                        "currency": "USD"}),
    )
    .await;
    api.invoiced(
        json!({"event_id": "in-2", "user_id": "bob", "amount_paid": 5000,
                        "currency": "USD"}),
    )
    .await;
    api.service(
        Method::POST,
        "/v1/events/refunds",
        Some(
            json!({"event_id": "re-1", "user_id": "bob", "invoice_event_id": "in-2",
                    "amount_refunded": 5000, "currency": "USD"}),
        ),
    )
    .await;

    outbox.pump().await;
    // Read again, a batch counts nothing twice (the reader is past it).
    outbox.pump().await;
    let (status, mine) = api
        .as_promoter("alice", Method::GET, "/v1/promoters/me/stats", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{mine}");
    assert_eq!(mine["days"].as_array().unwrap().len(), 30);
    let today = mine["days"][29].clone();
    assert_eq!(today["date"], mine["to"]);
    // Earned as referrer: 500 + 500 − 500 (the refund); the referee's 2 × 1000 are not hers.
    assert_eq!(
        today,
        json!({"date": mine["to"], "clicks": 5, "signups": 2, "verified": 1, "converted": 1,
               "earned": {"USD": 500}})
    );
    assert_eq!(mine["totals"]["signups"], 2);
    assert_eq!(
        (mine["signup_rate"].as_f64(), mine["paid_rate"].as_f64()),
        (Some(0.4), Some(0.5))
    );
    // The program's: every reward it gave, the click on its extra code (a primary code is in
    // no program).
    let (status, theirs) = api
        .admin(
            Method::GET,
            &format!(
                "/v1/programs/{program}/stats?from={}&to={}",
                mine["to"].as_str().unwrap(),
                mine["to"].as_str().unwrap()
            ),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{theirs}");
    assert_eq!(
        theirs["days"],
        json!([{"date": mine["to"], "clicks": 1, "signups": 2, "verified": 1, "converted": 1,
                "earned": {"USD": 2500}}])
    );
    for bad in [
        "?from=2026-02-30",
        "?from=2024-01-01&to=2026-01-01",
        "?from=2026-11-25&to=2026-11-24",
    ] {
        assert_error(
            &api.as_promoter(
                "alice",
                Method::GET,
                &format!("/v1/promoters/me/stats{bad}"),
                None,
            )
            .await,
            400,
            "invalid_request",
        );
    }
    assert_error(
        &api.other_tenant()
            .admin(Method::GET, &format!("/v1/programs/{program}/stats"), None)
            .await,
        404,
        "not_found",
    );
}
