//! Every sample in `events/` is parsed by `lambda_http` (as Lambda would) and run through the
//! router against the emulator. The samples carry tokens signed with the documented dev secret
//! (for `sam local invoke`); here they run, in order, in a tenant of their own seeded with what
//! the samples name (a program, the promoter `user-1`, the extra code `SPRING-DEMO`), each with a
//! fresh token for the sample's user and role.

use std::path::{Path, PathBuf};

use axum::http::HeaderValue;
use referral::config::DEV_JWT_SECRET;
use referral::domain::code::{CodeStats, ReferralCode};
use referral::domain::program::{Program, ProgramInput};
use referral::http::auth::{Keyring, bearer};
use referral::store::{CodeStore, ProgramStore};
use tower::ServiceExt;

use crate::support::{Api, read};

/// The program, promoter and code the samples name.
const PROGRAM_ID: &str = "01J9ZP0G5RRMR3XW8T2KQ6VB7N";
const PROMOTER: &str = "user-1";
const CODE: &str = "SPRING-DEMO";

/// Each sample, in the order they run, and the status it must answer.
const EXPECTED: &[(&str, u16)] = &[
    ("promoters/me.json", 200),
    ("promoters/payout-method.json", 200),
    ("promoters/min-withdrawal-balance.json", 200),
    ("promoters/earnings-recent.json", 200),
    ("promoters/referrals.json", 200),
    ("promoters/payouts.json", 200),
    ("promoters/withdraw.json", 422),
    ("promoters/statement.json", 200),
    ("promoters/rewards.json", 200),
    ("promoters/stats.json", 200),
    ("promoters/admin-get.json", 200),
    ("promoters/list.json", 200),
    ("promoters/list-payouts.json", 200),
    ("promoters/commission-rate.json", 200),
    ("promoters/admin-statement.json", 200),
    ("promoters/payout-paid.json", 404),
    ("codes/my-codes.json", 200),
    ("codes/promoter-codes.json", 200),
    ("codes/create.json", 201),
    ("codes/look-up.json", 200),
    ("codes/redirect.json", 302),
    ("referrals/sign-up.json", 201),
    ("referrals/invoice.json", 200),
    ("referrals/refund.json", 200),
    ("referrals/verification.json", 200),
    ("referrals/find.json", 200),
    ("referrals/get.json", 404),
    ("referrals/relation-rewards.json", 404),
    ("referrals/explain.json", 404),
    ("referrals/complete.json", 404),
    ("referrals/complete-between-users.json", 200),
    ("referrals/failed-rewards.json", 200),
    ("referrals/retry-reward.json", 404),
    ("referrals/approve-reward.json", 404),
    ("referrals/deny-reward.json", 404),
    // The named reward does not exist: refused per id, answered 200.
    ("referrals/approve-rewards.json", 200),
    ("invitations/invite.json", 201),
    ("invitations/verify.json", 200),
    ("codes/set-active.json", 200),
    ("programs/create.json", 201),
    ("programs/create-invalid.json", 400),
    ("programs/list.json", 200),
    ("programs/get.json", 200),
    ("programs/stats.json", 200),
    ("programs/leaderboard.json", 200),
    ("programs/update.json", 200),
    ("programs/archive.json", 200),
    ("tenants/health.json", 200),
    ("tenants/openapi.json", 200),
    ("tenants/create-tenant.json", 201),
    ("tenants/list-tenants.json", 200),
    ("tenants/get-tenant.json", 200),
    ("tenants/update-tenant.json", 200),
    // The samples' own tenant was never created by the operator: no settings record.
    ("tenants/own-tenant.json", 404),
    ("tenants/update-own-tenant.json", 404),
    ("tenants/rotate-billing-secret.json", 404),
    ("tenants/create-api-key.json", 404),
    ("tenants/list-api-keys.json", 404),
    ("tenants/revoke-api-key.json", 404),
    ("tenants/open-session.json", 201),
    ("webhooks/create-endpoint.json", 201),
    ("webhooks/list-endpoints.json", 200),
    // The samples name an endpoint and an event that do not exist.
    ("webhooks/get-endpoint.json", 404),
    ("webhooks/update-endpoint.json", 404),
    ("webhooks/rotate-secret.json", 404),
    ("webhooks/test-endpoint.json", 404),
    ("webhooks/deliveries.json", 404),
    ("webhooks/replay-event.json", 404),
    ("webhooks/delete-endpoint.json", 404),
    ("portal/page.json", 200),
    ("portal/asset.json", 200),
];

/// The operator key the samples carry (`make dev`'s default).
const DEV_OPERATOR_KEY: &str = "local-dev-operator-key-do-not-use-in-production";
fn events_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../events")
}

