//! The local stand-in for Lambda's DynamoDB Streams event source mapping: reads the table's
//! stream on the emulator (one shard there) through the real DynamoDB Streams client, in order,
//! and hands each batch to the outbox dispatcher; a batch the dispatcher fails is handed again,
//! as the mapping retries it.

use aws_sdk_dynamodbstreams::types::{AttributeValue, ShardIteratorType};
use referral::delivery::outbox::{Change, Dispatched, Outbox};
use referral::store::OutboxStore;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A reader of the table's stream, from where it was opened.
pub struct StreamReader {
    client: aws_sdk_dynamodbstreams::Client,
    iterator: Option<String>,
    /// Only changes of this tenant's items (tests share one table).
    tenant: Option<String>,
    /// A batch the dispatcher failed, handed again first.
    retry: Vec<Change>,
    /// The most records one read takes (the mapping's `BatchSize`); `None`: as many as the
    /// stream gives (1000).
    batch_size: Option<i32>,
    /// How many records the last read got, before the tenant filter (0: caught up).
    last_read: usize,
}

impl StreamReader {
    /// Opens the stream of `table` (on `endpoint`, if not the configured one) at its end
    /// (`latest`: only changes made from now on) or at its start.
    pub async fn open(
        sdk: &aws_config::SdkConfig,
        endpoint: Option<&str>,
        table: &str,
        latest: bool,
        tenant: Option<&str>,
    ) -> Result<StreamReader, BoxError> {
        let mut config = aws_sdk_dynamodb::config::Builder::from(sdk);
        if let Some(endpoint) = endpoint {
            config.set_endpoint_url(Some(endpoint.to_owned()));
        }
        let dynamodb = aws_sdk_dynamodb::Client::from_conf(config.build());
        let stream = dynamodb
            .describe_table()
            .table_name(table)
            .send()
            .await?
            .table
            .and_then(|table| table.latest_stream_arn)
            .ok_or("the table has no stream")?;
        let mut config = aws_sdk_dynamodbstreams::config::Builder::from(sdk);
        if let Some(endpoint) = endpoint {
            config.set_endpoint_url(Some(endpoint.to_owned()));
        }
        let client = aws_sdk_dynamodbstreams::Client::from_conf(config.build());
        let shard = client
            .describe_stream()
            .stream_arn(&stream)
            .send()
            .await?
            .stream_description
            .and_then(|description| description.shards)
            .and_then(|shards| shards.into_iter().next())
            .and_then(|shard| shard.shard_id)
            .ok_or("the stream has no shard")?;
        let iterator = client
            .get_shard_iterator()
            .stream_arn(&stream)
            .shard_id(shard)
            .shard_iterator_type(if latest {
                ShardIteratorType::Latest
            } else {
                ShardIteratorType::TrimHorizon
            })
            .send()
            .await?
            .shard_iterator;
        Ok(StreamReader {
            client,
            iterator,
            tenant: tenant.map(str::to_owned),
            retry: Vec::new(),
            batch_size: None,
            last_read: 0,
        })
    }

    /// Reads at most `records` per batch, as a mapping with that `BatchSize`.
    pub fn with_batch_size(mut self, records: i32) -> Self {
        self.batch_size = Some(records);
        self
    }

    /// The changes committed since the last read (of this reader's tenant, if it has one).
    pub async fn read(&mut self) -> Result<Vec<Change>, BoxError> {
        let Some(iterator) = self.iterator.clone() else {
            return Ok(Vec::new());
        };
        let output = self
            .client
            .get_records()
            .shard_iterator(iterator)
            .set_limit(self.batch_size)
            .send()
            .await?;
        self.iterator = output.next_shard_iterator;
        let records = output.records.unwrap_or_default();
        self.last_read = records.len();
        Ok(records
            .into_iter()
            .filter_map(|record| record.dynamodb)
            .map(|record| Change {
                sequence: record.sequence_number.unwrap_or_default(),
                old: record.old_image.map(item),
                new: record.new_image.map(item),
            })
            .filter(|change| match &self.tenant {
                None => true,
                Some(tenant) => [&change.old, &change.new].into_iter().flatten().any(|image| {
                    matches!(image.get("tenant"), Some(serde_dynamo::AttributeValue::S(t)) if t == tenant)
                }),
            })
            .collect())
    }

    /// Reads what is new and dispatches it (with a batch failed before, first); answers what
    /// the dispatcher produced.
    pub async fn pump<S: OutboxStore>(
        &mut self,
        outbox: &Outbox<S>,
    ) -> Result<Dispatched, BoxError> {
        let mut changes = std::mem::take(&mut self.retry);
        changes.extend(self.read().await?);
        if changes.is_empty() {
            return Ok(Dispatched::default());
        }
        match outbox.dispatch(&changes).await {
            Ok(dispatched) => Ok(dispatched),
            Err(error) => {
                self.retry = changes;
                Err(Box::new(error))
            }
        }
    }

    /// Pumps until the stream is read to its end (a batch of changes that tell nothing, or of
    /// other tenants, does not stop it); answers what the dispatcher produced in all.
    pub async fn drain<S: OutboxStore>(
        &mut self,
        outbox: &Outbox<S>,
    ) -> Result<Dispatched, BoxError> {
        let mut total = Dispatched::default();
        loop {
            let dispatched = self.pump(outbox).await?;
            total.events += dispatched.events;
            total.credits += dispatched.credits;
            total.deliveries += dispatched.deliveries;
            if self.last_read == 0 && self.retry.is_empty() {
                return Ok(total);
            }
        }
    }
}

fn item(image: std::collections::HashMap<String, AttributeValue>) -> serde_dynamo::Item {
    image
        .into_iter()
        .map(|(name, value)| (name, value_of(value)))
        .collect::<std::collections::HashMap<_, _>>()
        .into()
}

fn value_of(value: AttributeValue) -> serde_dynamo::AttributeValue {
    use serde_dynamo::AttributeValue as V;
    match value {
        AttributeValue::S(s) => V::S(s),
        AttributeValue::N(n) => V::N(n),
        AttributeValue::Bool(b) => V::Bool(b),
        AttributeValue::Null(n) => V::Null(n),
        AttributeValue::B(b) => V::B(b.into_inner()),
        AttributeValue::Ss(s) => V::Ss(s),
        AttributeValue::Ns(n) => V::Ns(n),
        AttributeValue::Bs(b) => V::Bs(b.into_iter().map(|b| b.into_inner()).collect()),
        AttributeValue::L(l) => V::L(l.into_iter().map(value_of).collect()),
        AttributeValue::M(m) => V::M(m.into_iter().map(|(k, v)| (k, value_of(v))).collect()),
        _ => V::Null(true),
    }
}
