//! `make dev`: every function's routes on http://127.0.0.1:3000 (`PORT` overrides) against the
//! emulator at `AWS_ENDPOINT_URL`, with the table and queues created on start, the dev tenant
//! `acme` created through the operator route, and its credentials printed ready to paste. Ctrl-C
//! stops it (and `make dev` then stops the emulator).

use std::net::Ipv4Addr;

use referral::config::{Config, DEV_JWT_SECRET};
use referral::http::AppState;

/// The signing secret of the default billing endpoint unless `BILLING_SIGNING_SECRET` says
/// otherwise (tenants have their own).
const DEV_SIGNING_SECRET: &str = "local-dev-billing-secret";

/// The operator's key unless `OPERATOR_KEY` says otherwise.
const DEV_OPERATOR_KEY: &str = "local-dev-operator-key-do-not-use-in-production";

/// Where `/r/{code}` sends visitors of tenants without a landing URL unless `LANDING_URL` says
/// otherwise.
const DEV_LANDING_URL: &str = "https://example.com/signup";

/// The dev tenant and the user its promoter session is for.
const DEV_TENANT: &str = "acme";
const DEV_PROMOTER: &str = "user-1";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    referral::telemetry::init();
    let env = |name: &str| std::env::var(name).ok().filter(|value| !value.is_empty());
    let endpoint = env("AWS_ENDPOINT_URL").ok_or(
        "AWS_ENDPOINT_URL is not set: start the local stack with `make dev`, which starts the emulator",
    )?;
    let table = env("TABLE_NAME").unwrap_or_else(|| "referrals".to_owned());
    let secret = env("JWT_SECRET").unwrap_or_else(|| DEV_JWT_SECRET.to_owned());
    let operator_key = env("OPERATOR_KEY").unwrap_or_else(|| DEV_OPERATOR_KEY.to_owned());
    let port: u16 = env("PORT").map_or(Ok(3000), |port| port.parse())?;
    let api = format!("http://127.0.0.1:{port}");

    let sdk = referral::config::aws().await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    local_stack::ensure_table(&dynamodb, &table).await?;
    let queues = local_stack::ensure_queues(&aws_sdk_sqs::Client::new(&sdk)).await?;
    let signing_secret =
        env("BILLING_SIGNING_SECRET").unwrap_or_else(|| DEV_SIGNING_SECRET.to_owned());
    let billing_url =
        env("BILLING_CALLBACK_URL").unwrap_or_else(|| format!("{api}/dev/billing/{{user_id}}"));

    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let config = Config::from_lookup(|name| match name {
        "TABLE_NAME" => Some(table.clone()),
        "JWT_SECRET" => Some(secret.clone()),
        "OPERATOR_KEY" => Some(operator_key.clone()),
        "QUEUE_URL" => Some(queues.billing.clone()),
        // Local billing sinks live on 127.0.0.1: the development flag allows them.
        "ALLOW_PRIVATE_URLS" => Some("true".to_owned()),
        "PUBLIC_BASE_URL" => env(name).or_else(|| Some(api.clone())),
        "LANDING_URL" => env(name).or_else(|| Some(DEV_LANDING_URL.to_owned())),
        other => env(other),
    })?;
    let state = AppState::new(config, dynamodb.clone(), Some(sqs.clone()));
    let queue = state.queue.clone().expect("QUEUE_URL is set");
    let webhook_queue = referral::delivery::queue::Queue::new(sqs.clone(), &queues.webhooks);
    let app = local_stack::app(state.clone())
        .merge(local_stack::billing::dev_sink(
            state.store.clone(),
            signing_secret.clone(),
        ))
        .merge(local_stack::dev_webhook_sink(state.store.clone()));

    // The stream is read from here on: what the dev tenant and the demo write is dispatched.
    let mut reader =
        local_stack::stream::StreamReader::open(&sdk, None, &table, true, None).await?;
    // The dev tenant, through the routes a SaaS operator and the tenant's admin call.
    let dev = local_stack::DevTenant::create(
        &app,
        &operator_key,
        DEV_TENANT,
        DEV_PROMOTER,
        &format!("{api}/dev/billing/{DEV_TENANT}/{{user_id}}"),
    )
    .await?;

    // `make demo` (DEMO=1): a month of user-1's activity, written before the queues and the
    // stream are pumped, so that every credit and event leaves at today's time.
    let demo = if env("DEMO").is_some_and(|value| value != "0") {
        let started = std::time::Instant::now();
        let month = local_stack::demo::seed(&app, &state, &dev, &dev.promoter_token).await?;
        Some((month, started.elapsed()))
    } else {
        None
    };

    // What Lambda's event source mapping and the schedule do in AWS: the consumer drains the
    // queue, the reconciler re-sends what stays undelivered.
    let consumer = billing_consumer::Consumer::new(
        state.store.clone(),
        billing_consumer::Settings::from_lookup(|name| match name {
            "BILLING_CALLBACK_URL" => Some(billing_url.clone()),
            "BILLING_SIGNING_SECRET" => Some(signing_secret.clone()),
            "ALLOW_PRIVATE_URLS" => Some("true".to_owned()),
            other => env(other),
        })?,
    );
    let pump_queue = queue.clone();
    tokio::spawn(async move {
        loop {
            if let Err(error) = local_stack::billing::pump(&pump_queue, &consumer, 1).await {
                tracing::warn!(%error, "billing queue: receive failed");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
        }
    });
    let sender = webhook_sender::Sender::new(
        state.store.clone(),
        webhook_queue.clone(),
        webhook_sender::Settings::from_lookup(|name| match name {
            "ALLOW_PRIVATE_URLS" => Some("true".to_owned()),
            other => env(other),
        })?,
    );
    let sender_queue = webhook_queue.clone();
    tokio::spawn(async move {
        loop {
            if let Err(error) =
                local_stack::pump(&sender_queue, 1, |event| sender.handle(event)).await
            {
                tracing::warn!(%error, "webhook queue: receive failed");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
        }
    });
    // The stream's event source mapping: the outbox dispatcher reads every committed change.
    let outbox = referral::delivery::outbox::Outbox::new(
        state.store.clone(),
        queue.clone(),
        webhook_queue.clone(),
    );
    if demo.is_some() {
        // The demo's changes dispatched before the server answers: its clicks are in the day
        // figures (the dispatcher counts them from the stream), its credits on their way.
        reader.drain(&outbox).await?;
    }
    tokio::spawn(async move {
        loop {
            match reader.pump(&outbox).await {
                Ok(dispatched) if dispatched != Default::default() => continue,
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "outbox: the batch is read again"),
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    });
    let reconcile_store = state.store.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(std::time::Duration::from_secs(30)).await;
            let age = time::Duration::seconds(60);
            if let Err(error) =
                referral::delivery::reconcile::release_due(&reconcile_store, referral::clock::now())
                    .await
            {
                tracing::warn!(%error, "reconciler: holding periods failed");
            }
            match referral::delivery::reconcile::resume_release_jobs(&reconcile_store, age).await {
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "reconciler: release jobs failed"),
            }
            if let Err(error) =
                referral::delivery::reconcile::reconcile(&reconcile_store, &queue, age).await
            {
                tracing::warn!(%error, "reconciler failed");
            }
        }
    });

    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port)).await?;
    println!("\nReferral engine, local: {api}  (emulator: {endpoint}, table: {table})");
    println!(
        "Paste these into another shell (tenant '{DEV_TENANT}'; the session is {DEV_PROMOTER}'s, valid 24 h):"
    );
    println!("  export API={api}");
    println!("  export OPERATOR_KEY={operator_key}");
    println!("  export ADMIN_KEY={}", dev.admin_key);
    println!("  export SERVICE_KEY={}", dev.service_key);
    println!("  export PROMOTER_TOKEN={}", dev.promoter_token);
    println!("Try:  curl -s $API/v1/tenant -H \"Authorization: Bearer $ADMIN_KEY\"");
    if let Some((month, took)) = &demo {
        println!(
            "Demo: {DEV_PROMOTER}'s last 30 days written through the routes in {:.1} s ({} requests): {} clicks, {} sign-ups, {} invoices, {} refund(s), {} payout(s) paid.",
            took.as_secs_f64(),
            month.requests,
            month.clicks,
            month.signups,
            month.invoices,
            month.refunds,
            month.payouts
        );
    }
    println!(
        "Promoter portal ({DEV_PROMOTER}; `make demo` fills it with a month of activity):\n  {api}/portal#token={}",
        dev.promoter_token
    );
    println!(
        "Billing credits of '{DEV_TENANT}' go to {api}/dev/billing/{DEV_TENANT}/{{user_id}} (a dev sink that checks each credit's signature with its tenant's secrets and logs it)."
    );
    println!(
        "Webhooks: point an endpoint at {api}/dev/webhooks/{DEV_TENANT} (a dev receiver that verifies each event's signature and logs it)."
    );
    println!("Ctrl-C stops the server and the emulator.\n");

    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
