//! Delivering events to endpoints: what an endpoint's answer means, the retry schedule (close to
//! the Standard Webhooks one), how an endpoint's health follows its answers, the delivery log,
//! and the requests for deliveries an admin makes (a test, a replay). Pure.

use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

use super::{DisabledReason, FAILING_DISABLES_AFTER, WebhookEndpoint};
use crate::clock::rfc3339;
use crate::domain::event::{Event, EventType};

/// The wait after failed attempt `n` (1-based) is `RETRY_DELAYS[n - 1]`: 5 s, 5 min, 30 min,
/// 2 h, 5 h, 10 h, then daily; the last attempt (the ninth) is about 66 hours after the first,
/// inside the 3 days after which a failing endpoint is disabled.
pub const RETRY_DELAYS: [Duration; 8] = [
    Duration::seconds(5),
    Duration::minutes(5),
    Duration::minutes(30),
    Duration::hours(2),
    Duration::hours(5),
    Duration::hours(10),
    Duration::days(1),
    Duration::days(1),
];
/// Attempts of one delivery, the first included.
pub const MAX_ATTEMPTS: u32 = RETRY_DELAYS.len() as u32 + 1;
/// A `Retry-After` longer than this is not waited for: the schedule's own wait applies.
pub const MAX_RETRY_AFTER: Duration = Duration::days(1);
/// Characters of a failing answer's body kept in the log.
const EXCERPT_CHARS: usize = 200;

/// What one attempt came to.
#[derive(Clone, Debug, PartialEq)]
pub enum Answer {
    /// 2xx.
    Delivered,
    /// `410 Gone`: the endpoint is disabled, nothing is retried.
    Gone,
    /// Anything else (3xx included: redirects are not followed), a time-out or no connection;
    /// `retry_after` from a 429 or 503 that sent one.
    Failed {
        error: String,
        retry_after: Option<Duration>,
    },
}

/// The meaning of an endpoint's answer `status` (with its `Retry-After` header, if any, in
/// seconds; an HTTP date is not honoured) and the start of its body.
pub fn classify(status: u16, retry_after: Option<&str>, body: &str) -> Answer {
    match status {
        200..=299 => Answer::Delivered,
        410 => Answer::Gone,
        _ => {
            let excerpt: String = body.chars().take(EXCERPT_CHARS).collect();
            let retry_after = matches!(status, 429 | 503)
                .then(|| retry_after?.trim().parse::<u32>().ok())
                .flatten()
                .map(|seconds| Duration::seconds(i64::from(seconds)).min(MAX_RETRY_AFTER));
            Answer::Failed {
                error: format!("answered {status}: {excerpt}")
                    .trim_end()
                    .to_owned(),
                retry_after,
            }
        }
    }
}

/// When to try again after failed attempt `attempt` (1-based), or `None` when it was the last.
/// `jitter` (in `[0, 1)`) spreads the wait by ±10 %; `scale` shortens the whole schedule (1 in
/// production; the tests run it a thousand times faster). A `Retry-After` is waited for at
/// least, unscaled.
pub fn next_attempt_in(
    attempt: u32,
    jitter: f64,
    scale: f64,
    retry_after: Option<Duration>,
) -> Option<Duration> {
    let base = *RETRY_DELAYS.get(usize::try_from(attempt).ok()?.checked_sub(1)?)?;
    let spread = 0.9 + 0.2 * jitter.clamp(0.0, 1.0);
    let wait = base * (spread * scale);
    Some(retry_after.map_or(wait, |after| wait.max(after)))
}

impl WebhookEndpoint {
    /// The endpoint after an answer at `now`, if that changes it: a success ends a failing
    /// streak, `410` disables it, a failure starts a streak or, after
    /// [`FAILING_DISABLES_AFTER`] of them, disables it. The change is an event (the stream
    /// tells `webhook_endpoint.disabled`).
    pub fn after(&self, answer: &Answer, now: OffsetDateTime) -> Option<WebhookEndpoint> {
        let mut next = self.clone();
        match answer {
            Answer::Delivered if self.failing_since.is_some() => next.failing_since = None,
            Answer::Gone if self.enabled => {
                next.enabled = false;
                next.disabled_reason = Some(DisabledReason::Gone);
            }
            Answer::Failed { .. } if self.enabled => match self.failing_since {
                None => next.failing_since = Some(now),
                Some(since) if now - since >= FAILING_DISABLES_AFTER => {
                    next.enabled = false;
                    next.disabled_reason = Some(DisabledReason::Failing);
                }
                Some(_) => return None,
            },
            _ => return None,
        }
        next.version += 1;
        next.updated_at = now;
        Some(next)
    }
}

/// Where one event's delivery to one endpoint stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    Succeeded,
    /// Failed so far; `next_attempt_at` says when it is tried again.
    Retrying,
    /// Given up: out of attempts, or the endpoint is gone or disabled.
    Failed,
}

/// One attempt, as the log keeps it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    /// 1-based within its run of the schedule (a replay starts a new run at 1).
    pub attempt: u32,
    #[serde(with = "rfc3339")]
    pub at: OffsetDateTime,
    /// The endpoint's answer; none when it was not reached (time-out, refused address).
    pub status_code: Option<u16>,
    pub error: Option<String>,
    pub latency_ms: u64,
}

/// The log of one event's delivery to one endpoint: every attempt, newest last.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeliveryLog {
    pub endpoint_id: String,
    pub event_id: String,
    pub event_type: EventType,
    pub status: DeliveryStatus,
    pub attempts: Vec<Attempt>,
    #[serde(default, with = "rfc3339::option")]
    pub next_attempt_at: Option<OffsetDateTime>,
    #[serde(with = "rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// One attempt to add to the log of (`endpoint_id`, `event`).
