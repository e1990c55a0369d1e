//! The local stack: every endpoint group's routes in one router (the very routers the Lambda
//! binaries run), the table and queues created with the same shape as `template.yaml`, and dev
//! tokens. Used by the local server (`make dev`) and the integration tests (`make test`).

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, StreamSpecification, StreamViewType,
    TimeToLiveSpecification,
};
use std::collections::HashMap;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use axum::Router;
use referral::http::AppState;
use referral::http::auth::{self, Claims, Role};
use referral::store::dynamo::keys;

pub mod demo;
pub mod stream;

/// Every endpoint group, merged: what `make dev` serves on port 3000.
pub fn routes() -> Router<AppState> {
    Router::new()
        .merge(programs::routes())
        .merge(promoters::routes())
        .merge(codes::routes())
        .merge(referrals::routes())
        .merge(invitations::routes())
        .merge(tenants::routes())
        .merge(webhooks::routes())
        .merge(portal::routes())
}

/// The finished application over `state`.
pub fn app(state: AppState) -> Router {
    referral::http::app(routes(), state).layer(axum::middleware::from_fn(cors))
}

/// CORS as the template's `HttpApi` answers it (`CorsConfiguration`; a test compares them):
/// browsers may call the API from any origin with a bearer token (no cookies, so `*` is safe),
/// preflights included. API Gateway answers preflights itself; this is its stand-in.
pub const CORS_METHODS: [&str; 5] = ["GET", "POST", "PATCH", "DELETE", "OPTIONS"];
pub const CORS_HEADERS: [&str; 4] = [
    "authorization",
    "content-type",
    "idempotency-key",
    "x-device-id",
];
pub const CORS_EXPOSE: [&str; 2] = ["retry-after", "location"];
pub const CORS_MAX_AGE: u32 = 600;

async fn cors(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::http::{HeaderValue, Method, StatusCode, header};
    let preflight = request.method() == Method::OPTIONS
        && request.headers().contains_key(header::ORIGIN)
        && request
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    let mut response = if preflight {
        let mut response = axum::response::Response::new(axum::body::Body::empty());
        *response.status_mut() = StatusCode::NO_CONTENT;
        let headers = response.headers_mut();
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_str(&CORS_METHODS.join(",")).expect("ASCII"),
        );
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_str(&CORS_HEADERS.join(",")).expect("ASCII"),
        );
        headers.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from(CORS_MAX_AGE),
        );
        response
    } else {
        next.run(request).await
    };
    let headers = response.headers_mut();
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    if !preflight {
        headers.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_str(&CORS_EXPOSE.join(",")).expect("ASCII"),
        );
    }
    response
}

/// Receives up to ten messages of `queue` (waiting up to `wait_seconds`), hands them to
/// `handle` as one `SqsEvent`, and deletes the ones it did not report as failures, as Lambda's
/// SQS event source mapping does. Answers how many messages it received.
pub async fn pump<F, Fut>(
    queue: &referral::delivery::queue::Queue,
    wait_seconds: i32,
    handle: F,
) -> Result<usize, aws_sdk_sqs::Error>
where
    F: FnOnce(SqsEvent) -> Fut,
    Fut: std::future::Future<Output = SqsBatchResponse>,
{
    let output = queue
        .client()
        .receive_message()
        .queue_url(queue.url())
        .max_number_of_messages(10)
        .wait_time_seconds(wait_seconds)
        .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
        .send()
        .await?;
    let messages = output.messages.unwrap_or_default();
    if messages.is_empty() {
        return Ok(0);
    }
    let mut event = SqsEvent::default();
    for message in &messages {
        let mut record = SqsMessage::default();
        record.message_id = message.message_id.clone();
        record.receipt_handle = message.receipt_handle.clone();
        record.body = message.body.clone();
        record.attributes = message
            .attributes
            .clone()
            .unwrap_or_default()
            .into_iter()
            .map(|(name, value)| (name.as_str().to_owned(), value))
            .collect::<HashMap<_, _>>();
        record.event_source = Some("aws:sqs".into());
        event.records.push(record);
    }
    let response = handle(event).await;
    for message in &messages {
        let failed = response
            .batch_item_failures
            .iter()
            .any(|f| Some(&f.item_identifier) == message.message_id.as_ref());
        if !failed && let Some(handle) = &message.receipt_handle {
            queue
                .client()
                .delete_message()
                .queue_url(queue.url())
                .receipt_handle(handle)
                .send()
                .await?;
        }
    }
    Ok(messages.len())
}

