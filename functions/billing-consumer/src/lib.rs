//! The billing consumer (seed 000's callback): each SQS message names a `pending` reward; it is
//! POSTed to its tenant's billing endpoint (`billing_url`, else `BILLING_CALLBACK_URL`) as JSON
//! with `Idempotency-Key: <reward id>` and a timestamped HMAC-SHA256 signature per live secret of
//! that endpoint (`X-Referral-Signature`, and the Standard Webhooks headers with `webhook-id: <reward
//! id>`) (the tenant's, during a rotation both; else `BILLING_SIGNING_SECRET`). 2xx marks the reward `credited`; 408, 429, 5xx and timeouts are
//! reported as batch item failures (SQS retries, then moves the message to the dead-letter queue,
//! and the last attempt marks the reward `failed`); any other answer marks it `failed` at once.
//! Messages of one batch are delivered concurrently.
//!
//! Redirects are not followed (a 3xx refuses the credit) and at most 4 KiB of an answer is read.
//! A tenant's URL must be https to a public address, checked again before each delivery and by
//! the resolver at connection time (unless `ALLOW_PRIVATE_URLS` is set for development); a URL
//! that breaks the rule refuses the credit with the reason.
//!
//! Per message: 1 `UpdateItem` (claim) + the tenant (1 `GetItem` per tenant and container per
//! `CREDENTIAL_CACHE_SECONDS`) + the callback + 1 `UpdateItem` (credited or failed).

use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use referral::delivery::billing::{
    self, CreditMessage, IDEMPOTENCY_HEADER, SIGNATURE_HEADER, Verdict,
};
use referral::delivery::http_client::capped_text;
use referral::delivery::signing;
use referral::delivery::sqs::{self, Done};
use referral::error::{Error, Result};
use referral::outbound::{self, Policy};
use referral::store::cache::TenantDirectory;
use referral::store::{BillingStore, Claim, TenantStore};

/// The consumer's configuration (environment variables).
#[derive(Clone, Debug)]
pub struct Settings {
    /// `BILLING_CALLBACK_URL`: the endpoint of tenants without a `billing_url` of their own; may
    /// contain `{user_id}`.
    pub callback_url: Option<String>,
    /// `BILLING_SIGNING_SECRET`: the secret of that default endpoint.
    pub signing_secret: Option<referral::config::Secret>,
    /// `ALLOW_PRIVATE_URLS` (development): http and private addresses allowed.
    pub policy: Policy,
    /// `CREDENTIAL_CACHE_SECONDS` (default 30): how long a tenant's settings are kept.
    pub tenant_cache: Duration,
    /// `BILLING_TIMEOUT_MS` (default 5000): the whole callback, connecting included.
    pub timeout: Duration,
    /// `MAX_RECEIVE_COUNT` (default 5): the queue's redrive limit; the attempt that reaches it
    /// marks the reward `failed`.
    pub max_receive_count: u32,
}

impl Settings {
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let number = |name: &str, default: u64| -> Result<u64> {
            get(name).map_or(Ok(default), |v| {
                v.parse()
                    .map_err(|_| Error::internal(format!("configuration: {name} is not a number")))
            })
        };
        let callback_url = get("BILLING_CALLBACK_URL");
        let signing_secret = get("BILLING_SIGNING_SECRET").map(referral::config::Secret::new);
        if callback_url.is_some() && signing_secret.is_none() {
            return Err(Error::internal(
                "configuration: BILLING_CALLBACK_URL is set without BILLING_SIGNING_SECRET",
            ));
        }
        Ok(Settings {
            callback_url,
            signing_secret,
            policy: Policy {
                allow_private: get("ALLOW_PRIVATE_URLS")
                    .is_some_and(|value| matches!(value.as_str(), "1" | "true" | "yes")),
            },
            tenant_cache: Duration::from_secs(number("CREDENTIAL_CACHE_SECONDS", 30)?),
            timeout: Duration::from_millis(number("BILLING_TIMEOUT_MS", 5000)?),
            max_receive_count: number("MAX_RECEIVE_COUNT", 5)? as u32,
        })
    }
}

pub struct Consumer<S> {
    store: S,
    tenants: TenantDirectory<S>,
    http: reqwest::Client,
    settings: Settings,
}

/// Where a credit goes and what signs it.
struct Endpoint {
    url: String,
    secrets: Vec<String>,
}

impl<S: BillingStore + TenantStore + Clone> Consumer<S> {
    /// Built once per cold start: the HTTP client keeps its connections and TLS set-up.
    pub fn new(store: S, settings: Settings) -> Self {
        // Redirects are not followed: a 3xx is billing's answer (a refusal), never a reason to
        // send the credit somewhere else, or as a GET that books nothing.
        let http = referral::delivery::http_client::client(settings.policy, settings.timeout);
        Consumer {
            tenants: TenantDirectory::new(store.clone(), settings.tenant_cache),
            store,
            http,
            settings,
        }
    }

