//! Test harness: the merged router over real AWS SDK clients talking to the emulator the test
//! command started (`AWS_ENDPOINT_URL`). Each test works in a tenant of its own, so tests run in
//! parallel on one table.

use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use referral::config::Config;
use referral::http::AppState;
use referral::http::auth::Role;
use referral::store::DynamoStore;
use serde_json::Value;
use tokio::sync::OnceCell;
use tower::ServiceExt;

pub const SECRET: &str = "integration-test-secret-0123456789";
/// The operator's key in the tests.
pub const OPERATOR: &str = "integration-test-operator-key-0123456789";
pub const TABLE: &str = "referral-tests";
pub const LANDING: &str = "https://shop.example.com/welcome";

static TABLE_READY: OnceCell<()> = OnceCell::const_new();

/// Records the operation name of every DynamoDB request attempt a client sends, so tests can
/// assert each route's round-trip budget.
#[derive(Clone, Debug, Default)]
pub struct RoundTrips(Arc<Mutex<Vec<String>>>);

impl RoundTrips {
    /// The operations sent since the last call, in order.
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

impl Intercept for RoundTrips {
    fn name(&self) -> &'static str {
        "RoundTrips"
    }

    fn read_before_transmit(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let operation = cfg
            .load::<Metadata>()
            .map_or("unknown", |metadata| metadata.name());
        self.0.lock().unwrap().push(operation.to_owned());
        Ok(())
    }
}

/// Records the body of every DynamoDB request attempt (what a test needs to see of a request,
/// such as `ConsistentRead`).
#[derive(Clone, Debug, Default)]
pub struct RequestBodies(Arc<Mutex<Vec<(String, String)>>>);

impl RequestBodies {
    /// `(operation, body)` of the requests sent since the last call.
    pub fn take(&self) -> Vec<(String, String)> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

impl Intercept for RequestBodies {
    fn name(&self) -> &'static str {
        "RequestBodies"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let operation = cfg
            .load::<Metadata>()
            .map_or("unknown", |metadata| metadata.name())
            .to_owned();
        let body = context
            .request()
            .body()
            .bytes()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .unwrap_or_default();
        self.0.lock().unwrap().push((operation, body));
        Ok(())
    }
}

/// A DynamoDB client of the emulator that records its round trips. Fails (never skips) when
/// the emulator is not there.
pub async fn dynamodb(round_trips: &RoundTrips) -> aws_sdk_dynamodb::Client {
    assert!(
        std::env::var_os("AWS_ENDPOINT_URL").is_some(),
        "AWS_ENDPOINT_URL is not set: run the tests with `make test`, which starts the emulator"
    );
    let sdk = referral::config::aws().await;
    let config = aws_sdk_dynamodb::config::Builder::from(&sdk)
        .interceptor(round_trips.clone())
        .build();
    let client = aws_sdk_dynamodb::Client::from_conf(config);
    TABLE_READY
        .get_or_init(|| async {
            local_stack::ensure_table(&client, TABLE)
                .await
                .expect("the emulator is reachable and the table can be created");
        })
        .await;
    client
}

pub fn config() -> Config {
    Config::from_lookup(|name| match name {
        "TABLE_NAME" => Some(TABLE.to_owned()),
        "JWT_SECRET" => Some(SECRET.to_owned()),
        "OPERATOR_KEY" => Some(OPERATOR.to_owned()),
        // Billing sinks of the tests listen on 127.0.0.1 (tenants.rs checks the strict rules).
        "ALLOW_PRIVATE_URLS" => Some("true".to_owned()),
        "PUBLIC_BASE_URL" => Some("https://refer.example.com".to_owned()),
        "LANDING_URL" => Some(LANDING.to_owned()),
        _ => None,
    })
    .expect("test configuration is complete")
}

pub fn fresh_tenant() -> String {
    format!("t-{}", ulid::Ulid::generate().to_string().to_lowercase())
}

pub fn token(tenant: &str, user: &str, role: Role) -> String {
    local_stack::token(SECRET, tenant, user, role, time::Duration::hours(1))
}

/// The application under test, in a tenant of its own.
#[derive(Clone)]
pub struct Api {
    pub router: Router,
    pub store: DynamoStore,
    pub tenant: String,
    pub round_trips: RoundTrips,
}

impl Api {
    pub async fn new() -> Api {
        Api::on_table(config()).await
    }

    /// An application on a table of its own, for tests of table-wide work (the reconciler).
    pub async fn isolated() -> Api {
        let mut settings = config();
        settings.table_name = format!(
            "referral-tests-{}",
            ulid::Ulid::generate().to_string().to_lowercase()
        );
        let client = dynamodb(&RoundTrips::default()).await;
        local_stack::ensure_table(&client, &settings.table_name)
            .await
            .unwrap();
        Api::on_table(settings).await
    }

