//! Email invitations (seed 000) and seed 004's users named by identifiers, against the emulator.

use axum::http::{Method, StatusCode};
use referral::http::auth::Role;
use serde_json::{Value, json};

use crate::support::{Api, assert_error, token};

async fn invite(api: &Api, promoter: &str, emails: Value) -> (StatusCode, Value) {
    let token = token(&api.tenant, promoter, Role::Promoter);
    api.call(
        Method::POST,
        "/v1/invitations",
        Some(&token),
        Some(json!({"emails": emails})),
    )
    .await
}

async fn service(api: &Api, path: &str, body: Value) -> (StatusCode, Value) {
    let token = token(&api.tenant, "backend", Role::Service);
    api.call(Method::POST, path, Some(&token), Some(body)).await
}

#[tokio::test]
async fn invitations_are_deduplicated_across_promoters_and_attribute_sign_ups() {
    let api = Api::new().await;
    let (status, program) = api
        .admin(Method::POST, "/v1/programs", Some(json!({"name": "Invite", "currency": "USD", "rewards": [
            {"recipient": "referrer", "trigger": "signup", "kind": "cash", "amount": 200, "delivery": "payout"}]})))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{program}");

    let (status, first) = invite(
        &api,
        "ana",
        json!([
            "Friend@Example.com",
            "other@example.com",
            "not-an-email",
            "friend@example.com"
        ]),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    assert_eq!(
        first["saved_emails"],
        json!(["friend@example.com", "other@example.com"])
    );
    assert_eq!(
        first["rejected"],
        json!([{"email": "not-an-email", "reason": "invalid_email"}])
    );

    let (status, second) =
        invite(&api, "ben", json!("friend@example.com, third@example.com")).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(second["saved_emails"], json!(["third@example.com"]));
    assert_eq!(
        second["rejected"],
        json!([{"email": "friend@example.com", "reason": "invited_by_another_promoter"}])
    );
    let (_, again) = invite(&api, "ana", json!(["friend@example.com"])).await;
    assert_eq!(
        again["saved_emails"],
        json!(["friend@example.com"]),
        "re-inviting one's own is harmless"
    );

    let (status, verified) = service(
        &api,
        "/v1/invitations/verify",
        json!({"emails": ["FRIEND@example.com", "third@example.com", "nobody@example.com"]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{verified}");
    assert_eq!(
        verified,
        json!({"emails": {"friend@example.com": "ana", "third@example.com": "ben", "nobody@example.com": null}})
    );

    let (status, signed) = service(
        &api,
        "/v1/referrals",
        json!({"referred_user_id": "friend", "referred_email": "friend@example.com"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{signed}");
    assert_eq!(signed["referral"]["referrer_user_id"], "ana");
    assert_eq!(signed["referral"]["invitation_method"], "email");
    let (status, nobody) = service(
        &api,
        "/v1/referrals",
        json!({"referred_user_id": "x", "referred_email": "nobody@example.com"}),
    )
    .await;
    assert_error(&(status, nobody.clone()), 400, "invalid_request");
    assert_eq!(nobody["error"]["field"], "code");

    for (emails, field) in [(json!([]), "emails"), (json!(5), "emails")] {
        let answer = invite(&api, "ana", emails).await;
        assert_error(&answer, 400, "invalid_request");
        assert_eq!(answer.1["error"]["field"], field);
    }
    let too_many: Vec<String> = (0..101).map(|i| format!("p{i}@example.com")).collect();
    assert_error(
        &invite(&api, "ana", json!(too_many)).await,
        400,
        "invalid_request",
    );
    assert_error(
        &service(&api, "/v1/invitations", json!({"emails": ["a@b.co"]})).await,
        403,
        "forbidden",
    );
    let promoter_token = token(&api.tenant, "ana", Role::Promoter);
    let verify = api
        .call(
            Method::POST,
            "/v1/invitations/verify",
            Some(&promoter_token),
            Some(json!({"emails": ["a@b.co"]})),
        )
        .await;
    assert_error(&verify, 403, "forbidden");
    let other = api.other_tenant();
    let (_, elsewhere) = invite(&other, "zed", json!(["friend@example.com"])).await;
    assert_eq!(
        elsewhere["saved_emails"],
        json!(["friend@example.com"]),
        "emails are per tenant"
    );
}

#[tokio::test]
async fn seed_004_completion_names_users_by_id_code_or_email() {
    let api = Api::new().await;
    let (_, program) = api
        .admin(Method::POST, "/v1/programs", Some(json!({"name": "Spaaza", "currency": "EUR", "rewards": [
            {"recipient": "referrer", "trigger": "paid_threshold", "threshold_amount": 5000, "kind": "cash", "amount": 10, "delivery": "payout"}]})))
        .await;
    let program_id = program["id"].as_str().unwrap().to_owned();
    let promoter_token = token(&api.tenant, "janneke", Role::Promoter);
    let (_, me) = api
        .call(Method::GET, "/v1/promoters/me", Some(&promoter_token), None)
        .await;
    let code = me["referral_code"].as_str().unwrap().to_owned();
    let (status, _) = service(
        &api,
        "/v1/referrals",
        json!({"code": code, "referred_user_id": "u5", "referred_email": "referraluser@gmail.com"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);

    for user in ["janneke", code.as_str(), "u5", "ReferralUser@gmail.com"] {
        let (status, found) = api
            .admin(Method::GET, &format!("/v1/referrals?user={user}"), None)
            .await;
        assert_eq!(status, StatusCode::OK, "{user}: {found}");
        assert_eq!(found["items"].as_array().unwrap().len(), 1, "{user}");
    }

    let path = "/v1/referrals/complete";
    let mismatch = api
        .admin(
            Method::POST,
            path,
            Some(json!({"program_id": program_id,
            "referring_user": {"user_id": "someone-else", "referral_code": code},
            "referred_user": {"user_id": "u5"}})),
        )
        .await;
    assert_error(&mismatch, 400, "multiple_parameter_mismatch");
    let missing = api
        .admin(Method::POST, path, Some(json!({"program_id": program_id,
            "referring_user": {"referral_code": code}, "referred_user": {"email": "stranger@example.com"}})))
        .await;
    // Seed 004's codes apart: an email that names nobody, an unknown campaign, no relation.
    assert_error(&missing, 404, "user_not_found");
    let wrong_program = api
        .admin(
            Method::POST,
            path,
            Some(json!({"program_id": referral::id::new_id(),
            "referring_user": {"user_id": "janneke"}, "referred_user": {"user_id": "u5"}})),
        )
        .await;
    assert_error(&wrong_program, 404, "campaign_not_found");
    let unrelated = api
        .admin(
            Method::POST,
            path,
            Some(json!({"program_id": program_id,
            "referring_user": {"user_id": "janneke"}, "referred_user": {"user_id": "nobody-referred"}})),
        )
        .await;
    assert_error(&unrelated, 404, "referral_relation_not_found");
    let (status, done) = api
        .admin(
            Method::POST,
            path,
            Some(json!({"program_id": program_id,
            "referring_user": {"referral_code": code.to_lowercase(), "user_id": "janneke"},
            "referred_user": {"email": "referraluser@gmail.com"}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(
        done["award"],
        json!({"amount": 10, "currency": "EUR", "reason": "Referral completed by an administrator"})
    );
    let again = api
        .admin(
            Method::POST,
            path,
            Some(json!({"program_id": program_id,
            "referring_user": {"user_id": "janneke"}, "referred_user": {"user_id": "u5"}})),
        )
        .await;
    assert_error(&again, 409, "referral_relation_already_redeemed");
    let empty = api
        .admin(Method::POST, path, Some(json!({"program_id": program_id, "referring_user": {}, "referred_user": {"user_id": "u5"}})))
        .await;
    assert_error(&empty, 400, "invalid_request");
}
