//! `make bench`: cold start, warm latency, round trips, memory and size of every function, side
//! by side with a Python/boto3 handler of the same routes and with a bare-SDK floor.
//!
//! Each function's release binary runs as Lambda runs it: a fresh process whose real runtime
//! loop (`lambda_runtime`, or `awslambdaric` for Python) polls a Runtime API this program serves
//! (one per process, see `runtime.rs`), talking to the emulator over HTTP. Prints a table and
//! rewrites the generated part of `BENCHMARKS.md`. Figures only: nothing here passes or fails on
//! a timing.
//!
//! Usage: `bench [--cold N] [--warm N] [--only NAME,…] [--out FILE] [--bin-dir DIR]` with `AWS_ENDPOINT_URL` set
//! (`make bench` starts the emulator and builds everything first).

mod report;
mod runtime;

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_smithy_runtime_api::box_error::BoxError as SdkBoxError;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use futures::future::BoxFuture;
use referral::delivery::billing::CreditMessage;
use referral::delivery::queue::BillingQueue;
use referral::domain::ledger::Reward;
use referral::http::AppState;
use referral::http::auth::Role;
use referral::store::DynamoStore;
use report::{Row, Stats};
use runtime::{BoxError, Process};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::process::Command;

const TABLE: &str = "referral-bench";
const SECRET: &str = "bench-secret-0123456789abcdef";
const PYTHON_QUEUE: &str = "referral-bench-python";

struct Options {
    cold: usize,
    warm: usize,
    only: Option<String>,
    out: PathBuf,
    /// Where the release binaries are (another target directory when comparing builds).
    bin_dir: PathBuf,
}

impl Options {
    fn parse() -> Result<Options, BoxError> {
        let mut options = Options {
            cold: 20,
            warm: 1000,
            only: None,
            out: PathBuf::from("BENCHMARKS.md"),
            bin_dir: PathBuf::from("target/release"),
        };
        let mut args = std::env::args().skip(1);
        while let Some(flag) = args.next() {
            let mut value = || args.next().ok_or(format!("{flag} needs a value"));
            match flag.as_str() {
                "--cold" => options.cold = value()?.parse()?,
                "--warm" => options.warm = value()?.parse()?,
                "--only" => options.only = Some(value()?),
                "--out" => options.out = PathBuf::from(value()?),
                "--bin-dir" => options.bin_dir = PathBuf::from(value()?),
                other => return Err(format!("unknown argument {other}").into()),
            }
        }
        Ok(options)
    }
}

/// Which implementation an event is for (they write in tenants of their own).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Side {
    Rust,
    Python,
}

/// What a correct answer looks like.
#[derive(Clone, Copy)]
enum Expect {
    Status(u16),
    NoBatchFailures,
    Resent,
}

impl Expect {
    fn check(self, body: &[u8]) -> Result<(), String> {
        let value: Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
        let ok = match self {
            Expect::Status(status) => value["statusCode"] == json!(status),
            Expect::NoBatchFailures => value["batchItemFailures"] == json!([]),
            Expect::Resent => value["resent"].is_u64(),
        };
        if ok {
            Ok(())
        } else {
            Err(format!(
                "unexpected answer: {}",
                String::from_utf8_lossy(body)
            ))
        }
    }
}

type Events = Box<dyn Fn(Side, usize) -> Vec<u8> + Send + Sync>;
type Direct = Box<dyn Fn(usize) -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// One measured operation: a route (or a queue/schedule event) of one function.
struct Spec {
    label: &'static str,
    function: &'static str,
    /// The boto3 handler of the same route (`module.function` in `tests/bench/python`).
    python: Option<&'static str>,
    events: Events,
    expect: Expect,
    /// The same operation called in-process on the store (no runtime, no HTTP layer).
    direct: Direct,
}

/// Counts the requests the direct loop's clients send, per operation.
#[derive(Clone, Debug, Default)]
struct Calls(Arc<Mutex<BTreeMap<String, usize>>>);

impl Calls {
    fn take(&self) -> BTreeMap<String, usize> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

impl Intercept for Calls {
    fn name(&self) -> &'static str {
        "Calls"
    }

