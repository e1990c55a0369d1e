//! The reconciler Lambda, run on a schedule: releases rewards whose holding period ended,
//! finishes release jobs (the rewards they release
//! reach billing through the stream, like any change) and re-sends rewards left `pending`, both
//! older than `RECONCILE_AFTER_SECONDS` (default 900), found through sparse indexes, never a
//! scan. Clients are built once per cold start.

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
            let age = time::Duration::seconds(age);
            let due =
                referral::delivery::reconcile::release_due(store, referral::clock::now()).await?;
            let released = referral::delivery::reconcile::resume_release_jobs(store, age).await?;
            let sent = referral::delivery::reconcile::reconcile(store, queue, age).await?;
            Ok::<_, lambda_runtime::Error>(serde_json::json!({
                "due_released": due.len(),
                "released": released.len(),
                "resent": sent,
            }))
        },
    ))
    .await
}
