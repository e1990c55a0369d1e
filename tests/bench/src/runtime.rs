//! A minimal Lambda Runtime API (the `2018-06-01` interface Lambda serves to every runtime),
//! one server per function process, so the real `lambda_runtime` loop (or `awslambdaric` for
//! Python) polls it exactly as it polls Lambda: `GET …/invocation/next` hands out an event,
//! `POST …/invocation/{id}/response` (or `/error`) returns its answer.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, oneshot};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What a function answered to one invocation, and when the answer arrived.
pub struct Reply {
    pub at: Instant,
    pub body: Bytes,
    pub error: bool,
}

struct Pending {
    event: Vec<u8>,
    done: oneshot::Sender<Reply>,
}

#[derive(Clone)]
struct Api {
    queue: Arc<tokio::sync::Mutex<mpsc::Receiver<Pending>>>,
    waiting: Arc<Mutex<HashMap<String, oneshot::Sender<Reply>>>>,
    first_poll: Arc<OnceLock<Instant>>,
    init_error: Arc<Mutex<Option<String>>>,
}

const PREFIX: &str = "/2018-06-01/runtime";

fn router(api: Api) -> Router {
    Router::new()
        .route(&format!("{PREFIX}/invocation/next"), get(next))
        .route(
            &format!("{PREFIX}/invocation/{{id}}/response"),
            post(|state, path, body| answer(state, path, body, false)),
        )
        .route(
            &format!("{PREFIX}/invocation/{{id}}/error"),
            post(|state, path, body| answer(state, path, body, true)),
        )
        .route(&format!("{PREFIX}/init/error"), post(init_error))
        .with_state(api)
}

async fn next(State(api): State<Api>) -> Response {
    api.first_poll.get_or_init(Instant::now);
    let Some(pending) = api.queue.lock().await.recv().await else {
        return StatusCode::GONE.into_response();
    };
    let id = ulid::Ulid::generate().to_string();
    api.waiting.lock().unwrap().insert(id.clone(), pending.done);
    let deadline = time::OffsetDateTime::now_utc().unix_timestamp() * 1000 + 900_000;
    (
        [
            ("lambda-runtime-aws-request-id", id),
            ("lambda-runtime-deadline-ms", deadline.to_string()),
            (
                "lambda-runtime-invoked-function-arn",
                "arn:aws:lambda:us-east-1:123456789012:function:bench".to_owned(),
            ),
            (
                "lambda-runtime-trace-id",
                "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=0"
                    .to_owned(),
            ),
            ("content-type", "application/json".to_owned()),
        ],
        pending.event,
    )
        .into_response()
}

async fn answer(
    State(api): State<Api>,
    Path(id): Path<String>,
    body: Bytes,
    error: bool,
) -> StatusCode {
    let at = Instant::now();
    match api.waiting.lock().unwrap().remove(&id) {
        Some(done) => {
            // The bench may have stopped waiting (a timeout); nothing to do then.
            let _ = done.send(Reply { at, body, error });
            StatusCode::ACCEPTED
        }
        None => StatusCode::NOT_FOUND,
    }
}

async fn init_error(State(api): State<Api>, body: Bytes) -> StatusCode {
    *api.init_error.lock().unwrap() = Some(String::from_utf8_lossy(&body).into_owned());
    StatusCode::ACCEPTED
}

/// One function process with its own Runtime API.
pub struct Process {
    child: Child,
    pid: u32,
    tx: mpsc::Sender<Pending>,
    first: Option<oneshot::Receiver<Reply>>,
    api: Api,
    server: tokio::task::JoinHandle<()>,
    spawned: Instant,
}

/// How long a cold start took: to the first `/next` poll (init) and to the first answer.
pub struct Cold {
    pub init: Duration,
    pub first_response: Duration,
    pub reply: Reply,
}

const TIMEOUT: Duration = Duration::from_secs(60);

impl Process {
    /// Serves a Runtime API on a free port, queues `first_event`, then starts `command` with
    /// `AWS_LAMBDA_RUNTIME_API` pointing at it. The clock starts right before the spawn.
    pub async fn start(mut command: Command, first_event: Vec<u8>) -> Result<Process, BoxError> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let (tx, rx) = mpsc::channel(1);
        let api = Api {
            queue: Arc::new(tokio::sync::Mutex::new(rx)),
            waiting: Arc::default(),
            first_poll: Arc::default(),
            init_error: Arc::default(),
        };
        let app = router(api.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let (done, first) = oneshot::channel();
        tx.send(Pending {
            event: first_event,
            done,
        })
        .await
        .map_err(|_| "the runtime API stopped")?;
        command
            .env("AWS_LAMBDA_RUNTIME_API", address.to_string())
            .kill_on_drop(true);
        let spawned = Instant::now();
        let child = command.spawn()?;
        let pid = child.id().ok_or("the process exited at once")?;
        Ok(Process {
            child,
            pid,
            tx,
            first: Some(first),
            api,
            server,
            spawned,
        })
    }

    /// Waits for the answer to the first event.
    pub async fn cold(&mut self) -> Result<Cold, BoxError> {
        let first = self
            .first
            .take()
            .ok_or("the cold start was already measured")?;
        let reply = self.wait(first).await?;
        let init = *self
            .api
            .first_poll
            .get()
            .ok_or("answered without polling")?;
        Ok(Cold {
            init: init - self.spawned,
            first_response: reply.at - self.spawned,
            reply,
        })
    }

    /// One warm invocation: from handing the event to the Runtime API to its answer arriving.
    pub async fn invoke(&mut self, event: Vec<u8>) -> Result<(Duration, Reply), BoxError> {
        let (done, reply) = oneshot::channel();
        let start = Instant::now();
        self.tx
            .send(Pending { event, done })
            .await
            .map_err(|_| "the runtime API stopped")?;
        let reply = self.wait(reply).await?;
        Ok((reply.at - start, reply))
    }

    async fn wait(&mut self, reply: oneshot::Receiver<Reply>) -> Result<Reply, BoxError> {
        tokio::select! {
            reply = reply => Ok(reply?),
            status = self.child.wait() => Err(format!(
                "the function exited ({}) before answering; init error: {:?}",
                status?, self.api.init_error.lock().unwrap()
            ).into()),
            () = tokio::time::sleep(TIMEOUT) => Err("no answer within 60 s".into()),
        }
    }

    /// Peak resident set size so far (`VmHWM`), in KiB.
    pub fn peak_rss_kib(&self) -> Result<u64, BoxError> {
        peak_rss_kib(self.pid)
    }

    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
        self.server.abort();
    }
}

pub fn peak_rss_kib(pid: u32) -> Result<u64, BoxError> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|line| line.starts_with("VmHWM:"))
        .ok_or("no VmHWM in /proc/PID/status")?;
    Ok(line
        .split_whitespace()
        .nth(1)
        .ok_or("malformed VmHWM")?
        .parse()?)
}
