//! The reconciler Lambda, run on a schedule: re-sends rewards left `pending` longer than
//! `RECONCILE_AFTER_SECONDS` (default 900), found through the sparse index of undelivered
//! rewards, never a scan. Clients are built once per cold start.

use lambda_runtime::{LambdaEvent, service_fn};
use referral::delivery::queue::BillingQueue;
use referral::store::DynamoStore;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    referral::telemetry::init();
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let table = env("TABLE_NAME").ok_or("configuration: TABLE_NAME is not set")?;
    let queue_url = env("QUEUE_URL").ok_or("configuration: QUEUE_URL is not set")?;
    let age: i64 = env("RECONCILE_AFTER_SECONDS").map_or(Ok(900), |v| v.parse())?;
    let sdk = referral::config::aws().await;
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), &table);
    let queue = BillingQueue::new(aws_sdk_sqs::Client::new(&sdk), &queue_url);
    let (store, queue) = (&store, &queue);
    lambda_runtime::run(service_fn(
        move |_: LambdaEvent<serde_json::Value>| async move {
            let sent = referral::delivery::reconcile::reconcile(
                store,
                queue,
                time::Duration::seconds(age),
            )
            .await?;
            Ok::<_, lambda_runtime::Error>(serde_json::json!({ "resent": sent }))
        },
    ))
    .await
}
