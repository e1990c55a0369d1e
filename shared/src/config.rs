//! Configuration from the environment: the same variable names locally and in AWS
//! (see the README's configuration table).

use std::time::Duration;

use crate::error::{Error, Result};

/// Attempts of one AWS call, the first included (the SDK's standard retry mode: throttling,
/// 5xx, time-outs and connection failures, with jittered exponential backoff).
pub const AWS_MAX_ATTEMPTS: u32 = 4;
/// The first backoff of the SDK's retries: DynamoDB throttling clears in milliseconds, so the
/// SDK's default of one second would stall requests for nothing.
pub const AWS_INITIAL_BACKOFF: Duration = Duration::from_millis(25);

/// The AWS configuration every function builds its clients from, once per cold start: the
/// default chain (`AWS_ENDPOINT_URL` points it at the emulator locally), with retries tuned for
/// DynamoDB.
pub async fn aws() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .retry_config(
            aws_config::retry::RetryConfig::standard()
                .with_max_attempts(AWS_MAX_ATTEMPTS)
                .with_initial_backoff(AWS_INITIAL_BACKOFF)
                .with_max_backoff(Duration::from_secs(1)),
        )
        .load()
        .await
}

/// The documented secret `make dev` uses when `JWT_SECRET` is not set. Never used in AWS: the
/// SAM template passes a parameter, and [`Config::from_env`] requires the variable.
pub const DEV_JWT_SECRET: &str = "local-dev-secret-do-not-use-in-production";

/// Shortest accepted HS256 secret, in bytes.
pub const MIN_JWT_SECRET_LEN: usize = 16;
/// Shortest accepted operator key, in bytes.
pub const MIN_OPERATOR_KEY_LEN: usize = 24;

/// Secrets read from AWS Secrets Manager when the function has the ARN: (the variable the value
/// stands in for, the variable holding the ARN, the version stage). `JWT_PREVIOUS_SECRET` is the
/// signing secret's previous version: rotating is `put-secret-value`, and tokens signed with the
/// old value keep working.
const SECRETS: [(&str, &str, &str); 4] = [
    ("OPERATOR_KEY", "OPERATOR_KEY_SECRET_ARN", "AWSCURRENT"),
    ("JWT_SECRET", "JWT_SECRET_ARN", "AWSCURRENT"),
    ("JWT_PREVIOUS_SECRET", "JWT_SECRET_ARN", "AWSPREVIOUS"),
    (
        "BILLING_SIGNING_SECRET",
        "BILLING_SIGNING_SECRET_ARN",
        "AWSCURRENT",
    ),
];

/// The secrets an HTTP function reads (the operator key only where its ARN is set: the tenants
/// function).
pub const HTTP_SECRETS: &[&str] = &["OPERATOR_KEY", "JWT_SECRET", "JWT_PREVIOUS_SECRET"];

/// The environment with the secrets among `names` it names by ARN read from Secrets Manager, concurrently, once
/// per cold start (`make bench` and the README give what it costs). A secret the environment
/// sets directly (`make dev`, the tests) is not read. A missing previous version is no error.
pub async fn environment(
    sdk: &aws_config::SdkConfig,
    names: &[&str],
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<std::collections::HashMap<String, String>> {
    let started = std::time::Instant::now();
    let wanted: Vec<(&str, String, &str)> = SECRETS
        .iter()
        .filter(|(name, _, _)| {
            names.contains(name) && lookup(name).is_none_or(|value| value.is_empty())
        })
        .filter_map(|(name, arn, stage)| {
            lookup(arn)
                .filter(|arn| !arn.is_empty())
                .map(|arn| (*name, arn, *stage))
        })
        .collect();
    let mut values = std::collections::HashMap::new();
    if wanted.is_empty() {
        return Ok(values);
    }
    let client = aws_sdk_secretsmanager::Client::new(sdk);
    let reads = wanted.iter().map(|(name, arn, stage)| {
        let client = client.clone();
        async move {
            let result = client
                .get_secret_value()
                .secret_id(arn)
                .version_stage(*stage)
                .send()
                .await;
            (*name, *stage, result)
        }
    });
    for (name, stage, result) in futures::future::join_all(reads).await {
        match result {
            Ok(output) => {
                if let Some(value) = output.secret_string {
                    values.insert(name.to_owned(), value);
                }
            }
            Err(error)
                if stage == "AWSPREVIOUS"
                    && error
                        .as_service_error()
                        .is_some_and(|e| e.is_resource_not_found_exception()) => {}
            Err(error) => {
                return Err(Error::internal(format!(
                    "configuration: reading the secret of {name} failed: {}",
                    aws_sdk_secretsmanager::error::DisplayErrorContext(&error)
                )));
            }
        }
    }
    tracing::info!(
        secrets = wanted.len(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "secrets read from Secrets Manager"
    );
    Ok(values)
}

/// A secret from the configuration: its `Debug` shows no more than its length, so logging a
/// configuration never leaks it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself, for the one place that signs or verifies with it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secret(<{} bytes, redacted>)", self.0.len())
    }
}

