//! The DynamoDB adapter of the store port. Every key it reads or writes comes from
//! [`crate::store::dynamo::keys`]; uniqueness and concurrency rules are DynamoDB conditions and transactions.

use std::collections::HashMap;
use std::sync::Arc;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Delete, KeysAndAttributes, Put, TransactWriteItem};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::backoff::Backoff;
use crate::error::{Error, Result};
use keys::Key;

type Item = HashMap<String, AttributeValue>;

/// The single-table store. Cheap to clone; build it once per cold start.
#[derive(Clone, Debug)]
pub struct DynamoStore {
    client: Client,
    table: Arc<str>,
}

impl DynamoStore {
    pub fn new(client: Client, table: &str) -> Self {
        DynamoStore {
            client,
            table: table.into(),
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// A `Put` of `item` that succeeds only if no item has its key yet.
    fn put_new(&self, item: Item) -> Result<TransactWriteItem> {
        let put = Put::builder()
            .table_name(self.table.as_ref())
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", keys::PK)
            .build()
            .map_err(Error::internal)?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// A `Put` of `item` whatever is stored (last write wins).
    fn put_any(&self, item: Item) -> Result<TransactWriteItem> {
        let put = Put::builder()
            .table_name(self.table.as_ref())
            .set_item(Some(item))
            .build()
            .map_err(Error::internal)?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// Items by key, those that exist, through `BatchGetItem`: a hundred keys a call, and the
    /// keys DynamoDB leaves unprocessed under load asked again.
    async fn batch_get(&self, keys: Vec<Item>, consistent: bool) -> Result<Vec<Item>> {
        let mut found = Vec::new();
        let table = self.table.to_string();
        for chunk in keys.chunks(100) {
            let mut pending = Some(
                KeysAndAttributes::builder()
                    .set_keys(Some(chunk.to_vec()))
                    .consistent_read(consistent)
                    .build()
                    .map_err(Error::internal)?,
            );
            while let Some(request) = pending.take() {
                if request.keys().is_empty() {
                    break;
                }
                let output = self
                    .client
                    .batch_get_item()
                    .set_request_items(Some(HashMap::from([(table.clone(), request)])))
                    .send()
                    .await
                    .map_err(|error| sdk_error("BatchGetItem", error))?;
                if let Some(mut responses) = output.responses
                    && let Some(items) = responses.remove(&table)
                {
                    found.extend(items);
                }
                pending = output
                    .unprocessed_keys
                    .and_then(|mut unprocessed| unprocessed.remove(&table));
            }
        }
        Ok(found)
    }

    /// The items of a GSI2 partition whose sort key sorts before `before`, oldest first, at
    /// most `limit`: one `Query` (the reconciler's work lists).
    async fn gsi2_before(&self, partition: &str, before: &str, limit: usize) -> Result<Vec<Item>> {
        let output = self
            .client
            .query()
            .table_name(self.table.as_ref())
            .index_name(keys::GSI2)
            .key_condition_expression("#pk = :pk AND #sk < :before")
            .expression_attribute_names("#pk", keys::GSI2PK)
            .expression_attribute_names("#sk", keys::GSI2SK)
            .expression_attribute_values(":pk", string(partition))
            .expression_attribute_values(":before", string(before))
            .limit(i32::try_from(limit).unwrap_or(i32::MAX))
            .send()
            .await
            .map_err(|error| sdk_error("Query", error))?;
        Ok(output.items.unwrap_or_default())
    }

    /// A `Put` of `item` that succeeds only if the stored item has version `expected`.
    fn put_versioned(&self, item: Item, expected: u64) -> Result<Put> {
        Put::builder()
            .table_name(self.table.as_ref())
            .set_item(Some(item))
            .condition_expression("#version = :expected")
            .expression_attribute_names("#version", "version")
            .expression_attribute_values(":expected", number(expected))
            .build()
            .map_err(Error::internal)
    }

    /// Runs one `Put` on its own (half the cost of a one-action transaction); `false` when its
    /// condition failed.
    async fn put(&self, put: Put) -> Result<bool> {
        let result = self
            .client
            .put_item()
            .table_name(put.table_name)
            .set_item(Some(put.item))
            .set_condition_expression(put.condition_expression)
            .set_expression_attribute_names(put.expression_attribute_names)
            .set_expression_attribute_values(put.expression_attribute_values)
            .send()
            .await;
        Ok(conditional("PutItem", result)?.is_some())
    }

    /// A `Delete` of the guard `key`, only while it still belongs to `owner_id`.
    fn delete_guard(&self, key: &Key, owner_id: &str) -> Result<TransactWriteItem> {
        let delete = Delete::builder()
            .table_name(self.table.as_ref())
            .set_key(Some(key_item(key)))
            .condition_expression("#owner = :owner")
            .expression_attribute_names("#owner", "owner_id")
            .expression_attribute_values(":owner", string(owner_id))
            .build()
            .map_err(Error::internal)?;
        Ok(TransactWriteItem::builder().delete(delete).build())
    }

    /// Every item of a GSI1 partition whose sort key satisfies `sort` (`None`: all; an operator
    /// such as `=` or `>=`, or `begins_with`), following pages until the end; newest first when
    /// `descending`.
    async fn query_gsi1(
        &self,
        partition: &str,
        sort: Option<(&str, &str)>,
        descending: bool,
    ) -> Result<Vec<Item>> {
        self.query_index(
            (keys::GSI1, keys::GSI1PK, keys::GSI1SK),
            partition,
            sort,
            descending,
        )
        .await
    }

    /// Every item of a partition of `index` (name, key attributes) whose sort key satisfies
    /// `sort` (`None`: all), following pages; newest first when `descending`.
    async fn query_index(
        &self,
        (index, pk_attribute, sk_attribute): (&str, &str, &str),
        partition: &str,
        sort: Option<(&str, &str)>,
        descending: bool,
    ) -> Result<Vec<Item>> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let mut query = self
                .client
                .query()
                .table_name(self.table.as_ref())
                .index_name(index)
                .expression_attribute_names("#pk", pk_attribute)
                .expression_attribute_values(":pk", string(partition))
                .scan_index_forward(!descending)
                .set_exclusive_start_key(start);
            query = match sort {
                Some(("begins_with", value)) => query
                    .key_condition_expression("#pk = :pk AND begins_with(#sk, :sk)")
                    .expression_attribute_names("#sk", sk_attribute)
                    .expression_attribute_values(":sk", string(value)),
                Some((operator, value)) => query
                    .key_condition_expression(format!("#pk = :pk AND #sk {operator} :sk"))
                    .expression_attribute_names("#sk", sk_attribute)
                    .expression_attribute_values(":sk", string(value)),
                None => query.key_condition_expression("#pk = :pk"),
            };
            let output = query
                .send()
                .await
                .map_err(|error| sdk_error("Query", error))?;
            items.extend(output.items.unwrap_or_default());
            match output.last_evaluated_key {
                Some(key) => start = Some(key),
                None => return Ok(items),
            }
        }
    }

    /// Every item of a table partition whose sort key begins with `prefix` (every item when it
    /// is empty), following pages; `filter` narrows them (expression, with `:f…` values).
    async fn query_prefix(
        &self,
        partition: &str,
        prefix: &str,
        filter: Option<Filter<'_>>,
    ) -> Result<Vec<Item>> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let mut query = self
                .client
                .query()
                .table_name(self.table.as_ref())
                .expression_attribute_names("#pk", keys::PK)
                .expression_attribute_values(":pk", string(partition))
                .consistent_read(true)
                .set_exclusive_start_key(start);
            query = if prefix.is_empty() {
                query.key_condition_expression("#pk = :pk")
            } else {
                query
                    .key_condition_expression("#pk = :pk AND begins_with(#sk, :prefix)")
                    .expression_attribute_names("#sk", keys::SK)
                    .expression_attribute_values(":prefix", string(prefix))
            };
            if let Some(filter) = &filter {
                query = query.filter_expression(filter.expression);
                for (placeholder, name) in &filter.names {
                    query = query.expression_attribute_names(*placeholder, *name);
                }
                for (placeholder, value) in &filter.values {
                    query = query.expression_attribute_values(*placeholder, value.clone());
                }
            }
            let output = query
                .send()
                .await
                .map_err(|error| sdk_error("Query", error))?;
            items.extend(output.items.unwrap_or_default());
            match output.last_evaluated_key {
                Some(key) => start = Some(key),
                None => return Ok(items),
            }
        }
    }

