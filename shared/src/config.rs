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
    /// `JWT_SECRET`: HS256 secret bearer tokens are signed with.
    pub jwt_secret: Secret,
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
        Ok(Config {
            table_name: required("TABLE_NAME")?,
            jwt_secret: Secret::new(jwt_secret),
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
