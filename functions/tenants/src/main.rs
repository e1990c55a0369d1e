//! The tenants Lambda: configuration (the operator key and signing keys from Secrets Manager) and
//! AWS clients are built once per cold start.

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    referral::http::run_lambda(tenants::routes()).await
}