    /// One page of a partition, of the table (`index: None`) or of an index (`Some((name,
    /// partition attribute, sort attribute))`), sort keys beginning with `prefix` if given. It asks one item more
    /// than the page holds, so a cursor (`cursor_of` the last item) exists only when more follow.
    #[allow(clippy::too_many_arguments)]
    async fn query_page<T: DeserializeOwned>(
        &self,
        index: Option<(&str, &str, &str)>,
        partition: &str,
        prefix: Option<&str>,
        descending: bool,
        page: &crate::page::PageRequest,
        start: Option<Item>,
        cursor_of: impl Fn(&T) -> String,
    ) -> Result<crate::page::Page<T>> {
        let mut query = self
            .client
            .query()
            .table_name(self.table.as_ref())
            .set_index_name(index.map(|(name, _, _)| name.to_owned()))
            .expression_attribute_names("#pk", index.map_or(keys::PK, |(_, pk, _)| pk))
            .expression_attribute_values(":pk", string(partition))
            .scan_index_forward(!descending)
            // The table's own partitions are read strongly consistent (an index cannot be).
            .consistent_read(index.is_none())
            .limit(i32::try_from(page.limit + 1).unwrap_or(i32::MAX))
            .set_exclusive_start_key(start);
        query = match prefix {
            Some(prefix) => query
                .key_condition_expression("#pk = :pk AND begins_with(#sk, :prefix)")
                .expression_attribute_names("#sk", index.map_or(keys::SK, |(_, _, sk)| sk))
                .expression_attribute_values(":prefix", string(prefix)),
            None => query.key_condition_expression("#pk = :pk"),
        };
        let output = query
            .send()
            .await
            .map_err(|error| sdk_error("Query", error))?;
        let mut items: Vec<T> = output
            .items
            .unwrap_or_default()
            .into_iter()
            .map(from_item)
            .collect::<Result<_>>()?;
        let next_cursor = (items.len() > page.limit).then(|| {
            items.truncate(page.limit);
            encode_cursor(&cursor_of(&items[page.limit - 1]))
        });
        Ok(crate::page::Page { items, next_cursor })
    }

