//! `template.yaml` and the code agree: the table the local stack creates has the template's
//! shape, and every HTTP route the template maps is served by the routers.

use std::path::Path;

use axum::http::Method;
use serde_yaml::Value;

use crate::support::Api;

fn template() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml");
    serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn key_type(key: &aws_sdk_dynamodb::types::KeyType) -> &'static str {
    match key {
        aws_sdk_dynamodb::types::KeyType::Hash => "HASH",
        _ => "RANGE",
    }
}

fn key_schema(value: &Value) -> Vec<(String, String)> {
    value
        .as_sequence()
        .unwrap()
        .iter()
        .map(|element| {
            (
                element["AttributeName"].as_str().unwrap().to_owned(),
                element["KeyType"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn expected(key: &[(&str, aws_sdk_dynamodb::types::KeyType); 2]) -> Vec<(String, String)> {
    key.iter()
        .map(|(name, kind)| (name.to_string(), key_type(kind).to_owned()))
        .collect()
}

#[test]
fn the_local_table_has_the_template_shape() {
    let template = template();
    let table = &template["Resources"]["Table"]["Properties"];
    let shape = &local_stack::TABLE;
    assert_eq!(key_schema(&table["KeySchema"]), expected(&shape.key));
    let indexes = table["GlobalSecondaryIndexes"].as_sequence().unwrap();
    assert_eq!(indexes.len(), shape.indexes.len());
    for ((name, key), index) in shape.indexes.iter().zip(indexes) {
        assert_eq!(index["IndexName"].as_str(), Some(*name));
        assert_eq!(key_schema(&index["KeySchema"]), expected(key));
        assert_eq!(index["Projection"]["ProjectionType"].as_str(), Some("ALL"));
    }
    for definition in table["AttributeDefinitions"].as_sequence().unwrap() {
        let name = definition["AttributeName"].as_str().unwrap();
        assert_eq!(
            definition["AttributeType"].as_str(),
            Some(local_stack::attribute_type(name).as_str()),
            "{name}"
        );
    }
    assert_eq!(
        table["TimeToLiveSpecification"]["AttributeName"].as_str(),
        Some(shape.ttl_attribute)
    );
    assert_eq!(
        table["TimeToLiveSpecification"]["Enabled"].as_bool(),
        Some(true)
    );
    assert_eq!(table["BillingMode"].as_str(), Some("PAY_PER_REQUEST"));
    assert_eq!(
        table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"].as_bool(),
        Some(true)
    );
}

#[test]
fn the_billing_queue_matches_the_consumer_and_the_local_stack() {
    let template = template();
    let resources = &template["Resources"];
    let queue = &resources["BillingQueue"]["Properties"];
    let receives = queue["RedrivePolicy"]["maxReceiveCount"].as_u64().unwrap();
    assert_eq!(receives, u64::from(local_stack::MAX_RECEIVE_COUNT));
    let consumer = &resources["BillingConsumerFunction"]["Properties"];
    assert_eq!(
        consumer["Environment"]["Variables"]["MAX_RECEIVE_COUNT"].as_str(),
        Some(receives.to_string().as_str())
    );
    let timeout = consumer["Timeout"].as_u64().unwrap();
    assert!(queue["VisibilityTimeout"].as_u64().unwrap() >= 6 * timeout);
    let mapping = &consumer["Events"]["Credits"]["Properties"];
    assert_eq!(
        mapping["FunctionResponseTypes"][0].as_str(),
        Some("ReportBatchItemFailures")
    );
    assert_eq!(mapping["BatchSize"].as_u64(), Some(10));
    assert!(resources["BillingDLQAlarm"].is_mapping());
    assert_eq!(
        resources["ReconcilerFunction"]["Properties"]["Events"]["EveryFiveMinutes"]["Type"]
            .as_str(),
        Some("Schedule")
    );
}

/// The table's stream is the outbox: both images of every change reach the dispatcher, whose
/// mapping reports partial failures and splits a failing batch; no HTTP function may send to
/// SQS (a request's work leaves through the stream).
#[test]
fn the_stream_feeds_the_dispatcher_and_no_route_sends_to_sqs() {
    let template = template();
    let resources = &template["Resources"];
    assert_eq!(
        resources["Table"]["Properties"]["StreamSpecification"]["StreamViewType"].as_str(),
        Some("NEW_AND_OLD_IMAGES")
    );
    let mapping =
        &resources["DispatcherFunction"]["Properties"]["Events"]["TableStream"]["Properties"];
    assert_eq!(
        mapping["FunctionResponseTypes"][0].as_str(),
        Some("ReportBatchItemFailures")
    );
    assert_eq!(mapping["BisectBatchOnFunctionError"].as_bool(), Some(true));
    assert!(mapping["DestinationConfig"]["OnFailure"].is_mapping());
    let mut http_functions = 0;
    for (name, resource) in resources.as_mapping().unwrap() {
        let properties = &resource["Properties"];
        let has_routes = properties["Events"].as_mapping().is_some_and(|events| {
            events
                .values()
                .any(|e| e["Type"].as_str() == Some("HttpApi"))
        });
        if !has_routes {
            continue;
        }
        http_functions += 1;
        let policies = serde_yaml::to_string(&properties["Policies"]).unwrap();
        assert!(
            !policies.contains("sqs:"),
            "{name:?} may send to SQS: {policies}"
        );
        assert!(
            properties["Environment"]["Variables"]["QUEUE_URL"].is_null(),
            "{name:?}"
        );
    }
    assert!(http_functions >= 6);
    assert!(template["Globals"]["Function"]["Environment"]["Variables"]["QUEUE_URL"].is_null());
}

/// (function, method, path) of every `HttpApi` event in the template.
fn template_routes() -> Vec<(String, String, String)> {
    let template = template();
    let mut routes = Vec::new();
    for (name, resource) in template["Resources"].as_mapping().unwrap() {
        if resource["Type"].as_str() != Some("AWS::Serverless::Function") {
            continue;
        }
        let Some(events) = resource["Properties"]["Events"].as_mapping() else {
            continue;
        };
        for event in events
            .values()
            .filter(|e| e["Type"].as_str() == Some("HttpApi"))
        {
            routes.push((
                name.as_str().unwrap().to_owned(),
                event["Properties"]["Method"].as_str().unwrap().to_owned(),
                event["Properties"]["Path"].as_str().unwrap().to_owned(),
            ));
        }
    }
    routes
}

#[tokio::test]
async fn every_template_route_is_served() {
    let api = Api::new().await;
    let routes = template_routes();
    assert!(!routes.is_empty());
    for (function, method, path) in routes {
        let concrete = path
            .replace("{id}", &referral::id::new_id())
            .replace("{user_id}", "someone")
            .replace("{code}", "ABCD2345");
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        // A route no router serves answers the fallbacks: 404 "no such route" or 405.
        let (status, body) = api.call(method.clone(), &concrete, None, None).await;
        let unserved = status.as_u16() == 405
            || (status.as_u16() == 404 && body["error"]["message"] == "no such route");
        assert!(!unserved, "{function} {method} {path}: {status} {body}");
    }
}

/// `METHOD /path` of every API Gateway sample in `events/`.
fn sampled_routes() -> std::collections::BTreeSet<String> {
    let events = Path::new(env!("CARGO_MANIFEST_DIR")).join("../events");
    let mut routes = std::collections::BTreeSet::new();
    for group in std::fs::read_dir(&events).unwrap() {
        let group = group.unwrap().path();
        if !group.is_dir() {
            continue;
        }
        for file in std::fs::read_dir(group).unwrap() {
            let text = std::fs::read_to_string(file.unwrap().path()).unwrap();
            let event: serde_json::Value = serde_json::from_str(&text).unwrap();
            if let Some(route) = event["routeKey"].as_str() {
                routes.insert(route.to_owned());
            }
        }
    }
    routes
}

#[test]
fn every_template_route_has_a_sample_event_and_every_sample_a_route() {
    let declared: std::collections::BTreeSet<String> = template_routes()
        .into_iter()
        .map(|(_, method, path)| format!("{method} {path}"))
        .collect();
    assert_eq!(sampled_routes(), declared);
}

#[test]
fn the_openapi_spec_has_exactly_the_template_routes() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../openapi.yaml");
    let spec: Value = serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut specified = std::collections::BTreeSet::new();
    for (route, operations) in spec["paths"].as_mapping().unwrap() {
        for method in operations.as_mapping().unwrap().keys() {
            let method = method.as_str().unwrap().to_uppercase();
            specified.insert(format!("{method} {}", route.as_str().unwrap()));
        }
    }
    let declared: std::collections::BTreeSet<String> = template_routes()
        .into_iter()
        .map(|(_, method, path)| format!("{method} {path}"))
        .collect();
    assert_eq!(specified, declared);
    let codes: Vec<&str> =
        spec["components"]["schemas"]["Error"]["properties"]["error"]["properties"]["code"]["enum"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap())
            .collect();
    assert_eq!(
        codes,
        referral::Error::CODES,
        "the spec lists every error code"
    );
}

/// `METHOD /path` of every `.route("/path", method(…).method(…))` in the function crates: the
/// routers as written (axum cannot list a router's routes at run time).
fn routed() -> std::collections::BTreeSet<String> {
    let functions = Path::new(env!("CARGO_MANIFEST_DIR")).join("../functions");
    let mut routes = std::collections::BTreeSet::new();
    for crate_dir in std::fs::read_dir(functions).unwrap() {
        let lib = crate_dir.unwrap().path().join("src/lib.rs");
        let Ok(source) = std::fs::read_to_string(lib) else {
            continue;
        };
        for call in source.split(".route(").skip(1) {
            let Some(call) = call.trim_start().strip_prefix('"') else {
                continue;
            };
            let (path, rest) = call.split_once('"').unwrap();
            // The method chain runs to the `)` that closes `.route(`.
            let mut depth = 1;
            let end = rest
                .char_indices()
                .find(|(_, c)| {
                    depth += match c {
                        '(' => 1,
                        ')' => -1,
                        _ => 0,
                    };
                    depth == 0
                })
                .map(|(i, _)| i)
                .unwrap();
            let chain = &rest[..end];
            for method in ["get", "post", "put", "patch", "delete"] {
                let called = chain.match_indices(&format!("{method}(")).any(|(i, _)| {
                    i == 0 || !chain[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_')
                });
                if called {
                    routes.insert(format!("{} {path}", method.to_uppercase()));
                }
            }
        }
    }
    routes
}

#[test]
fn the_routers_serve_exactly_the_template_routes() {
    let declared: std::collections::BTreeSet<String> = template_routes()
        .into_iter()
        .map(|(_, method, path)| format!("{method} {path}"))
        .collect();
    assert_eq!(routed(), declared);
}

/// `sam build` builds every function from one cargo workspace in one source directory: run in
/// parallel, the cargo-lambda builds race ("File exists (os error 17)", a missing `.rmeta`), so
/// the README's `sam build` would fail on a fresh clone. `make sam-build` runs the real build.
#[test]
fn sam_builds_the_functions_one_at_a_time() {
    let config =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../samconfig.toml"))
            .unwrap();
    let build = config
        .split("[default.build.parameters]")
        .nth(1)
        .expect("samconfig.toml has build parameters")
        .split("\n[")
        .next()
        .unwrap();
    let parallel: Vec<&str> = build
        .lines()
        .filter(|line| line.trim_start().starts_with("parallel"))
        .collect();
    assert_eq!(parallel, ["parallel = false"], "{build}");
}

/// Each function may read the indexes its routes query (an index missing from a policy is an
/// AccessDenied in AWS that no emulator shows): the back office's lists read GSI3, relations
/// by id GSI2, a user's items GSI1.
#[test]
fn every_function_may_query_the_indexes_its_routes_use() {
    let template = template();
    let resources = &template["Resources"];
    for (function, indexes) in [
        ("PromotersFunction", &["GSI1", "GSI3"][..]),
        ("ReferralsFunction", &["GSI1", "GSI2", "GSI3"][..]),
        ("CodesFunction", &["GSI1"][..]),
        ("InvitationsFunction", &["GSI1"][..]),
        ("ReconcilerFunction", &["GSI2"][..]),
        ("ProgramsFunction", &["BOARD_SIGNUPS", "BOARD_EARNED"][..]),
    ] {
        let policies =
            serde_yaml::to_string(&resources[function]["Properties"]["Policies"]).unwrap();
        for index in indexes {
            assert!(
                policies.contains(&format!("/index/{index}")),
                "{function} may not query {index}: {policies}"
            );
        }
    }
}

#[test]
fn the_local_server_answers_cors_as_the_template_configures_it() {
    let template = template();
    let cors = &template["Resources"]["HttpApi"]["Properties"]["CorsConfiguration"];
    let list = |name: &str| -> Vec<String> {
        cors[name]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(list("AllowOrigins"), ["*"]);
    assert_eq!(list("AllowMethods"), local_stack::CORS_METHODS);
    assert_eq!(list("AllowHeaders"), local_stack::CORS_HEADERS);
    assert_eq!(list("ExposeHeaders"), local_stack::CORS_EXPOSE);
    assert_eq!(
        cors["MaxAge"].as_u64(),
        Some(local_stack::CORS_MAX_AGE.into())
    );
    assert!(
        cors["AllowCredentials"].is_null(),
        "no cookies: no credentials"
    );
}

/// The portal serves files compiled into it: its function may touch nothing in AWS.
#[test]
fn the_portal_function_has_no_aws_permission() {
    let template = template();
    let portal = &template["Resources"]["PortalFunction"]["Properties"];
    assert!(portal.is_mapping(), "the template has a PortalFunction");
    assert!(portal["Policies"].is_null(), "{:?}", portal["Policies"]);
}

/// The dispatcher writes what the stream tells: events (BatchWriteItem) and clicks on the day
/// figures (UpdateItem). A missing action is an AccessDenied in AWS that no emulator shows.
#[test]
fn the_dispatcher_may_write_events_and_day_clicks() {
    let template = template();
    let policies = serde_yaml::to_string(
        &template["Resources"]["DispatcherFunction"]["Properties"]["Policies"],
    )
    .unwrap();
    for action in ["dynamodb:BatchWriteItem", "dynamodb:UpdateItem"] {
        assert!(policies.contains(action), "{action}: {policies}");
    }
}