/// `POST /dev/webhooks/{tenant}`: a webhook receiver for `make dev` that checks each event's
/// Standard Webhooks signature against the live secrets of the tenant's endpoints and logs it.
pub fn dev_webhook_sink(store: referral::store::DynamoStore) -> Router {
    use axum::body::Bytes;
    use axum::extract::{Path, State};
    use axum::http::{HeaderMap, StatusCode};
    use referral::delivery::signing;
    use referral::store::WebhookStore;

    async fn sink(
        State(store): State<referral::store::DynamoStore>,
        Path(tenant): Path<String>,
        headers: HeaderMap,
        body: Bytes,
    ) -> StatusCode {
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        let now = time::OffsetDateTime::now_utc();
        let endpoints = store.webhook_endpoints(&tenant).await.unwrap_or_default();
        let secrets: Vec<&str> = endpoints
            .iter()
            .flat_map(|endpoint| endpoint.signing_secrets(now))
            .collect();
        let id = header(signing::ID_HEADER);
        if !signing::verify(
            &secrets,
            &id,
            &header(signing::TIMESTAMP_HEADER),
            &header(signing::SIGNATURE_HEADER),
            &body,
            now.unix_timestamp(),
        ) {
            tracing::warn!(%tenant, %id, "dev webhooks: bad signature, refused");
            return StatusCode::UNAUTHORIZED;
        }
        tracing::info!(%tenant, %id, event = %String::from_utf8_lossy(&body), "dev webhooks: event received");
        StatusCode::NO_CONTENT
    }
    Router::new()
        .route("/dev/webhooks/{tenant}", axum::routing::post(sink))
        .with_state(store)
}

/// The table's shape. `template.yaml` declares the same (a test compares them).
pub struct TableShape {
    /// (attribute, key type) of the table's primary key.
    pub key: [(&'static str, KeyType); 2],
    /// Global secondary indexes: (name, [(attribute, key type)]), all projecting every attribute.
    pub indexes: &'static [(&'static str, [(&'static str, KeyType); 2])],
    pub ttl_attribute: &'static str,
}

pub const TABLE: TableShape = TableShape {
    key: [(keys::PK, KeyType::Hash), (keys::SK, KeyType::Range)],
    indexes: &[
        (
            keys::GSI1,
            [
                (keys::GSI1PK, KeyType::Hash),
                (keys::GSI1SK, KeyType::Range),
            ],
        ),
        (
            keys::GSI2,
            [
                (keys::GSI2PK, KeyType::Hash),
                (keys::GSI2SK, KeyType::Range),
            ],
        ),
        (
            keys::GSI3,
            [
                (keys::GSI3PK, KeyType::Hash),
                (keys::GSI3SK, KeyType::Range),
            ],
        ),
        (
            keys::BOARD_SIGNUPS,
            [
                (keys::PK, KeyType::Hash),
                (keys::BOARD_SIGNUPS_ATTRIBUTE, KeyType::Range),
            ],
        ),
        (
            keys::BOARD_EARNED,
            [
                (keys::PK, KeyType::Hash),
                (keys::BOARD_EARNED_ATTRIBUTE, KeyType::Range),
            ],
        ),
    ],
    ttl_attribute: keys::TTL,
};

/// The type of a key attribute: the leaderboards' scores are numbers, every other key a string.
pub fn attribute_type(name: &str) -> ScalarAttributeType {
    if name == keys::BOARD_SIGNUPS_ATTRIBUTE || name == keys::BOARD_EARNED_ATTRIBUTE {
        ScalarAttributeType::N
    } else {
        ScalarAttributeType::S
    }
}

/// The billing-credit queue and its dead-letter queue, as in `template.yaml`.
pub const BILLING_QUEUE: &str = "referral-billing-credits";
pub const BILLING_DLQ: &str = "referral-billing-credits-dlq";
pub const MAX_RECEIVE_COUNT: u32 = 5;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn key_schema(key: &[(&str, KeyType); 2]) -> Vec<KeySchemaElement> {
    key.iter()
        .map(|(name, key_type)| {
            KeySchemaElement::builder()
                .attribute_name(*name)
                .key_type(key_type.clone())
                .build()
                .expect("name and key type are set")
        })
        .collect()
}

/// Creates the table (on-demand, `PK`/`SK`, `GSI1`, TTL) unless it exists.
pub async fn ensure_table(client: &aws_sdk_dynamodb::Client, table: &str) -> Result<(), BoxError> {
    let mut attributes: Vec<&str> = TABLE.key.iter().map(|(name, _)| *name).collect();
    for (_, key) in TABLE.indexes {
        // An index may share the table's partition key (the leaderboards do): defined once.
        for (name, _) in key {
            if !attributes.contains(name) {
                attributes.push(name);
            }
        }
    }
    let mut create = client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .set_key_schema(Some(key_schema(&TABLE.key)))
        // The outbox: the dispatcher reads every committed change with both images.
        .stream_specification(
            StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(StreamViewType::NewAndOldImages)
                .build()?,
        );
    for name in attributes {
        create = create.attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(attribute_type(name))
                .build()?,
        );
    }
    for (name, key) in TABLE.indexes {
        create = create.global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(*name)
                .set_key_schema(Some(key_schema(key)))
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::All)
                        .build(),
                )
                .build()?,
        );
    }
    match create.send().await {
        Ok(_) => {}
        Err(error)
            if error
                .as_service_error()
                .is_some_and(|e| e.is_resource_in_use_exception()) =>
        {
            return Ok(());
        }
        Err(error) => return Err(Box::new(error.into_service_error())),
    }
    client
        .update_time_to_live()
        .table_name(table)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .attribute_name(TABLE.ttl_attribute)
                .enabled(true)
                .build()?,
        )
        .send()
        .await
        .map_err(|error| Box::new(error.into_service_error()))?;
    Ok(())
}

