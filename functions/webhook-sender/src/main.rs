//! The webhook-sender Lambda: SQS batches of deliveries in, partial batch failures out. The
//! store, the queue (for retries), the HTTP client and the settings are built once per cold start.

use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{LambdaEvent, service_fn};
use referral::delivery::queue::Queue;
use referral::store::DynamoStore;
use webhook_sender::{Sender, Settings};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    referral::telemetry::init();
    let sdk = referral::config::aws().await;
    let env = |name: &str| std::env::var(name).ok();
    let settings = Settings::from_lookup(env).map_err(|e| e.to_string())?;
    let table = env("TABLE_NAME").ok_or("configuration: TABLE_NAME is not set")?;
    let queue = env("WEBHOOK_QUEUE_URL").ok_or("configuration: WEBHOOK_QUEUE_URL is not set")?;
    let sender = Sender::new(
        DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), &table),
        Queue::new(aws_sdk_sqs::Client::new(&sdk), &queue),
        settings,
    );
    let sender = &sender;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        Ok::<_, lambda_runtime::Error>(sender.handle(event.payload).await)
    }))
    .await
}
