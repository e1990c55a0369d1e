//! Webhooks end to end: endpoints created through the routes, state changes made through the
//! routes, the table's stream read into the outbox, the webhook queue drained by the sender into
//! real HTTP receivers on loopback sockets, and every delivery checked with the independent
//! `standardwebhooks` verifier.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use referral::http::auth::Role;
use serde_json::{Value, json};
use webhook_sender::{Sender, Settings};

use crate::billing::{Receiver as Billing, SIGNING_SECRET, drain};
use crate::support::{Api, TestOutbox, assert_error, token};

/// One request a hook receiver got.
#[derive(Clone, Debug)]
struct Hit {
    headers: HeaderMap,
    body: Vec<u8>,
    answered: u16,
    at: Instant,
}

impl Hit {
    fn event(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

#[derive(Default)]
struct Hooks {
    /// Per receiver: answers in order (status, Retry-After), then `always` or 200.
    answers: HashMap<String, VecDeque<(u16, Option<u32>)>>,
    always: HashMap<String, u16>,
    hits: BTreeMap<String, Vec<Hit>>,
}

/// Webhook receivers on 127.0.0.1: `{url}/{name}` with scripted answers.
#[derive(Clone)]
struct Receivers {
    url: String,
    hooks: Arc<Mutex<Hooks>>,
}

async fn hook(
    State(hooks): State<Arc<Mutex<Hooks>>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    let mut hooks = hooks.lock().unwrap();
    let scripted = hooks.answers.get_mut(&name).and_then(VecDeque::pop_front);
    let (status, retry_after) =
        scripted.unwrap_or((hooks.always.get(&name).copied().unwrap_or(200), None));
    hooks.hits.entry(name).or_default().push(Hit {
        headers,
        body: body.to_vec(),
        answered: status,
        at: Instant::now(),
    });
    let status = StatusCode::from_u16(status).unwrap();
    match retry_after {
        Some(seconds) => (status, [("retry-after", seconds.to_string())]).into_response(),
        None => status.into_response(),
    }
}

impl Receivers {
    async fn start() -> Receivers {
        let hooks = Arc::new(Mutex::new(Hooks::default()));
        let app = Router::new()
            .route("/hooks/{name}", post(hook))
            .with_state(hooks.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Receivers {
            url: format!("http://127.0.0.1:{port}/hooks"),
            hooks,
        }
    }

    fn script(&self, name: &str, answers: &[(u16, Option<u32>)]) {
        let mut hooks = self.hooks.lock().unwrap();
        hooks
            .answers
            .entry(name.to_owned())
            .or_default()
            .extend(answers);
    }

    fn always(&self, name: &str, status: u16) {
        self.hooks
            .lock()
            .unwrap()
            .always
            .insert(name.to_owned(), status);
    }

    fn hits(&self, name: &str) -> Vec<Hit> {
        self.hooks
            .lock()
            .unwrap()
            .hits
            .get(name)
            .cloned()
            .unwrap_or_default()
    }

    /// The event types an endpoint accepted (2xx), in the order received, once per event id.
    fn delivered(&self, name: &str) -> Vec<String> {
        let mut seen = std::collections::BTreeSet::new();
        self.hits(name)
            .iter()
            .filter(|hit| hit.answered < 300)
            .filter(|hit| seen.insert(hit.event()["id"].as_str().unwrap().to_owned()))
            .map(|hit| hit.event()["type"].as_str().unwrap().to_owned())
            .collect()
    }
}

/// Every hit of `name` passes the independent verifier with `secret`; its `webhook-id` is the
/// event's id.
fn verify_all(receivers: &Receivers, name: &str, secret: &str) {
    let verifier = standardwebhooks::Webhook::new(secret).unwrap();
    let hits = receivers.hits(name);
    assert!(!hits.is_empty(), "{name} got nothing");
    for hit in hits {
        verifier
            .verify(&hit.body, &hit.headers)
            .unwrap_or_else(|error| panic!("{name}: {error:?} {:?}", hit.event()));
        assert_eq!(
            hit.headers["webhook-id"].to_str().unwrap(),
            hit.event()["id"].as_str().unwrap()
        );
    }
}

/// The machinery of AWS, run by hand: the stream's mapping (the outbox), the billing queue's
/// consumer, the webhook queue's sender.
struct Pipes {
    outbox: TestOutbox,
    billing: Billing,
    sender: Sender<referral::store::DynamoStore>,
}

impl Pipes {
    /// Runs every pipe until `done` holds (or fails after 20 s).
    async fn until(&mut self, api: &Api, what: &str, done: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            self.outbox.pump().await;
            let consumer = self
                .billing
                .consumer(api.store.clone(), Duration::from_secs(2));
            drain(&self.outbox.billing, &consumer).await;
            while local_stack::pump(&self.outbox.webhooks, 0, |event| self.sender.handle(event))
                .await
                .unwrap()
                > 0
            {}
            if done() {
                return;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn endpoint(api: &Api, url: String, types: &[&str]) -> (String, String) {
    let (status, created) = api
        .admin(
            Method::POST,
            "/v1/webhook-endpoints",
            Some(json!({"url": url, "event_types": types, "description": "test"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert!(created["secret"].as_str().unwrap().starts_with("whsec_"));
    (
        created["id"].as_str().unwrap().to_owned(),
        created["secret"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn each_endpoint_gets_exactly_its_events_signed_retried_logged_and_replayable() {
    let api = Api::new().await;
    let receivers = Receivers::start().await;
    let mut pipes = Pipes {
        outbox: TestOutbox::new(&api).await,
        billing: Billing::start().await,
        sender: Sender::new(
            api.store.clone(),
            crate::support::queue(&format!("webhooks-{}", api.tenant)).await,
            Settings::from_lookup(|name| match name {
                "ALLOW_PRIVATE_URLS" => Some("true".into()),
                "WEBHOOK_RETRY_SCALE" => Some("0.001".into()),
                "WEBHOOK_TIMEOUT_MS" => Some("2000".into()),
                _ => None,
            })
            .unwrap(),
        ),
    };
    let (journal, journal_secret) = endpoint(
        &api,
        format!("{}/journal", receivers.url),
        &[
            "referral.created",
            "referral.converted",
            "payout.requested",
            "payout.paid",
            "webhook_endpoint.disabled",
        ],
    )
    .await;
    let (ledger, ledger_secret) = endpoint(
        &api,
        format!("{}/ledger", receivers.url),
        &["reward.created", "reward.status_changed"],
    )
    .await;
    let (gone, _) = endpoint(
        &api,
        format!("{}/gone", receivers.url),
        &["promoter.created"],
    )
    .await;
    // Injected failures: the journal fails twice, the ledger asks for a second's patience,
    // the third endpoint is gone for good.
    receivers.script("journal", &[(500, None), (500, None)]);
    receivers.script("ledger", &[(429, Some(1))]);
    receivers.always("gone", 410);
    pipes.billing.answer(&[400]);

    let (status, _) = api
        .admin(
            Method::POST,
            "/v1/programs",
            Some(json!({"name": "Hooks", "currency": "USD", "rewards": [
                {"recipient": "referee", "trigger": "signup", "kind": "cash", "amount": 1000},
                {"recipient": "referrer", "trigger": "paid_threshold", "threshold_amount": 5000,
                 "kind": "cash", "amount": 2500, "delivery": "payout"}
            ]})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let code = api.code_of("alice").await;
    let service = token(&api.tenant, "backend", Role::Service);
    let (status, signed_up) = api
        .call(
            Method::POST,
            "/v1/referrals",
            Some(&service),
            Some(json!({"code": code, "referred_user_id": "bob"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{signed_up}");
    let bobs_reward = signed_up["rewards"][0]["id"].as_str().unwrap().to_owned();
    // Billing refuses bob's credit: the reward fails; an admin retries it; billing takes it.
    let billing = pipes.billing.clone();
    pipes
        .until(&api, "the refused credit", || {
            billing.log().iter().any(|credit| credit.answered == 400)
        })
        .await;
    let (status, retried) = api
        .admin(
            Method::POST,
            &format!("/v1/rewards/{bobs_reward}/retry"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{retried}");
    api.invoiced(
        json!({"event_id": "inv-1", "user_id": "bob", "amount_paid": 6000, "currency": "USD"}),
    )
    .await;
    let alice = token(&api.tenant, "alice", Role::Promoter);
    let (status, _) = api
        .call(
            Method::PATCH,
            "/v1/promoters/me/payout-method",
            Some(&alice),
            Some(json!({"method": "wise", "payment_address": "alice@example.com"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, payout) = api
        .call(Method::POST, "/v1/promoters/me/payouts", Some(&alice), None)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{payout}");
    let (status, _) = api
        .admin(
            Method::POST,
            &format!("/v1/payouts/{}/paid", payout["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    let expected_journal = [
        "referral.created",
        "referral.converted",
        "payout.requested",
        "payout.paid",
        "webhook_endpoint.disabled",
    ];
    let expected_ledger = [
        "reward.created",        // bob's 1000, pending
        "reward.status_changed", // pending -> failed (billing refused)
        "reward.status_changed", // failed -> pending (retried)
        "reward.status_changed", // pending -> credited
        "reward.created",        // alice's 2500 to her balance
    ];
    pipes
        .until(&api, "every event", || {
            let mut journal = receivers.delivered("journal");
            let mut ledger = receivers.delivered("ledger");
            journal.sort();
            ledger.sort();
            let mut want_journal = expected_journal.map(str::to_owned).to_vec();
            let mut want_ledger = expected_ledger.map(str::to_owned).to_vec();
            want_journal.sort();
            want_ledger.sort();
            journal == want_journal && ledger == want_ledger
        })
        .await;

    // Exactly their events: nothing else arrived, and the gone endpoint got one attempt.
    let gone_hits = receivers.hits("gone");
    assert_eq!(gone_hits.len(), 1, "{gone_hits:?}");
    assert_eq!(gone_hits[0].event()["type"], "promoter.created");
    let (_, gone_view) = api
        .admin(Method::GET, &format!("/v1/webhook-endpoints/{gone}"), None)
        .await;
    assert_eq!(
        (
            gone_view["enabled"].as_bool(),
            gone_view["disabled_reason"].as_str()
        ),
        (Some(false), Some("gone"))
    );
    let disabled = receivers
        .hits("journal")
        .into_iter()
        .find(|hit| hit.event()["type"] == "webhook_endpoint.disabled")
        .unwrap();
    assert_eq!(disabled.event()["data"]["id"], gone.as_str());
    assert_eq!(disabled.event()["tenant"], api.tenant.as_str());
    verify_all(&receivers, "journal", &journal_secret);
    verify_all(&receivers, "ledger", &ledger_secret);
    let statuses: Vec<(String, String)> = receivers
        .hits("ledger")
        .iter()
        .filter(|hit| hit.event()["type"] == "reward.status_changed" && hit.answered < 300)
        .map(|hit| {
            let data = &hit.event()["data"];
            (
                data["previous_status"].as_str().unwrap().to_owned(),
                data["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    for change in [
        ("pending", "failed"),
        ("failed", "pending"),
        ("pending", "credited"),
    ] {
        assert!(
            statuses.contains(&(change.0.to_owned(), change.1.to_owned())),
            "{statuses:?}"
        );
    }
    // The billing credits carry the same standard signature (with the billing secret).
    let billing =
        standardwebhooks::Webhook::from_bytes(SIGNING_SECRET.as_bytes().to_vec()).unwrap();
    for credit in pipes.billing.log() {
        billing.verify(&credit.body, &credit.headers).unwrap();
        assert_eq!(
            credit.headers["webhook-id"],
            credit.idempotency_key.as_str()
        );
    }

    // The delivery log: the journal's first event took three attempts.
    let (status, log) = api
        .admin(
            Method::GET,
            &format!("/v1/webhook-endpoints/{journal}/deliveries"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{log}");
    let items = log["items"].as_array().unwrap();
    assert_eq!(items.len(), expected_journal.len(), "{log}");
    assert!(
        items.iter().all(|item| item["status"] == "succeeded"),
        "{log}"
    );
    let retried: Vec<&Value> = items
        .iter()
        .filter(|item| item["attempts"].as_array().unwrap().len() > 1)
        .collect();
    assert_eq!(retried.len(), 1, "{log}");
    let codes: Vec<Option<u64>> = retried[0]["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|attempt| attempt["status_code"].as_u64())
        .collect();
    assert_eq!(codes, [Some(500), Some(500), Some(200)]);
    assert!(
        retried[0]["attempts"][0]["error"]
            .as_str()
            .unwrap()
            .starts_with("answered 500")
    );
    // Newest event first.
    let ids: Vec<&str> = items
        .iter()
        .map(|i| i["event_id"].as_str().unwrap())
        .collect();
    let mut sorted = ids.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(ids, sorted);
    // The ledger's 429 was retried no sooner than its Retry-After.
    let ledger_hits = receivers.hits("ledger");
    assert_eq!(ledger_hits[0].answered, 429);
    let again = ledger_hits
        .iter()
        .skip(1)
        .find(|hit| hit.event()["id"] == ledger_hits[0].event()["id"])
        .unwrap();
    assert!(again.at - ledger_hits[0].at >= Duration::from_secs(1));
    // The gone endpoint's log says why.
    let (_, gone_log) = api
        .admin(
            Method::GET,
            &format!("/v1/webhook-endpoints/{gone}/deliveries"),
            None,
        )
        .await;
    assert_eq!(gone_log["items"][0]["status"], "failed");
    assert_eq!(gone_log["items"][0]["attempts"][0]["status_code"], 410);

    // A replay: the same event (same id), signed afresh, to the ledger only.
    let first = receivers.hits("ledger")[0].event();
    let replay_path = format!("/v1/events/{}/replay", first["id"].as_str().unwrap());
    let (status, replayed) = api
        .admin(
            Method::POST,
            &replay_path,
            Some(json!({"endpoint_id": ledger})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{replayed}");
    assert_eq!(replayed["endpoint_ids"], json!([ledger]));
    let before = receivers.hits("ledger").len();
    pipes
        .until(&api, "the replay", || {
            receivers.hits("ledger").len() > before
        })
        .await;
    let replay = receivers.hits("ledger").last().unwrap().clone();
    assert_eq!(replay.event(), first);
    verify_all(&receivers, "ledger", &ledger_secret);
    // A test event, and refusals.
    let (status, tested) = api
        .admin(
            Method::POST,
            &format!("/v1/webhook-endpoints/{journal}/test"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{tested}");
    pipes
        .until(&api, "the test event", || {
            receivers
                .hits("journal")
                .iter()
                .any(|hit| hit.event()["type"] == "webhook.test")
        })
        .await;
    verify_all(&receivers, "journal", &journal_secret);
    assert_error(
        &api.admin(
            Method::POST,
            &format!("/v1/webhook-endpoints/{gone}/test"),
            None,
        )
        .await,
        409,
        "conflict",
    );
    assert_error(
        &api.admin(
            Method::POST,
            "/v1/events/evt_01JNOSUCHEVENT0000000000000/replay",
            None,
        )
        .await,
        404,
        "not_found",
    );
    assert_error(
        &api.other_tenant()
            .admin(Method::POST, &replay_path, None)
            .await,
        404,
        "not_found",
    );
}

#[tokio::test]
async fn every_sender_sample_is_parsed_and_handled() {
    let api = Api::new().await;
    let sender = Sender::new(
        api.store.clone(),
        crate::support::queue(&format!("webhooks-{}", api.tenant)).await,
        Settings::from_lookup(|_| None).unwrap(),
    );
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../events/webhook-sender");
    let mut samples = 0;
    for file in std::fs::read_dir(dir).unwrap() {
        let text = std::fs::read_to_string(file.unwrap().path()).unwrap();
        let event: aws_lambda_events::event::sqs::SqsEvent = serde_json::from_str(&text).unwrap();
        let response = sender.handle(event).await;
        // The sample's delivery names no stored endpoint (acknowledged, nothing sent); its
        // malformed record is reported, bound for the dead-letter queue.
        let failed: Vec<&str> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        assert_eq!(failed, ["malformed-0002"]);
        samples += 1;
    }
    assert!(samples > 0);
}

#[tokio::test]
async fn endpoint_inputs_are_checked_and_the_count_is_capped() {
    let api = Api::new().await;
    let path = "/v1/webhook-endpoints";
    for (body, field) in [
        (json!({}), "url"),
        (json!({"url": "ftp://hooks.example.com"}), "url"),
        (
            json!({"url": "https://hooks.example.com", "event_types": ["reward.paid"]}),
            "event_types",
        ),
        (
            json!({"url": "https://hooks.example.com", "event_types": ["webhook.test"]}),
            "event_types",
        ),
        (
            json!({"url": "https://hooks.example.com", "description": "x".repeat(501)}),
            "description",
        ),
        (
            json!({"url": "https://hooks.example.com", "secret": "mine"}),
            "secret",
        ),
    ] {
        let answer = api.admin(Method::POST, path, Some(body.clone())).await;
        assert_error(&answer, 400, "invalid_request");
        assert!(answer.1.to_string().contains(field), "{body} {}", answer.1);
    }
    // Admin only.
    let service = token(&api.tenant, "backend", Role::Service);
    assert_error(
        &api.call(Method::GET, path, Some(&service), None).await,
        403,
        "forbidden",
    );
    let (_, list) = api.admin(Method::GET, path, None).await;
    assert_eq!(list["items"], json!([]));

    // At most 20, exactly, under concurrent creations.
    let creations = (0..24).map(|i| {
        api.admin(
            Method::POST,
            path,
            Some(json!({"url": format!("https://hooks.example.com/{i}")})),
        )
    });
    let answers = futures::future::join_all(creations).await;
    let created = answers
        .iter()
        .filter(|(s, _)| *s == StatusCode::CREATED)
        .count();
    assert_eq!(
        created,
        referral::domain::webhook::MAX_ENDPOINTS,
        "{answers:?}"
    );
    for answer in answers.iter().filter(|(s, _)| *s != StatusCode::CREATED) {
        assert_error(answer, 409, "conflict");
    }
    let (_, list) = api.admin(Method::GET, path, None).await;
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 20);
    assert!(items.iter().all(|item| item.get("secret").is_none()));
    // A delete frees a place; the endpoint is gone for its tenant only.
    let id = items[0]["id"].as_str().unwrap();
    let one = format!("{path}/{id}");
    assert_error(
        &api.other_tenant().admin(Method::DELETE, &one, None).await,
        404,
        "not_found",
    );
    let (status, _) = api.admin(Method::DELETE, &one, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_error(&api.admin(Method::GET, &one, None).await, 404, "not_found");
    let (status, _) = api
        .admin(
            Method::POST,
            path,
            Some(json!({"url": "https://hooks.example.com/again"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);

    // Changes: filters, disabling by an admin, a rotation with an overlap.
    let id = items[1]["id"].as_str().unwrap();
    let one = format!("{path}/{id}");
    let (status, changed) = api
        .admin(
            Method::PATCH,
            &one,
            Some(json!({"event_types": ["payout.paid", "payout.paid"], "enabled": false, "description": null})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(changed["event_types"], json!(["payout.paid"]));
    assert_eq!(
        (
            changed["enabled"].as_bool(),
            changed["disabled_reason"].as_str()
        ),
        (Some(false), Some("by_admin"))
    );
    let (status, rotated) = api
        .admin(Method::POST, &format!("{one}/secret/rotate"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    assert!(rotated["secret"].as_str().unwrap().starts_with("whsec_"));
    let (_, view) = api.admin(Method::GET, &one, None).await;
    assert_eq!(
        view["previous_secret_retires_at"],
        rotated["previous_secret_retires_at"]
    );
    let stored = referral::store::WebhookStore::get_endpoint(&api.store, &api.tenant, id)
        .await
        .unwrap()
        .unwrap();
    let now = referral::clock::now();
    assert_eq!(stored.signing_secrets(now).len(), 2);
    assert_eq!(
        stored.signing_secrets(now)[0],
        rotated["secret"].as_str().unwrap()
    );
    assert_eq!(
        stored.signing_secrets(now + time::Duration::hours(25)),
        [rotated["secret"].as_str().unwrap()]
    );
}
