//! `make demo`: a realistic month of one promoter's activity, made through the routes as the
//! tenant's backend, its admin and the promoter would have made it, one day at a time with the
//! process's clock moved back to that day (`clock::set_offset`, the `dev-clock` feature). So the
//! day figures, the leaderboard, holding periods, balances and payouts are the engine's own
//! writes, not fixtures. Deterministic: the same month every run.
//!
//! The month: a program (a $10 billing credit for the referred customer; 20 % of their
//! invoices and a $15 bonus past $50 paid for the referrer, held 7 days); every day some clicks
//! on the promoter's link, a share of them signing up, most of those paying a plan a day or
//! three later; a refund; a withdrawal paid out by the admin. Rewards of the last week are still
//! in their holding period.

use axum::Router;
use axum::http::Method;
use referral::http::AppState;
use serde_json::{Value, json};

use crate::{BoxError, DevTenant, request};

/// What the month made, printed by `make demo`.
#[derive(Debug, Default)]
pub struct Month {
    pub clicks: u32,
    pub signups: u32,
    pub invoices: u32,
    pub refunds: u32,
    pub payouts: u32,
    pub requests: u32,
}

/// Days of activity, ending today.
const DAYS: i64 = 30;

const FIRST_NAMES: [&str; 16] = [
    "maria", "kenji", "amara", "lucas", "ines", "noah", "priya", "oskar", "leila", "tomas", "zoe",
    "felix", "hana", "diego", "sofia", "ravi",
];
const DOMAINS: [&str; 6] = [
    "northwind.io",
    "fabrikam.dev",
    "contoso.app",
    "lumen.studio",
    "brightside.co",
    "tailspin.net",
];
/// Monthly plans, in cents.
const PLANS: [i64; 3] = [2_900, 4_900, 9_900];

/// xorshift64*: a fixed sequence, so every demo month is the same.
struct Dice(u64);

impl Dice {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

struct Seeder<'a> {
    app: &'a Router,
    month: Month,
}

impl Seeder<'_> {
    async fn call(
        &mut self,
        method: Method,
        path: &str,
        bearer: &str,
        body: Value,
    ) -> Result<Value, BoxError> {
        self.month.requests += 1;
        request(self.app, method, path, bearer, Some(body)).await
    }
}

/// Moves the clock to `hour` (of 24) of the UTC day `days_ago` days before today; today's hours
/// are spread over the part of the day that has passed, so nothing happens in the future.
fn travel(days_ago: i64, hour: i64) {
    let now = time::OffsetDateTime::now_utc();
    let start = now.date().midnight().assume_utc() - time::Duration::days(days_ago);
    let span = if days_ago == 0 {
        now - start
    } else {
        time::Duration::DAY
    };
    let at = start + span * (hour as f64 / 24.0);
    referral::clock::set_offset(at - now);
}

/// Seeds `promoter`'s month in `dev`'s tenant. `promoter_token` must be valid now (it is
/// checked against the real clock).
pub async fn seed(
    app: &Router,
    state: &AppState,
    dev: &DevTenant,
    promoter_token: &str,
) -> Result<Month, BoxError> {
    let result = seed_month(app, state, dev, promoter_token).await;
    referral::clock::set_offset(time::Duration::ZERO);
    result
}