    /// A strongly consistent read of one item.
    async fn get(&self, key: &Key) -> Result<Option<Item>> {
        self.client
            .get_item()
            .table_name(self.table.as_ref())
            .set_key(Some(key_item(key)))
            .consistent_read(true)
            .send()
            .await
            .map(|output| output.item)
            .map_err(|error| sdk_error("GetItem", error))
    }

    /// Runs one `TransactWriteItems`. Each attempt carries a `ClientRequestToken` of its own, so
    /// the SDK's retry of an attempt whose answer was lost is recognised by DynamoDB (the same
    /// outcome, nothing written twice). A cancellation caused only by a concurrent transaction
    /// (`TransactionConflict`) is sent again after a jittered pause: its conditions still guard
    /// what it writes, so a resend either commits or fails a condition. Past the budget: 503.
    async fn transact(&self, actions: Vec<TransactWriteItem>) -> Result<Outcome> {
        let mut backoff = Backoff::within(TRANSACTION_CONFLICT_BUDGET);
        let mut token = crate::id::new_id();
        loop {
            let result = self
                .client
                .transact_write_items()
                .set_transact_items(Some(actions.clone()))
                .client_request_token(&token)
                .send()
                .await;
            match result {
                Ok(_) => return Ok(Outcome::Written),
                Err(error) => match cancellation(error)? {
                    Cancelled::Conditions(failed) => return Ok(Outcome::ConditionsFailed(failed)),
                    Cancelled::Conflict => {
                        backoff.wait().await?;
                        token = crate::id::new_id();
                    }
                    // The attempt with this token is still running: ask again with the same
                    // token, which answers its outcome.
                    Cancelled::InProgress => backoff.wait().await?,
                },
            }
        }
    }
}

/// How long one transaction is resent while concurrent transactions hold its items.
const TRANSACTION_CONFLICT_BUDGET: std::time::Duration = std::time::Duration::from_millis(1500);