#[derive(Clone, Debug, PartialEq)]
pub struct AttemptRecord {
    pub tenant: String,
    pub endpoint_id: String,
    pub event_id: String,
    pub event_type: EventType,
    pub status: DeliveryStatus,
    pub attempt: Attempt,
    pub next_attempt_at: Option<OffsetDateTime>,
}

/// Deliveries an admin asked for (`POST /v1/webhook-endpoints/{id}/test`, `POST
/// /v1/events/{id}/replay`): written to the table, so that they leave through the outbox like
/// every other event (the request path sends nothing to SQS).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeliveryRequest {
    pub id: String,
    pub tenant: String,
    pub endpoint_ids: Vec<String>,
    pub event: Event,
    #[serde(with = "rfc3339")]
    pub created_at: OffsetDateTime,
}

/// The answer to a test or a replay: what will be delivered where.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DeliveryRequested {
    pub event_id: String,
    pub event_type: EventType,
    pub endpoint_ids: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn answers_mean_what_the_standard_says() {
        assert_eq!(classify(204, None, ""), Answer::Delivered);
        assert_eq!(classify(410, None, "bye"), Answer::Gone);
        assert_eq!(
            classify(503, Some("120"), "busy"),
            Answer::Failed {
                error: "answered 503: busy".into(),
                retry_after: Some(Duration::seconds(120))
            }
        );
        // Retry-After counts on 429 and 503 only, capped at a day; dates are not honoured.
        assert!(matches!(
            classify(500, Some("120"), ""),
            Answer::Failed {
                retry_after: None,
                ..
            }
        ));
        assert!(matches!(
            classify(429, Some("999999"), ""),
            Answer::Failed { retry_after: Some(after), .. } if after == MAX_RETRY_AFTER
        ));
        assert!(matches!(
            classify(429, Some("Wed, 21 Oct 2026 07:28:00 GMT"), ""),
            Answer::Failed {
                retry_after: None,
                ..
            }
        ));
        // A redirect is a failure: it is never followed.
        assert!(matches!(classify(301, None, ""), Answer::Failed { .. }));
        let long = "x".repeat(1000);
        let Answer::Failed { error, .. } = classify(400, None, &long) else {
            panic!()
        };
        assert_eq!(error.len(), "answered 400: ".len() + 200);
    }

    #[test]
    fn the_schedule_spreads_retries_over_almost_three_days() {
        let waits: Vec<Duration> = (1..MAX_ATTEMPTS)
            .map(|attempt| next_attempt_in(attempt, 0.5, 1.0, None).unwrap())
            .collect();
        assert_eq!(waits[0], Duration::seconds(5));
        assert_eq!(waits[1], Duration::minutes(5));
        assert_eq!(waits[6], Duration::days(1));
        let total: Duration = waits.iter().copied().sum();
        assert!(total > Duration::hours(60) && total < FAILING_DISABLES_AFTER);
        assert_eq!(next_attempt_in(MAX_ATTEMPTS, 0.5, 1.0, None), None);
        assert_eq!(next_attempt_in(0, 0.5, 1.0, None), None);
        // Jitter: ±10 %.
        assert_eq!(
            next_attempt_in(2, 0.0, 1.0, None),
            Some(Duration::seconds(270))
        );
        assert_eq!(
            next_attempt_in(2, 1.0, 1.0, None),
            Some(Duration::seconds(330))
        );
        // Scaled for tests; a Retry-After is a floor.
        assert_eq!(
            next_attempt_in(1, 0.5, 0.001, None),
            Some(Duration::milliseconds(5))
        );
        assert_eq!(
            next_attempt_in(1, 0.5, 1.0, Some(Duration::minutes(1))),
            Some(Duration::minutes(1))
        );
        assert_eq!(
            next_attempt_in(3, 0.5, 1.0, Some(Duration::minutes(1))),
            Some(Duration::minutes(30))
        );
    }

    #[test]
    fn an_endpoint_is_disabled_by_410_or_by_three_days_of_failures_and_healed_by_a_success() {
        let start = datetime!(2026-11-24 10:00 UTC);
        let endpoint = WebhookEndpoint {
            id: "E1".into(),
            tenant: "acme".into(),
            url: "https://hooks.example.com".into(),
            description: None,
            event_types: Vec::new(),
            enabled: true,
            disabled_reason: None,
            secrets: Vec::new(),
            failing_since: None,
            created_at: start,
            updated_at: start,
            version: 1,
        };
        assert_eq!(endpoint.after(&Answer::Delivered, start), None);
        let failed = Answer::Failed {
            error: "answered 500".into(),
            retry_after: None,
        };
        let failing = endpoint.after(&failed, start).unwrap();
        assert_eq!((failing.failing_since, failing.version), (Some(start), 2));
        assert_eq!(failing.after(&failed, start + Duration::days(2)), None);
        let disabled = failing.after(&failed, start + Duration::days(3)).unwrap();
        assert!(!disabled.enabled && disabled.disabled_by_engine());
        assert_eq!(disabled.disabled_reason, Some(DisabledReason::Failing));
        assert_eq!(disabled.after(&failed, start + Duration::days(4)), None);
        let healed = failing.after(&Answer::Delivered, start).unwrap();
        assert_eq!(healed.failing_since, None);
        let gone = endpoint.after(&Answer::Gone, start).unwrap();
        assert_eq!(
            (gone.enabled, gone.disabled_reason),
            (false, Some(DisabledReason::Gone))
        );
    }
}
