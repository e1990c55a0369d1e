//! What every endpoint group shares on the HTTP side: the application state (built once per cold
//! start), the extractors that authenticate and parse strictly, the error response, and the
//! finishing of a router (fallbacks, request spans) for Lambda and for the local server alike.

use std::ops::Deref;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

use crate::config::Config;
use crate::delivery::queue::BillingQueue;
use crate::error::{Error, Result};
use crate::store::DynamoStore;

pub mod auth;
pub mod credentials;
mod extract;
mod response;

pub use extract::*;

use auth::Keyring;
use credentials::Authenticator;

/// Everything a handler needs, built once per cold start and shared by every request.
#[derive(Clone)]
pub struct AppState(Arc<Services>);

pub struct Services {
    pub config: Config,
    pub store: DynamoStore,
    /// Who is calling (operator, API key, engine-signed token), with its per-container cache.
    pub auth: Authenticator,
    /// The billing-credit producer, when `QUEUE_URL` is set.
    pub queue: Option<BillingQueue>,
    /// The keys of the IP and device digests the fraud rule `same_device` compares.
    pub fingerprints: crate::domain::referral::fraud::Fingerprints,
}

impl Deref for AppState {
    type Target = Services;

    fn deref(&self) -> &Services {
        &self.0
    }
}

impl AppState {
    /// Loads the AWS configuration (honouring `AWS_ENDPOINT_URL`) and builds the clients.
    pub async fn load(config: Config) -> Self {
        Self::with_sdk(config, &crate::config::aws().await)
    }

    /// The state over clients built from `sdk`.
    pub fn with_sdk(config: Config, sdk: &aws_config::SdkConfig) -> Self {
        let sdk = sdk.clone();
        let sqs = config
            .queue_url
            .as_ref()
            .map(|_| aws_sdk_sqs::Client::new(&sdk));
        Self::new(config, aws_sdk_dynamodb::Client::new(&sdk), sqs)
    }

    /// The state over given clients; the queue exists when `config.queue_url` and `sqs` do.
    pub fn new(
        config: Config,
        dynamodb: aws_sdk_dynamodb::Client,
        sqs: Option<aws_sdk_sqs::Client>,
    ) -> Self {
        let queue = match (&config.queue_url, sqs) {
            (Some(url), Some(client)) => Some(BillingQueue::new(client, url)),
            _ => None,
        };
        let store = DynamoStore::new(dynamodb, &config.table_name);
        // The signing keys sign sessions and, derived, key the fraud rules' fingerprints.
        let previous = config
            .jwt_previous_secret
            .as_ref()
            .map(|secret| secret.expose());
        let keyring = Keyring::new(config.jwt_secret.expose(), previous);
        let fingerprints =
            crate::domain::referral::fraud::Fingerprints::new(config.jwt_secret.expose(), previous);
        AppState(Arc::new(Services {
            fingerprints,
            auth: Authenticator::new(
                keyring,
                config.operator_key.as_ref(),
                store.clone(),
                config.credential_cache,
            ),
            store,
            config,
            queue,
        }))
    }

    /// The rules tenants' outbound URLs obey here.
    pub fn outbound_policy(&self) -> crate::outbound::Policy {
        crate::outbound::Policy {
            allow_private: self.config.allow_private_urls,
        }
    }
}

/// Finishes a router of one or more endpoint groups: JSON 404/405 fallbacks in the error
/// envelope, one span per request (method, route, request id, tenant), then the state.
pub fn app(routes: Router<AppState>, state: AppState) -> Router {
    finish(routes).with_state(state)
}

/// The fallbacks and the request span of [`app`], for a router of any state (the portal's pages
/// need none).
pub fn finish<S: Clone + Send + Sync + 'static>(routes: Router<S>) -> Router<S> {
    routes
        .fallback(|| async { Error::NotFound("no such route".into()) })
        .method_not_allowed_fallback(|| async { Error::MethodNotAllowed })
        .layer(axum::middleware::from_fn(trace_request))
}

async fn trace_request(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let request_id = request
        .extensions()
        .get::<lambda_http::Context>()
        .map(|context| context.request_id.clone())
        .unwrap_or_default();
    let span = tracing::info_span!(
        "request",
        method = %request.method(),
        route,
        request_id,
        tenant = tracing::field::Empty,
    );
    let started = Instant::now();
    let response = next.run(request).instrument(span.clone()).await;
    span.in_scope(|| {
        tracing::info!(
            status = response.status().as_u16(),
            elapsed_us = started.elapsed().as_micros() as u64,
            "handled"
        )
    });
    response
}

/// The whole `main` of an endpoint-group Lambda: logging, configuration and clients once per cold
/// start, then the Lambda runtime loop over the group's router.
///
/// Every function's `main` runs on tokio's current-thread runtime: a Lambda sandbox handles one
/// event at a time, its I/O-bound work (parallel reads, concurrent deliveries) interleaves on one
/// thread, and no worker threads start or hand tasks over (`make bench`: init 1 ms shorter,
/// handler overhead about halved; see BENCHMARKS.md).
pub async fn run_lambda(routes: Router<AppState>) -> Result<(), lambda_http::Error> {
    crate::telemetry::init();
    let sdk = crate::config::aws().await;
    let secrets = crate::config::environment(&sdk, crate::config::HTTP_SECRETS, |name| {
        std::env::var(name).ok()
    })
    .await
    .map_err(|error| error.to_string())?;
    let config = Config::from_lookup(|name| {
        secrets
            .get(name)
            .cloned()
            .or_else(|| std::env::var(name).ok())
    })
    .map_err(|error| error.to_string())?;
    let state = AppState::with_sdk(config, &sdk);
    lambda_http::run(app(routes, state)).await
}
