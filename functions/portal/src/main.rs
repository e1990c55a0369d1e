//! The portal Lambda: static pages compiled into the binary; no configuration, no AWS client.

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    referral::telemetry::init();
    lambda_http::run(referral::http::finish(portal::routes::<()>())).await
}