/// The queues of `template.yaml`: billing credits and webhook deliveries, each with its
/// dead-letter queue.
pub struct Queues {
    pub billing: String,
    pub webhooks: String,
}

/// The webhook-delivery queue and its dead-letter queue, as in `template.yaml`.
pub const WEBHOOK_QUEUE: &str = "referral-webhook-deliveries";
pub const WEBHOOK_DLQ: &str = "referral-webhook-deliveries-dlq";

/// Creates both queues with their dead-letter queues (redrive after [`MAX_RECEIVE_COUNT`]
/// receives); answers their URLs.
pub async fn ensure_queues(client: &aws_sdk_sqs::Client) -> Result<Queues, BoxError> {
    Ok(Queues {
        billing: ensure_queue(client, BILLING_QUEUE, BILLING_DLQ).await?,
        webhooks: ensure_queue(client, WEBHOOK_QUEUE, WEBHOOK_DLQ).await?,
    })
}

async fn ensure_queue(
    client: &aws_sdk_sqs::Client,
    name: &str,
    dead_letters: &str,
) -> Result<String, BoxError> {
    let dlq_url = client
        .create_queue()
        .queue_name(dead_letters)
        .send()
        .await
        .map_err(|error| Box::new(error.into_service_error()))?
        .queue_url
        .ok_or("CreateQueue returned no URL")?;
    let dlq_arn = client
        .get_queue_attributes()
        .queue_url(&dlq_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|error| Box::new(error.into_service_error()))?
        .attributes
        .and_then(|mut attributes| attributes.remove(&QueueAttributeName::QueueArn))
        .ok_or("GetQueueAttributes returned no QueueArn")?;
    let redrive = serde_json::json!({
        "deadLetterTargetArn": dlq_arn,
        "maxReceiveCount": MAX_RECEIVE_COUNT.to_string(),
    });
    let queue_url = client
        .create_queue()
        .queue_name(name)
        .attributes(QueueAttributeName::RedrivePolicy, redrive.to_string())
        .attributes(QueueAttributeName::VisibilityTimeout, "90")
        .send()
        .await
        .map_err(|error| Box::new(error.into_service_error()))?
        .queue_url
        .ok_or("CreateQueue returned no URL")?;
    Ok(queue_url)
}

/// A token for `user_id` of `tenant` with `role`, valid for `valid_for`.
pub fn token(
    secret: &str,
    tenant: &str,
    user_id: &str,
    role: Role,
    valid_for: time::Duration,
) -> String {
    auth::mint(
        secret,
        &Claims {
            sub: user_id.to_owned(),
            tenant: tenant.to_owned(),
            role,
            exp: (time::OffsetDateTime::now_utc() + valid_for).unix_timestamp(),
        },
    )
}

/// The credentials of a tenant created through the routes (`make dev`'s `acme`).
pub struct DevTenant {
    pub admin_key: String,
    pub service_key: String,
    pub promoter_token: String,
    pub billing_secret: String,
}

impl DevTenant {
    /// Creates `tenant` as an operator would (`POST /v1/tenants`), then a service key
    /// (`POST /v1/api-keys`) and a 24-hour session of `promoter`
    /// (`POST /v1/promoters/{user_id}/sessions`), all through `app`.
    pub async fn create(
        app: &Router,
        operator_key: &str,
        tenant: &str,
        promoter: &str,
        billing_url: &str,
    ) -> Result<DevTenant, BoxError> {
        let created = call(
            app,
            "/v1/tenants",
            operator_key,
            serde_json::json!({
                "id": tenant, "name": format!("{tenant} (dev)"),
                "default_currency": "USD", "billing_url": billing_url,
            }),
        )
        .await?;
        let admin_key = field(&created, &["admin_key", "key"])?;
        let service = call(
            app,
            "/v1/api-keys",
            &admin_key,
            serde_json::json!({"name": "dev backend", "role": "service"}),
        )
        .await?;
        let session = call(
            app,
            &format!("/v1/promoters/{promoter}/sessions"),
            &field(&service, &["key"])?,
            serde_json::json!({"expires_in_seconds": 86_400}),
        )
        .await?;
        Ok(DevTenant {
            service_key: field(&service, &["key"])?,
            promoter_token: field(&session, &["token"])?,
            billing_secret: field(&created, &["billing_secret"])?,
            admin_key,
        })
    }
}