/// A filter on the items a query reads.
struct Filter<'a> {
    expression: &'a str,
    names: Vec<(&'a str, &'a str)>,
    values: Vec<(&'a str, AttributeValue)>,
}

/// How a transaction ended.
enum Outcome {
    Written,
    /// Cancelled: for each action in order, whether its condition failed.
    ConditionsFailed(Vec<bool>),
}

/// Why a `TransactWriteItems` was cancelled.
enum Cancelled {
    /// For each action in order, whether its condition failed.
    Conditions(Vec<bool>),
    /// A concurrent transaction held an item: nothing was written; send it again.
    Conflict,
    /// An attempt with the same token is still running.
    InProgress,
}

/// Reads the cancellation reasons of a failed `TransactWriteItems`; any other failure is an
/// error (503 when transient).
fn cancellation(error: SdkError<TransactWriteItemsError>) -> Result<Cancelled> {
    if let Some(service) = error.as_service_error() {
        match service {
            TransactWriteItemsError::TransactionCanceledException(cancelled) => {
                let reasons = cancelled.cancellation_reasons();
                let failed: Vec<bool> = reasons
                    .iter()
                    .map(|reason| reason.code() == Some("ConditionalCheckFailed"))
                    .collect();
                if failed.iter().any(|failed| *failed) {
                    return Ok(Cancelled::Conditions(failed));
                }
                if reasons.iter().any(|reason| {
                    matches!(
                        reason.code(),
                        Some(
                            "TransactionConflict"
                                | "ThrottlingError"
                                | "ProvisionedThroughputExceeded"
                        )
                    )
                }) {
                    return Ok(Cancelled::Conflict);
                }
            }
            TransactWriteItemsError::TransactionInProgressException(_) => {
                return Ok(Cancelled::InProgress);
            }
            _ => {}
        }
    }
    Err(sdk_error("TransactWriteItems", error))
}

/// The outcome of a conditional write: `Some(output)`, or `None` when its condition failed.
fn conditional<T, E>(
    operation: &str,
    result: std::result::Result<T, SdkError<E>>,
) -> Result<Option<T>>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match result {
        Ok(output) => Ok(Some(output)),
        Err(error)
            if error.as_service_error().and_then(|e| e.code())
                == Some("ConditionalCheckFailedException") =>
        {
            Ok(None)
        }
        Err(error) => Err(sdk_error(operation, error)),
    }
}

/// A failed call as an error: 503 `unavailable` when it is transient (throttling, an outage, a
/// time-out, a connection that failed, contention with a transaction), else 500. The SDK has
/// already retried the transient ones with its own backoff.
fn sdk_error<E>(operation: &str, error: SdkError<E>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let transient = match &error {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) => true,
        SdkError::ResponseError(response) => response.raw().status().is_server_error(),
        SdkError::ServiceError(service) => {
            service.raw().status().is_server_error()
                || matches!(
                    service.err().code(),
                    Some(
                        "ThrottlingException"
                            | "ProvisionedThroughputExceededException"
                            | "RequestLimitExceeded"
                            | "InternalServerError"
                            | "ServiceUnavailable"
                            | "TransactionConflictException"
                            | "TransactionInProgressException"
                            | "ReplicatedWriteConflictException"
                    )
                )
        }
        _ => false,
    };
    let context = format!("{operation}: {}", DisplayErrorContext(&error));
    if transient {
        Error::unavailable(context)
    } else {
        Error::internal(context)
    }
}