    fn read_before_transmit(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), SdkBoxError> {
        let name = cfg.load::<Metadata>().map_or("unknown", Metadata::name);
        *self.0.lock().unwrap().entry(name.to_owned()).or_default() += 1;
        Ok(())
    }
}

/// Paths and settings every process gets.
struct Bench {
    options: Options,
    root: PathBuf,
    logs: PathBuf,
    env: Vec<(String, String)>,
    python_env: Vec<(String, String)>,
    calls: Calls,
    /// `FLOOR_PK`/`FLOOR_SK` and the rest of the floor's environment.
    floor_env: Vec<(String, String)>,
    dynamodb: aws_sdk_dynamodb::Client,
    /// The table of the operation being measured (each has one of its own, kept small).
    table: String,
    store: DynamoStore,
    queue: BillingQueue,
    run: String,
}

fn http_event(method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> Vec<u8> {
    let mut headers = json!({
        "accept": "application/json",
        "host": "bench.execute-api.us-east-1.amazonaws.com",
        "user-agent": "bench",
    });
    if let Some(token) = token {
        headers["authorization"] = json!(format!("Bearer {token}"));
    }
    if body.is_some() {
        headers["content-type"] = json!("application/json");
    }
    let now = time::OffsetDateTime::now_utc();
    let event = json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "bench",
            "domainName": "bench.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "bench",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1",
                     "sourceIp": "192.0.2.10", "userAgent": "bench"},
            "requestId": ulid::Ulid::generate().to_string(),
            "routeKey": "$default",
            "stage": "$default",
            "time": "23/Nov/2026:08:00:00 +0000",
            "timeEpoch": now.unix_timestamp() * 1000,
        },
        "isBase64Encoded": false,
        "body": body.map(|b| b.to_string()),
    });
    serde_json::to_vec(&event).expect("an event serializes")
}

fn token(tenant: &str, user: &str, role: Role) -> String {
    local_stack::token(SECRET, tenant, user, role, time::Duration::days(1))
}