async fn call(
    app: &Router,
    path: &str,
    bearer: &str,
    body: serde_json::Value,
) -> Result<serde_json::Value, BoxError> {
    request(app, axum::http::Method::POST, path, bearer, Some(body)).await
}

/// One call through `app`: a JSON body unless `body` is `None` or null, a bearer unless it is
/// empty. A redirect answers null; any status but 2xx and 3xx is an error.
pub async fn request(
    app: &Router,
    method: axum::http::Method,
    path: &str,
    bearer: &str,
    body: Option<serde_json::Value>,
) -> Result<serde_json::Value, BoxError> {
    use tower::ServiceExt;
    let mut builder = axum::http::Request::builder()
        .method(method.clone())
        .uri(path);
    if !bearer.is_empty() {
        builder = builder.header("authorization", format!("Bearer {bearer}"));
    }
    let body = match body.filter(|body| !body.is_null()) {
        Some(body) => {
            builder = builder.header("content-type", "application/json");
            axum::body::Body::from(body.to_string())
        }
        None => axum::body::Body::empty(),
    };
    let response = app.clone().oneshot(builder.body(body)?).await?;
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await?;
    if status.is_redirection() {
        return Ok(serde_json::Value::Null);
    }
    if !status.is_success() {
        return Err(format!(
            "{method} {path}: {status} {}",
            String::from_utf8_lossy(&bytes)
        )
        .into());
    }
    Ok(serde_json::from_slice(&bytes)?)
}

fn field(value: &serde_json::Value, path: &[&str]) -> Result<String, BoxError> {
    path.iter()
        .try_fold(value, |value, name| value.get(name))
        .and_then(|v| v.as_str())
        .map(str::to_owned)
        .ok_or_else(|| format!("the answer has no {}", path.join(".")).into())
}

/// The local stand-in for Lambda's SQS event source mapping and for a billing system.
pub mod billing {
    use axum::Router;
    use axum::body::Bytes;
    use axum::extract::{Path, State};
    use axum::http::{HeaderMap, StatusCode};
    use axum::routing::post;
    use billing_consumer::Consumer;
    use referral::delivery::billing::{SIGNATURE_HEADER, verify_signature};
    use referral::delivery::queue::BillingQueue;
    use referral::store::{BillingStore, DynamoStore, TenantStore};

    /// One round of Lambda's SQS event source mapping for the billing consumer (see
    /// [`crate::pump`]).
    pub async fn pump<S: BillingStore + referral::store::TenantStore + Clone>(
        queue: &BillingQueue,
        consumer: &Consumer<S>,
        wait_seconds: i32,
    ) -> Result<usize, aws_sdk_sqs::Error> {
        crate::pump(queue, wait_seconds, |event| consumer.handle(event)).await
    }

    /// `POST /dev/billing/{*path}`: a billing system for `make dev` that checks each credit's
    /// signature with its tenant's live secrets (or the default endpoint's secret) and logs it.
    pub fn dev_sink(store: DynamoStore, default_secret: String) -> Router {
        Router::new()
            .route("/dev/billing/{*path}", post(sink))
            .with_state((store, default_secret))
    }

    async fn sink(
        State((store, default_secret)): State<(DynamoStore, String)>,
        Path(path): Path<String>,
        headers: HeaderMap,
        body: Bytes,
    ) -> StatusCode {
        let signature = headers
            .get(SIGNATURE_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let tenant = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|credit| credit.get("tenant")?.as_str().map(str::to_owned))
            .unwrap_or_default();
        let now = time::OffsetDateTime::now_utc();
        let mut secrets = vec![default_secret];
        if let Ok(Some(record)) = store.get_tenant(&tenant).await {
            secrets.extend(record.signing_secrets(now).into_iter().map(str::to_owned));
        }
        let valid = secrets
            .iter()
            .any(|secret| verify_signature(secret, signature, &body, now.unix_timestamp()));
        if !valid {
            tracing::warn!(%path, %tenant, "dev billing: bad signature, refused");
            return StatusCode::UNAUTHORIZED;
        }
        tracing::info!(%path, %tenant, credit = %String::from_utf8_lossy(&body), "dev billing: credit booked");
        StatusCode::OK
    }
}