    /// The tenant's endpoint and its live secrets, else the default endpoint; a refusal (the
    /// reason) when there is none or its URL breaks the outbound rules.
    async fn endpoint(
        &self,
        tenant: &str,
        user_id: &str,
        now: time::OffsetDateTime,
    ) -> Result<std::result::Result<Endpoint, String>> {
        let record = self.tenants.get(tenant).await?;
        let endpoint = match record.as_deref() {
            Some(record) if record.billing_url.is_some() => Endpoint {
                url: record.billing_url.clone().unwrap_or_default(),
                secrets: record
                    .signing_secrets(now)
                    .into_iter()
                    .map(str::to_owned)
                    .collect(),
            },
            _ => match (&self.settings.callback_url, &self.settings.signing_secret) {
                (Some(url), Some(secret)) => Endpoint {
                    url: url.clone(),
                    secrets: vec![secret.expose().to_owned()],
                },
                _ => {
                    return Ok(Err(format!(
                        "the tenant '{tenant}' has no billing_url and no default endpoint is                          configured"
                    )));
                }
            },
        };
        let url = billing::callback_url(&endpoint.url, user_id);
        if let Err(error) = outbound::check_saved("billing_url", &url, self.settings.policy).await {
            return Ok(Err(format!("not delivered: {}", error.public_message())));
        }
        Ok(Ok(Endpoint {
            url,
            secrets: endpoint.secrets,
        }))
    }

    /// Delivers a batch concurrently; answers the ids of the messages to retry.
    pub async fn handle(&self, event: SqsEvent) -> SqsBatchResponse {
        sqs::each(&event, |message| self.deliver(message)).await
    }

    async fn deliver(&self, message: &SqsMessage) -> Done {
        let id = message.message_id.as_deref().unwrap_or("?");
        let Some(credit) = message
            .body
            .as_deref()
            .and_then(|body| serde_json::from_str::<CreditMessage>(body).ok())
        else {
            tracing::error!(
                message_id = id,
                "malformed billing message: retried until it reaches the dead-letter queue"
            );
            return Done::Retry;
        };
        match self.attempt(&credit, receive_count(message)).await {
            Ok(done) => done,
            Err(error) => {
                tracing::error!(message_id = id, reward = %credit.reward_id, %error, "billing delivery failed");
                Done::Retry
            }
        }
    }

    async fn attempt(&self, credit: &CreditMessage, receive_count: u32) -> Result<Done> {
        let now = referral::clock::now();
        let lease = time::Duration::try_from(self.settings.timeout)
            .unwrap_or(time::Duration::SECOND * 5)
            + time::Duration::SECOND * 5;
        let reward = match self
            .store
            .claim(
                &credit.tenant,
                &credit.user_id,
                &credit.reward_id,
                now,
                lease,
            )
            .await?
        {
            Claim::Deliver(reward) => *reward,
            Claim::Settled | Claim::Missing => return Ok(Done::Acknowledge),
            Claim::Busy => return Ok(Done::Retry),
        };
        // The stored reward is the truth: send what it says.
        let body = serde_json::to_vec(&CreditMessage::of(&reward)).map_err(Error::internal)?;
        let endpoint = match self.endpoint(&reward.tenant, &reward.user_id, now).await? {
            Ok(endpoint) => endpoint,
            Err(reason) => {
                self.store.mark_failed(&reward, &reason, now).await?;
                tracing::warn!(reward = %reward.id, %reason, "billing endpoint refused");
                return Ok(Done::Acknowledge);
            }
        };
        let secrets: Vec<&str> = endpoint.secrets.iter().map(String::as_str).collect();
        let signature = billing::sign_all(&secrets, now.unix_timestamp(), &body);
        let mut request = self
            .http
            .post(&endpoint.url)
            .header("content-type", "application/json")
            .header(IDEMPOTENCY_HEADER, &reward.id)
            .header(SIGNATURE_HEADER, signature);
        // The Standard Webhooks signature too (webhook-id: the reward id), so one verifier
        // library serves billing credits and events alike.
        for (name, value) in signing::headers(&secrets, &reward.id, now.unix_timestamp(), &body) {
            request = request.header(name, value);
        }
        let verdict = match request.body(body).send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                billing::classify(status, &capped_text(response, MAX_ANSWER_BYTES).await)
            }
            Err(error) if error.is_timeout() => Verdict::Retry("billing timed out".into()),
            Err(_) => Verdict::Retry("billing unreachable".into()),
        };
        let now = referral::clock::now();
        Ok(match verdict {
            Verdict::Credited => {
                self.store.mark_credited(&reward, now).await?;
                tracing::info!(reward = %reward.id, "credited by billing");
                Done::Acknowledge
            }
            Verdict::Refused(error) => {
                self.store.mark_failed(&reward, &error, now).await?;
                tracing::warn!(reward = %reward.id, %error, "refused by billing");
                Done::Acknowledge
            }
            Verdict::Retry(error) if receive_count >= self.settings.max_receive_count => {
                let error = format!("{error} (attempt {receive_count}, the last)");
                self.store.mark_failed(&reward, &error, now).await?;
                tracing::warn!(reward = %reward.id, %error, "out of retries: to the dead-letter queue");
                Done::Retry
            }
            Verdict::Retry(error) => {
                self.store.record_attempt(&reward, &error).await?;
                tracing::info!(reward = %reward.id, %error, receive_count, "will retry");
                Done::Retry
            }
        })
    }
}

/// At most this much of billing's answer is read (for the error excerpt).
pub const MAX_ANSWER_BYTES: usize = 4096;

/// How often SQS has delivered this message (1 the first time).
fn receive_count(message: &SqsMessage) -> u32 {
    message
        .attributes
        .get("ApproximateReceiveCount")
        .and_then(|count| count.parse().ok())
        .unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_shows_the_signing_secret() {
        let settings = Settings::from_lookup(|name| match name {
            "BILLING_CALLBACK_URL" => Some("https://billing.example.com/{user_id}".into()),
            "BILLING_SIGNING_SECRET" => Some("whisper-0123456789".into()),
            _ => None,
        })
        .unwrap();
        let printed = format!("{settings:?}");
        assert!(!printed.contains("whisper"), "{printed}");
        assert!(printed.contains("billing.example.com"), "{printed}");
    }
}
