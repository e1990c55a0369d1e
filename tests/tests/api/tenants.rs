//! Tenants own their credentials and settings: the operator's routes, API keys (shown once,
//! stored as digests, revoked), promoter sessions (and a rotation of the engine's key), suspension,
//! per-tenant landing and link URLs and default currency, per-tenant billing endpoints and secrets
//! (with a rotation's overlap), and the outbound-URL rules.

use std::time::Duration;

use axum::http::{Method, StatusCode};
use billing_consumer::Consumer;
use referral::config::Config;
use referral::delivery::billing::verify_signature;
use referral::domain::ledger::Reward;
use referral::http::AppState;
use referral::store::{DynamoStore, KeyWrite, TenantStore};
use serde_json::{Value, json};

use crate::billing::{Receiver, batch, settings, stored, undelivered};
use crate::support::{Api, OPERATOR, RoundTrips, assert_error, config};

/// A tenant created through the operator route, with its credentials.
struct Tenant {
    id: String,
    admin: String,
    service: String,
    billing_secret: String,
}

fn fresh_id(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        ulid::Ulid::generate().to_string().to_lowercase()
    )
}

async fn create_tenant(api: &Api, id: &str, settings: Value) -> Tenant {
    let mut body = json!({"id": id, "name": format!("{id} Ltd")});
    body.as_object_mut()
        .unwrap()
        .extend(settings.as_object().unwrap().clone());
    let (status, created) = api
        .call(Method::POST, "/v1/tenants", Some(OPERATOR), Some(body))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let admin = created["admin_key"]["key"].as_str().unwrap().to_owned();
    let (status, service) = api
        .call(
            Method::POST,
            "/v1/api-keys",
            Some(&admin),
            Some(json!({"name": "backend", "role": "service"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{service}");
    Tenant {
        id: id.to_owned(),
        admin,
        service: service["key"].as_str().unwrap().to_owned(),
        billing_secret: created["billing_secret"].as_str().unwrap().to_owned(),
    }
}

async fn session(api: &Api, tenant: &Tenant, user: &str) -> String {
    let (status, session) = api
        .call(
            Method::POST,
            &format!("/v1/promoters/{user}/sessions"),
            Some(&tenant.service),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{session}");
    session["token"].as_str().unwrap().to_owned()
}

/// An application over the test table with `change` applied to its configuration.
async fn api_with(change: impl FnOnce(&mut Config)) -> Api {
    let mut settings = config();
    change(&mut settings);
    let round_trips = RoundTrips::default();
    let state = AppState::new(settings, crate::support::dynamodb(&round_trips).await, None);
    Api {
        store: state.store.clone(),
        router: local_stack::app(state),
        tenant: String::new(),
        round_trips,
    }
}

#[tokio::test]
async fn the_operator_creates_a_tenant_whose_key_is_shown_once_and_stored_as_a_digest() {
    let api = Api::new().await;
    let id = fresh_id("shop");
    let tenant = create_tenant(&api, &id, json!({"default_currency": "EUR"})).await;
    assert!(tenant.admin.starts_with("rk_") && tenant.admin.len() >= 3 + 43);
    assert!(tenant.billing_secret.starts_with("whsec_"));

    // Listed without the keys themselves.
    let (status, keys) = api
        .call(Method::GET, "/v1/api-keys", Some(&tenant.admin), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{keys}");
    let listed = keys["items"].as_array().unwrap();
    assert_eq!(listed.len(), 2);
    let text = keys.to_string();
    assert!(!text.contains(&tenant.admin) && !text.contains(&tenant.service));
    assert!(listed.iter().all(|key| key.get("key").is_none()));
    assert!(
        tenant
            .admin
            .starts_with(listed[0]["prefix"].as_str().unwrap())
    );

    // The table holds digests: no item anywhere contains a key or its random part.
    let items = api
        .store
        .client()
        .scan()
        .table_name(api.store.table())
        .send()
        .await
        .unwrap()
        .items
        .unwrap_or_default();
    let dump = format!("{items:?}");
    for key in [&tenant.admin, &tenant.service] {
        assert!(!dump.contains(&key[3..]), "a key is stored in the clear");
        assert!(dump.contains(&referral::domain::tenant::digest(key)));
    }

    // The operator reads and lists it; the id is unique; the roles stay apart.
    let (status, read) = api
        .call(
            Method::GET,
            &format!("/v1/tenants/{id}"),
            Some(OPERATOR),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{read}");
    assert_eq!(read["default_currency"], "EUR");
    assert!(read.get("billing_secret").is_none(), "never shown again");
    let listed = api
        .call(Method::GET, "/v1/tenants?limit=200", Some(OPERATOR), None)
        .await
        .1;
    assert!(
        listed["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["id"] == id.as_str())
    );
    let again = api
        .call(
            Method::POST,
            "/v1/tenants",
            Some(OPERATOR),
            Some(json!({"id": id, "name": "Again"})),
        )
        .await;
    assert_error(&again, 409, "conflict");
    assert_error(
        &api.call(Method::GET, "/v1/tenants", Some(&tenant.admin), None)
            .await,
        403,
        "forbidden",
    );
    assert_error(
        &api.call(Method::GET, "/v1/programs", Some(OPERATOR), None)
            .await,
        403,
        "forbidden",
    );
    assert_error(
        &api.call(
            Method::GET,
            "/v1/tenants",
            Some("not-the-operator-key"),
            None,
        )
        .await,
        403,
        "forbidden",
    );
    // A service key may not manage keys; a promoter key cannot exist.
    assert_error(
        &api.call(Method::GET, "/v1/api-keys", Some(&tenant.service), None)
            .await,
        403,
        "forbidden",
    );
    let promoter_key = api
        .call(
            Method::POST,
            "/v1/api-keys",
            Some(&tenant.admin),
            Some(json!({"name": "x", "role": "promoter"})),
        )
        .await;
    assert_error(&promoter_key, 400, "invalid_request");
}

#[tokio::test]
async fn two_tenants_run_side_by_side_and_neither_sees_the_other() {
    let api = Api::new().await;
    let mut seen = Vec::new();
    for name in ["north", "south"] {
        let launched = launch(
            &api,
            name,
            json!({"default_currency": "USD",
                   "landing_url": format!("https://{name}.example.com/join?utm=ref"),
                   "link_base_url": format!("https://go.{name}.example.com")}),
        )
        .await;
        let Launched {
            tenant,
            program,
            token,
            code,
        } = launched;
        let (_, me) = api
            .call(Method::GET, "/v1/promoters/me", Some(&token), None)
            .await;
        assert_eq!(
            me["referral_link"],
            format!("https://go.{name}.example.com/r/{code}")
        );
        let (status, signed) = api
            .call(
                Method::POST,
                "/v1/referrals",
                Some(&tenant.service),
                Some(json!({"code": code, "referred_user_id": "buyer"})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{signed}");
        let relation = signed["referral"]["id"].as_str().unwrap().to_owned();
        seen.push((tenant, token, code, program, relation));
    }
    let (north, south) = (&seen[0], &seen[1]);
    assert_ne!(
        north.2, south.2,
        "each tenant's user-1 has a code of its own"
    );
    for (mine, theirs) in [(north, south), (south, north)] {
        let (tenant, token, _, _, _) = mine;
        let (_, other_token, other_code, other_program, other_relation) = theirs;
        for (method, path, credential) in [
            (
                Method::GET,
                format!("/v1/programs/{other_program}"),
                &tenant.admin,
            ),
            (
                Method::PATCH,
                format!("/v1/codes/{other_code}"),
                &tenant.admin,
            ),
            (
                Method::GET,
                format!("/v1/referrals/{other_relation}"),
                &tenant.service,
            ),
            (
                Method::GET,
                format!("/v1/referrals/{other_relation}/rewards"),
                &tenant.admin,
            ),
            (
                Method::GET,
                "/v1/promoters/user-1/codes".to_owned(),
                &tenant.admin,
            ),
        ] {
            let body = (method == Method::PATCH).then(|| json!({"is_active": false}));
            let (status, answer) = api
                .call(method.clone(), &path, Some(credential), body)
                .await;
            if path.ends_with("/codes") && path.starts_with("/v1/promoters") {
                // The tenant's own user-1, never the other's.
                assert_eq!(status, StatusCode::OK, "{answer}");
                assert!(
                    !answer.to_string().contains(other_code.as_str()),
                    "{answer}"
                );
            } else {
                assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}: {answer}");
            }
        }
        // A session is its tenant's only: the other tenant's promoter data never shows.
        let (_, me) = api
            .call(Method::GET, "/v1/promoters/me", Some(token), None)
            .await;
        assert_ne!(me["referral_code"], other_code.as_str());
        assert_ne!(token, other_token);
    }
    // Each tenant's landing URL, with the code added to the query it has.
    for ((tenant, _, code, _, _), name) in seen.iter().zip(["north", "south"]) {
        let response = api
            .router
            .clone()
            .oneshot(
                axum::http::Request::get(format!("/r/{code}"))
                    .body(axum::body::Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::FOUND, "{}", tenant.id);
        assert_eq!(
            response.headers()["location"],
            format!("https://{name}.example.com/join?utm=ref&ref={code}").as_str()
        );
    }
}

use tower::ServiceExt;

#[tokio::test]
async fn a_revoked_key_is_refused_here_at_once_and_elsewhere_within_the_cache_bound() {
    let api = Api::new().await;
    let tenant = create_tenant(&api, &fresh_id("revoke"), json!({})).await;
    // Another container of the same stack, whose cache keeps entries for one second.
    let elsewhere = api_with(|config| config.credential_cache = Duration::from_secs(1)).await;
    for app in [&api, &elsewhere] {
        let (status, _) = app
            .call(Method::GET, "/v1/programs", Some(&tenant.service), None)
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "a service key, admin route");
        let (status, answer) = app
            .call(
                Method::POST,
                "/v1/promoters/u1/sessions",
                Some(&tenant.service),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{answer}");
    }
    let (_, keys) = api
        .call(Method::GET, "/v1/api-keys", Some(&tenant.admin), None)
        .await;
    let service_id = keys["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|key| key["role"] == "service")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, answer) = api
        .call(
            Method::DELETE,
            &format!("/v1/api-keys/{service_id}"),
            Some(&tenant.admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{answer}");
    let sessions = |app: &Api| {
        let app = app.clone();
        let key = tenant.service.clone();
        async move {
            app.call(Method::POST, "/v1/promoters/u1/sessions", Some(&key), None)
                .await
        }
    };
    assert_error(&sessions(&api).await, 401, "unauthorized");
    // The other container trusted the key a moment longer: at most its cache's lifetime.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_error(&sessions(&elsewhere).await, 401, "unauthorized");
    assert_error(
        &api.call(
            Method::DELETE,
            &format!("/v1/api-keys/{service_id}"),
            Some(&tenant.admin),
            None,
        )
        .await,
        404,
        "not_found",
    );
}

#[tokio::test]
async fn a_suspended_tenant_is_refused_everywhere_and_its_data_is_kept() {
    let api = Api::new().await;
    let tenant = create_tenant(
        &api,
        &fresh_id("paused"),
        json!({"default_currency": "USD"}),
    )
    .await;
    let program = api
        .call(
            Method::POST,
            "/v1/programs",
            Some(&tenant.admin),
            Some(json!({"name": "Kept"})),
        )
        .await
        .1["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let promoter = session(&api, &tenant, "user-1").await;
    let suspend = |status: &str| {
        let api = api.clone();
        let path = format!("/v1/tenants/{}", tenant.id);
        let body = json!({"status": status});
        async move {
            api.call(Method::PATCH, &path, Some(OPERATOR), Some(body))
                .await
        }
    };
    let (status, answer) = suspend("suspended").await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["status"], "suspended");
    for (credential, method, path) in [
        (
            &tenant.admin,
            Method::GET,
            format!("/v1/programs/{program}"),
        ),
        (&tenant.admin, Method::GET, "/v1/tenant".to_owned()),
        (
            &tenant.service,
            Method::POST,
            "/v1/promoters/u2/sessions".to_owned(),
        ),
        (
            &tenant.service,
            Method::GET,
            "/v1/referrals?user=user-1".to_owned(),
        ),
        (&promoter, Method::GET, "/v1/promoters/me".to_owned()),
    ] {
        let answer = api
            .call(method.clone(), &path, Some(credential), None)
            .await;
        assert_error(&answer, 403, "tenant_suspended");
    }
    let (status, answer) = suspend("active").await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let (status, kept) = api
        .call(
            Method::GET,
            &format!("/v1/programs/{program}"),
            Some(&tenant.admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{kept}");
    assert_eq!(kept["name"], "Kept");
    let (status, _) = api
        .call(Method::GET, "/v1/promoters/me", Some(&promoter), None)
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn sessions_are_bounded_and_survive_a_rotation_of_the_engines_key() {
    let api = Api::new().await;
    let tenant = create_tenant(&api, &fresh_id("sess"), json!({})).await;
    let open = |body: Option<Value>, credential: String| {
        let api = api.clone();
        async move {
            api.call(
                Method::POST,
                "/v1/promoters/user-1/sessions",
                Some(&credential),
                body,
            )
            .await
        }
    };
    let (status, default) = open(None, tenant.admin.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{default}");
    let expires = time::OffsetDateTime::parse(
        default["expires_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let lifetime = expires - time::OffsetDateTime::now_utc();
    assert!(lifetime > time::Duration::minutes(59) && lifetime <= time::Duration::hours(1));
    for bad in [59, 86_401] {
        let answer = open(
            Some(json!({"expires_in_seconds": bad})),
            tenant.service.clone(),
        )
        .await;
        assert_error(&answer, 400, "invalid_request");
    }
    let token = default["token"].as_str().unwrap().to_owned();
    assert_error(&open(None, token.clone()).await, 403, "forbidden");

    // The engine's key rotates: JWT_SECRET is new, JWT_PREVIOUS_SECRET the old one.
    let rotated = api_with(|config| {
        config.jwt_previous_secret = Some(config.jwt_secret.clone());
        config.jwt_secret = referral::config::Secret::new("the-next-signing-secret-0123456789");
    })
    .await;
    let (status, me) = rotated
        .call(Method::GET, "/v1/promoters/me", Some(&token), None)
        .await;
    assert_eq!(status, StatusCode::OK, "an old session lives on: {me}");
    let (_, fresh) = rotated
        .call(
            Method::POST,
            "/v1/promoters/user-1/sessions",
            Some(&tenant.service),
            None,
        )
        .await;
    let fresh = fresh["token"].as_str().unwrap().to_owned();
    let kid = |token: &str| jsonwebtoken::decode_header(token).unwrap().kid.unwrap();
    assert_ne!(kid(&fresh), kid(&token));
    // Once the previous key is dropped, its sessions end; the new ones live.
    let after = api_with(|config| {
        config.jwt_secret = referral::config::Secret::new("the-next-signing-secret-0123456789");
    })
    .await;
    assert_error(
        &after
            .call(Method::GET, "/v1/promoters/me", Some(&token), None)
            .await,
        401,
        "unauthorized",
    );
    let (status, _) = after
        .call(Method::GET, "/v1/promoters/me", Some(&fresh), None)
        .await;
    assert_eq!(status, StatusCode::OK);
}

/// The pending referee credit of a sign-up through `code` in `tenant`.
async fn pending_credit(api: &Api, tenant: &Tenant, code: &str, user: &str) -> Reward {
    let (status, outcome) = api
        .call(
            Method::POST,
            "/v1/referrals",
            Some(&tenant.service),
            Some(json!({"code": code, "referred_user_id": user})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{outcome}");
    let view = Api {
        tenant: tenant.id.clone(),
        ..api.clone()
    };
    undelivered(&view)
        .await
        .into_iter()
        .find(|reward| reward.tenant == tenant.id && reward.user_id == user)
        .expect("the referee credit is pending")
}

/// A tenant made with `settings`, its program paying the referee 1,000 in cash on sign-up (in
/// the tenant's default currency, USD), and its user-1's session and code.
struct Launched {
    tenant: Tenant,
    program: String,
    token: String,
    code: String,
}

async fn launch(api: &Api, prefix: &str, settings: Value) -> Launched {
    let tenant = create_tenant(api, &fresh_id(prefix), settings).await;
    let (status, program) = api
        .call(
            Method::POST,
            "/v1/programs",
            Some(&tenant.admin),
            Some(json!({"name": "Launch", "rewards": [
                {"recipient": "referee", "trigger": "signup", "kind": "cash", "amount": 1000}]})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{program}");
    // Programs take the tenant's default currency.
    assert_eq!(program["currency"], "USD");
    let token = session(api, &tenant, "user-1").await;
    let code = api
        .call(Method::GET, "/v1/promoters/me", Some(&token), None)
        .await
        .1["referral_code"]
        .as_str()
        .unwrap()
        .to_owned();
    Launched {
        tenant,
        program: program["id"].as_str().unwrap().to_owned(),
        token,
        code,
    }
}

/// A tenant with a billing endpoint at `receiver`, and its user-1's code.
async fn billing_tenant(api: &Api, receiver: &Receiver) -> (Tenant, String) {
    let launched = launch(
        api,
        "bill",
        json!({"default_currency": "USD", "billing_url": receiver.url}),
    )
    .await;
    (launched.tenant, launched.code)
}

fn consumer(api: &Api, default_url: String) -> Consumer<DynamoStore> {
    let mut settings = settings(default_url, Duration::from_secs(3));
    settings.tenant_cache = Duration::ZERO;
    Consumer::new(api.store.clone(), settings)
}

#[tokio::test]
async fn credits_of_two_tenants_reach_their_own_endpoints_signed_with_their_own_secrets() {
    let api = Api::new().await;
    let (first_receiver, second_receiver, default_receiver) = (
        Receiver::start().await,
        Receiver::start().await,
        Receiver::start().await,
    );
    let (first, first_code) = billing_tenant(&api, &first_receiver).await;
    let (second, second_code) = billing_tenant(&api, &second_receiver).await;
    let one = pending_credit(&api, &first, &first_code, "buyer-1").await;
    let two = pending_credit(&api, &second, &second_code, "buyer-2").await;
    let consumer = consumer(&api, default_receiver.url.clone());
    let response = consumer.handle(batch(&[&one, &two], 1)).await;
    assert!(response.batch_item_failures.is_empty());
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    for (receiver, tenant, other) in [
        (&first_receiver, &first, &second),
        (&second_receiver, &second, &first),
    ] {
        let log = receiver.log();
        assert_eq!(log.len(), 1, "{}: one credit, its own", tenant.id);
        let credit: Value = serde_json::from_slice(&log[0].body).unwrap();
        assert_eq!(credit["tenant"], tenant.id.as_str());
        assert!(verify_signature(
            &tenant.billing_secret,
            &log[0].signature,
            &log[0].body,
            now
        ));
        assert!(!verify_signature(
            &other.billing_secret,
            &log[0].signature,
            &log[0].body,
            now
        ));
    }
    assert!(
        default_receiver.log().is_empty(),
        "no credit went to the default endpoint"
    );
    let view = |tenant: &Tenant| Api {
        tenant: tenant.id.clone(),
        ..api.clone()
    };
    assert_eq!(
        stored(&view(&first), &one).await.status.as_str(),
        "credited"
    );
    assert_eq!(
        stored(&view(&second), &two).await.status.as_str(),
        "credited"
    );
}

#[tokio::test]
async fn a_rotated_billing_secret_signs_beside_the_new_one_for_its_overlap_only() {
    let api = Api::new().await;
    let receiver = Receiver::start().await;
    let (tenant, code) = billing_tenant(&api, &receiver).await;
    let (status, rotated) = api
        .call(
            Method::POST,
            "/v1/tenant/billing-secret/rotate",
            Some(&tenant.admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    let new_secret = rotated["billing_secret"].as_str().unwrap().to_owned();
    assert_ne!(new_secret, tenant.billing_secret);
    let retires = time::OffsetDateTime::parse(
        rotated["previous_secret_retires_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let overlap = retires - time::OffsetDateTime::now_utc();
    assert!(overlap > time::Duration::hours(23) && overlap <= time::Duration::hours(24));

    let consumer = consumer(&api, receiver.url.clone());
    let first = pending_credit(&api, &tenant, &code, "buyer-1").await;
    consumer.handle(batch(&[&first], 1)).await;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let during = receiver.log().pop().unwrap();
    assert_eq!(
        during.signature.matches("v1=").count(),
        2,
        "{}",
        during.signature
    );
    assert!(verify_signature(
        &new_secret,
        &during.signature,
        &during.body,
        now
    ));
    assert!(verify_signature(
        &tenant.billing_secret,
        &during.signature,
        &during.body,
        now
    ));

    // The overlap ends (its end moved to the past, as 24 hours would): only the new one signs.
    let mut record = api.store.get_tenant(&tenant.id).await.unwrap().unwrap();
    let version = record.version;
    record.billing_secrets[1].retires_at =
        Some(referral::clock::now() - time::Duration::seconds(1));
    record.version += 1;
    api.store
        .write_tenant(Some(version), &record, &[] as &[KeyWrite])
        .await
        .unwrap();
    let second = pending_credit(&api, &tenant, &code, "buyer-2").await;
    consumer.handle(batch(&[&second], 1)).await;
    let after = receiver.log().pop().unwrap();
    assert_eq!(
        after.signature.matches("v1=").count(),
        1,
        "{}",
        after.signature
    );
    assert!(verify_signature(
        &new_secret,
        &after.signature,
        &after.body,
        now
    ));
    assert!(!verify_signature(
        &tenant.billing_secret,
        &after.signature,
        &after.body,
        now
    ));
}

#[tokio::test]
async fn outbound_urls_to_private_addresses_are_refused_when_saved_and_at_delivery() {
    let strict = api_with(|config| config.allow_private_urls = false).await;
    for (url, class) in [
        ("http://billing.example.com/credit", "https"),
        ("https://127.0.0.1/credit", "loopback"),
        ("https://[::1]/credit", "loopback"),
        ("https://localhost:8443/credit", "loopback"),
        ("https://10.1.2.3/credit", "private"),
        ("https://192.168.0.10/credit", "private"),
        ("https://172.20.0.1/credit", "private"),
        ("https://[fd00::5]/credit", "private"),
        ("https://169.254.10.10/credit", "link-local"),
        ("https://[fe80::1]/credit", "link-local"),
        ("https://169.254.169.254/latest/meta-data", "metadata"),
        (
            "https://metadata.google.internal/computeMetadata",
            "metadata",
        ),
        ("https://100.64.0.1/credit", "carrier-grade"),
        ("https://0.0.0.0/credit", "unspecified"),
    ] {
        let answer = strict
            .call(
                Method::POST,
                "/v1/tenants",
                Some(OPERATOR),
                Some(json!({"id": fresh_id("ssrf"), "name": "x", "billing_url": url})),
            )
            .await;
        assert_error(&answer, 400, "invalid_request");
        assert_eq!(answer.1["error"]["field"], "billing_url", "{url}");
        let message = answer.1["error"]["message"].as_str().unwrap();
        assert!(message.contains(class), "{url}: {message}");
    }

    // A URL that was fine when saved and points inward at delivery (a DNS change, or a record
    // written before the rules): the strict consumer refuses it with the reason, calling nobody.
    let api = Api::new().await;
    let receiver = Receiver::start().await;
    let (tenant, code) = billing_tenant(&api, &receiver).await;
    let reward = pending_credit(&api, &tenant, &code, "buyer-1").await;
    let mut settings = settings(receiver.url.clone(), Duration::from_secs(3));
    settings.policy.allow_private = false;
    settings.tenant_cache = Duration::ZERO;
    let consumer = Consumer::new(api.store.clone(), settings);
    let response = consumer.handle(batch(&[&reward], 1)).await;
    assert!(
        response.batch_item_failures.is_empty(),
        "refused for good, not retried"
    );
    assert!(
        receiver.log().is_empty(),
        "the private address was never called"
    );
    let view = Api {
        tenant: tenant.id.clone(),
        ..api.clone()
    };
    let failed = stored(&view, &reward).await;
    assert_eq!(failed.status.as_str(), "failed");
    let error = failed.last_error.unwrap_or_default();
    assert!(
        error.contains("loopback") || error.contains("https"),
        "{error}"
    );
}

#[tokio::test]
async fn health_and_the_api_reference_need_no_credential() {
    let api = Api::new().await;
    let (status, health) = api.call(Method::GET, "/health", None, None).await;
    assert_eq!((status, health), (StatusCode::OK, json!({"status": "ok"})));
    let (status, spec) = api.call(Method::GET, "/openapi.yaml", None, None).await;
    assert_eq!(status, StatusCode::OK);
    let served = spec.as_str().unwrap();
    let file = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../openapi.yaml"),
    )
    .unwrap();
    assert_eq!(served, file, "the reference served is the repository's");
    assert!(
        api.round_trips.take().is_empty(),
        "neither touches the table"
    );
}

/// What `make dev` skips and AWS does: the signing key (current and previous versions) and the
/// operator key read from Secrets Manager at cold start, here from the emulator's. Prints what the
/// reads cost (figures, not assertions).
#[tokio::test]
async fn secrets_are_read_from_secrets_manager_with_the_previous_signing_key() {
    let sdk = referral::config::aws().await;
    let client = aws_sdk_secretsmanager::Client::new(&sdk);
    let name = fresh_id("signing");
    let arn = client
        .create_secret()
        .name(&name)
        .secret_string("first-signing-secret-0123456789")
        .send()
        .await
        .unwrap()
        .arn
        .unwrap();
    let operator = client
        .create_secret()
        .name(fresh_id("operator"))
        .secret_string("operator-key-from-secrets-manager-0123")
        .send()
        .await
        .unwrap()
        .arn
        .unwrap();
    let env = |arn: String, operator: String| {
        move |name: &str| match name {
            "JWT_SECRET_ARN" => Some(arn.clone()),
            "OPERATOR_KEY_SECRET_ARN" => Some(operator.clone()),
            _ => None,
        }
    };
    let started = std::time::Instant::now();
    let read = referral::config::environment(
        &sdk,
        referral::config::HTTP_SECRETS,
        env(arn.clone(), operator.clone()),
    )
    .await
    .unwrap();
    println!(
        "secrets: 2 read concurrently in {:?} (no previous version yet)",
        started.elapsed()
    );
    assert_eq!(read["JWT_SECRET"], "first-signing-secret-0123456789");
    assert_eq!(
        read["OPERATOR_KEY"],
        "operator-key-from-secrets-manager-0123"
    );
    assert!(!read.contains_key("JWT_PREVIOUS_SECRET"));

    // A rotation: put-secret-value makes the old value AWSPREVIOUS.
    client
        .put_secret_value()
        .secret_id(&arn)
        .secret_string("second-signing-secret-0123456789")
        .send()
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let read =
        referral::config::environment(&sdk, referral::config::HTTP_SECRETS, env(arn, operator))
            .await
            .unwrap();
    println!("secrets: 3 read concurrently in {:?}", started.elapsed());
    assert_eq!(read["JWT_SECRET"], "second-signing-secret-0123456789");
    assert_eq!(
        read["JWT_PREVIOUS_SECRET"],
        "first-signing-secret-0123456789"
    );
}
