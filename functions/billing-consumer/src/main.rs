//! The billing-consumer Lambda: SQS batches in, partial batch failures out. The store, the HTTP
//! client and the settings are built once per cold start.

use aws_lambda_events::event::sqs::SqsEvent;
use billing_consumer::{Consumer, Settings};
use lambda_runtime::{LambdaEvent, service_fn};
use referral::store::DynamoStore;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    referral::telemetry::init();
    let sdk = referral::config::aws().await;
    // The default endpoint's signing secret from Secrets Manager (BILLING_SIGNING_SECRET_ARN).
    let secrets = referral::config::environment(&sdk, &["BILLING_SIGNING_SECRET"], |name| {
        std::env::var(name).ok()
    })
    .await
    .map_err(|e| e.to_string())?;
    let env = |name: &str| {
        secrets
            .get(name)
            .cloned()
            .or_else(|| std::env::var(name).ok())
    };
    let settings = Settings::from_lookup(env).map_err(|e| e.to_string())?;
    let table = env("TABLE_NAME").ok_or("configuration: TABLE_NAME is not set")?;
    let consumer = Consumer::new(
        DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), &table),
        settings,
    );
    let consumer = &consumer;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        Ok::<_, lambda_runtime::Error>(consumer.handle(event.payload).await)
    }))
    .await
}