impl Bench {
    fn command(
        &self,
        program: &Path,
        args: &[&str],
        name: &str,
        env: &[(String, String)],
    ) -> Command {
        let mut command = Command::new(program);
        command
            .args(args)
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k, v)))
            .env("TABLE_NAME", &self.table)
            .env("AWS_LAMBDA_FUNCTION_NAME", name)
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}"))
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "bench")
            .stdin(Stdio::null());
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.logs.join(format!("{name}.log")))
            .expect("the log directory is writable");
        command
            .stdout(log.try_clone().expect("a log handle"))
            .stderr(log);
        command
    }

    /// Measures on `table` from now on (created and seeded unless it exists).
    async fn use_table(&mut self, table: &str) -> Result<World, BoxError> {
        local_stack::ensure_table(&self.dynamodb, table).await?;
        self.switch_table(table);
        let config = referral::config::Config::from_lookup(|name| match name {
            "TABLE_NAME" => Some(table.to_owned()),
            "JWT_SECRET" => Some(SECRET.to_owned()),
            "PUBLIC_BASE_URL" => Some("https://refer.example.com".to_owned()),
            _ => None,
        })?;
        let router = local_stack::app(AppState::new(config, self.dynamodb.clone(), None));
        World::seed(&router).await
    }

    fn switch_table(&mut self, table: &str) {
        self.table = table.to_owned();
        self.store = DynamoStore::new(self.dynamodb.clone(), table);
    }

    fn rust_command(&self, function: &str) -> Command {
        let binary = self.root.join(&self.options.bin_dir).join(function);
        self.command(&binary, &[], function, &self.env)
    }

    fn python_command(&self, handler: &str) -> Command {
        let python = self.root.join(".venv-bench/bin/python");
        let mut command = self.command(
            &python,
            &["-m", "awslambdaric", handler],
            &format!("python-{handler}"),
            &self.python_env,
        );
        command.current_dir(self.root.join("tests/bench/python"));
        command
    }

    fn command_for(&self, spec: &Spec, side: Side) -> Command {
        match side {
            Side::Rust => self.rust_command(spec.function),
            Side::Python => self.python_command(spec.python.expect("a Python handler")),
        }
    }

    /// `cold` fresh processes, each answering its first event.
    async fn cold_starts(
        &self,
        spec: &Spec,
        side: Side,
        next_event: &mut impl FnMut(Side) -> Vec<u8>,
    ) -> Result<(Stats, Stats, Option<Stats>), BoxError> {
        let (mut init, mut first, mut floor) = (vec![], vec![], vec![]);
        for _ in 0..self.options.cold {
            if side == Side::Rust {
                // The floor, started right before each cold start, under the same conditions.
                floor.push(self.run_to_exit(self.floor_command(Side::Rust)).await?);
            }
            let mut process =
                Process::start(self.command_for(spec, side), next_event(side)).await?;
            let cold = process.cold().await?;
            spec.expect.check(&cold.reply.body)?;
            init.push(cold.init);
            first.push(cold.first_response);
            process.stop().await;
        }
        let floor = (!floor.is_empty()).then(|| Stats::of(&floor));
        Ok((Stats::of(&init), Stats::of(&first), floor))
    }

    /// The bare-SDK floor: one GetItem of the first table's program, process start to exit.
    fn floor_command(&self, side: Side) -> Command {
        let mut command = match side {
            Side::Rust => {
                let floor = self.root.join(&self.options.bin_dir).join("bench-floor");
                self.command(&floor, &[], "floor", &self.floor_env)
            }
            Side::Python => {
                let python = self.root.join(".venv-bench/bin/python");
                let mut command =
                    self.command(&python, &["floor.py"], "python-floor", &self.floor_env);
                command.current_dir(self.root.join("tests/bench/python"));
                command
            }
        };
        command.env("TABLE_NAME", TABLE).kill_on_drop(true);
        command
    }

    async fn run_to_exit(&self, mut command: Command) -> Result<std::time::Duration, BoxError> {
        let start = Instant::now();
        let status = command.status().await?;
        let elapsed = start.elapsed();
        if !status.success() {
            return Err(format!("the floor failed: {status}").into());
        }
        Ok(elapsed)
    }

    /// Cold starts of each side, then the warm run: the Rust process, the same call in-process
    /// and the Python process take turns, so all three see the same table and the same load.
    async fn measure(&self, spec: &Spec) -> Result<Vec<Row>, BoxError> {
        let mut sides = vec![Side::Rust];
        if spec.python.is_some() {
            sides.push(Side::Python);
        }
        let mut counters = [0usize; 2];
        let mut next_event = |side: Side| {
            let counter = &mut counters[usize::from(side == Side::Python)];
            *counter += 1;
            (spec.events)(side, *counter)
        };
        let mut rows = vec![];
        for &side in &sides {
            let (init, first, floor) = self.cold_starts(spec, side, &mut next_event).await?;
            rows.push(Row {
                label: spec.label,
                function: spec.function,
                side: match side {
                    Side::Rust => "Rust",
                    Side::Python => "Python 3 + boto3",
                },
                init: Some(init),
                first,
                floor,
                warm: None,
                direct: None,
                calls: None,
                rss_kib: None,
                size: None,
                zipped: None,
            });
        }
        let mut processes = vec![];
        for &side in &sides {
            let mut process =
                Process::start(self.command_for(spec, side), next_event(side)).await?;
            process.cold().await?;
            processes.push((side, process));
        }
        (spec.direct)(0).await?;
        self.calls.take();
        let mut warm = vec![Vec::with_capacity(self.options.warm); sides.len()];
        let mut direct = Vec::with_capacity(self.options.warm);
        for i in 1..=self.options.warm {
            for (n, (side, process)) in processes.iter_mut().enumerate() {
                let (latency, reply) = process.invoke(next_event(*side)).await?;
                if reply.error {
                    return Err(format!(
                        "{}: {}",
                        spec.label,
                        String::from_utf8_lossy(&reply.body)
                    )
                    .into());
                }
                spec.expect.check(&reply.body)?;
                warm[n].push(latency);
                if n == 0 {
                    let start = Instant::now();
                    (spec.direct)(i).await?;
                    direct.push(start.elapsed());
                }
            }
        }
        let calls = self.calls.take();
        for ((_, process), (row, warm)) in processes.into_iter().zip(rows.iter_mut().zip(&warm)) {
            row.warm = Some(Stats::of(warm));
            row.rss_kib = Some(process.peak_rss_kib()?);
            process.stop().await;
        }
        let binary = self.root.join(&self.options.bin_dir).join(spec.function);
        let rust = &mut rows[0];
        rust.direct = Some(Stats::of(&direct));
        rust.calls = Some(self.per_operation(calls));
        rust.size = Some(std::fs::metadata(&binary)?.len());
        rust.zipped = Some(report::zipped_size(&binary, &self.logs)?);
        Ok(rows)
    }

    /// SDK requests of the direct loop, per operation.
    fn per_operation(&self, calls: BTreeMap<String, usize>) -> String {
        calls
            .into_iter()
            .map(|(operation, count)| {
                let per = count as f64 / self.options.warm as f64;
                if per >= 0.5 && (per - per.round()).abs() < 0.01 {
                    format!("{operation}×{}", per.round())
                } else if per >= 0.01 {
                    format!("{operation}×{per:.2}")
                } else {
                    // A read cached per container: a handful in the whole run.
                    format!("{operation}×{per:.3}")
                }
            })
            .collect::<Vec<_>>()
            .join(" + ")
    }

    /// Process start to exit of a program that does one GetItem, `cold` times.
    async fn floor(&self, side: Side, label: &'static str) -> Result<Row, BoxError> {
        let mut samples = vec![];
        for _ in 0..self.options.cold {
            samples.push(self.run_to_exit(self.floor_command(side)).await?);
        }
        Ok(Row {
            label: "one GetItem, process start to exit",
            function: "floor",
            side: label,
            init: None,
            first: Stats::of(&samples),
            floor: None,
            warm: None,
            direct: None,
            calls: None,
            rss_kib: None,
            size: None,
            zipped: None,
        })
    }
}