    async fn on_table(settings: Config) -> Api {
        let round_trips = RoundTrips::default();
        let state = AppState::new(settings, dynamodb(&round_trips).await, None);
        round_trips.take();
        Api {
            store: state.store.clone(),
            router: local_stack::app(state),
            tenant: fresh_tenant(),
            round_trips,
        }
    }

    /// An application on a private emulator started with `faults` (see [`FaultyEmulator`]).
    pub async fn on_faulty(emulator: &FaultyEmulator) -> Api {
        let round_trips = RoundTrips::default();
        let sdk = referral::config::aws().await;
        let dynamodb = aws_sdk_dynamodb::Client::from_conf(
            aws_sdk_dynamodb::config::Builder::from(&sdk)
                .endpoint_url(&emulator.endpoint)
                .interceptor(round_trips.clone())
                .build(),
        );
        local_stack::ensure_table(&dynamodb, TABLE)
            .await
            .expect("the faulty emulator's table");
        let state = AppState::new(config(), dynamodb, None);
        round_trips.take();
        Api {
            store: state.store.clone(),
            router: local_stack::app(state),
            tenant: fresh_tenant(),
            round_trips,
        }
    }

    /// The same application, in another tenant.
    pub fn other_tenant(&self) -> Api {
        Api {
            tenant: fresh_tenant(),
            ..self.clone()
        }
    }

    pub fn admin_token(&self) -> String {
        token(&self.tenant, "admin-1", Role::Admin)
    }

    /// Sends a request with raw body bytes; answers the status and the JSON body (`Null` when
    /// empty).
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Vec<u8>,
    ) -> (StatusCode, Value) {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let request = request
            .header("content-type", "application/json")
            .body(Body::from(body))
            .unwrap();
        let response = self.router.clone().oneshot(request).await.unwrap();
        read(response).await
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        self.send(method, path, token, bytes).await
    }

    /// A call with this tenant's admin token.
    pub async fn admin(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let token = self.admin_token();
        self.call(method, path, Some(&token), body).await
    }

    /// A call with the tenant's backend (`service`) token.
    pub async fn service(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let token = token(&self.tenant, "backend", Role::Service);
        self.call(method, path, Some(&token), body).await
    }

    /// A call as the promoter `user`.
    pub async fn as_promoter(
        &self,
        user: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let token = token(&self.tenant, user, Role::Promoter);
        self.call(method, path, Some(&token), body).await
    }

    /// `user` sets PayPal at `address` as their payout method (it must be accepted).
    pub async fn pays_out_to(&self, user: &str, address: &str) {
        let (status, answer) = self
            .as_promoter(
                user,
                Method::PATCH,
                "/v1/promoters/me/payout-method",
                Some(serde_json::json!({"method": "paypal", "payment_address": address})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
    }

    /// Every item of a paged list (`{items, next_cursor}`) at `path` (which has a query string),
    /// read with `token`, following `next_cursor` to the end.
    pub async fn all_pages(&self, token: &str, path: &str) -> Vec<Value> {
        let mut items = Vec::new();
        let mut cursor = String::new();
        loop {
            let (status, page) = self
                .call(Method::GET, &format!("{path}{cursor}"), Some(token), None)
                .await;
            assert_eq!(status, StatusCode::OK, "{path}: {page}");
            items.extend(page["items"].as_array().unwrap().iter().cloned());
            match page["next_cursor"].as_str() {
                Some(next) => cursor = format!("&cursor={next}"),
                None => return items,
            }
        }
    }

    /// Creates a program; answers its id.
    pub async fn program(&self, body: Value) -> String {
        let (status, program) = self.admin(Method::POST, "/v1/programs", Some(body)).await;
        assert_eq!(status, StatusCode::CREATED, "{program}");
        program["id"].as_str().unwrap().to_owned()
    }

    /// The user's promoter as they see it (created if needed).
    pub async fn me(&self, user: &str) -> Value {
        let (status, promoter) = self
            .as_promoter(user, Method::GET, "/v1/promoters/me", None)
            .await;
        assert_eq!(status, StatusCode::OK, "{promoter}");
        promoter
    }

    /// The user's primary referral code (the promoter is created if needed).
    pub async fn code_of(&self, user: &str) -> String {
        self.me(user).await["referral_code"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// A sign-up that must succeed; answers `{referral, rewards, released}`.
    pub async fn signed_up(&self, body: Value) -> Value {
        let (status, outcome) = self
            .service(Method::POST, "/v1/referrals", Some(body))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{outcome}");
        outcome
    }

    /// An invoice event that must succeed; answers the outcome.
    pub async fn invoiced(&self, body: Value) -> Value {
        let (status, outcome) = self
            .service(Method::POST, "/v1/events/invoices", Some(body))
            .await;
        assert_eq!(status, StatusCode::OK, "{outcome}");
        outcome
    }
}

pub async fn read(response: axum::response::Response) -> (StatusCode, Value) {
    let status = response.status();
    // `GET /openapi.yaml` and the portal's page and assets answer text, not JSON.
    let text = response
        .headers()
        .get("content-type")
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| {
            [
                "application/yaml",
                "text/html",
                "text/css",
                "text/javascript",
            ]
            .iter()
            .any(|text| value.starts_with(text))
        });
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    let json = if bytes.is_empty() {
        Value::Null
    } else if text {
        Value::String(String::from_utf8_lossy(&bytes).into_owned())
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&bytes)))
    };
    (status, json)
}

