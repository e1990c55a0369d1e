//! Every sample in `events/` is parsed by `lambda_http` (as Lambda would) and run through the
//! router against the emulator. The samples carry a token signed with the documented dev secret
//! (for `sam local invoke`); here each runs in a tenant of its own with a fresh token, and the
//! program a path names is seeded first.

use std::path::{Path, PathBuf};

use axum::http::HeaderValue;
use referral::auth::TokenVerifier;
use referral::config::DEV_JWT_SECRET;
use referral::program::{Program, ProgramInput};
use referral::store::ProgramStore;
use tower::ServiceExt;

use crate::support::{Api, read};

/// Each sample and the status it must answer.
const EXPECTED: &[(&str, u16)] = &[
    ("programs/create.json", 201),
    ("programs/create-invalid.json", 400),
    ("programs/list.json", 200),
    ("programs/get.json", 200),
    ("programs/update.json", 200),
    ("programs/archive.json", 200),
];

fn events_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../events")
}

fn api_gateway_samples() -> Vec<String> {
    let mut found = Vec::new();
    for group in std::fs::read_dir(events_dir()).unwrap() {
        let group = group.unwrap().path();
        if !group.is_dir() {
            continue; // events/local-env.json: environment for `sam local invoke`
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

#[tokio::test]
async fn every_sample_runs_through_the_router_with_its_expected_status() {
    let dev_tokens = TokenVerifier::new(DEV_JWT_SECRET);
    for (name, expected) in EXPECTED {
        let text = std::fs::read_to_string(events_dir().join(name)).unwrap();
        let mut request = lambda_http::request::from_str(&text)
            .unwrap_or_else(|error| panic!("{name} is not an API Gateway event: {error}"));

        // The sample's own token works with the dev secret, as `sam local invoke` needs.
        let header = request
            .headers()
            .get("authorization")
            .map(|v| v.to_str().unwrap().to_owned());
        let principal = dev_tokens
            .authenticate(header.as_deref())
            .unwrap_or_else(|error| panic!("{name}: token refused: {error}"));

        let api = Api::new().await;
        let token = crate::support::token(&api.tenant, &principal.user_id, principal.role);
        request.headers_mut().insert(
            "authorization",
            HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
        );
        if let Some(id) = request.uri().path().strip_prefix("/v1/programs/") {
            let input = ProgramInput {
                name: Some("Seeded".into()),
                currency: Some("USD".into()),
                ..Default::default()
            };
            let program =
                Program::create(id.to_owned(), &api.tenant, &input, referral::clock::now())
                    .unwrap();
            api.store.insert_program(&program).await.unwrap();
        }

        let response = api.router.clone().oneshot(request).await.unwrap();
        let (status, body) = read(response).await;
        assert_eq!(status.as_u16(), *expected, "{name}: {body}");
    }
}
