//! The webhook sender: each SQS message is one event for one endpoint. The event is POSTed as
//! JSON, signed the Standard Webhooks way with each live secret of the endpoint (`webhook-id` is
//! the event id, the same on every attempt and replay). 2xx delivers it; `410 Gone` disables the
//! endpoint; anything else (a redirect too: none is followed), a time-out or a refused address is
//! tried again on the schedule of [`referral::domain::webhook::delivery::RETRY_DELAYS`], at least
//! after a 429's or 503's `Retry-After`. A retry is a new message: delayed by SQS up to 15
//! minutes, and sent on again while it is not due (so a wait of hours needs no scheduler). Every
//! attempt is added to the delivery log; an endpoint failing every delivery for 3 days is
//! disabled (the stream then tells `webhook_endpoint.disabled`).
//!
//! Per message: 1 `GetItem` (the endpoint, read fresh: a disabled or deleted endpoint gets
//! nothing) + the POST + 1 `UpdateItem` (the log) + a `PutItem` when the endpoint's health
//! changes + a `SendMessageBatch` for a retry. At most 4 KiB of an answer is read.

use std::time::{Duration, Instant};

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use referral::delivery::http_client::capped_text;
use referral::delivery::outbox::DeliveryMessage;
use referral::delivery::queue::{MAX_DELAY_SECONDS, Queue};
use referral::delivery::signing;
use referral::delivery::sqs::{self, Done};
use referral::domain::webhook::WebhookEndpoint;
use referral::domain::webhook::delivery::{
    Answer, Attempt, AttemptRecord, DeliveryStatus, classify, next_attempt_in,
};
use referral::error::{Error, Result};
use referral::outbound::{self, Policy};
use referral::store::{Replaced, WebhookStore};

/// At most this much of an endpoint's answer is read (for the log's excerpt).
pub const MAX_ANSWER_BYTES: usize = 4096;

/// The sender's configuration (environment variables).
#[derive(Clone, Debug)]
pub struct Settings {
    /// `ALLOW_PRIVATE_URLS` (development): http and private addresses allowed.
    pub policy: Policy,
    /// `WEBHOOK_TIMEOUT_MS` (default 10000): the whole delivery, connecting included.
    pub timeout: Duration,
    /// `WEBHOOK_RETRY_SCALE` (default 1): the retry schedule's waits are multiplied by it
    /// (tests run it at 0.001).
    pub retry_scale: f64,
}

impl Settings {
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let invalid = |name: &str| Error::internal(format!("configuration: {name} is not valid"));
        let timeout = get("WEBHOOK_TIMEOUT_MS")
            .map_or(Ok(10_000), |v| v.parse::<u64>())
            .map_err(|_| invalid("WEBHOOK_TIMEOUT_MS"))?;
        let retry_scale = get("WEBHOOK_RETRY_SCALE")
            .map_or(Ok(1.0), |v| v.parse::<f64>())
            .ok()
            .filter(|scale| *scale > 0.0 && *scale <= 1.0)
            .ok_or_else(|| invalid("WEBHOOK_RETRY_SCALE (0 < scale <= 1)"))?;
        Ok(Settings {
            policy: Policy {
                allow_private: get("ALLOW_PRIVATE_URLS")
                    .is_some_and(|value| matches!(value.as_str(), "1" | "true" | "yes")),
            },
            timeout: Duration::from_millis(timeout),
            retry_scale,
        })
    }
}

pub struct Sender<S> {
    store: S,
    queue: Queue,
    http: reqwest::Client,
    settings: Settings,
}

impl<S: WebhookStore> Sender<S> {
    /// Built once per cold start: the HTTP client keeps its connections and TLS set-up.
    pub fn new(store: S, queue: Queue, settings: Settings) -> Self {
        Sender {
            http: referral::delivery::http_client::client(settings.policy, settings.timeout),
            store,
            queue,
            settings,
        }
    }

    /// Delivers a batch concurrently; answers the ids of the messages to retry (only when the
    /// engine itself failed: an endpoint's failure is retried on the schedule instead).
    pub async fn handle(&self, event: SqsEvent) -> SqsBatchResponse {
        sqs::each(&event, |message| self.deliver(message)).await
    }

    async fn deliver(&self, message: &SqsMessage) -> Done {
        let id = message.message_id.as_deref().unwrap_or("?");
        let Some(delivery) = message
            .body
            .as_deref()
            .and_then(|body| serde_json::from_str::<DeliveryMessage>(body).ok())
        else {
            tracing::error!(
                message_id = id,
                "malformed delivery message: retried until it reaches the dead-letter queue"
            );
            return Done::Retry;
        };
        match self.attempt(&delivery).await {
            Ok(()) => Done::Acknowledge,
            Err(error) => {
                tracing::error!(message_id = id, event = %delivery.event.id, endpoint = %delivery.endpoint_id, %error, "webhook delivery failed");
                Done::Retry
            }
        }
    }

    /// Sends `delivery` again, due at its `not_before`: SQS delays it as long as it can.
    async fn send_later(&self, delivery: &DeliveryMessage, wait: time::Duration) -> Result<()> {
        let seconds = wait.whole_seconds().clamp(0, i64::from(MAX_DELAY_SECONDS)) as i32;
        if self
            .queue
            .send_all(std::slice::from_ref(delivery), seconds)
            .await
            == 1
        {
            Ok(())
        } else {
            Err(Error::unavailable("the retry was not queued"))
        }
    }