fn boxed<F>(future: F) -> BoxFuture<'static, Result<(), String>>
where
    F: std::future::Future<Output = referral::Result<()>> + Send + 'static,
{
    Box::pin(async move { future.await.map_err(|e| e.to_string()) })
}

/// The data every scenario works on, created through the real routes in-process.
struct World {
    program_id: String,
    code: String,
    python_code: String,
}

async fn call(
    router: &axum::Router,
    method: &str,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> Result<Value, BoxError> {
    use tower::ServiceExt;
    let request = axum::http::Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(axum::body::Body::from(
            body.map(|b| b.to_string()).unwrap_or_default(),
        ))?;
    let response = router.clone().oneshot(request).await?;
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await?;
    if !status.is_success() {
        return Err(format!(
            "{method} {path}: {status} {}",
            String::from_utf8_lossy(&bytes)
        )
        .into());
    }
    Ok(serde_json::from_slice(&bytes)?)
}

fn program_body(name: &str) -> Value {
    json!({
        "name": name,
        "currency": "USD",
        "rewards": [
            {"recipient": "referrer", "trigger": "signup", "kind": "cash", "amount": 500, "delivery": "billing_credit"},
            {"recipient": "referee", "trigger": "signup", "kind": "cash", "amount": 500, "delivery": "billing_credit"}
        ]
    })
}

impl World {
    async fn seed(router: &axum::Router) -> Result<World, BoxError> {
        let mut world = World {
            program_id: String::new(),
            code: String::new(),
            python_code: String::new(),
        };
        for tenant in ["bench", "bench-py"] {
            let admin = token(tenant, "admin", Role::Admin);
            let program = call(
                router,
                "POST",
                "/v1/programs",
                &admin,
                Some(program_body("Bench program")),
            )
            .await?;
            let promoter = token(tenant, "alice", Role::Promoter);
            let me = call(router, "GET", "/v1/promoters/me", &promoter, None).await?;
            let code = me["referral_code"]
                .as_str()
                .ok_or("GET /promoters/me has a referral code")?
                .to_owned();
            if tenant == "bench" {
                world.program_id = program["id"].as_str().ok_or("a program id")?.to_owned();
                world.code = code;
            } else {
                world.python_code = code;
            }
        }
        Ok(world)
    }
}

fn sqs_event(index: usize, body: &str) -> SqsEvent {
    let mut record = SqsMessage::default();
    record.message_id = Some(format!("bench-{index}"));
    record.receipt_handle = Some(format!("bench-receipt-{index}"));
    record.body = Some(body.to_owned());
    record.attributes = [
        ("ApproximateReceiveCount".to_owned(), "1".to_owned()),
        ("SentTimestamp".to_owned(), "1795420800000".to_owned()),
    ]
    .into();
    record.event_source = Some("aws:sqs".into());
    record.event_source_arn = Some(format!(
        "arn:aws:sqs:us-east-1:123456789012:{}",
        local_stack::BILLING_QUEUE
    ));
    record.aws_region = Some("us-east-1".into());
    let mut event = SqsEvent::default();
    event.records = vec![record];
    event
}

/// The billing messages of every reward the Rust sign-ups left pending: what the producer sent
/// (read from the undelivered-rewards index; the emulator's SQS receive is too slow for
/// thousands of messages).
async fn pending_credits(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
) -> Result<Vec<String>, BoxError> {
    let mut bodies = vec![];
    let mut start = None;
    loop {
        let page = dynamodb
            .query()
            .table_name(table)
            .index_name(referral::store::dynamo::keys::GSI2)
            .key_condition_expression("#pk = :pk")
            .expression_attribute_names("#pk", referral::store::dynamo::keys::GSI2PK)
            .expression_attribute_values(
                ":pk",
                aws_sdk_dynamodb::types::AttributeValue::S(
                    referral::store::dynamo::keys::UNDELIVERED_REWARDS.to_owned(),
                ),
            )
            .set_exclusive_start_key(start)
            .send()
            .await?;
        for item in page.items.unwrap_or_default() {
            // The boto3 handler's rewards (tenant bench-py) are not the consumer's shape.
            if let Ok(reward) = serde_dynamo::from_item::<_, Reward>(item)
                && reward.tenant == "bench"
            {
                bodies.push(serde_json::to_string(&CreditMessage::of(&reward))?);
            }
        }
        start = page.last_evaluated_key;
        if start.is_none() {
            return Ok(bodies);
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let options = Options::parse()?;
    referral::telemetry::init();
    let endpoint = std::env::var("AWS_ENDPOINT_URL")
        .map_err(|_| "AWS_ENDPOINT_URL is not set: run `make bench`, which starts the emulator")?;
    let root = std::env::current_dir()?;
    let logs = root.join("target/bench");
    std::fs::create_dir_all(&logs)?;
    for entry in std::fs::read_dir(&logs)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "log") {
            std::fs::remove_file(path)?;
        }
    }

    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let calls = Calls::default();
    let dynamodb = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&sdk)
            .interceptor(calls.clone())
            .build(),
    );
    let sqs = aws_sdk_sqs::Client::from_conf(
        aws_sdk_sqs::config::Builder::from(&sdk)
            .interceptor(calls.clone())
            .build(),
    );
    let queue_url = local_stack::ensure_queues(&sqs).await?.billing;
    let python_queue = sqs
        .create_queue()
        .queue_name(PYTHON_QUEUE)
        .send()
        .await?
        .queue_url
        .ok_or("a queue url")?;
    let billing_url = report::billing_receiver().await?;

    let mut env: Vec<(String, String)> = [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
    ]
    .into_iter()
    .filter_map(|name| Some((name.to_owned(), std::env::var(name).ok()?)))
    .collect();
    env.extend(
        [
            ("AWS_REGION", "us-east-1"),
            ("AWS_DEFAULT_REGION", "us-east-1"),
            ("AWS_ENDPOINT_URL", endpoint.as_str()),
            ("JWT_SECRET", SECRET),
            ("PUBLIC_BASE_URL", "https://refer.example.com"),
            ("LANDING_URL", "https://example.com/join"),
            ("BILLING_CALLBACK_URL", billing_url.as_str()),
            ("BILLING_SIGNING_SECRET", "bench-signing-secret"),
            ("RECONCILE_AFTER_SECONDS", "86400"),
            ("LANG", "C.UTF-8"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned())),
    );
    // Lambda's image keeps its CA certificates in one bundle; a Debian machine also has a
    // directory of ~300 files that rustls-native-certs reads one by one (about 5 ms of every
    // Rust cold start here). Point the SDK at the bundle alone, as on Lambda (boto3 uses certifi).
    let bundle = Path::new("/etc/ssl/certs/ca-certificates.crt");
    if bundle.exists() {
        let empty = logs.join("no-cert-dir");
        std::fs::create_dir_all(&empty)?;
        env.push(("SSL_CERT_FILE".into(), bundle.display().to_string()));
        env.push(("SSL_CERT_DIR".into(), empty.display().to_string()));
    }
    let mut python_env = env.clone();
    python_env.push(("QUEUE_URL".into(), python_queue));
    python_env.push(("PYTHONDONTWRITEBYTECODE".into(), "1".into()));
    env.push(("QUEUE_URL".into(), queue_url.clone()));

    let mut bench = Bench {
        options,
        root,
        logs,
        env,
        python_env,
        calls,
        floor_env: vec![],
        store: DynamoStore::new(dynamodb.clone(), TABLE),
        table: TABLE.to_owned(),
        dynamodb,
        queue: BillingQueue::new(sqs.clone(), &queue_url),
        run: ulid::Ulid::generate().to_string().to_lowercase()[20..].to_owned(),
    };
    let world = bench.use_table(TABLE).await?;
    let functions: Vec<&str> = specs(&bench, &world).iter().map(|s| s.function).collect();
    let mut rows = vec![];

    let key = referral::store::dynamo::keys::program("bench", &world.program_id);
    bench.floor_env = bench.env.clone();
    bench.floor_env.push(("FLOOR_PK".into(), key.pk));
    bench.floor_env.push(("FLOOR_SK".into(), key.sk));
    let only = bench.options.only.clone();
    let selected = |name: &str| {
        only.as_deref()
            .is_none_or(|only| only.split(',').any(|o| o == name))
    };
    if selected("floor") {
        rows.push(bench.floor(Side::Rust, "Rust (floor)").await?);
        rows.push(
            bench
                .floor(Side::Python, "Python 3 + boto3 (floor)")
                .await?,
        );
        report::print(rows.last_chunk::<2>().unwrap());
    }

    let mut referrals_table = None;
    for (index, function) in functions.into_iter().enumerate() {
        if !selected(function) {
            continue;
        }
        let table = format!("{TABLE}-{index}");
        let world = bench.use_table(&table).await?;
        let spec = specs(&bench, &world).swap_remove(index);
        if function == "referrals" {
            referrals_table = Some(table);
        }
        eprintln!("measuring {} ({})", spec.label, spec.function);
        let measured = bench.measure(&spec).await?;
        report::print(&measured);
        rows.extend(measured);
    }
    // The billing consumer works on what the sign-ups above queued.
    if selected("billing-consumer") {
        let table =
            referrals_table.ok_or("the billing consumer needs the referrals scenario's rewards")?;
        bench.switch_table(&table);
        let messages = Arc::new(pending_credits(&bench.dynamodb, &table).await?);
        let needed = 2 * bench.options.warm + bench.options.cold + 3;
        if messages.len() < needed {
            return Err(format!(
                "{} billing messages queued, {needed} needed: run the referrals scenario first",
                messages.len()
            )
            .into());
        }
        let spec = billing_spec(&bench, messages, billing_settings(&billing_url)?);
        eprintln!("measuring {} ({})", spec.label, spec.function);
        let measured = bench.measure(&spec).await?;
        report::print(&measured);
        rows.extend(measured);
    }
    report::write(
        &bench.options.out,
        &rows,
        bench.options.cold,
        bench.options.warm,
    )?;
    eprintln!("wrote {}", bench.options.out.display());
    Ok(())
}

