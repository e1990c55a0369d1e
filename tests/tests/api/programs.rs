//! The programs API against the emulator: happy paths, validation, uniqueness, pagination,
//! archiving, and concurrency.

use std::collections::HashSet;

use axum::http::{Method, StatusCode};
use futures::future::join_all;
use serde_json::{Value, json};

use crate::support::{Api, assert_error};

fn spring() -> Value {
    json!({
        "name": "Spring launch",
        "message": "Give $10, get $25",
        "currency": "USD",
        "audience": "customer",
        "expires_at": "2030-06-30T23:59:59Z",
        "max_referrals": 10,
        "min_referrals": 1,
        "requires_verification": true,
        "country_overrides": {"BR": {"referee_amount": 100, "referrer_amount": 0}},
        "rewards": [
            {"recipient": "referee", "trigger": "signup", "kind": "cash", "amount": 1000},
            {"recipient": "referrer", "trigger": "paid_threshold", "threshold_amount": 5000,
             "kind": "cash", "amount": 2500},
            {"recipient": "referrer", "trigger": "each_invoice", "kind": "cash", "percent": 15.0,
             "delivery": "payout"}
        ]
    })
}

async fn create(api: &Api, body: Value) -> Value {
    let (status, program) = api.admin(Method::POST, "/v1/programs", Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{program}");
    program
}

async fn names(api: &Api) -> Vec<String> {
    let (status, page) = api.admin(Method::GET, "/v1/programs?limit=200", None).await;
    assert_eq!(status, StatusCode::OK);
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn create_read_list_update_and_archive() {
    let api = Api::new().await;
    let created = create(&api, spring()).await;
    let id = created["id"].as_str().unwrap();
    assert!(referral::id::is_id(id));
    assert_eq!(
        created["expires_at"], "2030-06-30T23:59:59.000Z",
        "normalised to UTC millis"
    );
    for field in [
        "name",
        "message",
        "currency",
        "audience",
        "max_referrals",
        "min_referrals",
        "requires_verification",
        "country_overrides",
    ] {
        assert_eq!(created[field], spring()[field], "{field}");
    }
    assert_eq!(created["status"], "active");
    assert_eq!(created["rewards"][0]["delivery"], "billing_credit");
    assert_eq!(created["rewards"][2]["delivery"], "payout");
    assert_eq!(created["rewards"][2]["percent"], 15.0);
    assert_eq!(created["created"], created["updated"]);

    let (status, read) = api
        .admin(Method::GET, &format!("/v1/programs/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(read, created);

    let (status, page) = api.admin(Method::GET, "/v1/programs", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["items"], json!([created.clone()]));
    assert_eq!(page["next_cursor"], Value::Null);

    let (status, updated) = api
        .admin(
            Method::PATCH,
            &format!("/v1/programs/{id}"),
            Some(json!({"status": "paused", "message": null, "max_referrals": 0})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["status"], "paused");
    assert_eq!(updated["message"], Value::Null);
    assert_eq!(updated["max_referrals"], 0);
    assert_eq!(
        updated["rewards"], created["rewards"],
        "untouched fields stay"
    );
    assert_eq!(updated["version"], 2);
    let (_, read) = api
        .admin(Method::GET, &format!("/v1/programs/{id}"), None)
        .await;
    assert_eq!(read, updated);

    let (status, archived) = api
        .admin(Method::DELETE, &format!("/v1/programs/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(archived["status"], "archived");
    assert_eq!(archived["rewards"], created["rewards"], "history stays");
    let (status, again) = api
        .admin(Method::DELETE, &format!("/v1/programs/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again, archived, "archiving twice changes nothing");
    let patch = api
        .admin(
            Method::PATCH,
            &format!("/v1/programs/{id}"),
            Some(json!({"status": "active"})),
        )
        .await;
    assert_error(&patch, 409, "conflict");
    let (_, read) = api
        .admin(Method::GET, &format!("/v1/programs/{id}"), None)
        .await;
    assert_eq!(read["status"], "archived");
}

#[tokio::test]
async fn an_empty_patch_changes_nothing() {
    let api = Api::new().await;
    let created = create(&api, spring()).await;
    let id = created["id"].as_str().unwrap();
    let (status, same) = api
        .admin(
            Method::PATCH,
            &format!("/v1/programs/{id}"),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(same, created);
}

#[tokio::test]
async fn validation_examples_are_400_naming_the_field_and_write_nothing() {
    let api = Api::new().await;
    let rule = |r: Value| json!({"name": "P", "currency": "USD", "rewards": [r]});
    let cases: Vec<(Value, &str)> = vec![
        (json!({"name": "", "currency": "USD"}), "name"),
        (json!({"name": "x".repeat(101), "currency": "USD"}), "name"),
        (json!({"currency": "USD"}), "name"),
        (
            json!({"name": "P", "currency": "USD", "audience": "robots"}),
            "audience",
        ),
        (
            json!({"name": "P", "currency": "USD", "status": "deleted"}),
            "status",
        ),
        (json!({"name": "P", "currency": "usd"}), "currency"),
        (json!({"name": "P", "currency": "DOLLARS"}), "currency"),
        (json!({"name": "P", "currency": "US"}), "currency"),
        (json!({"name": "P"}), "currency"),
        (
            rule(
                json!({"recipient": "referee", "trigger": "signup", "kind": "cash", "amount": -5}),
            ),
            "rewards[0].amount",
        ),
        (
            rule(json!({"recipient": "referee", "trigger": "signup", "kind": "cash", "amount": 0})),
            "rewards[0].amount",
        ),
        (
            rule(
                json!({"recipient": "referrer", "trigger": "each_invoice", "kind": "cash", "percent": 0}),
            ),
            "rewards[0].percent",
        ),
        (
            rule(
                json!({"recipient": "referrer", "trigger": "each_invoice", "kind": "cash", "percent": 100.5}),
            ),
            "rewards[0].percent",
        ),
        (
            rule(
                json!({"recipient": "referrer", "trigger": "paid_threshold", "kind": "cash", "amount": 10}),
            ),
            "rewards[0].threshold_amount",
        ),
        (
            rule(
                json!({"recipient": "referrer", "trigger": "paid_threshold", "threshold_amount": 0, "kind": "cash", "amount": 10}),
            ),
            "rewards[0].threshold_amount",
        ),
        (
            rule(
                json!({"recipient": "referrer", "trigger": "signup", "kind": "bitcoin", "amount": 10}),
            ),
            "rewards[0].kind",
        ),
        (
            json!({"name": "P", "currency": "USD", "country_overrides": {"XX": {"referee_amount": 1}}}),
            "country_overrides.XX",
        ),
        (
            json!({"name": "P", "currency": "USD", "country_overrides": {"Brazil": {"referee_amount": 1}}}),
            "country_overrides.Brazil",
        ),
        (
            json!({"name": "P", "currency": "USD", "max_referrals": 2, "min_referrals": 3}),
            "min_referrals",
        ),
        (
            json!({"name": "P", "currency": "USD", "max_referrals": "ten"}),
            "max_referrals",
        ),
        (json!({"name": 42, "currency": "USD"}), "name"),
        (
            json!({"name": "P", "currency": "USD", "requires_verification": "yes"}),
            "requires_verification",
        ),
        (
            json!({"name": "P", "currency": "USD", "rewards": {"amount": 1}}),
            "rewards",
        ),
        (
            json!({"name": "P", "currency": "USD", "expires_at": "2001-01-01T00:00:00Z"}),
            "expires_at",
        ),
        (json!(["not", "an", "object"]), "body"),
    ];
    for (body, field) in cases {
        let answer = api
            .admin(Method::POST, "/v1/programs", Some(body.clone()))
            .await;
        assert_error(&answer, 400, "invalid_request");
        assert_eq!(answer.1["error"]["field"], field, "{body} -> {}", answer.1);
    }
    let token = api.admin_token();
    for raw in [&b"not json"[..], b"{\"name\": \"P\",", b"", b"{} {}"] {
        let answer = api
            .send(Method::POST, "/v1/programs", Some(&token), raw.to_vec())
            .await;
        assert_error(&answer, 400, "invalid_request");
        assert_eq!(answer.1["error"]["field"], "body");
    }
    assert!(
        names(&api).await.is_empty(),
        "no bad request wrote anything"
    );
}

#[tokio::test]
async fn bodies_over_64_kib_are_413() {
    let api = Api::new().await;
    let big = json!({"name": "Big", "currency": "USD", "message": "x".repeat(70 * 1024)});
    assert_error(
        &api.admin(Method::POST, "/v1/programs", Some(big)).await,
        413,
        "payload_too_large",
    );
    let created = create(&api, json!({"name": "Small", "currency": "USD"})).await;
    let id = created["id"].as_str().unwrap();
    let big_patch = json!({"message": "x".repeat(65 * 1024)});
    let answer = api
        .admin(
            Method::PATCH,
            &format!("/v1/programs/{id}"),
            Some(big_patch),
        )
        .await;
    assert_error(&answer, 413, "payload_too_large");
    assert_eq!(names(&api).await, ["Small"]);
}

#[tokio::test]
async fn ten_concurrent_creates_of_one_name_make_one_program() {
    let api = Api::new().await;
    let attempts = (0..10).map(|_| {
        let api = api.clone();
        tokio::spawn(async move {
            api.admin(
                Method::POST,
                "/v1/programs",
                Some(json!({"name": "Race", "currency": "USD"})),
            )
            .await
        })
    });
    let answers: Vec<_> = join_all(attempts)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let created = answers
        .iter()
        .filter(|a| a.0 == StatusCode::CREATED)
        .count();
    let conflicts = answers
        .iter()
        .filter(|a| a.0 == StatusCode::CONFLICT)
        .count();
    assert_eq!((created, conflicts), (1, 9), "{answers:?}");
    for answer in answers.iter().filter(|a| a.0 == StatusCode::CONFLICT) {
        assert_error(answer, 409, "conflict");
    }
    assert_eq!(names(&api).await, ["Race"]);

    let other = api.other_tenant();
    create(&other, json!({"name": "Race", "currency": "USD"})).await;
    assert_eq!(
        names(&other).await,
        ["Race"],
        "names are unique per tenant only"
    );
}

#[tokio::test]
async fn names_are_unique_ignoring_case_and_spacing() {
    let api = Api::new().await;
    create(&api, json!({"name": "Spring Launch", "currency": "USD"})).await;
    let answer = api
        .admin(
            Method::POST,
            "/v1/programs",
            Some(json!({"name": "  spring   LAUNCH ", "currency": "EUR"})),
        )
        .await;
    assert_error(&answer, 409, "conflict");
}

#[tokio::test]
async fn renames_keep_names_unique_and_free_the_old_name() {
    let api = Api::new().await;
    let a = create(&api, json!({"name": "Alpha", "currency": "USD"})).await;
    let b = create(&api, json!({"name": "Beta", "currency": "USD"})).await;
    let a_path = format!("/v1/programs/{}", a["id"].as_str().unwrap());

    let taken = api
        .admin(
            Method::PATCH,
            &a_path,
            Some(json!({"name": "BETA", "message": "changed"})),
        )
        .await;
    assert_error(&taken, 409, "conflict");
    let (_, unchanged) = api.admin(Method::GET, &a_path, None).await;
    assert_eq!(unchanged, a, "a refused rename changes nothing");

    let (status, renamed) = api
        .admin(Method::PATCH, &a_path, Some(json!({"name": "Gamma"})))
        .await;
    assert_eq!(status, StatusCode::OK, "{renamed}");
    assert_eq!(renamed["name"], "Gamma");
    create(&api, json!({"name": "Alpha", "currency": "USD"})).await;
    let gamma = api
        .admin(
            Method::POST,
            "/v1/programs",
            Some(json!({"name": "gamma", "currency": "USD"})),
        )
        .await;
    assert_error(&gamma, 409, "conflict");

    let (status, recased) = api
        .admin(Method::PATCH, &a_path, Some(json!({"name": "GAMMA"})))
        .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "a change of case keeps the program's own name"
    );
    assert_eq!(recased["name"], "GAMMA");

    let mut all = names(&api).await;
    all.sort();
    assert_eq!(all, ["Alpha", "Beta", "GAMMA"]);
    assert_eq!(b["name"], "Beta");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_renames_leave_exactly_one_name_taken() {
    let api = Api::new().await;
    let program = create(&api, json!({"name": "Start", "currency": "USD"})).await;
    let path = format!("/v1/programs/{}", program["id"].as_str().unwrap());
    let renames = (0..8).map(|i| {
        let (api, path) = (api.clone(), path.clone());
        tokio::spawn(async move {
            api.admin(
                Method::PATCH,
                &path,
                Some(json!({"name": format!("Name {i}")})),
            )
            .await
        })
    });
    let answers: Vec<_> = join_all(renames)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    for answer in &answers {
        assert!(
            answer.0 == StatusCode::OK || answer.0 == StatusCode::CONFLICT,
            "{answer:?}"
        );
    }
    assert!(answers.iter().any(|a| a.0 == StatusCode::OK));
    let (_, last) = api.admin(Method::GET, &path, None).await;
    let final_name = last["name"].as_str().unwrap().to_owned();
    assert_eq!(
        last["version"].as_u64().unwrap() as usize,
        1 + answers.iter().filter(|a| a.0 == StatusCode::OK).count(),
        "every successful rename is one version"
    );
    // Every name but the final one is free again, the final one is taken.
    for candidate in (0..8)
        .map(|i| format!("Name {i}"))
        .chain(["Start".to_owned()])
    {
        let answer = api
            .admin(
                Method::POST,
                "/v1/programs",
                Some(json!({"name": candidate, "currency": "USD"})),
            )
            .await;
        let expected = if candidate == final_name { 409 } else { 201 };
        assert_eq!(answer.0.as_u16(), expected, "{candidate}: {}", answer.1);
    }
}

#[tokio::test]
async fn lists_page_newest_first_with_cursors() {
    let api = Api::new().await;
    for i in 0..5 {
        create(&api, json!({"name": format!("P{i}"), "currency": "USD"})).await;
    }
    let mut seen = Vec::new();
    let mut path = "/v1/programs?limit=2".to_owned();
    let mut pages = 0;
    loop {
        let (status, page) = api.admin(Method::GET, &path, None).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        pages += 1;
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 2);
        seen.extend(items.iter().map(|p| p["name"].as_str().unwrap().to_owned()));
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/v1/programs?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, ["P4", "P3", "P2", "P1", "P0"]);
    let unique: HashSet<_> = seen.iter().collect();
    assert_eq!(unique.len(), 5);

    let (_, exact) = api.admin(Method::GET, "/v1/programs?limit=5", None).await;
    assert_eq!(exact["items"].as_array().unwrap().len(), 5);
    assert_eq!(
        exact["next_cursor"],
        Value::Null,
        "no cursor when nothing follows"
    );

    for bad in ["limit=0", "limit=201", "limit=x", "cursor=not-a-cursor"] {
        let answer = api
            .admin(Method::GET, &format!("/v1/programs?{bad}"), None)
            .await;
        assert_error(&answer, 400, "invalid_request");
    }
}

#[tokio::test]
async fn unknown_and_malformed_ids_are_404() {
    let api = Api::new().await;
    let unknown = referral::id::new_id();
    for method in [Method::GET, Method::DELETE] {
        for id in [unknown.as_str(), "not-an-id"] {
            let answer = api
                .admin(method.clone(), &format!("/v1/programs/{id}"), None)
                .await;
            assert_error(&answer, 404, "not_found");
        }
    }
    let answer = api
        .admin(
            Method::PATCH,
            &format!("/v1/programs/{unknown}"),
            Some(json!({"name": "X"})),
        )
        .await;
    assert_error(&answer, 404, "not_found");
    assert!(
        names(&api).await.is_empty(),
        "archiving an unknown id creates nothing"
    );
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_in_the_envelope() {
    let api = Api::new().await;
    assert_error(
        &api.admin(Method::GET, "/v1/nothing", None).await,
        404,
        "not_found",
    );
    assert_error(
        &api.admin(Method::PUT, "/v1/programs", None).await,
        405,
        "method_not_allowed",
    );
}

#[tokio::test]
async fn each_route_costs_its_documented_round_trips() {
    let api = Api::new().await;
    // The caller's tenant is read once per container and cache lifetime (its status and
    // settings): a first call pays it, the routes' own costs follow.
    api.admin(Method::GET, "/v1/programs?limit=1", None).await;
    assert_eq!(api.round_trips.take(), ["GetItem", "Query"], "first call");
    let created = create(&api, json!({"name": "Budget", "currency": "USD"})).await;
    assert_eq!(api.round_trips.take(), ["TransactWriteItems"], "create");
    let path = format!("/v1/programs/{}", created["id"].as_str().unwrap());

    api.admin(Method::GET, &path, None).await;
    assert_eq!(api.round_trips.take(), ["GetItem"], "get");
    api.admin(Method::GET, "/v1/programs?limit=10", None).await;
    assert_eq!(api.round_trips.take(), ["Query"], "list");
    api.admin(Method::PATCH, &path, Some(json!({"status": "paused"})))
        .await;
    assert_eq!(api.round_trips.take(), ["GetItem", "PutItem"], "update");
    api.admin(Method::PATCH, &path, Some(json!({"name": "Renamed"})))
        .await;
    assert_eq!(
        api.round_trips.take(),
        ["GetItem", "TransactWriteItems"],
        "rename"
    );
    api.admin(Method::DELETE, &path, None).await;
    assert_eq!(api.round_trips.take(), ["UpdateItem"], "archive");

    let bad = api
        .admin(Method::POST, "/v1/programs", Some(json!({"name": ""})))
        .await;
    assert_eq!(bad.0, StatusCode::BAD_REQUEST);
    let forbidden = api
        .call(
            Method::GET,
            "/v1/programs",
            Some(&crate::support::token(
                &api.tenant,
                "u",
                referral::http::auth::Role::Promoter,
            )),
            None,
        )
        .await;
    assert_eq!(forbidden.0, StatusCode::FORBIDDEN);
    assert!(
        api.round_trips.take().is_empty(),
        "refused requests touch no table"
    );
}

#[tokio::test]
async fn a_leaderboard_ranks_referrers_by_earnings_or_sign_ups_per_period() {
    let api = Api::new().await;
    let program = api
        .program(json!({"name": "Ranked", "currency": "USD", "rewards": [
            {"recipient": "referrer", "trigger": "signup", "kind": "cash", "amount": 100,
             "delivery": "payout"},
            {"recipient": "referrer", "trigger": "each_invoice", "kind": "cash",
             "percent": 10.0, "delivery": "payout"}]}))
        .await;
    // ann: 3 sign-ups, 300; ben: 1 sign-up and an invoice, 100 + 900; cat: 2 sign-ups, 200.
    let mut n = 0;
    for (referrer, signups) in [("ann", 3), ("ben", 1), ("cat", 2)] {
        let code = api.code_of(referrer).await;
        for _ in 0..signups {
            n += 1;
            api.signed_up(json!({"code": code, "referred_user_id": format!("u{n}")}))
                .await;
        }
    }
    let ben_referred = "u4";
    api.invoiced(
        json!({"event_id": "in-1", "user_id": ben_referred, "amount_paid": 9000,
                        "currency": "USD"}),
    )
    .await;
    let board = |query: &str| {
        let api = &api;
        let path = format!("/v1/programs/{program}/leaderboard{query}");
        async move {
            let (status, board) = api.admin(Method::GET, &path, None).await;
            assert_eq!(status, StatusCode::OK, "{board}");
            board
        }
    };
    let ranked = |board: &Value| -> Vec<(u64, String, i64, i64)> {
        board["leaders"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| {
                (
                    l["rank"].as_u64().unwrap(),
                    l["user_id"].as_str().unwrap().to_owned(),
                    l["signups"].as_i64().unwrap(),
                    l["earned"].as_i64().unwrap(),
                )
            })
            .collect()
    };
    let earned = board("").await;
    assert_eq!(
        (&earned["metric"], &earned["currency"]),
        (&json!("earned"), &json!("USD"))
    );
    assert_eq!(
        ranked(&earned),
        [
            (1, "ben".to_owned(), 1, 1000),
            (2, "ann".to_owned(), 3, 300),
            (3, "cat".to_owned(), 2, 200)
        ]
    );
    let by_signups = board("?metric=signups&period=all").await;
    assert_eq!(by_signups["period"], "all");
    assert_eq!(
        ranked(&by_signups)
            .into_iter()
            .map(|(_, user, signups, _)| (user, signups))
            .collect::<Vec<_>>(),
        [
            ("ann".to_owned(), 3),
            ("cat".to_owned(), 2),
            ("ben".to_owned(), 1)
        ]
    );
    // A refund takes its share off the board too.
    api.service(
        Method::POST,
        "/v1/events/refunds",
        Some(
            json!({"event_id": "re-1", "user_id": ben_referred, "invoice_event_id": "in-1",
                    "amount_refunded": 9000, "currency": "USD"}),
        ),
    )
    .await;
    assert_eq!(
        ranked(&board("?period=all").await)[2],
        (3, "ben".to_owned(), 1, 100)
    );
    assert_eq!(board("?period=2020-01").await["leaders"], json!([]));
    for bad in ["?metric=clicks", "?period=2026-13", "?period=last"] {
        assert_error(
            &api.admin(
                Method::GET,
                &format!("/v1/programs/{program}/leaderboard{bad}"),
                None,
            )
            .await,
            400,
            "invalid_request",
        );
    }
}
