//! Billing credits through the consumer against a real HTTP receiver on a loopback socket
//! standing in for the billing system, and through the emulator's SQS queue end to end.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::routing::post;
use billing_consumer::{Consumer, Settings};
use referral::delivery::billing::{self, CreditMessage};
use referral::delivery::queue::BillingQueue;
use referral::domain::ledger::{Reward, RewardStatus};
use referral::http::AppState;
use referral::http::auth::Role;
use referral::store::{DynamoStore, ReferralStore};
use serde_json::{Value, json};

use crate::support::{Api, RoundTrips, assert_error, config, token};

pub(crate) const SIGNING_SECRET: &str = "billing-test-signing-secret-0123456789";

/// One request the receiver got.
#[derive(Clone, Debug)]
pub struct Received {
    pub user_id: String,
    pub idempotency_key: String,
    pub signature: String,
    pub body: Vec<u8>,
    pub answered: u16,
    pub headers: HeaderMap,
}

#[derive(Default)]
struct Script {
    /// Answers in order; then 200.
    answers: VecDeque<u16>,
    /// Users always answered with this status.
    per_user: HashMap<String, u16>,
    delay: Duration,
    log: Vec<Received>,
}

/// A billing system on 127.0.0.1 with scripted answers.
#[derive(Clone)]
pub struct Receiver {
    pub url: String,
    script: Arc<Mutex<Script>>,
}

