//! The soak: many concurrent clients run a random mix of everything that moves money against
//! an emulator that behaves like DynamoDB and SQS under load (transaction conflicts,
//! throttling, 500s, commits whose answer is lost, failed sends), while the outbox dispatcher
//! reads the table's stream (its reads and sends under the same faults) and a consumer delivers
//! billing credits. Then, faults off and the reconciler run, the invariants are checked from
//! the API and the table:
//!
//! - every answer was 2xx, an expected 4xx, or 503 with `Retry-After` (never a 500);
//! - per user and currency, balances equal the ledger, and no balance is negative but after a
//!   take-back (a refund after delivery);
//! - no reward exists twice, and billing credited each `billing_credit` reward it was sent,
//!   always with the same amount; none is left undelivered;
//! - `max_referrals` is exact per code and program;
//! - every qualified count equals the relations that qualify, and no reward is held whose
//!   conditions hold;
//! - payouts never exceed what was credited, and only requested payouts were paid;
//! - a program's budget and each referrer's cap are never passed, and their counters equal
//!   what the rewards counted in them still hold (refunds and denials gave back the rest).
//!
//! Bounded: a fixed number of operations (and a time cap). It prints what it ran and the
//! faults the emulator injected.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{Method, StatusCode};
use axum::routing::post;
use billing_consumer::{Consumer, Settings};
use referral::delivery::queue::BillingQueue;
use referral::http::AppState;
use referral::http::auth::Role;
use referral::store::ReferralStore;
use serde_json::{Value, json};

use crate::money::{all_rewards, assert_balances_match_ledger};
use crate::support::{Api, FaultyEmulator, config, fresh_tenant, token};

/// The faults of `make test`; `SOAK_FAULTS` sets others for a run by hand (say, three times
/// these). SQS sends fail at 20 %: credits leave in batches of the stream, so there are few sends (about
/// 60 a run) and each must have a fair chance of meeting a fault.
const FAULTS: &str = "conflict=0.05,throttle=0.03,error=0.02,lost=0.03,sqs=0.2,seed=12";
const CLIENTS: usize = 8;
const OPERATIONS: usize = 1000;
const TIME_CAP: Duration = Duration::from_secs(90);
const REFERRERS: usize = 6;
const REFERRED: usize = 60;
const SIGNING_SECRET: &str = "soak-signing-secret-0123456789";
/// The budgeted program's budget and per-referrer cap: reached within a run.
const BUDGET: i64 = 12_000;
const CAP: i64 = 2_500;

/// What the clients learnt, to choose their next operations from.
#[derive(Default)]
struct World {
    programs: Vec<String>,
    codes: Vec<String>,
    /// Sign-ups answered 201: (relation id, referred user).
    relations: Vec<(String, String)>,
    /// Invoices sent, to replay: the exact body.
    invoices: Vec<Value>,
    checks: Vec<Value>,
    refunds: Vec<Value>,
    payouts: Vec<String>,
    /// (operation, status, code) of every answer.
    answers: BTreeMap<(String, u16, String), usize>,
    unexpected: Vec<String>,
}

/// A billing system on loopback that books every credit it is sent.
#[derive(Clone, Default)]
struct Billing(Arc<Mutex<Vec<(String, i64)>>>);

async fn book(State(billing): State<Billing>, body: Bytes) -> StatusCode {
    let credit: Value = serde_json::from_slice(&body).unwrap();
    billing.0.lock().unwrap().push((
        credit["reward_id"].as_str().unwrap().to_owned(),
        credit["amount"].as_i64().unwrap(),
    ));
    StatusCode::OK
}

fn expected(operation: &str, status: u16, code: &str) -> bool {
    match (operation, status) {
        (_, 503) => code == "unavailable",
        ("sign-up", 201) | ("invoice", 200) | ("verification", 200) | ("refund", 200) => true,
        ("approve" | "deny", 200) => true,
        // Changed meanwhile, or it does not fit the budget it is held for.
        ("approve" | "deny", 409) => code == "conflict",
        ("sign-up", 409) => code == "already_referred",
        ("sign-up", 422) => matches!(code, "max_referrals_reached" | "self_referral"),
        ("completion", 200) => true,
        ("completion", 409) => code == "referral_relation_already_redeemed",
        ("withdrawal", 201) => true,
        ("withdrawal", 422) => code == "below_min_withdrawal_balance",
        ("paid", 200) => true,
        ("paid", 409) => code == "conflict",
        ("click", 302) => true,
        _ => false,
    }
}