fn string(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn number(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// Where an index page starts: the table key of the item last read, with its index key.
fn index_start(
    key: &Key,
    (pk_attribute, pk): (&str, &str),
    (sk_attribute, sk): (&str, &str),
) -> Item {
    let mut item = key_item(key);
    item.insert(pk_attribute.to_owned(), string(pk));
    item.insert(sk_attribute.to_owned(), string(sk));
    item
}

fn key_item(key: &Key) -> Item {
    HashMap::from([
        (keys::PK.to_owned(), string(&key.pk)),
        (keys::SK.to_owned(), string(&key.sk)),
    ])
}

/// An entity as an item: its attributes plus its key, `entity_type`, and its GSI1 key if any.
fn entity_item<T: Serialize>(
    entity: &T,
    key: &Key,
    entity_type: &str,
    gsi1: Option<(String, String)>,
) -> Result<Item> {
    let mut item: Item = serde_dynamo::to_item(entity).map_err(Error::internal)?;
    item.extend(key_item(key));
    item.insert(keys::ENTITY_TYPE.to_owned(), string(entity_type));
    if let Some((pk, sk)) = gsi1 {
        item.insert(keys::GSI1PK.to_owned(), string(pk));
        item.insert(keys::GSI1SK.to_owned(), string(sk));
    }
    Ok(item)
}

/// Adds the GSI2 key attributes to an item (the sparse second index).
fn with_gsi2(mut item: Item, (pk, sk): (String, String)) -> Item {
    item.insert(keys::GSI2PK.to_owned(), string(pk));
    item.insert(keys::GSI2SK.to_owned(), string(sk));
    item
}

/// A uniqueness guard: it exists while `owner_id` holds the unique value.
fn guard_item(key: &Key, entity_type: &str, owner_id: &str) -> Item {
    let mut item = key_item(key);
    item.insert(keys::ENTITY_TYPE.to_owned(), string(entity_type));
    item.insert("owner_id".to_owned(), string(owner_id));
    item
}

fn from_item<T: DeserializeOwned>(item: Item) -> Result<T> {
    serde_dynamo::from_item(item).map_err(|error| Error::internal(format!("corrupt item: {error}")))
}

/// Opaque cursor: the sort key of the last item of a page, base64url-encoded. The partition is
/// never in the cursor: it always comes from the caller's token.
fn encode_cursor(sort_key: &str) -> String {
    URL_SAFE_NO_PAD.encode(sort_key)
}

fn invalid_cursor() -> Error {
    Error::invalid("cursor", "is not a cursor this list returned")
}

fn decode_cursor(cursor: &str, expected_prefix: &str) -> Result<String> {
    URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .filter(|sort_key| sort_key.starts_with(expected_prefix))
        .ok_or_else(invalid_cursor)
}

mod billing;
mod codes;
mod invitations;
pub mod keys;
pub mod outbox;
mod programs;
mod promoters;
mod referrals;
mod tenants;
mod webhooks;

pub use promoters::{referral_item, reward_item};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_foreign_input() {
        let cursor = encode_cursor("PROGRAM#01J00000000000000000000000");
        assert_eq!(
            decode_cursor(&cursor, "PROGRAM#").unwrap(),
            "PROGRAM#01J00000000000000000000000"
        );
        assert!(decode_cursor(&encode_cursor("PROMOTER#x"), "PROGRAM#").is_err());
        assert!(decode_cursor("%%%", "PROGRAM#").is_err());
    }

    #[test]
    fn programs_and_promoters_round_trip_through_items() {
        let input = crate::json::parse(
            br#"{"name": "P", "currency": "USD", "expires_at": "2027-06-30T23:59:59Z",
                "rewards": [{"recipient": "referrer", "trigger": "each_invoice", "kind": "cash",
                "percent": 15.0, "delivery": "payout"}]}"#,
        )
        .unwrap();
        let now = time::macros::datetime!(2026-11-23 12:00 UTC);
        let program =
            crate::domain::program::Program::create("01J".into(), "acme", &input, now).unwrap();
        let item: Item = serde_dynamo::to_item(&program).unwrap();
        assert_eq!(
            from_item::<crate::domain::program::Program>(item).unwrap(),
            program
        );

        let promoter = crate::domain::promoter::Promoter::new("acme", "u1", "ABCD2345".into(), now);
        let item: Item = serde_dynamo::to_item(&promoter).unwrap();
        assert!(
            item.contains_key("link_clicks"),
            "stats are flat attributes"
        );
        assert_eq!(
            from_item::<crate::domain::promoter::Promoter>(item).unwrap(),
            promoter
        );
    }

    #[test]
    fn entity_items_carry_keys_and_type() {
        let item = guard_item(&keys::program_name("acme", "Spring"), "program_name", "01J");
        assert_eq!(
            item["PK"].as_s().unwrap(),
            "TENANT#acme#PROGRAM_NAME#spring"
        );
        assert_eq!(item["SK"].as_s().unwrap(), "UNIQUE");
        assert_eq!(item["owner_id"].as_s().unwrap(), "01J");
    }
}