async fn seed_month(
    app: &Router,
    state: &AppState,
    dev: &DevTenant,
    promoter_token: &str,
) -> Result<Month, BoxError> {
    let mut seeder = Seeder {
        app,
        month: Month::default(),
    };
    let mut dice = Dice(0x5eed_2026_1124);

    travel(DAYS, 9);
    let program = seeder
        .call(
            Method::POST,
            "/v1/programs",
            &dev.admin_key,
            json!({
                "name": "Friends of Acme",
                "hold_days": 7,
                "rewards": [
                    {"recipient": "referee", "trigger": "signup", "kind": "cash", "amount": 1000},
                    {"recipient": "referrer", "trigger": "each_invoice", "kind": "cash",
                     "percent": 20, "delivery": "payout", "max_invoices": 12},
                    {"recipient": "referrer", "trigger": "paid_threshold", "threshold_amount": 5000,
                     "kind": "cash", "amount": 1500, "delivery": "payout"}
                ]
            }),
        )
        .await?;
    let program_id = program["id"]
        .as_str()
        .ok_or("the program has no id")?
        .to_owned();
    let me = seeder
        .call(Method::GET, "/v1/promoters/me", promoter_token, Value::Null)
        .await?;
    let code = me["referral_code"]
        .as_str()
        .ok_or("the promoter has no code")?
        .to_owned();
    travel(DAYS - 1, 10);
    seeder
        .call(
            Method::PATCH,
            "/v1/promoters/me/payout-method",
            promoter_token,
            json!({"method": "paypal", "payment_address": "user-1@example.org"}),
        )
        .await?;

    // (user id, days ago it pays, plan) of customers who will pay.
    let mut paying: Vec<(String, i64, i64)> = Vec::new();
    let mut customers = 0;
    let mut payout: Option<String> = None;
    let mut refund_made = false;
    for days_ago in (0..DAYS).rev() {
        let weekend = (days_ago + 2) % 7 < 2;
        let clicks = 3 + dice.below(if weekend { 6 } else { 12 }) + (DAYS - days_ago) as u64 / 6;
        for click in 0..clicks {
            travel(days_ago, 8 + (click as i64 * 13 / clicks as i64));
            seeder
                .call(Method::GET, &format!("/r/{code}"), "", Value::Null)
                .await?;
            seeder.month.clicks += 1;
            // About one click in eight signs up.
            if dice.below(8) != 0 {
                continue;
            }
            customers += 1;
            let name = FIRST_NAMES[dice.below(FIRST_NAMES.len() as u64) as usize];
            let domain = DOMAINS[dice.below(DOMAINS.len() as u64) as usize];
            let user = format!("cus_{customers:03}");
            seeder
                .call(
                    Method::POST,
                    "/v1/referrals",
                    &dev.service_key,
                    json!({"code": code, "referred_user_id": user, "program_id": program_id,
                           "referred_email": format!("{name}.{customers}@{domain}")}),
                )
                .await?;
            seeder.month.signups += 1;
            // Two in three pay a plan one to three days later.
            if dice.below(3) != 0 {
                let plan = PLANS[dice.below(PLANS.len() as u64) as usize];
                paying.push((user, days_ago - 1 - dice.below(3) as i64, plan));
            }
        }
        travel(days_ago, 21);
        for (user, _, plan) in paying.iter().filter(|(_, day, _)| *day == days_ago) {
            seeder
                .call(
                    Method::POST,
                    "/v1/events/invoices",
                    &dev.service_key,
                    json!({"event_id": format!("inv-{user}-1"), "user_id": user,
                           "amount_paid": plan, "currency": "USD"}),
                )
                .await?;
            seeder.month.invoices += 1;
        }
        // One customer asks for half their money back a week after paying.
        let refunded = paying.iter().find(|(_, day, _)| *day == days_ago + 7);
        if let Some((user, _, plan)) = refunded.filter(|_| !refund_made) {
            refund_made = true;
            seeder.month.refunds += 1;
            seeder
                .call(
                    Method::POST,
                    "/v1/events/refunds",
                    &dev.service_key,
                    json!({"event_id": format!("refund-{user}"), "user_id": user,
                           "invoice_event_id": format!("inv-{user}-1"),
                           "amount_refunded": plan / 2, "currency": "USD",
                           "reason": "refund"}),
                )
                .await?;
        }
        // What the scheduled reconciler does every few minutes: rewards past their holding
        // period reach the promoter's balance.
        travel(days_ago, 23);
        referral::delivery::reconcile::release_due(&state.store, referral::clock::now()).await?;
        if days_ago == 12 {
            let me = seeder
                .call(Method::GET, "/v1/promoters/me", promoter_token, Value::Null)
                .await?;
            if me["current_balance"].as_i64() >= me["min_withdrawal_balance"].as_i64() {
                let requested = seeder
                    .call(
                        Method::POST,
                        "/v1/promoters/me/payouts",
                        promoter_token,
                        json!({}),
                    )
                    .await?;
                payout = requested["id"].as_str().map(str::to_owned);
            }
        }
        if let Some(id) = payout.as_ref().filter(|_| days_ago == 10) {
            seeder
                .call(
                    Method::POST,
                    &format!("/v1/payouts/{id}/paid"),
                    &dev.admin_key,
                    json!({}),
                )
                .await?;
            seeder.month.payouts += 1;
        }
    }
    Ok(seeder.month)
}