/// One request through the router: records its answer, and whether it was expected.
async fn send(
    api: &Api,
    world: &Mutex<World>,
    operation: &str,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = axum::http::Request::builder().method(method).uri(path);
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let request = request
        .body(axum::body::Body::from(
            body.map(|b| b.to_string()).unwrap_or_default(),
        ))
        .unwrap();
    let response = tower::ServiceExt::oneshot(api.router.clone(), request)
        .await
        .unwrap();
    let retry_after = response.headers().contains_key("retry-after");
    let (status, body) = crate::support::read(response).await;
    let status = status.as_u16();
    let code = body["error"]["code"].as_str().unwrap_or("").to_owned();
    let mut world = world.lock().unwrap();
    *world
        .answers
        .entry((operation.to_owned(), status, code.clone()))
        .or_default() += 1;
    if !expected(operation, status, &code) || (status == 503 && !retry_after) {
        world
            .unexpected
            .push(format!("{operation} {path}: {status} {body}"));
    }
    (status, body)
}

async fn client(
    api: Api,
    world: Arc<Mutex<World>>,
    seed: u64,
    operations: usize,
    started: Instant,
) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let service = token(&api.tenant, "backend", Role::Service);
    let admin = api.admin_token();
    for n in 0..operations {
        if started.elapsed() > TIME_CAP {
            return;
        }
        let choice = rng.u32(0..100);
        let tag = format!("{seed}-{n}");
        match choice {
            // Sign-ups: sometimes a referred user already in the program, sometimes a referrer
            // referring themselves, or another referrer (who then earns as a referee).
            0..=27 => {
                let (code, program) = {
                    let world = world.lock().unwrap();
                    (
                        world.codes[rng.usize(0..world.codes.len())].clone(),
                        world.programs[rng.usize(0..world.programs.len())].clone(),
                    )
                };
                let referred = match rng.u32(0..20) {
                    0 => format!("referrer-{}", rng.usize(0..REFERRERS)),
                    _ => format!("user-{:02}", rng.usize(0..REFERRED)),
                };
                let extra = code.contains('-');
                let mut body = json!({"code": code, "referred_user_id": referred});
                if !extra {
                    body["program_id"] = json!(program);
                }
                let (status, outcome) = send(
                    &api,
                    &world,
                    "sign-up",
                    Method::POST,
                    "/v1/referrals",
                    Some(&service),
                    Some(body),
                )
                .await;
                if status == 201 {
                    world.lock().unwrap().relations.push((
                        outcome["referral"]["id"].as_str().unwrap().to_owned(),
                        referred,
                    ));
                }
            }
            // Invoices: new ones, and replays of earlier ones (the same payload).
            28..=52 => {
                let replay = {
                    let world = world.lock().unwrap();
                    (rng.u32(0..5) == 0 && !world.invoices.is_empty())
                        .then(|| world.invoices[rng.usize(0..world.invoices.len())].clone())
                };
                let body = match replay {
                    Some(body) => body,
                    None => {
                        let user = format!("user-{:02}", rng.usize(0..REFERRED));
                        let currency = if rng.u32(0..4) == 0 { "EUR" } else { "USD" };
                        let body = json!({"event_id": format!("inv-{tag}"), "user_id": user,
                                          "amount_paid": rng.i64(100..4000), "currency": currency});
                        world.lock().unwrap().invoices.push(body.clone());
                        body
                    }
                };
                send(
                    &api,
                    &world,
                    "invoice",
                    Method::POST,
                    "/v1/events/invoices",
                    Some(&service),
                    Some(body),
                )
                .await;
            }
            // Refunds and chargebacks of earlier invoices, in part or whole, and replays.
            53..=59 => {
                let body = {
                    let world = world.lock().unwrap();
                    if rng.u32(0..5) == 0 && !world.refunds.is_empty() {
                        Some(world.refunds[rng.usize(0..world.refunds.len())].clone())
                    } else if world.invoices.is_empty() {
                        None
                    } else {
                        let invoice = &world.invoices[rng.usize(0..world.invoices.len())];
                        let paid = invoice["amount_paid"].as_i64().unwrap();
                        let reason = if rng.u32(0..4) == 0 {
                            "chargeback"
                        } else {
                            "refund"
                        };
                        Some(json!({"event_id": format!("ref-{tag}"),
                                    "user_id": invoice["user_id"],
                                    "invoice_event_id": invoice["event_id"],
                                    "amount_refunded": rng.i64(1..=paid),
                                    "currency": invoice["currency"], "reason": reason}))
                    }
                };
                if let Some(body) = body {
                    world.lock().unwrap().refunds.push(body.clone());
                    send(
                        &api,
                        &world,
                        "refund",
                        Method::POST,
                        "/v1/events/refunds",
                        Some(&service),
                        Some(body),
                    )
                    .await;
                }
            }
            // Identity checks, new and replayed.
            60..=72 => {
                let replay = {
                    let world = world.lock().unwrap();
                    (rng.u32(0..5) == 0 && !world.checks.is_empty())
                        .then(|| world.checks[rng.usize(0..world.checks.len())].clone())
                };
                let body = match replay {
                    Some(body) => body,
                    None => {
                        let outcome =
                            ["succeeded", "succeeded", "attempted", "failed"][rng.usize(0..4)];
                        let body = json!({"event_id": format!("chk-{tag}"),
                                          "user_id": format!("user-{:02}", rng.usize(0..REFERRED)),
                                          "outcome": outcome});
                        world.lock().unwrap().checks.push(body.clone());
                        body
                    }
                };
                send(
                    &api,
                    &world,
                    "verification",
                    Method::POST,
                    "/v1/events/verifications",
                    Some(&service),
                    Some(body),
                )
                .await;
            }
            // Admin completions of relations (twice: the second is refused).
            73..=76 => {
                let relation = {
                    let world = world.lock().unwrap();
                    (!world.relations.is_empty()).then(|| {
                        world.relations[rng.usize(0..world.relations.len())]
                            .0
                            .clone()
                    })
                };
                if let Some(relation) = relation {
                    send(
                        &api,
                        &world,
                        "completion",
                        Method::POST,
                        &format!("/v1/referrals/{relation}/complete"),
                        Some(&admin),
                        None,
                    )
                    .await;
                }
            }
            // An admin decides about a reward held for them: approves (it is counted against the
            // budget and cap then) or denies it.
            77..=79 => {
                let (status, held) = send(
                    &api,
                    &world,
                    "approve",
                    Method::GET,
                    "/v1/rewards?status=held&limit=20",
                    Some(&admin),
                    None,
                )
                .await;
                let waiting: Vec<String> = if status == 200 {
                    held["items"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .filter(|r| {
                            r["holds"].as_array().unwrap().iter().any(|h| {
                                matches!(
                                    h.as_str(),
                                    Some(
                                        "awaiting_approval"
                                            | "budget_exhausted"
                                            | "earnings_cap_reached"
                                    )
                                )
                            })
                        })
                        .map(|r| r["id"].as_str().unwrap().to_owned())
                        .collect()
                } else {
                    Vec::new()
                };
                if !waiting.is_empty() {
                    let id = &waiting[rng.usize(0..waiting.len())];
                    let (operation, path, body) = if rng.u32(0..4) == 0 {
                        (
                            "deny",
                            format!("/v1/rewards/{id}/deny"),
                            Some(json!({"reason": "soak"})),
                        )
                    } else {
                        ("approve", format!("/v1/rewards/{id}/approve"), None)
                    };
                    send(
                        &api,
                        &world,
                        operation,
                        Method::POST,
                        &path,
                        Some(&admin),
                        body,
                    )
                    .await;
                }
            }
            // Withdrawals, in either currency, and their settlement.
            80..=89 => {
                let user = format!("referrer-{}", rng.usize(0..REFERRERS));
                let promoter = token(&api.tenant, &user, Role::Promoter);
                let currency = if rng.bool() { "USD" } else { "EUR" };
                let (status, payout) = send(
                    &api,
                    &world,
                    "withdrawal",
                    Method::POST,
                    "/v1/promoters/me/payouts",
                    Some(&promoter),
                    Some(json!({"currency": currency})),
                )
                .await;
                if status == 201 {
                    world
                        .lock()
                        .unwrap()
                        .payouts
                        .push(payout["id"].as_str().unwrap().to_owned());
                }
            }
            90..=94 => {
                let payout = {
                    let world = world.lock().unwrap();
                    (!world.payouts.is_empty())
                        .then(|| world.payouts[rng.usize(0..world.payouts.len())].clone())
                };
                if let Some(payout) = payout {
                    send(
                        &api,
                        &world,
                        "paid",
                        Method::POST,
                        &format!("/v1/payouts/{payout}/paid"),
                        Some(&admin),
                        None,
                    )
                    .await;
                }
            }
            _ => {
                let code = {
                    let world = world.lock().unwrap();
                    world.codes[rng.usize(0..world.codes.len())].clone()
                };
                send(
                    &api,
                    &world,
                    "click",
                    Method::GET,
                    &format!("/r/{code}"),
                    None,
                    None,
                )
                .await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn money_invariants_hold_under_faults_and_concurrency() {
    let emulator = FaultyEmulator::start("");
    let started = Instant::now();
    // The application with its billing queue on the faulty emulator, and a billing system.
    let sdk = referral::config::aws().await;
    let sqs = aws_sdk_sqs::Client::from_conf(
        aws_sdk_sqs::config::Builder::from(&sdk)
            .endpoint_url(&emulator.endpoint)
            .build(),
    );
    let queue_url = sqs
        .create_queue()
        .queue_name("soak-credits")
        .attributes(
            aws_sdk_sqs::types::QueueAttributeName::VisibilityTimeout,
            "1",
        )
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let base = Api::on_faulty(&emulator).await;
    let mut settings = config();
    settings.queue_url = Some(queue_url.clone());
    let state = AppState::new(settings, base.store.client().clone(), Some(sqs.clone()));
    let api = Api {
        router: local_stack::app(state),
        tenant: fresh_tenant(),
        ..base
    };
    let billing = Billing::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let sink = axum::Router::new()
        .route("/credit/{user_id}", post(book))
        .with_state(billing.clone());
    tokio::spawn(async move { axum::serve(listener, sink).await.unwrap() });
    let queue = BillingQueue::new(sqs.clone(), &queue_url);
    // The outbox: the table's stream on the faulty emulator, read as the event source mapping
    // reads it, dispatched to the billing queue (and a webhook queue nobody reads here).
    let webhooks_url = sqs
        .create_queue()
        .queue_name("soak-webhooks")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let outbox = Arc::new(referral::delivery::outbox::Outbox::new(
        api.store.clone(),
        queue.clone(),
        BillingQueue::new(sqs, &webhooks_url),
    ));
    let reader = Arc::new(tokio::sync::Mutex::new(
        local_stack::stream::StreamReader::open(
            &sdk,
            Some(&emulator.endpoint),
            api.store.table(),
            false,
            None,
        )
        .await
        .unwrap()
        .with_batch_size(25),
    ));
    let consumer = Arc::new(Consumer::new(
        api.store.clone(),
        Settings {
            callback_url: Some(format!("http://127.0.0.1:{port}/credit/{{user_id}}")),
            signing_secret: Some(referral::config::Secret::new(SIGNING_SECRET)),
            policy: referral::outbound::Policy {
                allow_private: true,
            },
            tenant_cache: Duration::from_secs(30),
            timeout: Duration::from_secs(3),
            max_receive_count: 1000,
        },
    ));

    // The tenant: programs in two currencies with every kind of rule, hold and limit.
    let programs = [
        json!({"name": "Sign-up cash", "currency": "USD", "max_referrals": 8, "rewards": [
            {"recipient": "referee", "trigger": "signup", "kind": "cash", "amount": 1000},
            {"recipient": "referrer", "trigger": "signup", "kind": "cash", "amount": 300,
             "delivery": "payout"}]}),
        json!({"name": "Commission", "currency": "USD", "rewards": [
            {"recipient": "referrer", "trigger": "each_invoice", "kind": "cash", "percent": 15.0,
             "delivery": "payout"},
            {"recipient": "referee", "trigger": "paid_threshold", "threshold_amount": 5000,
             "kind": "cash", "amount": 700, "delivery": "payout"}]}),
        json!({"name": "Verified", "currency": "USD", "requires_verification": true,
               "min_referrals": 2, "rewards": [
            {"recipient": "referrer", "trigger": "signup", "kind": "cash", "amount": 500,
             "delivery": "payout"},
            {"recipient": "referrer", "trigger": "each_invoice", "kind": "cash", "amount": 50,
             "delivery": "payout"},
            {"recipient": "referee", "trigger": "verified", "kind": "cash", "amount": 200}]}),
        json!({"name": "Euro", "currency": "EUR", "rewards": [
            {"recipient": "referrer", "trigger": "paid_threshold", "threshold_amount": 6000,
             "kind": "cash", "amount": 2500},
            {"recipient": "referrer", "trigger": "each_invoice", "kind": "cash", "percent": 5.0,
             "delivery": "payout"},
            {"recipient": "referee", "trigger": "signup", "kind": "points", "amount": 50}]}),
        json!({"name": "Minimum", "currency": "USD", "min_referrals": 3, "max_referrals": 6,
               "rewards": [
            {"recipient": "referrer", "trigger": "each_invoice", "kind": "cash", "percent": 5.0,
             "delivery": "payout"}]}),
        json!({"name": "Budgeted", "currency": "USD", "approval": "manual", "budget": BUDGET,
               "max_earnings_per_promoter": CAP, "rewards": [
            {"recipient": "referrer", "trigger": "signup", "kind": "cash", "amount": 400,
             "delivery": "payout"},
            {"recipient": "referee", "trigger": "signup", "kind": "cash", "amount": 600},
            {"recipient": "referrer", "trigger": "each_invoice", "kind": "cash", "percent": 10.0,
             "delivery": "payout"}]}),
    ];
    let mut world = World::default();
    for program in programs {
        world.programs.push(api.program(program).await);
    }
    for i in 0..REFERRERS {
        let user = format!("referrer-{i}");
        world.codes.push(api.code_of(&user).await);
        api.pays_out_to(&user, &format!("{user}@example.com")).await;
        api.as_promoter(
            &user,
            Method::PATCH,
            "/v1/promoters/me/min-withdrawal-balance",
            Some(json!({"min_withdrawal_balance": 500})),
        )
        .await;
    }
    let (status, extra) = api
        .admin(
            Method::POST,
            "/v1/promoters/referrer-0/codes",
            Some(
                json!({"program_id": world.programs[0], "code": "SOAK-VIP", "max_referrals": 3,
                        "referee_amount": 1500}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{extra}");
    world.codes.push("SOAK-VIP".into());
    let world = Arc::new(Mutex::new(world));

    // The load, with faults on; a consumer delivers credits meanwhile.
    let faults = std::env::var("SOAK_FAULTS").unwrap_or_else(|_| FAULTS.to_owned());
    emulator.set_faults(&faults).await;
    let load_started = Instant::now();
    let delivering = Arc::new(std::sync::atomic::AtomicBool::new(true));
    // The stream is read on its own, as the event source mapping polls it whatever the consumer
    // is doing; a batch failed by an injected fault is handed again on the next turn.
    let dispatch = {
        let (reader, outbox, delivering) = (reader.clone(), outbox.clone(), delivering.clone());
        tokio::spawn(async move {
            while delivering.load(std::sync::atomic::Ordering::SeqCst) {
                let pumped = reader.lock().await.pump(&outbox).await;
                if pumped.is_ok_and(|dispatched| dispatched == Default::default()) {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        })
    };
    let pump = {
        let (queue, consumer, delivering) = (queue.clone(), consumer.clone(), delivering.clone());
        tokio::spawn(async move {
            while delivering.load(std::sync::atomic::Ordering::SeqCst) {
                if local_stack::billing::pump(&queue, &consumer, 0)
                    .await
                    .unwrap_or(0)
                    == 0
                {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        })
    };
    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| {
            tokio::spawn(client(
                api.clone(),
                world.clone(),
                1000 + i as u64,
                OPERATIONS / CLIENTS,
                started,
            ))
        })
        .collect();
    for client in clients {
        client.await.unwrap();
    }
    let load_time = load_started.elapsed();
    delivering.store(false, std::sync::atomic::Ordering::SeqCst);
    pump.await.unwrap();
    dispatch.await.unwrap();
    let stats = emulator.stats().await;

    // Faults off: the reconciler finishes what was cut short and re-sends what was lost.
    emulator.set_faults("").await;
    let mut resumed = 0;
    for _ in 0..30 {
        let released =
            referral::delivery::reconcile::resume_release_jobs(&api.store, time::Duration::ZERO)
                .await
                .unwrap();
        resumed += released.len();
        // The stream's changes so far, dispatched (a batch failed under faults, again).
        reader.lock().await.drain(&outbox).await.unwrap();
        referral::delivery::reconcile::reconcile(&api.store, &queue, time::Duration::ZERO)
            .await
            .unwrap();
        while local_stack::billing::pump(&queue, &consumer, 0)
            .await
            .unwrap()
            > 0
        {}
        let undelivered = {
            use referral::store::BillingStore;
            api.store
                .undelivered_before(referral::clock::now(), 1000)
                .await
                .unwrap()
        };
        let jobs = api
            .store
            .release_jobs_before(referral::clock::now(), 1000)
            .await
            .unwrap();
        if undelivered.iter().all(|r| r.tenant != api.tenant)
            && jobs.iter().all(|j| j.tenant != api.tenant)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }

    // What ran.
    let world = Arc::try_unwrap(world).ok().unwrap().into_inner().unwrap();
    let operations: usize = world.answers.values().sum();
    println!(
        "soak: {operations} operations by {CLIENTS} clients in {:.1} s under faults `{faults}`",
        load_time.as_secs_f64()
    );
    for ((operation, status, code), count) in &world.answers {
        println!("  {operation:<12} {status} {code:<34} {count}");
    }
    println!(
        "  injected: {}",
        serde_json::to_string(&stats["counts"]).unwrap()
    );
    println!("  the reconciler released {resumed} rewards left held after the load");
    assert!(
        world.unexpected.is_empty(),
        "{} unexpected answers: {:#?}",
        world.unexpected.len(),
        world.unexpected
    );
    for kind in ["conflict", "throttle", "error", "lost", "sqs"] {
        assert!(
            stats["counts"][format!("injected.{kind}")].as_u64() > Some(0),
            "{kind} faults were injected: {stats}"
        );
    }
    assert!(world.answers.keys().any(|(_, status, _)| *status == 201));

    // Balances equal the ledger, per user and currency; no reward twice; nothing negative.
    let users: Vec<String> = (0..REFERRERS)
        .map(|i| format!("referrer-{i}"))
        .chain((0..REFERRED).map(|i| format!("user-{i:02}")))
        .collect();
    let mut rewards: BTreeMap<String, Value> = BTreeMap::new();
    for user in &users {
        let (status, _) = api
            .admin(Method::GET, &format!("/v1/promoters/{user}"), None)
            .await;
        if status == StatusCode::NOT_FOUND {
            api.me(user).await;
        }
        assert_balances_match_ledger(&api, user).await;
        let promoter = api.me(user).await;
        let ledger = all_rewards(&api, user).await;
        for (currency, balance) in promoter["balances"].as_object().unwrap() {
            let taken_back = ledger
                .iter()
                .any(|r| r["currency"] == currency.as_str() && r["reverses"].is_string());
            assert!(
                balance["current_balance"].as_i64().unwrap() >= 0 || taken_back,
                "{user} {currency}: {promoter}"
            );
        }
        for reward in ledger {
            let id = reward["id"].as_str().unwrap().to_owned();
            assert!(
                rewards.insert(id.clone(), reward).is_none(),
                "reward {id} exists twice"
            );
        }
    }

    // The outbox forgot nothing the load committed, faults on stream reads and SQS sends
    // notwithstanding: every reward's `reward.created` event was kept (its id follows from the
    // reward).
    for (id, reward) in &rewards {
        let reward: referral::domain::ledger::Reward =
            serde_json::from_value(reward.clone()).unwrap();
        let created = referral::domain::event::events_of(
            None,
            Some(&referral::domain::event::Entity::Reward(Box::new(reward))),
        );
        let kept =
            referral::store::WebhookStore::get_event(&api.store, &api.tenant, &created[0].id)
                .await
                .unwrap();
        assert_eq!(
            kept.map(|event| event.data["id"].clone()),
            Some(json!(id)),
            "{id}"
        );
    }

    // Billing credited each reward it was sent, always with the same amount, and nothing is
    // left undelivered.
    let booked = billing.0.lock().unwrap().clone();
    let mut by_reward: BTreeMap<&str, BTreeSet<i64>> = BTreeMap::new();
    for (id, amount) in &booked {
        by_reward.entry(id).or_default().insert(*amount);
    }
    for (id, reward) in &rewards {
        if reward["delivery"] != "billing_credit" {
            assert!(
                !by_reward.contains_key(id.as_str()),
                "{id} is not for billing"
            );
            continue;
        }
        match reward["status"].as_str().unwrap() {
            "credited" => assert_eq!(
                by_reward.get(id.as_str()),
                Some(&BTreeSet::from([crate::money::payable(reward)])),
                "{id} credited once, with what it pays (a take-back: a debit)"
            ),
            "held" | "reversed" => assert!(!by_reward.contains_key(id.as_str()), "{id}"),
            other => panic!("{id} is {other} after delivery: {reward}"),
        }
    }
    for id in by_reward.keys() {
        assert!(
            rewards.contains_key(*id),
            "billing booked an unknown reward {id}"
        );
    }

    // max_referrals is exact per code and program; qualified counts equal the relations that
    // qualify; nothing is held whose conditions hold.
    let admin = api.admin_token();
    let mut relations: Vec<Value> = Vec::new();
    for referrer in 0..REFERRERS {
        let referrer = format!("referrer-{referrer}");
        let path = format!("/v1/referrals?user={referrer}&limit=200");
        relations.extend(
            api.all_pages(&admin, &path)
                .await
                .into_iter()
                .filter(|r| r["referrer_user_id"] == referrer.as_str()),
        );
    }
    let mut per_code: BTreeMap<(String, String), usize> = BTreeMap::new();
    for relation in &relations {
        *per_code
            .entry((
                relation["code"].as_str().unwrap().to_owned(),
                relation["program_id"].as_str().unwrap().to_owned(),
            ))
            .or_default() += 1;
    }
    for ((code, program), count) in &per_code {
        let limit = if code == "SOAK-VIP" {
            3
        } else if *program == world.programs[0] {
            8
        } else if *program == world.programs[4] {
            6
        } else {
            usize::MAX
        };
        assert!(count <= &limit, "{code} in {program}: {count} > {limit}");
    }
    let (_, vip) = api
        .call(Method::GET, "/v1/codes/SOAK-VIP", None, None)
        .await;
    assert_eq!(
        vip["programs"][0]["total_referrals"].as_u64(),
        Some(
            per_code
                .get(&("SOAK-VIP".to_owned(), world.programs[0].clone()))
                .copied()
                .unwrap_or(0) as u64
        ),
        "the counter is the relations: {vip}"
    );
    let min_of = |program: &str| {
        if program == world.programs[2] {
            2
        } else if program == world.programs[4] {
            3
        } else {
            0
        }
    };
    for referrer in 0..REFERRERS {
        let referrer = format!("referrer-{referrer}");
        for program in [&world.programs[2], &world.programs[4]] {
            let qualifying = relations
                .iter()
                .filter(|r| {
                    r["referrer_user_id"] == referrer.as_str()
                        && r["program_id"] == program.as_str()
                })
                .filter(|r| *program != world.programs[2] || r["verified"] == true)
                .count() as u64;
            let counted = api
                .store
                .qualified_referrals(&api.tenant, &referrer, program)
                .await
                .unwrap();
            assert_eq!(counted, qualifying, "{referrer} in {program}");
        }
    }
    for (id, reward) in rewards.iter().filter(|(_, r)| r["status"] == "held") {
        let program = reward["program_id"].as_str().unwrap();
        for hold in reward["holds"].as_array().unwrap() {
            match hold.as_str().unwrap() {
                "min_referrals" => {
                    let counted = api
                        .store
                        .qualified_referrals(
                            &api.tenant,
                            reward["referrer_user_id"].as_str().unwrap(),
                            program,
                        )
                        .await
                        .unwrap();
                    assert!(
                        counted < min_of(program),
                        "{id} held, but the referrer qualifies"
                    );
                }
                "verification" => {
                    let relation = relations
                        .iter()
                        .find(|r| r["id"] == reward["referral_id"])
                        .unwrap_or_else(|| panic!("{id}: its relation"));
                    assert_eq!(relation["verified"], false, "{id} held, but verified");
                }
                // Waiting for an admin: nothing to check but that the program asks for it.
                "awaiting_approval" | "budget_exhausted" | "earnings_cap_reached" => {
                    assert_eq!(program, world.programs[5], "{id}")
                }
                other => panic!("{id}: unknown hold {other}"),
            }
        }
    }
    // The budget and the caps: never passed, and each counter is what its rewards still count
    // (a refund or a denial gave back what it took).
    let counted = |filter: &dyn Fn(&Value) -> bool| -> i64 {
        rewards
            .values()
            .filter(|r| r["reverses"].is_null() && r["status"] != "reversed")
            .filter(|r| filter(r))
            .map(|r| {
                r["amount"].as_i64().unwrap()
                    - r["reduced"].as_i64().unwrap_or(0)
                    - r["taken_back"].as_i64().unwrap_or(0)
            })
            .sum()
    };
    let (_, budgeted) = api
        .admin(
            Method::GET,
            &format!("/v1/programs/{}", world.programs[5]),
            None,
        )
        .await;
    let used = budgeted["budget_used"].as_i64().unwrap();
    assert!(used <= BUDGET, "{budgeted}");
    assert_eq!(
        used,
        counted(&|r| r["budget_bucket"] == "total"),
        "the budget's counter is what its rewards count"
    );
    for referrer in 0..REFERRERS {
        let referrer = format!("referrer-{referrer}");
        let earned = counted(&|r| r["counts_to_cap"] == true && r["user_id"] == referrer.as_str());
        assert!(earned <= CAP, "{referrer}: {earned}");
        let counter = referral::store::ReferralStore::counters(
            &api.store,
            &[referral::store::Counter::Earnings {
                tenant: api.tenant.clone(),
                user: referrer.clone(),
                program_id: world.programs[5].clone(),
            }],
        )
        .await
        .unwrap();
        assert_eq!(counter, [earned], "{referrer}'s cap counter");
    }
    let held_for_limits = rewards
        .values()
        .filter(|r| {
            r["holds"].as_array().is_some_and(|h| {
                h.contains(&json!("budget_exhausted")) || h.contains(&json!("earnings_cap_reached"))
            })
        })
        .count();
    let take_backs = rewards
        .values()
        .filter(|r| r["reverses"].is_string())
        .count();
    println!(
        "  budget used {used} of {BUDGET}; {held_for_limits} rewards held for the budget or a cap; {take_backs} take-backs"
    );
    println!(
        "  checked: {} users, {} rewards ({} booked by billing), {} relations",
        users.len(),
        rewards.len(),
        by_reward.len(),
        relations.len()
    );
}