fn api_gateway_samples() -> Vec<String> {
    let mut found = Vec::new();
    for group in std::fs::read_dir(events_dir()).unwrap() {
        let group = group.unwrap().path();
        if !group.is_dir()
            || group.ends_with("billing-consumer")
            || group.ends_with("webhook-sender")
            || group.ends_with("dispatcher")
        {
            // events/local-env.json is the environment for `sam local invoke`; SQS samples
            // run in billing.rs, stream samples below.
            continue;
        }
        for file in std::fs::read_dir(&group).unwrap() {
            let file = file.unwrap().path();
            if file.extension().is_some_and(|ext| ext == "json") {
                let relative = file.strip_prefix(events_dir()).unwrap();
                found.push(relative.to_string_lossy().replace('\\', "/"));
            }
        }
    }
    found.sort();
    found
}

#[test]
fn every_sample_has_an_expected_status() {
    let mut listed: Vec<String> = EXPECTED.iter().map(|(name, _)| name.to_string()).collect();
    listed.sort();
    assert_eq!(api_gateway_samples(), listed);
}

/// The tenant the samples run in, holding what they name.
async fn seeded() -> Api {
    let api = Api::new().await;
    let now = referral::clock::now();
    let input = ProgramInput {
        name: Some("Seeded".into()),
        currency: Some("USD".into()),
        ..Default::default()
    };
    let program = Program::create(PROGRAM_ID.to_owned(), &api.tenant, &input, now).unwrap();
    api.store.insert_program(&program).await.unwrap();
    let promoter = referral::domain::promoter::get_or_create(&api.store, &api.tenant, PROMOTER)
        .await
        .unwrap();
    let code = ReferralCode {
        code: CODE.to_owned(),
        tenant: api.tenant.clone(),
        user_id: PROMOTER.to_owned(),
        promoter_code: promoter.referral_code,
        program_id: PROGRAM_ID.to_owned(),
        referrer_amount: Some(500),
        referee_amount: Some(2500),
        max_referrals: None,
        is_active: true,
        stats: CodeStats::default(),
        created: now,
        updated: now,
    };
    assert!(
        api.store.insert_code(&code).await.unwrap(),
        "{CODE} is free in a fresh emulator"
    );
    api
}

#[tokio::test]
async fn every_sample_runs_through_the_router_with_its_expected_status() {
    let dev_tokens = Keyring::new(DEV_JWT_SECRET, None);
    let api = seeded().await;
    for (name, expected) in EXPECTED {
        let text = std::fs::read_to_string(events_dir().join(name)).unwrap();
        let mut request = lambda_http::request::from_str(&text)
            .unwrap_or_else(|error| panic!("{name} is not an API Gateway event: {error}"));

        // A sample's own token works with the dev secret, as `sam local invoke` needs; public
        // samples carry none.
        let operator = format!("Bearer {DEV_OPERATOR_KEY}");
        if request
            .headers()
            .get("authorization")
            .is_some_and(|h| *h == *operator)
        {
            let header = format!("Bearer {}", crate::support::OPERATOR);
            request
                .headers_mut()
                .insert("authorization", HeaderValue::from_str(&header).unwrap());
        } else if let Some(header) = request.headers().get("authorization") {
            let principal = bearer(Some(header.to_str().unwrap()))
                .and_then(|token| dev_tokens.verify(token))
                .unwrap_or_else(|error| panic!("{name}: token refused: {error}"));
            let token = crate::support::token(&api.tenant, &principal.user_id, principal.role);
            request.headers_mut().insert(
                "authorization",
                HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
            );
        }

        let response = api.router.clone().oneshot(request).await.unwrap();
        let (status, body) = read(response).await;
        assert_eq!(status.as_u16(), *expected, "{name}: {body}");
    }
}

/// The stream samples (`sam local invoke DispatcherFunction -e events/dispatcher/...`) parse as
/// Lambda's event and dispatch: the pending reward's credit and its `reward.created` event;
/// the balance change tells nothing.
#[tokio::test]
async fn every_stream_sample_is_parsed_and_dispatched() {
    let api = Api::new().await;
    let outbox = crate::support::TestOutbox::new(&api).await;
    let mut samples = 0;
    for file in std::fs::read_dir(events_dir().join("dispatcher")).unwrap() {
        let text = std::fs::read_to_string(file.unwrap().path()).unwrap();
        let event: aws_lambda_events::event::dynamodb::Event = serde_json::from_str(&text).unwrap();
        assert_eq!(event.records.len(), 2);
        let changes: Vec<_> = event
            .records
            .iter()
            .cloned()
            .map(dispatcher::change)
            .collect();
        assert!(changes[0].old.is_none() && changes[0].new.is_some());
        let response = dispatcher::handle(&outbox.outbox, event).await;
        assert!(response.batch_item_failures.is_empty());
        let messages = outbox
            .billing
            .client()
            .receive_message()
            .queue_url(outbox.billing.url())
            .max_number_of_messages(10)
            .send()
            .await
            .unwrap()
            .messages
            .unwrap_or_default();
        assert_eq!(messages.len(), 1, "one credit");
        let credit: serde_json::Value =
            serde_json::from_str(messages[0].body.as_deref().unwrap()).unwrap();
        assert_eq!(credit["amount"], 1000);
        samples += 1;
    }
    assert!(samples > 0);
}