#[derive(Clone, Debug)]
pub struct Config {
    /// `TABLE_NAME`: the single DynamoDB table.
    pub table_name: String,
    /// `JWT_SECRET`: the current HS256 key the engine signs tokens (promoter sessions) with.
    pub jwt_secret: Secret,
    /// `JWT_PREVIOUS_SECRET`: the key before it, still accepted after a rotation.
    pub jwt_previous_secret: Option<Secret>,
    /// `OPERATOR_KEY`: the operator's bearer credential (tenant management); unset: no one
    /// manages tenants through this function.
    pub operator_key: Option<Secret>,
    /// `ALLOW_PRIVATE_URLS`: development only; tenants may set http URLs and private addresses.
    pub allow_private_urls: bool,
    /// `CREDENTIAL_CACHE_SECONDS` (default 30): how long a container trusts what it read of an
    /// API key or a tenant; the bound on how late a revocation or suspension takes effect.
    pub credential_cache: Duration,
    /// `QUEUE_URL`: the billing-credit queue (used by the functions that produce rewards).
    pub queue_url: Option<String>,
    /// `PUBLIC_BASE_URL`: base of referral links.
    pub public_base_url: Option<String>,
    /// `LANDING_URL`: where `/r/{code}` redirects.
    pub landing_url: Option<String>,
}

impl Config {
    /// Reads the process environment. `TABLE_NAME` and `JWT_SECRET` are required.
    pub fn from_env() -> Result<Self> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads configuration through `lookup` (the environment, or a map in tests and the local
    /// server). Empty values count as unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let get = |name: &str| lookup(name).filter(|value| !value.trim().is_empty());
        let required = |name: &str| {
            get(name).ok_or_else(|| Error::internal(format!("configuration: {name} is not set")))
        };
        let jwt_secret = required("JWT_SECRET")?;
        if jwt_secret.len() < MIN_JWT_SECRET_LEN {
            return Err(Error::internal(format!(
                "configuration: JWT_SECRET must be at least {MIN_JWT_SECRET_LEN} bytes"
            )));
        }
        let operator_key = get("OPERATOR_KEY");
        if operator_key
            .as_ref()
            .is_some_and(|key| key.len() < MIN_OPERATOR_KEY_LEN)
        {
            return Err(Error::internal(format!(
                "configuration: OPERATOR_KEY must be at least {MIN_OPERATOR_KEY_LEN} bytes"
            )));
        }
        let cache_seconds = get("CREDENTIAL_CACHE_SECONDS").map_or(Ok(30), |value| {
            value.parse::<u64>().map_err(|_| {
                Error::internal("configuration: CREDENTIAL_CACHE_SECONDS is not a number")
            })
        })?;
        Ok(Config {
            table_name: required("TABLE_NAME")?,
            jwt_secret: Secret::new(jwt_secret),
            jwt_previous_secret: get("JWT_PREVIOUS_SECRET").map(Secret::new),
            operator_key: operator_key.map(Secret::new),
            allow_private_urls: get("ALLOW_PRIVATE_URLS")
                .is_some_and(|value| matches!(value.as_str(), "1" | "true" | "yes")),
            credential_cache: Duration::from_secs(cache_seconds),
            queue_url: get("QUEUE_URL"),
            public_base_url: get("PUBLIC_BASE_URL").map(|url| url.trim_end_matches('/').to_owned()),
            landing_url: get("LANDING_URL"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn reads_required_and_optional_values() {
        let config = Config::from_lookup(lookup(&[
            ("TABLE_NAME", "referrals"),
            ("JWT_SECRET", DEV_JWT_SECRET),
            ("PUBLIC_BASE_URL", "https://api.example.com/"),
            ("QUEUE_URL", ""),
        ]))
        .unwrap();
        assert_eq!(config.table_name, "referrals");
        assert_eq!(
            config.public_base_url.as_deref(),
            Some("https://api.example.com")
        );
        assert_eq!(config.queue_url, None);
    }

    #[test]
    fn debug_output_never_shows_secrets() {
        let config = Config::from_lookup(lookup(&[
            ("TABLE_NAME", "referrals"),
            ("JWT_SECRET", "a-very-secret-signing-key-0123456789"),
        ]))
        .unwrap();
        let printed = format!("{config:?}");
        assert!(!printed.contains("a-very-secret"), "{printed}");
        assert!(
            printed.contains("referrals"),
            "the rest is shown: {printed}"
        );
    }

    #[test]
    fn missing_table_or_short_secret_is_refused() {
        assert!(Config::from_lookup(lookup(&[("JWT_SECRET", DEV_JWT_SECRET)])).is_err());
        let short = Config::from_lookup(lookup(&[("TABLE_NAME", "t"), ("JWT_SECRET", "short")]));
        assert!(short.is_err());
    }
}