impl Receiver {
    pub async fn start() -> Receiver {
        let script = Arc::new(Mutex::new(Script::default()));
        let app = Router::new()
            .route("/credit/{user_id}", post(receive))
            .with_state(script.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Receiver {
            url: format!("http://127.0.0.1:{port}/credit/{{user_id}}"),
            script,
        }
    }

    pub(crate) fn answer(&self, answers: &[u16]) {
        self.script.lock().unwrap().answers.extend(answers);
    }

    fn fail_user(&self, user: &str, status: u16) {
        self.script
            .lock()
            .unwrap()
            .per_user
            .insert(user.to_owned(), status);
    }

    fn delay(&self, delay: Duration) {
        self.script.lock().unwrap().delay = delay;
    }

    pub fn log(&self) -> Vec<Received> {
        self.script.lock().unwrap().log.clone()
    }

    pub(crate) fn consumer(&self, store: DynamoStore, timeout: Duration) -> Consumer<DynamoStore> {
        Consumer::new(store, settings(self.url.clone(), timeout))
    }
}

async fn receive(
    State(script): State<Arc<Mutex<Script>>>,
    Path(user_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let (status, delay) = {
        let mut script = script.lock().unwrap();
        let status = match script.per_user.get(&user_id) {
            Some(status) => *status,
            None => script.answers.pop_front().unwrap_or(200),
        };
        (status, script.delay)
    };
    tokio::time::sleep(delay).await;
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    script.lock().unwrap().log.push(Received {
        user_id,
        idempotency_key: header("idempotency-key"),
        signature: header("x-referral-signature"),
        body: body.to_vec(),
        answered: status,
        headers,
    });
    StatusCode::from_u16(status).unwrap()
}

/// A tenant with a program paying each referee 1000 (billing credit) at sign-up, and the
/// referrer 2500 once the referee has paid 5000.
async fn tenant() -> (Api, String) {
    set_up(Api::new().await).await
}

async fn set_up(api: Api) -> (Api, String) {
    let (status, program) = api
        .admin(Method::POST, "/v1/programs", Some(json!({"name": "Credits", "currency": "USD", "rewards": [
            {"recipient": "referee", "trigger": "signup", "kind": "cash", "amount": 1000},
            {"recipient": "referrer", "trigger": "paid_threshold", "threshold_amount": 5000, "kind": "cash", "amount": 2500}
        ]})))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{program}");
    let promoter = token(&api.tenant, "alice", Role::Promoter);
    let (_, me) = api
        .call(Method::GET, "/v1/promoters/me", Some(&promoter), None)
        .await;
    (api, me["referral_code"].as_str().unwrap().to_owned())
}

/// Signs `user` up through `code`; answers the pending referee reward.
async fn signed_up(api: &Api, code: &str, user: &str) -> Reward {
    let service = token(&api.tenant, "backend", Role::Service);
    let (status, outcome) = api
        .call(
            Method::POST,
            "/v1/referrals",
            Some(&service),
            Some(json!({"code": code, "referred_user_id": user})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{outcome}");
    let reward: Reward = serde_json::from_value(outcome["rewards"][0].clone()).unwrap();
    assert_eq!(reward.status, RewardStatus::Pending);
    reward
}

fn message(id: &str, body: String, receive_count: u32) -> SqsMessage {
    let mut message = SqsMessage::default();
    message.message_id = Some(id.to_owned());
    message.body = Some(body);
    message.attributes = HashMap::from([(
        "ApproximateReceiveCount".to_owned(),
        receive_count.to_string(),
    )]);
    message
}

pub fn batch(rewards: &[&Reward], receive_count: u32) -> SqsEvent {
    let mut event = SqsEvent::default();
    for reward in rewards {
        let body = serde_json::to_string(&CreditMessage::of(reward)).unwrap();
        event.records.push(message(
            &format!("m-{}", reward.user_id),
            body,
            receive_count,
        ));
    }
    event
}

fn failed_ids(response: &aws_lambda_events::event::sqs::SqsBatchResponse) -> Vec<String> {
    let mut ids: Vec<String> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect();
    ids.sort();
    ids
}

pub async fn stored(api: &Api, reward: &Reward) -> Reward {
    referral::domain::ledger::rewards::reward_by_id(&api.store, &api.tenant, &reward.id)
        .await
        .unwrap()
}

async fn pending_in_index(api: &Api, reward: &Reward) -> bool {
    undelivered(api).await.iter().any(|r| r.id == reward.id)
}

#[tokio::test]
async fn a_delivered_credit_is_signed_keyed_by_the_reward_and_credited() {
    let receiver = Receiver::start().await;
    let (api, code) = tenant().await;
    let reward = signed_up(&api, &code, "bob").await;
    assert!(pending_in_index(&api, &reward).await);
    let consumer = receiver.consumer(api.store.clone(), Duration::from_secs(2));
    let response = consumer.handle(batch(&[&reward], 1)).await;
    assert!(failed_ids(&response).is_empty());

    let log = receiver.log();
    assert_eq!(log.len(), 1);
    let request = &log[0];
    assert_eq!(request.user_id, "bob");
    assert_eq!(request.idempotency_key, reward.id);
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    assert!(
        billing::verify_signature(SIGNING_SECRET, &request.signature, &request.body, now),
        "{}",
        request.signature
    );
    let body: Value = serde_json::from_slice(&request.body).unwrap();
    assert_eq!(
        (
            body["amount"].as_i64(),
            body["currency"].as_str(),
            body["program_name"].as_str()
        ),
        (Some(1000), Some("USD"), Some("Credits"))
    );
    assert_eq!(
        (
            body["user_id"].as_str(),
            body["user_indicator_hash"].as_str()
        ),
        (Some("bob"), Some("alice"))
    );
    assert_eq!(
        (body["reward_id"].as_str(), body["reason"].as_str()),
        (Some(reward.id.as_str()), Some("signup"))
    );

    assert_eq!(stored(&api, &reward).await.status, RewardStatus::Credited);
    assert!(
        !pending_in_index(&api, &reward).await,
        "delivered rewards leave the undelivered index"
    );
    let again = consumer.handle(batch(&[&reward], 2)).await;
    assert!(failed_ids(&again).is_empty());
    assert_eq!(
        receiver.log().len(),
        1,
        "the same message twice calls billing once"
    );
}

#[tokio::test]
async fn transient_failures_are_retried_until_billing_accepts() {
    let receiver = Receiver::start().await;
    receiver.answer(&[503, 503]);
    let (api, code) = tenant().await;
    let reward = signed_up(&api, &code, "bob").await;
    let consumer = receiver.consumer(api.store.clone(), Duration::from_secs(2));
    for attempt in 1..=2 {
        let response = consumer.handle(batch(&[&reward], attempt)).await;
        assert_eq!(
            failed_ids(&response),
            ["m-bob"],
            "attempt {attempt} is retried"
        );
        let now = stored(&api, &reward).await;
        assert_eq!(now.status, RewardStatus::Pending);
        assert!(
            now.last_error
                .as_deref()
                .unwrap_or_default()
                .contains("503"),
            "{now:?}"
        );
    }
    let response = consumer.handle(batch(&[&reward], 3)).await;
    assert!(failed_ids(&response).is_empty());
    let accepted = receiver.log().iter().filter(|r| r.answered == 200).count();
    assert_eq!(
        (receiver.log().len(), accepted),
        (3, 1),
        "exactly one credit accepted"
    );
    let credited = stored(&api, &reward).await;
    assert_eq!(
        (credited.status, credited.attempts),
        (RewardStatus::Credited, 3)
    );
}

#[tokio::test]
async fn a_refusal_fails_at_once_and_an_admin_retry_delivers_it() {
    let receiver = Receiver::start().await;
    receiver.answer(&[400]);
    let (api, code) = tenant().await;
    let reward = signed_up(&api, &code, "bob").await;
    let consumer = receiver.consumer(api.store.clone(), Duration::from_secs(2));
    let response = consumer.handle(batch(&[&reward], 1)).await;
    assert!(failed_ids(&response).is_empty(), "a refusal is not retried");
    let failed = stored(&api, &reward).await;
    assert_eq!(failed.status, RewardStatus::Failed);
    assert!(
        failed.last_error.as_deref().unwrap().contains("400"),
        "{failed:?}"
    );
    assert!(!pending_in_index(&api, &reward).await);
    consumer.handle(batch(&[&reward], 2)).await;
    assert_eq!(
        receiver.log().len(),
        1,
        "a failed reward is not sent again by a stray message"
    );

    let (status, list) = api
        .admin(Method::GET, "/v1/rewards?status=failed", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list["items"][0]["id"], reward.id.as_str());
    let (status, credited) = api
        .admin(Method::GET, "/v1/rewards?status=credited", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{credited}");
    assert!(
        credited["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["status"] == "credited")
    );
    for bad in ["?status=paid", "", "?status="] {
        assert_error(
            &api.admin(Method::GET, &format!("/v1/rewards{bad}"), None)
                .await,
            400,
            "invalid_request",
        );
    }
    let path = format!("/v1/rewards/{}/retry", reward.id);
    let (status, retried) = api.admin(Method::POST, &path, None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{retried}");
    assert_eq!(retried["status"], "pending");
    assert!(pending_in_index(&api, &reward).await);
    consumer.handle(batch(&[&reward], 1)).await;
    assert_eq!(stored(&api, &reward).await.status, RewardStatus::Credited);
    assert_error(&api.admin(Method::POST, &path, None).await, 409, "conflict");
    let (_, list) = api
        .admin(Method::GET, "/v1/rewards?status=failed", None)
        .await;
    assert_eq!(list["items"], json!([]));
    let unknown = format!(
        "/v1/rewards/{}.referee.signup/retry",
        referral::id::new_id()
    );
    assert_error(
        &api.admin(Method::POST, &unknown, None).await,
        404,
        "not_found",
    );
    let promoter = token(&api.tenant, "alice", Role::Promoter);
    assert_error(
        &api.call(Method::POST, &path, Some(&promoter), None).await,
        403,
        "forbidden",
    );
}

#[tokio::test]
async fn timeouts_are_retried_and_the_last_attempt_fails_the_reward() {
    let receiver = Receiver::start().await;
    receiver.delay(Duration::from_millis(1500));
    let (api, code) = tenant().await;
    let reward = signed_up(&api, &code, "bob").await;
    let consumer = receiver.consumer(api.store.clone(), Duration::from_millis(300));
    let response = consumer.handle(batch(&[&reward], 1)).await;
    assert_eq!(failed_ids(&response), ["m-bob"]);
    let pending = stored(&api, &reward).await;
    assert_eq!(pending.status, RewardStatus::Pending);
    assert_eq!(pending.last_error.as_deref(), Some("billing timed out"));
    let response = consumer.handle(batch(&[&reward], 5)).await;
    assert_eq!(
        failed_ids(&response),
        ["m-bob"],
        "reported, so SQS moves it to the dead-letter queue"
    );
    let failed = stored(&api, &reward).await;
    assert_eq!(failed.status, RewardStatus::Failed);
    assert!(
        failed.last_error.as_deref().unwrap().contains("the last"),
        "{failed:?}"
    );
}

#[tokio::test]
async fn a_batch_of_ten_reports_exactly_its_three_failures_and_runs_concurrently() {
    let receiver = Receiver::start().await;
    let (api, code) = tenant().await;
    let mut rewards = Vec::new();
    for i in 0..10 {
        rewards.push(signed_up(&api, &code, &format!("user-{i}")).await);
    }
    for failing in ["user-2", "user-5", "user-7"] {
        receiver.fail_user(failing, 503);
    }
    receiver.delay(Duration::from_millis(200));
    let consumer = receiver.consumer(api.store.clone(), Duration::from_secs(5));
    let mut event = batch(&rewards.iter().collect::<Vec<_>>(), 1);
    event
        .records
        .push(message("m-malformed", "not json".into(), 1));
    let started = Instant::now();
    let response = consumer.handle(event).await;
    let elapsed = started.elapsed();
    assert_eq!(
        failed_ids(&response),
        ["m-malformed", "m-user-2", "m-user-5", "m-user-7"]
    );
    assert_eq!(receiver.log().len(), 10);
    for reward in &rewards {
        let expected = if ["user-2", "user-5", "user-7"].contains(&reward.user_id.as_str()) {
            RewardStatus::Pending
        } else {
            RewardStatus::Credited
        };
        assert_eq!(
            stored(&api, reward).await.status,
            expected,
            "{}",
            reward.user_id
        );
    }
    println!(
        "figure: a batch of 10 credits with a 200 ms billing system took {} ms",
        elapsed.as_millis()
    );
}

#[tokio::test]
async fn concurrent_duplicates_in_one_batch_call_billing_once() {
    let receiver = Receiver::start().await;
    receiver.delay(Duration::from_millis(100));
    let (api, code) = tenant().await;
    let reward = signed_up(&api, &code, "bob").await;
    let consumer = receiver.consumer(api.store.clone(), Duration::from_secs(2));
    let mut event = batch(&[&reward], 1);
    let mut twin = event.records[0].clone();
    twin.message_id = Some("m-bob-twin".into());
    event.records.push(twin);
    let response = consumer.handle(event).await;
    assert_eq!(receiver.log().len(), 1);
    assert!(
        failed_ids(&response).len() <= 1,
        "the twin waits for the claim, or finds it settled"
    );
    assert_eq!(stored(&api, &reward).await.status, RewardStatus::Credited);
}

/// A queue of its own on the emulator.
async fn queue(api: &Api) -> BillingQueue {
    crate::support::queue(&format!("credits-{}", api.tenant)).await
}

pub(crate) async fn drain(queue: &BillingQueue, consumer: &Consumer<DynamoStore>) -> usize {
    let mut total = 0;
    loop {
        let received = local_stack::billing::pump(queue, consumer, 0)
            .await
            .unwrap();
        if received == 0 {
            return total;
        }
        total += received;
    }
}

#[tokio::test]
async fn from_sign_up_and_invoice_through_the_stream_and_the_queue_to_billing() {
    let receiver = Receiver::start().await;
    let (api, code) = tenant().await;
    let mut outbox = crate::support::TestOutbox::new(&api).await;
    let queue = outbox.billing.clone();
    let service = token(&api.tenant, "backend", Role::Service);
    let (status, _) = api
        .call(
            Method::POST,
            "/v1/referrals",
            Some(&service),
            Some(json!({"code": code, "referred_user_id": "bob"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, invoice) = api
        .call(Method::POST, "/v1/events/invoices", Some(&service), Some(json!({"event_id": "i-1", "user_id": "bob", "amount_paid": 6000, "currency": "USD"})))
        .await;
    assert_eq!(
        (status, invoice["acquired_credit"].as_i64()),
        (StatusCode::OK, Some(2500))
    );
    // Nothing was sent by the requests; the stream carries both credits to the queue.
    assert_eq!(
        drain(
            &queue,
            &receiver.consumer(api.store.clone(), Duration::from_secs(2))
        )
        .await,
        0
    );
    let dispatched = outbox.pump().await;
    assert_eq!(dispatched.credits, 2, "{dispatched:?}");

    let consumer = receiver.consumer(api.store.clone(), Duration::from_secs(2));
    assert_eq!(drain(&queue, &consumer).await, 2);
    let mut credits: Vec<(String, i64)> = receiver
        .log()
        .iter()
        .map(|r| {
            let body: Value = serde_json::from_slice(&r.body).unwrap();
            (r.user_id.clone(), body["amount"].as_i64().unwrap())
        })
        .collect();
    credits.sort();
    assert_eq!(
        credits,
        [("alice".to_owned(), 2500), ("bob".to_owned(), 1000)]
    );
    let relations = api
        .store
        .relations_of_referred(&api.tenant, "bob")
        .await
        .unwrap();
    let rewards = api.store.relation_rewards(&relations[0]).await.unwrap();
    assert!(
        rewards.iter().all(|r| r.status == RewardStatus::Credited),
        "{rewards:?}"
    );
}

#[tokio::test]
async fn a_lost_send_is_recovered_by_the_reconciler() {
    let receiver = Receiver::start().await;
    // The reconciler works table-wide: give it a table of its own.
    let (api, code) = set_up(Api::isolated().await).await;
    // No dispatcher reads the stream here: the credit's message is as good as lost.
    let reward = signed_up(&api, &code, "bob").await;
    let queue = queue(&api).await;
    let consumer = receiver.consumer(api.store.clone(), Duration::from_secs(2));
    assert_eq!(drain(&queue, &consumer).await, 0);
    let resent = referral::delivery::reconcile::reconcile(&api.store, &queue, time::Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(resent, 1);
    drain(&queue, &consumer).await;
    assert!(
        receiver
            .log()
            .iter()
            .any(|r| r.idempotency_key == reward.id)
    );
    assert_eq!(stored(&api, &reward).await.status, RewardStatus::Credited);
}

#[tokio::test]
async fn every_sqs_sample_is_parsed_and_handled() {
    let receiver = Receiver::start().await;
    let api = Api::new().await;
    let consumer = receiver.consumer(api.store.clone(), Duration::from_secs(2));
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../events/billing-consumer");
    let mut samples = 0;
    for file in std::fs::read_dir(dir).unwrap() {
        let text = std::fs::read_to_string(file.unwrap().path()).unwrap();
        let event: SqsEvent = serde_json::from_str(&text).unwrap();
        let response = consumer.handle(event).await;
        // The sample's credit names no stored reward (acknowledged); its malformed record is
        // reported, bound for the dead-letter queue.
        assert_eq!(failed_ids(&response), ["malformed-0002"]);
        samples += 1;
    }
    assert!(samples > 0);
    assert!(receiver.log().is_empty());
}

/// Every reward awaiting delivery to billing (the sparse index the reconciler reads).
pub async fn undelivered(api: &Api) -> Vec<Reward> {
    use referral::store::BillingStore;
    let later = referral::clock::now() + time::Duration::days(1);
    api.store.undelivered_before(later, 1000).await.unwrap()
}

#[tokio::test]
async fn a_sign_up_with_a_reward_due_sends_nothing_to_sqs() {
    let (api, code) = tenant().await;
    let round_trips = RoundTrips::default();
    let sdk = referral::config::aws().await;
    let sqs = aws_sdk_sqs::Client::from_conf(
        aws_sdk_sqs::config::Builder::from(&sdk)
            .interceptor(round_trips.clone())
            .build(),
    );
    let mut settings = config();
    settings.queue_url = Some(queue(&api).await.url().to_owned());
    let producing = Api {
        router: local_stack::app(AppState::new(
            settings,
            crate::support::dynamodb(&round_trips).await,
            Some(sqs),
        )),
        ..api.clone()
    };
    round_trips.take();
    signed_up(&producing, &code, "bob").await;
    let mut calls = round_trips.take();
    calls.sort();
    // The caller's tenant (a new container reads it once), the sign-up's reads and
    // transaction; the pending referee credit leaves through the table's stream.
    assert_eq!(calls, ["GetItem", "GetItem", "Query", "TransactWriteItems"]);
}

/// A billing system answering with a redirect, or with an answer that never ends, on
/// 127.0.0.1. `/elsewhere` counts the requests that reach it.
async fn hostile_billing() -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    use axum::response::IntoResponse;
    let elsewhere = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let hits = elsewhere.clone();
    let app = Router::new()
        .route(
            "/redirect/{user_id}",
            post(|| async { (StatusCode::FOUND, [("location", "/elsewhere")]).into_response() }),
        )
        .route(
            "/elsewhere",
            axum::routing::any(move || {
                let hits = hits.clone();
                async move {
                    hits.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    StatusCode::OK
                }
            }),
        )
        .route(
            "/endless/{user_id}",
            post(|| async {
                let chunks = futures::stream::repeat_with(|| {
                    Ok::<_, std::io::Error>(Bytes::from_static(&[b'x'; 16 * 1024]))
                });
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    axum::body::Body::from_stream(chunks),
                )
                    .into_response()
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://127.0.0.1:{port}"), elsewhere)
}

/// The consumer's settings with `url` as the default endpoint, signed with [`SIGNING_SECRET`];
/// local receivers are private addresses, which the development flag allows.
pub fn settings(url: String, timeout: Duration) -> Settings {
    Settings {
        callback_url: Some(url),
        signing_secret: Some(referral::config::Secret::new(SIGNING_SECRET)),
        policy: referral::outbound::Policy {
            allow_private: true,
        },
        tenant_cache: Duration::from_secs(30),
        timeout,
        max_receive_count: 5,
    }
}

fn consumer_to(api: &Api, url: String) -> Consumer<DynamoStore> {
    Consumer::new(api.store.clone(), settings(url, Duration::from_secs(3)))
}

/// Seen: a 302 from billing was followed with a GET and the reward marked credited though no
/// credit was booked. A redirect is an answer like any other 3xx: the credit is refused.
#[tokio::test]
async fn billing_redirects_are_not_followed() {
    let (base, elsewhere) = hostile_billing().await;
    let (api, code) = tenant().await;
    let reward = signed_up(&api, &code, "bob").await;
    let consumer = consumer_to(&api, format!("{base}/redirect/{{user_id}}"));
    let response = consumer.handle(batch(&[&reward], 1)).await;
    assert!(failed_ids(&response).is_empty(), "refused for good");
    let stored = stored(&api, &reward).await;
    assert_eq!(stored.status, RewardStatus::Failed, "{stored:?}");
    assert!(
        stored
            .last_error
            .as_deref()
            .is_some_and(|e| e.starts_with("billing answered 302")),
        "{stored:?}"
    );
    assert_eq!(elsewhere.load(std::sync::atomic::Ordering::SeqCst), 0);
}

/// An answer whose body never ends is read up to a cap, then judged by its status: a 503 is
/// retried with its excerpt, not left to time out.
#[tokio::test]
async fn billing_answers_are_read_up_to_a_cap() {
    let (base, _) = hostile_billing().await;
    let (api, code) = tenant().await;
    let reward = signed_up(&api, &code, "bob").await;
    let consumer = consumer_to(&api, format!("{base}/endless/{{user_id}}"));
    let response = consumer.handle(batch(&[&reward], 1)).await;
    assert_eq!(failed_ids(&response).len(), 1, "retried");
    let stored = stored(&api, &reward).await;
    assert_eq!(stored.status, RewardStatus::Pending);
    let error = stored.last_error.unwrap_or_default();
    assert!(error.starts_with("billing answered 503: xxx"), "{error}");
}

/// Seen: a relation's `commission_status` stayed `pending` after billing credited the reward.
/// Relations answer their latest referrer reward's current status.
#[tokio::test]
async fn a_relations_commission_status_follows_its_reward() {
    let receiver = Receiver::start().await;
    let (api, code) = tenant().await;
    let referee = signed_up(&api, &code, "bob").await;
    let service = token(&api.tenant, "backend", Role::Service);
    let (status, outcome) = api
        .call(
            Method::POST,
            "/v1/events/invoices",
            Some(&service),
            Some(json!({"event_id": "inv-1", "user_id": "bob", "amount_paid": 6000, "currency": "USD"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{outcome}");
    let commission: Reward = serde_json::from_value(outcome["rewards"][0].clone()).unwrap();
    let relation_id = commission.referral_id.clone().unwrap();
    let relation = |api: Api| {
        let relation_id = relation_id.clone();
        async move {
            let (status, relation) = api
                .admin(Method::GET, &format!("/v1/referrals/{relation_id}"), None)
                .await;
            assert_eq!(status, StatusCode::OK, "{relation}");
            relation
        }
    };
    assert_eq!(relation(api.clone()).await["commission_status"], "pending");
    let consumer = receiver.consumer(api.store.clone(), Duration::from_secs(2));
    consumer.handle(batch(&[&referee, &commission], 1)).await;
    assert_eq!(relation(api.clone()).await["commission_status"], "credited");
    let alice = token(&api.tenant, "alice", Role::Promoter);
    let (_, list) = api
        .call(
            Method::GET,
            "/v1/promoters/me/referrals",
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(
        list["results"][0]["commission_status"], "credited",
        "{list}"
    );
    let (_, found) = api
        .admin(Method::GET, "/v1/referrals?user=alice", None)
        .await;
    assert_eq!(
        found["items"][0]["commission_status"], "credited",
        "{found}"
    );
}

#[tokio::test]
async fn a_chargeback_after_delivery_reaches_billing_as_a_debit_of_its_own() {
    let receiver = Receiver::start().await;
    let (api, code) = tenant().await;
    let mut outbox = crate::support::TestOutbox::new(&api).await;
    let queue = outbox.billing.clone();
    let consumer = receiver.consumer(api.store.clone(), Duration::from_secs(2));
    api.signed_up(json!({"code": code, "referred_user_id": "bob"}))
        .await;
    api.invoiced(
        json!({"event_id": "i-1", "user_id": "bob", "amount_paid": 6000, "currency": "USD"}),
    )
    .await;
    outbox.pump().await;
    assert_eq!(drain(&queue, &consumer).await, 2);
    // The invoice that reached the threshold is charged back: the paid total falls below it
    // within the clawback window, and alice's delivered 2500 is taken back.
    let (status, answer) = api
        .service(
            Method::POST,
            "/v1/events/refunds",
            Some(
                json!({"event_id": "cb-1", "user_id": "bob", "invoice_event_id": "i-1",
                        "amount_refunded": 6000, "currency": "USD", "reason": "chargeback"}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["relations"][0]["paid_total"], 0, "{answer}");
    let take_back = &answer["take_backs"][0];
    assert_eq!(
        answer["take_backs"].as_array().unwrap().len(),
        1,
        "{answer}"
    );
    assert_eq!(
        (
            take_back["amount"].as_i64(),
            take_back["status"].as_str(),
            take_back["user_id"].as_str(),
            take_back["reason"].as_str()
        ),
        (
            Some(-2500),
            Some("pending"),
            Some("alice"),
            Some("chargeback")
        )
    );
    assert_eq!(answer["adjusted"][0]["taken_back"], 2500, "{answer}");
    assert_eq!(answer["adjusted"][0]["status"], "credited", "{answer}");
    // Through the stream and the queue: billing gets the debit, keyed by the take-back's id.
    let dispatched = outbox.pump().await;
    assert_eq!(dispatched.credits, 1, "{dispatched:?}");
    assert_eq!(drain(&queue, &consumer).await, 1);
    let log = receiver.log();
    let debit = log.last().unwrap();
    let body: Value = serde_json::from_slice(&debit.body).unwrap();
    assert_eq!(
        (
            debit.user_id.as_str(),
            body["amount"].as_i64(),
            body["reason"].as_str(),
            debit.idempotency_key.as_str()
        ),
        (
            "alice",
            Some(-2500),
            Some("chargeback"),
            take_back["id"].as_str().unwrap()
        )
    );
    let relations = api
        .store
        .relations_of_referred(&api.tenant, "bob")
        .await
        .unwrap();
    assert_eq!(relations[0].referrer_earned, 0);
    let rewards = api.store.relation_rewards(&relations[0]).await.unwrap();
    assert_eq!(rewards.len(), 3, "{rewards:?}");
    assert!(
        rewards.iter().all(|r| r.status == RewardStatus::Credited),
        "{rewards:?}"
    );
    // The referee's sign-up credit is not the invoice's: untouched. Replayed, the refund
    // answers the same and writes nothing.
    let (_, again) = api
        .service(
            Method::POST,
            "/v1/events/refunds",
            Some(
                json!({"event_id": "cb-1", "user_id": "bob", "invoice_event_id": "i-1",
                        "amount_refunded": 6000, "currency": "USD", "reason": "chargeback"}),
            ),
        )
        .await;
    assert_eq!(again, answer);
    assert_eq!(outbox.pump().await.credits, 0);
}