fn billing_settings(url: &str) -> Result<billing_consumer::Settings, BoxError> {
    Ok(billing_consumer::Settings::from_lookup(
        |name| match name {
            "BILLING_CALLBACK_URL" => Some(url.to_owned()),
            "BILLING_SIGNING_SECRET" => Some("bench-signing-secret".to_owned()),
            _ => None,
        },
    )?)
}

/// One message per invocation; the direct loop takes the messages after the function's.
fn billing_spec(
    bench: &Bench,
    messages: Arc<Vec<String>>,
    settings: billing_consumer::Settings,
) -> Spec {
    let consumer = Arc::new(billing_consumer::Consumer::new(
        bench.store.clone(),
        settings,
    ));
    let offset = bench.options.warm + bench.options.cold + 2;
    let events = messages.clone();
    Spec {
        label: "SQS billing credit (1 message)",
        function: "billing-consumer",
        python: None,
        events: Box::new(move |_, i| serde_json::to_vec(&sqs_event(i, &events[i - 1])).unwrap()),
        expect: Expect::NoBatchFailures,
        direct: Box::new(move |i| {
            let consumer = consumer.clone();
            let event = sqs_event(offset + i, &messages[offset + i]);
            Box::pin(async move {
                let answer = consumer.handle(event).await;
                if answer.batch_item_failures.is_empty() {
                    Ok(())
                } else {
                    Err("the direct billing call failed".to_owned())
                }
            })
        }),
    }
}

