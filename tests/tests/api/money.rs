//! Money invariants seen broken when the engine was tried as a user would (issue 12): each test
//! here failed before its fix. Balances are per currency and equal the ledger; every reward
//! reaches its recipient; held rewards are released whatever their number and whatever ran
//! concurrently; replays are exact.

use axum::http::{Method, StatusCode};
use futures::future::join_all;
use serde_json::{Value, json};

use crate::support::{Api, assert_error};

/// Every balance of `user`, per currency, equals what their ledger and payouts say.
/// What a reward pays as the API answers it: its amount less what refunds took off before
/// delivery (negative for a take-back entry).
pub fn payable(reward: &Value) -> i64 {
    reward["amount"].as_i64().unwrap() - reward["reduced"].as_i64().unwrap_or(0)
}

pub async fn assert_balances_match_ledger(api: &Api, user: &str) {
    let (status, promoter) = api
        .admin(Method::GET, &format!("/v1/promoters/{user}"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{promoter}");
    let ledger = all_rewards(api, user).await;
    let (_, payouts) = api
        .as_promoter(
            user,
            Method::GET,
            "/v1/promoters/me/payouts?limit=200",
            None,
        )
        .await;
    let payouts = payouts["items"].as_array().unwrap().clone();
    let mut currencies: std::collections::BTreeSet<String> = ledger
        .iter()
        .map(|r| r["currency"].as_str().unwrap().to_owned())
        .collect();
    currencies.extend(promoter["balances"].as_object().unwrap().keys().cloned());
    for currency in currencies {
        let in_currency = |r: &&Value| r["currency"] == currency.as_str();
        let earned: i64 = ledger
            .iter()
            .filter(in_currency)
            .filter(|r| r["status"] != "reversed")
            .map(payable)
            .sum();
        let credited: i64 = ledger
            .iter()
            .filter(in_currency)
            .filter(|r| r["delivery"] == "payout" && r["status"] == "credited")
            .map(payable)
            .sum();
        let requested: i64 = payouts
            .iter()
            .filter(in_currency)
            .map(|p| p["amount"].as_i64().unwrap())
            .sum();
        let paid: i64 = payouts
            .iter()
            .filter(in_currency)
            .filter(|p| p["status"] == "paid")
            .map(|p| p["amount"].as_i64().unwrap())
            .sum();
        let balance = &promoter["balances"][&currency];
        assert_eq!(
            (
                balance["total_earned"].as_i64().unwrap_or(0),
                balance["current_balance"].as_i64().unwrap_or(0),
                balance["total_paid"].as_i64().unwrap_or(0)
            ),
            (earned, credited - requested, paid),
            "{user} in {currency}: {promoter}"
        );
    }
}

/// Every reward of `user`, through their own paged list.
pub async fn all_rewards(api: &Api, user: &str) -> Vec<Value> {
    let promoter = crate::support::token(&api.tenant, user, referral::http::auth::Role::Promoter);
    api.all_pages(&promoter, "/v1/promoters/me/rewards?limit=200")
        .await
}

/// Sends a call again, after a short pause, while it answers 503 `unavailable` (at most five
/// times in all), as a client of the API does.
pub(crate) async fn retried_when_busy<F, Fut>(call: F) -> (StatusCode, Value)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = (StatusCode, Value)>,
{
    let mut answer = call().await;
    for _ in 0..4 {
        if answer.0 != StatusCode::SERVICE_UNAVAILABLE {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        answer = call().await;
    }
    answer
}

/// Seen: 1000 EUR cents and then a 15 % USD commission of 3000 showed `currency: "EUR"`,
/// `current_balance: 3000`, `total_earned: 4000`; payouts fell back to "USD".
#[tokio::test]
async fn currencies_are_never_summed_together() {
    let api = Api::new().await;
    let eur = api
        .program(json!({"name": "Euro", "currency": "EUR", "rewards": [
            {"recipient": "referrer", "trigger": "signup", "kind": "cash", "amount": 1000}]}))
        .await;
    let usd = api
        .program(json!({"name": "Dollar", "currency": "USD", "rewards": [
            {"recipient": "referrer", "trigger": "each_invoice", "kind": "cash", "percent": 15.0,
             "delivery": "payout"}]}))
        .await;
    let code = api.code_of("alice").await;
    api.signed_up(json!({"code": code, "referred_user_id": "bob", "program_id": eur}))
        .await;
    api.signed_up(json!({"code": code, "referred_user_id": "carol", "program_id": usd}))
        .await;
    api.invoiced(
        json!({"event_id": "inv-1", "user_id": "carol", "amount_paid": 20000, "currency": "USD"}),
    )
    .await;

    let alice = api.me("alice").await;
    assert_eq!(
        alice["balances"],
        json!({"EUR": {"current_balance": 0, "total_earned": 1000, "total_paid": 0},
               "USD": {"current_balance": 3000, "total_earned": 3000, "total_paid": 0}}),
        "{alice}"
    );
    // The seed-001 scalars are the main currency's: the first one earned in.
    assert_eq!(
        (
            &alice["currency"],
            &alice["current_balance"],
            &alice["total_earned"]
        ),
        (&json!("EUR"), &json!(0), &json!(1000)),
        "{alice}"
    );

    // A withdrawal is for one currency.
    api.pays_out_to("alice", "alice@example.com").await;
    let refused = api
        .as_promoter("alice", Method::POST, "/v1/promoters/me/payouts", None)
        .await;
    assert_error(&refused, 422, "below_min_withdrawal_balance");
    let (status, payout) = api
        .as_promoter(
            "alice",
            Method::POST,
            "/v1/promoters/me/payouts",
            Some(json!({"currency": "usd"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{payout}");
    assert_eq!(
        (&payout["amount"], &payout["currency"]),
        (&json!(3000), &json!("USD"))
    );
    let (status, paid) = api
        .admin(
            Method::POST,
            &format!("/v1/payouts/{}/paid", payout["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{paid}");
    let alice = api.me("alice").await;
    assert_eq!(
        alice["balances"]["USD"],
        json!({"current_balance": 0, "total_earned": 3000, "total_paid": 3000})
    );
    assert_balances_match_ledger(&api, "alice").await;

    // Earnings and the statement are per currency too.
    let (_, recent) = api
        .as_promoter(
            "alice",
            Method::GET,
            "/v1/promoters/me/earnings/recent",
            None,
        )
        .await;
    let today = &recent.as_array().unwrap()[6];
    assert_eq!(
        today["values"],
        json!({"EUR": 1000, "USD": 3000}),
        "{recent}"
    );
    assert_eq!(today["value"], 1000, "the main currency's");
    let (_, statement) = api
        .as_promoter("alice", Method::GET, "/v1/promoters/me/statement", None)
        .await;
    assert_eq!(
        statement["by_currency"],
        json!({"EUR": {"acquired_credit": 1000, "potential_credit": 0},
               "USD": {"acquired_credit": 3000, "potential_credit": 0}}),
        "{statement}"
    );

    // A program's currency is frozen once it has relations.
    let (status, answer) = api
        .admin(
            Method::PATCH,
            &format!("/v1/programs/{usd}"),
            Some(json!({"currency": "GBP"})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    let empty = api
        .program(json!({"name": "Unused", "currency": "USD"}))
        .await;
    let (status, answer) = api
        .admin(
            Method::PATCH,
            &format!("/v1/programs/{empty}"),
            Some(json!({"currency": "GBP"})),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "a program without relations may change: {answer}"
    );
}

/// Seen: the referee's `payout` reward was `credited` but reached no balance.
#[tokio::test]
async fn a_referees_payout_reward_reaches_their_balance() {
    let api = Api::new().await;
    api.program(json!({"name": "Both sides", "currency": "USD", "rewards": [
        {"recipient": "referee", "trigger": "signup", "kind": "cash", "amount": 700,
         "delivery": "payout"}]}))
        .await;
    let code = api.code_of("alice").await;
    let outcome = api
        .signed_up(json!({"code": code, "referred_user_id": "bob"}))
        .await;
    assert_eq!(outcome["rewards"][0]["status"], "credited");
    let bob = api.me("bob").await;
    assert_eq!(
        (&bob["current_balance"], &bob["total_earned"]),
        (&json!(700), &json!(700)),
        "{bob}"
    );
    assert_balances_match_ledger(&api, "bob").await;
}

/// Seen: `{referee, signup, cash}` beside `{referee, signup, points}` was accepted and then
/// every sign-up answered 500 (two writes to one reward item).
#[tokio::test]
async fn rules_sharing_recipient_and_trigger_pay_or_are_refused() {
    let api = Api::new().await;
    api.program(
        json!({"name": "Cash and points", "currency": "USD", "rewards": [
        {"recipient": "referee", "trigger": "signup", "kind": "cash", "amount": 1000},
        {"recipient": "referee", "trigger": "signup", "kind": "points", "amount": 50}]}),
    )
    .await;
    let code = api.code_of("alice").await;
    let outcome = api
        .signed_up(json!({"code": code, "referred_user_id": "bob"}))
        .await;
    let kinds: Vec<&str> = outcome["rewards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["cash", "points"], "{outcome}");
    let twice = api
        .admin(
            Method::POST,
            "/v1/programs",
            Some(json!({"name": "Twice", "currency": "USD", "rewards": [
                {"recipient": "referee", "trigger": "signup", "kind": "cash", "amount": 1000},
                {"recipient": "referee", "trigger": "signup", "kind": "cash", "amount": 500,
                 "delivery": "payout"}]})),
        )
        .await;
    assert_error(&twice, 400, "invalid_request");
    assert_eq!(twice.1["error"]["field"], "rewards[1]", "{}", twice.1);
}

/// Seen: a points program's `paid_threshold` and `each_invoice` rules never paid (invoices
/// come in a money currency). They are refused where they are written.
#[tokio::test]
async fn points_programs_refuse_rules_counted_in_money() {
    let api = Api::new().await;
    for trigger in [
        json!({"trigger": "paid_threshold", "threshold_amount": 5000, "amount": 10}),
        json!({"trigger": "each_invoice", "percent": 1.0}),
    ] {
        let mut rule = json!({"recipient": "referrer", "kind": "points"});
        rule.as_object_mut()
            .unwrap()
            .extend(trigger.as_object().unwrap().clone());
        let refused = api
            .admin(
                Method::POST,
                "/v1/programs",
                Some(json!({"name": "Points", "currency": "POINTS", "rewards": [rule]})),
            )
            .await;
        assert_error(&refused, 400, "invalid_request");
        assert_eq!(refused.1["error"]["field"], "rewards[0].trigger");
    }
}

/// Seen: releasing held rewards built one transaction of all of them; past 100 actions it
/// failed, for that referrer, forever. Releases go in bounded chunks.
#[tokio::test]
async fn more_held_rewards_than_one_transaction_holds_are_all_released() {
    let api = Api::new().await;
    let program = api
        .program(
            json!({"name": "Held", "currency": "USD", "min_referrals": 2, "rewards": [
            {"recipient": "referrer", "trigger": "each_invoice", "kind": "cash", "amount": 10,
             "delivery": "payout"}]}),
        )
        .await;
    let code = api.code_of("alice").await;
    api.signed_up(json!({"code": code, "referred_user_id": "bob"}))
        .await;
    for i in 0..130 {
        let outcome = api
            .invoiced(json!({"event_id": format!("inv-{i}"), "user_id": "bob",
                             "amount_paid": 100, "currency": "USD"}))
            .await;
        assert_eq!(outcome["rewards"][0]["status"], "held");
    }
    let outcome = api
        .signed_up(json!({"code": code, "referred_user_id": "carol", "program_id": program}))
        .await;
    assert_eq!(outcome["released"].as_array().unwrap().len(), 130);
    let alice = api.me("alice").await;
    assert_eq!(alice["current_balance"], 1300, "{alice}");
    let rewards = all_rewards(&api, "alice").await;
    assert_eq!(rewards.len(), 130);
    assert!(rewards.iter().all(|r| r["status"] == "credited"));
    assert_balances_match_ledger(&api, "alice").await;
}

/// Seen: an invoice read the referrer's qualified count while a concurrent sign-up brought it
/// to `min_referrals`, and committed a reward held forever. Many races of the two, then no
/// referrer who qualifies has a reward held for `min_referrals`.
#[tokio::test]
async fn a_concurrent_crossing_never_strands_a_held_reward() {
    let api = Api::new().await;
    let program = api
        .program(
            json!({"name": "Race", "currency": "USD", "min_referrals": 2, "rewards": [
            {"recipient": "referrer", "trigger": "each_invoice", "kind": "cash", "amount": 10,
             "delivery": "payout"}]}),
        )
        .await;
    let races = (0..24).map(|i| {
        let api = api.clone();
        let program = program.clone();
        async move {
            let referrer = format!("referrer-{i}");
            let code = api.code_of(&referrer).await;
            let first = format!("first-{i}");
            api.signed_up(json!({"code": code, "referred_user_id": first}))
                .await;
            // As a client does: a 503 (contention outlasting its deadline on a loaded machine,
            // nothing written) is sent again.
            let (signup, invoice) = tokio::join!(
                retried_when_busy(|| api.service(
                    Method::POST,
                    "/v1/referrals",
                    Some(
                        json!({"code": code, "referred_user_id": format!("second-{i}"),
                                "program_id": program})
                    )
                )),
                retried_when_busy(|| api.service(
                    Method::POST,
                    "/v1/events/invoices",
                    Some(json!({"event_id": format!("race-{i}"), "user_id": first,
                                "amount_paid": 100, "currency": "USD"}))
                )),
            );
            assert_eq!(signup.0, StatusCode::CREATED, "{}", signup.1);
            assert_eq!(invoice.0, StatusCode::OK, "{}", invoice.1);
            let held: Vec<Value> = all_rewards(&api, &referrer)
                .await
                .into_iter()
                .filter(|r| r["status"] == "held")
                .collect();
            assert!(held.is_empty(), "{referrer} qualifies; held: {held:?}");
            assert_balances_match_ledger(&api, &referrer).await;
        }
    });
    join_all(races).await;
}

/// Seen: the same `event_id` with another payload was answered with the first result.
#[tokio::test]
async fn a_reused_event_id_with_another_payload_is_refused() {
    let api = Api::new().await;
    api.program(json!({"name": "Idem", "currency": "USD", "rewards": [
        {"recipient": "referrer", "trigger": "each_invoice", "kind": "cash", "percent": 10.0,
         "delivery": "payout"}]}))
        .await;
    let code = api.code_of("alice").await;
    api.signed_up(json!({"code": code, "referred_user_id": "bob"}))
        .await;
    let invoice =
        json!({"event_id": "inv-1", "user_id": "bob", "amount_paid": 3000, "currency": "USD"});
    let first = api.invoiced(invoice.clone()).await;
    assert_eq!(
        api.invoiced(invoice.clone()).await,
        first,
        "the same payload: the same answer"
    );
    let mut other = invoice;
    other["amount_paid"] = json!(5000);
    let reused = api
        .service(Method::POST, "/v1/events/invoices", Some(other))
        .await;
    assert_error(&reused, 409, "idempotency_key_reused");
    let check = json!({"event_id": "chk-1", "user_id": "bob", "outcome": "attempted"});
    let (status, _) = api
        .service(
            Method::POST,
            "/v1/events/verifications",
            Some(check.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let mut other = check;
    other["outcome"] = json!("succeeded");
    let reused = api
        .service(Method::POST, "/v1/events/verifications", Some(other))
        .await;
    assert_error(&reused, 409, "idempotency_key_reused");
    assert_eq!(api.me("alice").await["current_balance"], 300);
}

/// Seen: a threshold crossed while the program was paused was lost for good.
#[tokio::test]
async fn a_threshold_crossed_while_paused_pays_once_the_program_is_active() {
    let api = Api::new().await;
    let program = api
        .program(json!({"name": "Pause", "currency": "USD", "rewards": [
            {"recipient": "referrer", "trigger": "paid_threshold", "threshold_amount": 5000,
             "kind": "cash", "amount": 2500, "delivery": "payout"}]}))
        .await;
    let code = api.code_of("alice").await;
    api.signed_up(json!({"code": code, "referred_user_id": "bob"}))
        .await;
    let pause = |status: &'static str| {
        let api = api.clone();
        let program = program.clone();
        async move {
            let (code, answer) = api
                .admin(
                    Method::PATCH,
                    &format!("/v1/programs/{program}"),
                    Some(json!({"status": status})),
                )
                .await;
            assert_eq!(code, StatusCode::OK, "{answer}");
        }
    };
    pause("paused").await;
    let paused = api
        .invoiced(
            json!({"event_id": "inv-1", "user_id": "bob", "amount_paid": 6000, "currency": "USD"}),
        )
        .await;
    assert_eq!(paused["rewards"], json!([]));
    pause("active").await;
    let resumed = api
        .invoiced(
            json!({"event_id": "inv-2", "user_id": "bob", "amount_paid": 100, "currency": "USD"}),
        )
        .await;
    assert_eq!(resumed["acquired_credit"], 2500, "{resumed}");
    let again = api
        .invoiced(
            json!({"event_id": "inv-3", "user_id": "bob", "amount_paid": 100, "currency": "USD"}),
        )
        .await;
    assert_eq!(again["acquired_credit"], 0, "once");
}

/// Seen: a primary code's `max_referrals` counted the referrals of every program.
#[tokio::test]
async fn a_primary_codes_limit_counts_per_program() {
    let api = Api::new().await;
    let one = api
        .program(json!({"name": "One", "currency": "USD", "max_referrals": 1}))
        .await;
    let two = api
        .program(json!({"name": "Two", "currency": "USD", "max_referrals": 1}))
        .await;
    let code = api.code_of("alice").await;
    api.signed_up(json!({"code": code, "referred_user_id": "bob", "program_id": one}))
        .await;
    api.signed_up(json!({"code": code, "referred_user_id": "carol", "program_id": two}))
        .await;
    let full = api
        .service(
            Method::POST,
            "/v1/referrals",
            Some(json!({"code": code, "referred_user_id": "dave", "program_id": one})),
        )
        .await;
    assert_error(&full, 422, "max_referrals_reached");
    let (_, public) = api
        .call(Method::GET, &format!("/v1/codes/{code}"), None, None)
        .await;
    let counts: Vec<(&str, &Value)> = public["programs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["name"].as_str().unwrap(), &p["total_referrals"]))
        .collect();
    assert_eq!(counts, [("Two", &json!(1)), ("One", &json!(1))], "{public}");
}

/// Seen: a verification of a user referred in two programs wrote one qualification only, and
/// counted its attempt once per relation.
#[tokio::test]
async fn one_verification_qualifies_every_relation_and_counts_once_per_code() {
    let api = Api::new().await;
    let rule = json!([{"recipient": "referrer", "trigger": "signup", "kind": "cash",
                       "amount": 100, "delivery": "payout"}]);
    let p1 = api
        .program(
            json!({"name": "P1", "currency": "USD", "requires_verification": true,
                        "min_referrals": 2, "rewards": rule}),
        )
        .await;
    let p2 = api
        .program(
            json!({"name": "P2", "currency": "USD", "requires_verification": true,
                        "min_referrals": 2, "rewards": rule}),
        )
        .await;
    let alice = api.code_of("alice").await;
    let bob = api.code_of("bob").await;
    for user in ["c1", "c2"] {
        api.signed_up(json!({"code": alice, "referred_user_id": user, "program_id": p1}))
            .await;
        api.signed_up(json!({"code": bob, "referred_user_id": user, "program_id": p2}))
            .await;
    }
    // c3 is referred by alice in both programs: one identity check, one attempt on her code.
    for program in [&p1, &p2] {
        api.signed_up(json!({"code": alice, "referred_user_id": "c3", "program_id": program}))
            .await;
    }
    let (status, _) = api
        .service(
            Method::POST,
            "/v1/events/verifications",
            Some(json!({"event_id": "attempt-c3", "user_id": "c3", "outcome": "attempted"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, codes) = api
        .as_promoter("alice", Method::GET, "/v1/promoters/me/codes", None)
        .await;
    assert_eq!(codes["items"][0]["verification_attempts"], 1, "{codes}");

    for user in ["c1", "c2"] {
        let (status, answer) = api
            .service(
                Method::POST,
                "/v1/events/verifications",
                Some(json!({"event_id": format!("ok-{user}"), "user_id": user, "outcome": "succeeded"})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
    }
    for user in ["alice", "bob"] {
        let me = api.me(user).await;
        assert_eq!(
            me["current_balance"], 200,
            "{user} has 2 qualified referrals: {me}"
        );
        assert_balances_match_ledger(&api, user).await;
    }
}

/// Seen: `total_referrals` (6) disagreed with `/me/referrals` `count` (7): extra codes were
/// left out.
#[tokio::test]
async fn total_referrals_count_every_code() {
    let api = Api::new().await;
    let program = api
        .program(json!({"name": "Codes", "currency": "USD"}))
        .await;
    let code = api.code_of("alice").await;
    let (status, extra) = api
        .admin(
            Method::POST,
            "/v1/promoters/alice/codes",
            Some(json!({"program_id": program, "code": "ALICE-VIP"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{extra}");
    for (i, via) in [&code, &code, &"ALICE-VIP".to_owned()].iter().enumerate() {
        api.signed_up(json!({"code": via, "referred_user_id": format!("friend-{i}")}))
            .await;
    }
    let me = api.me("alice").await;
    let (_, list) = api
        .as_promoter("alice", Method::GET, "/v1/promoters/me/referrals", None)
        .await;
    assert_eq!(
        (&me["total_referrals"], &list["count"]),
        (&json!(3), &json!(3)),
        "{me}"
    );
}

/// Seen: an invoice in another currency than the program's answered 200 saying nothing.
#[tokio::test]
async fn an_invoice_says_what_happened_in_each_relation() {
    let api = Api::new().await;
    let usd = api
        .program(json!({"name": "USD", "currency": "USD", "rewards": [
            {"recipient": "referrer", "trigger": "each_invoice", "kind": "cash", "percent": 10.0,
             "delivery": "payout"}]}))
        .await;
    let eur = api.program(json!({"name": "EUR", "currency": "EUR"})).await;
    let code = api.code_of("alice").await;
    for program in [&usd, &eur] {
        api.signed_up(json!({"code": code, "referred_user_id": "bob", "program_id": program}))
            .await;
    }
    let outcome = api
        .invoiced(
            json!({"event_id": "inv-1", "user_id": "bob", "amount_paid": 1000, "currency": "USD"}),
        )
        .await;
    let mut relations: Vec<(String, String)> = outcome["relations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["program_id"].as_str().unwrap().to_owned(),
                r["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    relations.sort();
    let mut expected = vec![
        (usd.clone(), "counted".to_owned()),
        (eur.clone(), "currency_mismatch".to_owned()),
    ];
    expected.sort();
    assert_eq!(relations, expected, "{outcome}");
}

/// Every reward is visible: the promoter's own (filtered by status, paged), the tenant's by
/// status, a relation's; `held` ones say why.
#[tokio::test]
async fn every_reward_is_visible_by_status_and_relation() {
    let api = Api::new().await;
    api.program(
        json!({"name": "Visible", "currency": "USD", "min_referrals": 2, "rewards": [
        {"recipient": "referee", "trigger": "signup", "kind": "cash", "amount": 500},
        {"recipient": "referrer", "trigger": "each_invoice", "kind": "cash", "amount": 10,
         "delivery": "payout"}]}),
    )
    .await;
    let code = api.code_of("alice").await;
    let relation = api
        .signed_up(json!({"code": code, "referred_user_id": "bob"}))
        .await["referral"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for i in 0..5 {
        api.invoiced(json!({"event_id": format!("inv-{i}"), "user_id": "bob",
                            "amount_paid": 100, "currency": "USD"}))
            .await;
    }
    // Alice's, two at a time, newest first.
    let alice = crate::support::token(&api.tenant, "alice", referral::http::auth::Role::Promoter);
    let held = api
        .all_pages(&alice, "/v1/promoters/me/rewards?status=held&limit=2")
        .await;
    let events: Vec<&str> = held
        .iter()
        .map(|r| r["id"].as_str().unwrap().rsplit('.').next().unwrap())
        .collect();
    assert_eq!(events, ["inv-4", "inv-3", "inv-2", "inv-1", "inv-0"]);
    assert!(held.iter().all(|r| r["holds"] == json!(["min_referrals"])));
    let (_, credited) = api
        .as_promoter(
            "alice",
            Method::GET,
            "/v1/promoters/me/rewards?status=credited",
            None,
        )
        .await;
    assert_eq!(credited["items"], json!([]));
    assert_error(
        &api.as_promoter(
            "alice",
            Method::GET,
            "/v1/promoters/me/rewards?status=paid",
            None,
        )
        .await,
        400,
        "invalid_request",
    );

    // The tenant's, by status; another tenant sees none of them.
    let (_, tenant_held) = api
        .admin(Method::GET, "/v1/rewards?status=held", None)
        .await;
    assert_eq!(tenant_held["items"].as_array().unwrap().len(), 5);
    let (_, pending) = api
        .admin(Method::GET, "/v1/rewards?status=pending", None)
        .await;
    assert_eq!(pending["items"][0]["user_id"], "bob", "{pending}");
    let (_, foreign) = api
        .other_tenant()
        .admin(Method::GET, "/v1/rewards?status=held", None)
        .await;
    assert_eq!(foreign["items"], json!([]));

    // The relation's: the referrer's, then the referred user's.
    let backend =
        crate::support::token(&api.tenant, "backend", referral::http::auth::Role::Service);
    let all = api
        .all_pages(
            &backend,
            &format!("/v1/referrals/{relation}/rewards?limit=4"),
        )
        .await;
    let owners: Vec<&str> = all.iter().map(|r| r["user_id"].as_str().unwrap()).collect();
    assert_eq!(owners, ["alice", "alice", "alice", "alice", "alice", "bob"]);
    assert_error(
        &api.other_tenant()
            .service(
                Method::GET,
                &format!("/v1/referrals/{relation}/rewards"),
                None,
            )
            .await,
        404,
        "not_found",
    );
}

/// A release cut short (the function stopped after its transaction recorded the job) is
/// finished by the reconciler: nothing stays held whose conditions hold.
#[tokio::test]
async fn the_reconciler_finishes_a_release_cut_short() {
    use referral::store::{Plan, ReferralStore, ReleaseJob};

    let api = Api::new().await;
    let program = api
        .program(
            json!({"name": "Resumed", "currency": "USD", "min_referrals": 2, "rewards": [
            {"recipient": "referrer", "trigger": "each_invoice", "kind": "cash", "amount": 10,
             "delivery": "payout"}]}),
        )
        .await;
    let code = api.code_of("alice").await;
    api.signed_up(json!({"code": code, "referred_user_id": "bob"}))
        .await;
    for i in 0..3 {
        api.invoiced(json!({"event_id": format!("inv-{i}"), "user_id": "bob",
                            "amount_paid": 100, "currency": "USD"}))
            .await;
    }
    // A crossing of min_referrals committed with its job, whose run never happened.
    let mut crossing = Plan::default();
    crossing.stats(&api.tenant, "alice", &program, 1, true);
    crossing.release_jobs.push(ReleaseJob {
        tenant: api.tenant.clone(),
        user_id: "alice".into(),
        program_id: program.clone(),
        relation_id: None,
        min_referrals_met: true,
        created: referral::clock::now() - time::Duration::minutes(5),
    });
    assert_eq!(
        api.store.apply(&crossing).await.unwrap(),
        referral::store::Committed::Done
    );
    assert_eq!(api.me("alice").await["current_balance"], 0, "stranded");

    let released =
        referral::delivery::reconcile::resume_release_jobs(&api.store, time::Duration::minutes(1))
            .await
            .unwrap();
    let mine: Vec<_> = released.iter().filter(|r| r.tenant == api.tenant).collect();
    assert_eq!(mine.len(), 3);
    assert_eq!(api.me("alice").await["current_balance"], 30);
    assert!(
        all_rewards(&api, "alice")
            .await
            .iter()
            .all(|r| r["status"] == "credited")
    );
    assert_balances_match_ledger(&api, "alice").await;
    let again = api
        .store
        .release_jobs_before(referral::clock::now(), 1000)
        .await
        .unwrap();
    assert!(
        again.iter().all(|job| job.tenant != api.tenant),
        "the job is gone"
    );
}
