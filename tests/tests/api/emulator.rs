//! The emulator itself behaves like the services it stands for where the engine depends on it.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::http::Method;

use crate::support::Api;

/// A waiting SQS receive (the local billing pump long-polls) must not hold up DynamoDB calls:
/// with one lock held through the wait, every call of `make dev` took 1-3 s. Asserted by order,
/// not by time: a call made while a 2-second receive waits on an empty queue answers first.
#[tokio::test]
async fn a_waiting_receive_does_not_hold_up_other_calls() {
    let api = Api::new().await;
    let sdk = referral::config::aws().await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let url = sqs
        .create_queue()
        .queue_name(format!("idle-{}", api.tenant))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let finished = Arc::new(AtomicUsize::new(0));
    let order = finished.clone();
    let receive = tokio::spawn(async move {
        let output = sqs
            .receive_message()
            .queue_url(url)
            .wait_time_seconds(2)
            .send()
            .await
            .unwrap();
        assert!(output.messages.unwrap_or_default().is_empty());
        order.fetch_add(1, Ordering::SeqCst)
    });
    // Let the receive reach the emulator and start waiting.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let (status, _) = api.admin(Method::GET, "/v1/programs", None).await;
    assert_eq!(status, 200);
    let call_finished = finished.fetch_add(1, Ordering::SeqCst);
    let receive_finished = receive.await.unwrap();
    assert_eq!(
        (call_finished, receive_finished),
        (0, 1),
        "the DynamoDB call answered before the waiting receive"
    );
}

/// A transaction's `Put` of the item `{tenant}#{pk}` / `sk` (tagged with the test's tenant),
/// under `condition` if given.
fn tagged_put(
    api: &Api,
    pk: &str,
    sk: &str,
    condition: Option<&str>,
) -> aws_sdk_dynamodb::types::TransactWriteItem {
    use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};
    let put = Put::builder()
        .table_name(api.store.table())
        .item("PK", AttributeValue::S(format!("{}#{pk}", api.tenant)))
        .item("SK", AttributeValue::S(sk.into()))
        .item("tenant", AttributeValue::S(api.tenant.clone()))
        .set_condition_expression(condition.map(str::to_owned))
        .build()
        .unwrap();
    TransactWriteItem::builder().put(put).build()
}

/// DynamoDB's idempotency of `TransactWriteItems` (moto ignores `ClientRequestToken`): a token
/// seen before answers the first outcome and writes nothing; with other items it is refused.
/// The lost-answer fault means something only because of this.
#[tokio::test]
async fn transactions_honour_client_request_tokens() {
    use aws_sdk_dynamodb::types::TransactWriteItem;

    let api = Api::new().await;
    let client = api.store.client().clone();
    let put = |pk: &str| tagged_put(&api, pk, "TOKEN", Some("attribute_not_exists(PK)"));
    let token = format!("token-{}", api.tenant);
    let send = |item: TransactWriteItem, token: &str| {
        client
            .transact_write_items()
            .transact_items(item)
            .client_request_token(token)
            .send()
    };
    send(put("a"), &token).await.expect("first use");
    send(put("a"), &token)
        .await
        .expect("the same token and items: the first outcome, nothing written again");
    let mismatch = send(put("b"), &token).await.unwrap_err();
    assert_eq!(
        mismatch.into_service_error().meta().code(),
        Some("IdempotentParameterMismatchException")
    );
    let fresh = send(put("a"), &format!("{token}-2")).await.unwrap_err();
    assert!(
        fresh
            .into_service_error()
            .is_transaction_canceled_exception(),
        "a new token runs the transaction again: its condition fails"
    );
}

/// Real DynamoDB streams only what a transaction committed. Stock moto streams the items a
/// cancelled `TransactWriteItems` wrote before its failed condition (the emulator's rollback
/// would stream its undoing too): the outbox would tell events that never happened. A
/// cancelled transaction leaves nothing in the stream; a committed one leaves its writes.
#[tokio::test]
async fn a_cancelled_transaction_leaves_nothing_in_the_stream() {
    use aws_sdk_dynamodb::types::{AttributeValue, ConditionCheck, TransactWriteItem};

    let api = Api::new().await;
    let mut reader = crate::support::tenant_stream(&api).await;
    let client = api.store.client().clone();
    let put = |pk: &str| tagged_put(&api, pk, "STREAM", None);
    let missing = TransactWriteItem::builder()
        .condition_check(
            ConditionCheck::builder()
                .table_name(api.store.table())
                .key("PK", AttributeValue::S(format!("{}#absent", api.tenant)))
                .key("SK", AttributeValue::S("STREAM".into()))
                .condition_expression("attribute_exists(PK)")
                .build()
                .unwrap(),
        )
        .build();
    // An item written, then a condition that fails: cancelled.
    let cancelled = client
        .transact_write_items()
        .transact_items(put("phantom"))
        .transact_items(missing)
        .send()
        .await
        .unwrap_err();
    assert!(
        cancelled
            .into_service_error()
            .is_transaction_canceled_exception()
    );
    client
        .transact_write_items()
        .transact_items(put("real"))
        .send()
        .await
        .unwrap();
    let changes = reader.read().await.unwrap();
    let written: Vec<String> = changes
        .iter()
        .map(|change| {
            let image = change.new.as_ref().expect("an INSERT has a new image");
            assert!(change.old.is_none(), "{change:?}");
            match image.get("PK") {
                Some(serde_dynamo::AttributeValue::S(pk)) => pk.clone(),
                other => panic!("{other:?}"),
            }
        })
        .collect();
    assert_eq!(written, [format!("{}#real", api.tenant)]);
}
