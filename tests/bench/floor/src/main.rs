//! The floor `make bench` compares cold starts with: load the AWS configuration, build the
//! DynamoDB client, do one GetItem (`TABLE_NAME`, key `FLOOR_PK`/`FLOOR_SK`), exit 0 if the item
//! is there. Nothing else: no runtime loop, no logging, no domain code.

use aws_sdk_dynamodb::types::AttributeValue;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let var = |name: &str| std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set"));
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let client = aws_sdk_dynamodb::Client::new(&sdk);
    let item = client
        .get_item()
        .table_name(var("TABLE_NAME"))
        .key("PK", AttributeValue::S(var("FLOOR_PK")))
        .key("SK", AttributeValue::S(var("FLOOR_SK")))
        .send()
        .await
        .expect("GetItem succeeds");
    std::process::exit(if item.item.is_some() { 0 } else { 1 });
}