fn specs(bench: &Bench, world: &World) -> Vec<Spec> {
    let run = bench.run.clone();
    let store = bench.store.clone();
    let admin = token("bench", "admin", Role::Admin);
    let program_path = format!("/v1/programs/{}", world.program_id);
    let mut specs = vec![];

    specs.push(Spec {
        label: "GET /v1/programs/{id}",
        function: "programs",
        python: Some("handler.get_program"),
        events: Box::new(move |_, _| http_event("GET", &program_path, Some(&admin), None)),
        expect: Expect::Status(200),
        direct: {
            let (store, id) = (store.clone(), world.program_id.clone());
            Box::new(move |_| {
                let (store, id) = (store.clone(), id.clone());
                boxed(async move {
                    referral::domain::program::get_program(&store, "bench", &id)
                        .await
                        .map(drop)
                })
            })
        },
    });

    let creators = [
        token("bench-create", "admin", Role::Admin),
        token("bench-create-py", "admin", Role::Admin),
    ];
    specs.push(Spec {
        label: "POST /v1/programs",
        function: "programs",
        python: Some("handler.create_program"),
        events: {
            let run = run.clone();
            Box::new(move |side, i| {
                let token = &creators[usize::from(side == Side::Python)];
                http_event(
                    "POST",
                    "/v1/programs",
                    Some(token),
                    Some(program_body(&format!("Bench {run} {i}"))),
                )
            })
        },
        expect: Expect::Status(201),
        direct: {
            let (store, run) = (store.clone(), run.clone());
            Box::new(move |i| {
                let store = store.clone();
                let input =
                    serde_json::from_value(program_body(&format!("Direct {run} {i}"))).unwrap();
                boxed(async move {
                    referral::domain::program::create_program(&store, "bench-create-direct", &input)
                        .await
                        .map(drop)
                })
            })
        },
    });

    let services = [
        token("bench", "backend", Role::Service),
        token("bench-py", "backend", Role::Service),
    ];
    let codes = [world.code.clone(), world.python_code.clone()];
    specs.push(Spec {
        label: "POST /v1/referrals (sign-up, two rewards)",
        function: "referrals",
        python: Some("handler.sign_up"),
        events: {
            let run = run.clone();
            Box::new(move |side, i| {
                let n = usize::from(side == Side::Python);
                let body =
                    json!({"code": codes[n], "referred_user_id": format!("u-{run}-{side:?}-{i}")});
                http_event("POST", "/v1/referrals", Some(&services[n]), Some(body))
            })
        },
        expect: Expect::Status(201),
        direct: {
            let (store, run, code) = (store.clone(), run.clone(), world.code.clone());
            Box::new(move |i| {
                let store = store.clone();
                let input = serde_json::from_value(
                    json!({"code": code, "referred_user_id": format!("u-{run}-direct-{i}")}),
                )
                .unwrap();
                // What the handler does: the transaction, and no SQS send (the credits leave
                // through the table's stream).
                boxed(async move {
                    let keys = referral::domain::referral::fraud::Fingerprints::new("bench", None);
                    referral::domain::referral::register_referral(&store, "bench", &input, &keys)
                        .await?;
                    Ok(())
                })
            })
        },
    });

    let promoter = token("bench", "alice", Role::Promoter);
    let me = promoter.clone();
    specs.push(Spec {
        label: "GET /v1/promoters/me",
        function: "promoters",
        python: None,
        events: Box::new(move |_, _| http_event("GET", "/v1/promoters/me", Some(&me), None)),
        expect: Expect::Status(200),
        direct: {
            let store = store.clone();
            Box::new(move |_| {
                let store = store.clone();
                boxed(async move {
                    referral::domain::promoter::get_or_create(&store, "bench", "alice")
                        .await
                        .map(drop)
                })
            })
        },
    });

    specs.push(Spec {
        label: "GET /portal",
        function: "portal",
        python: None,
        events: Box::new(|_, _| http_event("GET", "/portal", None, None)),
        expect: Expect::Status(200),
        // The page is in the binary: no store call. In-process, the router's answer.
        direct: Box::new(|_| {
            Box::pin(async {
                use tower::ServiceExt;
                let request = axum::http::Request::get("/portal")
                    .body(axum::body::Body::empty())
                    .map_err(|error| error.to_string())?;
                let response = portal::routes::<()>()
                    .oneshot(request)
                    .await
                    .map_err(|error| error.to_string())?;
                match response.status().as_u16() {
                    200 => Ok(()),
                    status => Err(format!("GET /portal answered {status}")),
                }
            })
        }),
    });

    let redirect = format!("/r/{}", world.code);
    specs.push(Spec {
        label: "GET /r/{code}",
        function: "codes",
        python: None,
        events: Box::new(move |_, _| http_event("GET", &redirect, None, None)),
        expect: Expect::Status(302),
        direct: {
            let (store, code) = (store.clone(), world.code.clone());
            Box::new(move |_| {
                let (store, code) = (store.clone(), code.clone());
                boxed(async move {
                    referral::domain::code::count_click(&store, &code)
                        .await
                        .map(drop)
                })
            })
        },
    });

    specs.push(Spec {
        label: "POST /v1/invitations (one email)",
        function: "invitations",
        python: None,
        events: {
            let run = run.clone();
            Box::new(move |_, i| {
                let body = json!({"emails": [format!("guest-{run}-{i}@bench.example")]});
                http_event("POST", "/v1/invitations", Some(&promoter), Some(body))
            })
        },
        expect: Expect::Status(201),
        direct: {
            let (store, run) = (store.clone(), run.clone());
            Box::new(move |i| {
                let store = store.clone();
                let emails =
                    serde_json::from_value(json!([format!("direct-{run}-{i}@bench.example")]))
                        .unwrap();
                boxed(async move {
                    referral::domain::invitation::invite(&store, "bench", "alice", &emails)
                        .await
                        .map(drop)
                })
            })
        },
    });

    specs.push(Spec {
        label: "scheduled reconcile (nothing stale)",
        function: "reconciler",
        python: None,
        events: Box::new(|_, _| {
            serde_json::to_vec(&json!({
                "version": "0", "id": "bench", "detail-type": "Scheduled Event", "source": "aws.events",
                "account": "123456789012", "time": "2026-11-23T08:00:00Z", "region": "us-east-1",
                "resources": ["arn:aws:events:us-east-1:123456789012:rule/reconcile"], "detail": {}
            }))
            .unwrap()
        }),
        expect: Expect::Resent,
        direct: {
            let (store, queue) = (store.clone(), bench.queue.clone());
            Box::new(move |_| {
                let (store, queue) = (store.clone(), queue.clone());
                // What the handler does: holding periods, release jobs, undelivered credits.
                boxed(async move {
                    let age = time::Duration::days(1);
                    referral::delivery::reconcile::release_due(&store, referral::clock::now())
                        .await?;
                    referral::delivery::reconcile::resume_release_jobs(&store, age).await?;
                    referral::delivery::reconcile::reconcile(&store, &queue, age)
                        .await
                        .map(drop)
                })
            })
        },
    });
    specs
}