/// Asserts an error answer: status, code, and (for 400s) the field.
#[track_caller]
pub fn assert_error(answer: &(StatusCode, Value), status: u16, code: &str) {
    assert_eq!(answer.0.as_u16(), status, "{}", answer.1);
    assert_eq!(answer.1["error"]["code"], code, "{}", answer.1);
    assert!(
        answer.1["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
    );
}

/// Test data the referrals issue will write through sign-ups and events: relations and rewards,
/// written here through the domain crate's own item builders and store.
pub mod seed {
    use referral::domain::ledger::{Reward, RewardStatus};
    use referral::domain::program::{Delivery, Recipient, RewardKind};
    use referral::domain::referral::{InvitationMethod, Referral, ReferralStatus};
    use time::OffsetDateTime;

    use super::Api;

    pub fn relation(
        api: &Api,
        referrer: &str,
        referred: &str,
        program: &str,
        code: Option<&str>,
    ) -> Referral {
        let now = referral::clock::now();
        Referral {
            id: referral::id::new_id(),
            tenant: api.tenant.clone(),
            program_id: program.to_owned(),
            code: code.map(str::to_owned),
            code_referrer_amount: None,
            code_referee_amount: None,
            referrer_user_id: referrer.to_owned(),
            referrer_promoter_code: "NOSUCHCODE".to_owned(),
            referred_user_id: referred.to_owned(),
            referred_email: Some(format!("{referred}@example.com")),
            country: None,
            invitation_method: InvitationMethod::Code,
            status: ReferralStatus::Signup,
            paid_total: 0,
            referrer_earned: 0,
            commission_rate: None,
            commission_status: None,
            commission_reward_id: None,
            verified: false,
            redeemed_at: None,
            version: 1,
            fired_rules: Vec::new(),
            flags: Vec::new(),
            invoice_counts: Default::default(),
            created: now,
            updated: now,
        }
    }

    pub async fn put_relation(api: &Api, relation: &Referral) {
        api.store
            .client()
            .put_item()
            .table_name(api.store.table())
            .set_item(Some(
                referral::store::dynamo::referral_item(relation).unwrap(),
            ))
            .send()
            .await
            .unwrap();
    }

    /// A credited cash reward for `user` delivered to their balance.
    pub fn payout_reward(api: &Api, user: &str, amount: i64, created: OffsetDateTime) -> Reward {
        Reward {
            id: referral::id::new_id(),
            tenant: api.tenant.clone(),
            user_id: user.to_owned(),
            recipient: Recipient::Referrer,
            program_id: "program".into(),
            program_name: None,
            referral_id: None,
            referrer_user_id: None,
            code: None,
            kind: RewardKind::Cash,
            amount,
            currency: "USD".into(),
            delivery: Delivery::Payout,
            status: RewardStatus::Credited,
            holds: Vec::new(),
            due_at: None,
            denial: None,
            invoice: None,
            reduced: 0,
            taken_back: 0,
            reverses: None,
            refund_reason: None,
            budget_bucket: None,
            counts_to_cap: false,
            reason: "each_invoice".into(),
            last_error: None,
            attempts: 0,
            created,
            updated: created,
        }
    }

    pub async fn record(api: &Api, reward: &Reward) {
        assert!(api.store.record_reward(reward).await.unwrap());
    }
}

/// An emulator of its own with faults injected (`tests/emulator/serve.py --faults SPEC`), for
/// tests of what real DynamoDB does under load: transaction conflicts, throttling, 500s, lost
/// answers. Stopped when dropped. Fails (never skips) when the emulator cannot start.
pub struct FaultyEmulator {
    pub endpoint: String,
    process: std::process::Child,
}

impl FaultyEmulator {
    pub fn start(faults: &str) -> FaultyEmulator {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let python = root.join(".venv/bin/python");
        assert!(
            python.exists(),
            "{} is missing: run the tests with `make test`, which installs the emulator",
            python.display()
        );
        let port_file = std::env::temp_dir().join(format!(
            "faulty-emulator-{}",
            ulid::Ulid::generate().to_string().to_lowercase()
        ));
        let log = std::fs::File::create(
            root.join(format!("target/faulty-emulator-{}.log", std::process::id())),
        )
        .unwrap();
        let process = std::process::Command::new(python)
            .arg(root.join("tests/emulator/serve.py"))
            .args(["--host", "127.0.0.1", "--port", "0", "--faults", faults])
            .arg("--port-file")
            .arg(&port_file)
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .expect("the emulator starts");
        let started = std::time::Instant::now();
        let port = loop {
            if let Ok(port) = std::fs::read_to_string(&port_file)
                && !port.is_empty()
            {
                break port;
            }
            assert!(
                started.elapsed() < std::time::Duration::from_secs(60),
                "the faulty emulator did not start within 60 s"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        };
        let _ = std::fs::remove_file(&port_file);
        FaultyEmulator {
            endpoint: format!("http://127.0.0.1:{}", port.trim()),
            process,
        }
    }

    /// One HTTP/1.0 request to the emulator's own control routes; answers the body.
    async fn control(&self, method: &str, path: &str, body: &str) -> String {
        let address = self.endpoint.trim_start_matches("http://").to_owned();
        let request = format!(
            "{method} {path} HTTP/1.0\r\nHost: emulator\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let answer = tokio::task::spawn_blocking(move || {
            use std::io::{Read, Write};
            let mut stream = std::net::TcpStream::connect(address).unwrap();
            stream.write_all(request.as_bytes()).unwrap();
            let mut answer = String::new();
            stream.read_to_string(&mut answer).unwrap();
            answer
        })
        .await
        .unwrap();
        answer
            .split("\r\n\r\n")
            .nth(1)
            .unwrap_or_default()
            .to_owned()
    }

    /// Replaces the faults (`conflict=0.1,throttle=0.05,...,seed=N`; empty: none).
    pub async fn set_faults(&self, faults: &str) {
        self.control("POST", "/__emulator/faults", faults).await;
    }

    /// What the emulator injected and served so far: `{"faults": {...}, "counts": {...}}`.
    pub async fn stats(&self) -> Value {
        serde_json::from_str(&self.control("GET", "/__emulator/stats", "").await).unwrap()
    }

    /// How many faults of `kind` were injected.
    pub async fn injected(&self, kind: &str) -> u64 {
        self.stats().await["counts"][format!("injected.{kind}")]
            .as_u64()
            .unwrap_or(0)
    }
}

impl Drop for FaultyEmulator {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// A queue of the tests' own on the emulator (created if missing), named `name`.
pub async fn queue(name: &str) -> referral::delivery::queue::Queue {
    let sdk = referral::config::aws().await;
    let client = aws_sdk_sqs::Client::new(&sdk);
    let url = client
        .create_queue()
        .queue_name(name)
        .send()
        .await
        .expect("the emulator creates a queue")
        .queue_url
        .expect("CreateQueue answers the URL");
    referral::delivery::queue::Queue::new(client, &url)
}

/// The outbox of one test's tenant: its changes read from the table's stream (from when this
/// was made) and dispatched to a billing queue and a webhook queue of the test's own, as
/// Lambda's event source mapping runs the dispatcher in AWS.
pub struct TestOutbox {
    pub reader: local_stack::stream::StreamReader,
    pub outbox: referral::delivery::outbox::Outbox<DynamoStore>,
    pub billing: referral::delivery::queue::Queue,
    pub webhooks: referral::delivery::queue::Queue,
}

/// The table's stream from now on, the test's tenant's changes only.
pub async fn tenant_stream(api: &Api) -> local_stack::stream::StreamReader {
    let sdk = referral::config::aws().await;
    local_stack::stream::StreamReader::open(&sdk, None, api.store.table(), true, Some(&api.tenant))
        .await
        .expect("the table has a stream")
}

impl TestOutbox {
    pub async fn new(api: &Api) -> TestOutbox {
        let reader = tenant_stream(api).await;
        let billing = queue(&format!("credits-{}", api.tenant)).await;
        let webhooks = queue(&format!("webhooks-{}", api.tenant)).await;
        TestOutbox {
            reader,
            outbox: referral::delivery::outbox::Outbox::new(
                api.store.clone(),
                billing.clone(),
                webhooks.clone(),
            ),
            billing,
            webhooks,
        }
    }

    /// Dispatches every change committed since the last call.
    pub async fn pump(&mut self) -> referral::delivery::outbox::Dispatched {
        self.reader
            .drain(&self.outbox)
            .await
            .expect("the outbox dispatches")
    }
}
