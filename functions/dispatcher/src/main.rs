//! The dispatcher Lambda: the store and both queue producers are built once per cold start.

use aws_lambda_events::event::dynamodb::Event;
use lambda_runtime::{LambdaEvent, service_fn};
use referral::delivery::outbox::Outbox;
use referral::delivery::queue::Queue;
use referral::store::DynamoStore;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    referral::telemetry::init();
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let table = env("TABLE_NAME").ok_or("configuration: TABLE_NAME is not set")?;
    let billing = env("QUEUE_URL").ok_or("configuration: QUEUE_URL is not set")?;
    let webhooks = env("WEBHOOK_QUEUE_URL").ok_or("configuration: WEBHOOK_QUEUE_URL is not set")?;
    let sdk = referral::config::aws().await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let outbox = Outbox::new(
        DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), &table),
        Queue::new(sqs.clone(), &billing),
        Queue::new(sqs, &webhooks),
    );
    let outbox = &outbox;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Event>| async move {
        Ok::<_, lambda_runtime::Error>(dispatcher::handle(outbox, event.payload).await)
    }))
    .await
}
