//! The webhooks Lambda: configuration and AWS clients are built once per cold start.

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    referral::http::run_lambda(webhooks::routes()).await
}