    async fn attempt(&self, delivery: &DeliveryMessage) -> Result<()> {
        let event = &delivery.event;
        if let Some(due) = delivery.not_before {
            let wait = due - referral::clock::now();
            if wait >= time::Duration::SECOND {
                return self.send_later(delivery, wait).await;
            }
            if wait.is_positive() {
                tokio::time::sleep(wait.unsigned_abs()).await;
            }
        }
        let Some(endpoint) = self
            .store
            .get_endpoint(&event.tenant, &delivery.endpoint_id)
            .await?
        else {
            tracing::info!(event = %event.id, endpoint = %delivery.endpoint_id, "the endpoint was deleted: not sent");
            return Ok(());
        };
        let started = Instant::now();
        let at = referral::clock::now();
        let (answer, status_code) = if endpoint.enabled {
            self.post(&endpoint, delivery, at).await?
        } else {
            let error = "not sent: the endpoint is disabled".to_owned();
            (
                Answer::Failed {
                    error,
                    retry_after: None,
                },
                None,
            )
        };
        let latency_ms = started.elapsed().as_millis() as u64;
        let now = referral::clock::now();
        let retry_in = match &answer {
            Answer::Failed { retry_after, .. } if endpoint.enabled => next_attempt_in(
                delivery.attempt,
                referral::id::random_fraction(),
                self.settings.retry_scale,
                *retry_after,
            ),
            _ => None,
        };
        let (status, error) = match &answer {
            Answer::Delivered => (DeliveryStatus::Succeeded, None),
            Answer::Gone => (
                DeliveryStatus::Failed,
                Some("answered 410 Gone: the endpoint is disabled".to_owned()),
            ),
            Answer::Failed { error, .. } if retry_in.is_some() => {
                (DeliveryStatus::Retrying, Some(error.clone()))
            }
            Answer::Failed { error, .. } => (DeliveryStatus::Failed, Some(error.clone())),
        };
        self.store
            .record_attempt(&AttemptRecord {
                tenant: event.tenant.clone(),
                endpoint_id: endpoint.id.clone(),
                event_id: event.id.clone(),
                event_type: event.event_type,
                status,
                attempt: Attempt {
                    attempt: delivery.attempt,
                    at,
                    status_code,
                    error,
                    latency_ms,
                },
                next_attempt_at: retry_in.map(|wait| now + wait),
            })
            .await?;
        tracing::info!(event = %event.id, endpoint = %endpoint.id, attempt = delivery.attempt, ?status, ?status_code, latency_ms, "webhook attempt");
        if endpoint.enabled {
            self.follow_health(endpoint, &answer, now).await?;
        }
        if let Some(wait) = retry_in {
            let retry = DeliveryMessage {
                endpoint_id: delivery.endpoint_id.clone(),
                attempt: delivery.attempt + 1,
                event: event.clone(),
                not_before: Some(now + wait),
            };
            self.send_later(&retry, wait).await?;
        }
        Ok(())
    }

    /// POSTs the event, signed; the answer and its status code (none when not reached).
    async fn post(
        &self,
        endpoint: &WebhookEndpoint,
        delivery: &DeliveryMessage,
        now: time::OffsetDateTime,
    ) -> Result<(Answer, Option<u16>)> {
        if let Err(error) = outbound::check_saved("url", &endpoint.url, self.settings.policy).await
        {
            return Ok((
                Answer::Failed {
                    error: format!("not sent: {}", error.public_message()),
                    retry_after: None,
                },
                None,
            ));
        }
        let body = serde_json::to_vec(&delivery.event).map_err(Error::internal)?;
        let secrets = endpoint.signing_secrets(now);
        let mut request = self
            .http
            .post(&endpoint.url)
            .header("content-type", "application/json");
        for (name, value) in
            signing::headers(&secrets, &delivery.event.id, now.unix_timestamp(), &body)
        {
            request = request.header(name, value);
        }
        Ok(match request.body(body).send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                let retry_after = response
                    .headers()
                    .get("retry-after")
                    .and_then(|value| value.to_str().ok())
                    .map(str::to_owned);
                let text = capped_text(response, MAX_ANSWER_BYTES).await;
                (
                    classify(status, retry_after.as_deref(), &text),
                    Some(status),
                )
            }
            Err(error) => {
                let error = if error.is_timeout() {
                    "timed out".to_owned()
                } else {
                    format!("unreachable: {}", root_cause(&error))
                };
                (
                    Answer::Failed {
                        error,
                        retry_after: None,
                    },
                    None,
                )
            }
        })
    }

    /// Writes the endpoint's new health after `answer` (a failing streak started or ended, or
    /// disabled), re-reading it if it changed meanwhile.
    async fn follow_health(
        &self,
        mut endpoint: WebhookEndpoint,
        answer: &Answer,
        now: time::OffsetDateTime,
    ) -> Result<()> {
        for _ in 0..5 {
            let Some(next) = endpoint.after(answer, now) else {
                return Ok(());
            };
            if self.store.replace_endpoint(endpoint.version, &next).await? == Replaced::Done {
                if !next.enabled {
                    tracing::warn!(endpoint = %next.id, reason = ?next.disabled_reason, "webhook endpoint disabled");
                }
                return Ok(());
            }
            match self
                .store
                .get_endpoint(&endpoint.tenant, &endpoint.id)
                .await?
            {
                Some(current) => endpoint = current,
                None => return Ok(()),
            }
        }
        Err(Error::unavailable("the endpoint kept changing"))
    }
}

/// The innermost error: "connection refused" rather than "error sending request".
fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = error;
    while let Some(source) = cause.source() {
        cause = source;
    }
    cause.to_string()
}
