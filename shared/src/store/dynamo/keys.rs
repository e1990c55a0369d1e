//! Every key format of the single table, in one place: no other module formats a `PK`, `SK`,
//! `GSI1PK` or `GSI1SK` string.
//!
//! | item               | PK                                    | SK             | GSI1PK                          | GSI1SK             |
//! |--------------------|---------------------------------------|----------------|---------------------------------|--------------------|
//! | program            | `TENANT#{t}`                          | `PROGRAM#{id}` |                                 |                    |
//! | program-name guard | `TENANT#{t}#PROGRAM_NAME#{name}`      | `UNIQUE`       |                                 |                    |
//! | promoter           | `CODE#{primary code}`                 | `CODE`         | `TENANT#{t}#USER#{u}`           | `PROMOTER`         |
//! | extra code         | `CODE#{code}`                         | `CODE`         | `TENANT#{t}#USER#{u}`           | `CODE#{code}`      |
//! | promoter guard     | `TENANT#{t}#USER#{u}`                 | `PROMOTER`     |                                 |                    |
//! | referral relation  | `TENANT#{t}#REFERRED#{referred}`      | `PROGRAM#{p}`  | `TENANT#{t}#USER#{u}#REFERRALS` | `{id}`             |
//! | reward (ledger)    | `TENANT#{t}#USER#{recipient}`         | `REWARD#{id}`  | `TENANT#{t}#USER#{u}#LEDGER`    | `{created}#{id}`   |
//! | event record       | `TENANT#{t}#EVENT#{kind}#{event id}`  | `EVENT`        |                                 |                    |
//! | referrer stats     | `TENANT#{t}#USER#{u}`                 | `STATS#PROGRAM#{p}` |                            |                    |
//! | referrer earnings  | `TENANT#{t}#USER#{u}`                 | `EARNINGS#PROGRAM#{p}` |                         |                    |
//! | program budget use | `TENANT#{t}#BUDGET#{p}`               | `total` or `{yyyy-mm}` |                         |                    |
//! | payout address use | `TENANT#{t}#PAYOUT_ADDRESS#{sha-256}` | `USERS`        |                                 |                    |
//! | promoter's day     | `TENANT#{t}#USER#{u}`                 | `DAY#{yyyy-mm-dd}` |                             |                    |
//! | program's day      | `TENANT#{t}#PROGRAM_DAYS#{p}`         | `{yyyy-mm-dd}` |                                 |                    |
//! | leaderboard entry  | `TENANT#{t}#BOARD#{p}#{all or yyyy-mm}` | `{referrer}` | (indexes `BOARD_SIGNUPS`, `BOARD_EARNED`: PK / `board_signups`, `board_earned`, numbers) | |
//! | balance            | `TENANT#{t}#USER#{u}`                 | `BALANCE#{currency}` | `TENANT#{t}#USER#{u}`     | `PROMOTER#BALANCE#{currency}` |
//! | code in a program  | `CODE#{code}`                         | `PROGRAM#{p}`  |                                 |                    |
//! | release job        | `TENANT#{t}#USER#{u}`                 | `RELEASE#{p}#{relation or *}` |                  |                    |
//! | tenant             | `TENANT#{t}`                          | `TENANT`       | `TENANTS`                       | `TENANT#{t}`       |
//! | API key            | `APIKEY#{sha-256 of the key}`         | `APIKEY`       |                                 |                    |
//! | webhook endpoint   | `TENANT#{t}`                          | `WEBHOOK#{id}` |                                 |                    |
//! | endpoint counter   | `TENANT#{t}`                          | `WEBHOOK_COUNT` |                                |                    |
//! | webhook event      | `TENANT#{t}#WEBHOOK_EVENT#{id}`       | `WEBHOOK_EVENT` |                                |                    |
//! | delivery log       | `TENANT#{t}#WEBHOOK#{endpoint}`       | `DELIVERY#{event id}` |                          |                    |
//! | delivery request   | `TENANT#{t}#DELIVERY_REQUEST#{id}`    | `DELIVERY_REQUEST` |                             |                    |
//!
//! GSI2 (sparse): a relation by id (`TENANT#{t}#REFERRAL#{id}` / `REFERRAL`), and rewards awaiting
//! delivery to billing (`REWARD#PENDING` / `{updated}#{id}`), rewards in a holding period
//! (`REWARD#HELD_UNTIL` / `{due_at}#{tenant}#{user}#{id}`). Reward ids are
//! `{relation id}.{rule key}[.{event id}]`. GSI2 also holds release jobs not finished
//! (`RELEASES#PENDING` / `{created}#{tenant}#{user}#{job}`).
//!
//! GSI3 (sparse): a tenant's rewards by status (`TENANT#{t}#REWARDS#{status}` / `{updated}#{id}`),
//! promoters by status (`TENANT#{t}#PROMOTERS#{status}` / `{user}`) and payouts by status
//! (`TENANT#{t}#PAYOUTS#{status}` / `{id}`).
//! | payout             | `TENANT#{t}#PAYOUT#{id}`              | `PAYOUT`       | `TENANT#{t}#USER#{u}#PAYOUTS`   | `{id}`             |
//!
//! The tenant comes first in every tenant-owned key, so one tenant can never address another's
//! items. Codes are global (a public link carries only the code), so their items carry the tenant
//! as an attribute and every tenant-scoped read checks it. A promoter lives in the item of its
//! primary code: `/r/{code}` counts a click with one `UpdateItem` on the code alone, and that
//! click is the promoter's `link_clicks`. Guard items enforce uniqueness: they are written with
//! `attribute_not_exists(PK)` in the same transaction as the entity they protect.

pub const PK: &str = "PK";
pub const SK: &str = "SK";
pub const GSI1PK: &str = "GSI1PK";
pub const GSI1SK: &str = "GSI1SK";
pub const GSI1: &str = "GSI1";
pub const GSI2PK: &str = "GSI2PK";
pub const GSI2SK: &str = "GSI2SK";
/// Sparse second index: relations by id, rewards awaiting delivery to billing, release jobs.
pub const GSI2: &str = "GSI2";
pub const GSI3PK: &str = "GSI3PK";
pub const GSI3SK: &str = "GSI3SK";
/// Sparse third index: a tenant's rewards by status.
pub const GSI3: &str = "GSI3";
/// Leaderboards: board items (one per program, period and referrer) by sign-ups and by earnings,
/// numeric sort keys on the items' own partition key: the top 100 is one `Query` of 100 items.
pub const BOARD_SIGNUPS: &str = "BOARD_SIGNUPS";
pub const BOARD_EARNED: &str = "BOARD_EARNED";
pub const BOARD_SIGNUPS_ATTRIBUTE: &str = "board_signups";
pub const BOARD_EARNED_ATTRIBUTE: &str = "board_earned";
/// Epoch-seconds attribute DynamoDB's TTL deletes items by (idempotency records and the like).
pub const TTL: &str = "expires_at_epoch";
/// Every item names its entity, for humans reading the table and for streams.
pub const ENTITY_TYPE: &str = "entity_type";

const GUARD_SK: &str = "UNIQUE";
const PROGRAM_PREFIX: &str = "PROGRAM#";

const CODE_SK: &str = "CODE";

/// The primary key of one item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Key {
    pub pk: String,
    pub sk: String,
}

/// The partition holding a tenant's programs.
pub fn tenant(tenant: &str) -> String {
    format!("TENANT#{tenant}")
}

pub fn program(tenant_id: &str, program_id: &str) -> Key {
    Key {
        pk: tenant(tenant_id),
        sk: format!("{PROGRAM_PREFIX}{program_id}"),
    }
}

/// Sort-key prefix of a tenant's programs (for `begins_with`).
pub fn program_prefix() -> &'static str {
    PROGRAM_PREFIX
}

/// Guard that keeps program names unique in a tenant, whatever their letter case or surrounding
/// white space.
pub fn program_name(tenant_id: &str, name: &str) -> Key {
    Key {
        pk: format!(
            "{}#PROGRAM_NAME#{}",
            tenant(tenant_id),
            normalized_name(name)
        ),
        sk: GUARD_SK.to_owned(),
    }
}

/// A referral code's item (a promoter's primary code holds the promoter). Codes are upper case.
pub fn code(code: &str) -> Key {
    Key {
        pk: format!("CODE#{code}"),
        sk: CODE_SK.to_owned(),
    }
}

/// Guard that keeps one promoter per user and tenant; it names the promoter's primary code.
pub fn promoter_guard(tenant_id: &str, user_id: &str) -> Key {
    Key {
        pk: user(tenant_id, user_id),
        sk: "PROMOTER".to_owned(),
    }
}

fn user(tenant_id: &str, user_id: &str) -> String {
    format!("{}#USER#{user_id}", tenant(tenant_id))
}

/// GSI1 partition of a user's codes (the promoter item and extra codes).
pub fn user_codes(tenant_id: &str, user_id: &str) -> String {
    user(tenant_id, user_id)
}

/// GSI1 sort key of the promoter item among the user's codes. The user's balances sort right
/// after it (`PROMOTER#BALANCE#…`), so one `begins_with` query reads the promoter and its
/// balances.
pub const PROMOTER_GSI1SK: &str = "PROMOTER";

/// The GSI1 sort-key prefix of a user's extra codes.
pub const EXTRA_CODE_GSI1_PREFIX: &str = "CODE#";

/// A user's balance in one currency (they need not be a promoter yet: a referee's rewards are
/// credited before they ever open their promoter page).
pub fn balance(tenant_id: &str, user_id: &str, currency: &str) -> Key {
    Key {
        pk: user(tenant_id, user_id),
        sk: format!("BALANCE#{currency}"),
    }
}

/// GSI1 key of a balance: beside the user's promoter item.
pub fn balance_gsi1(tenant_id: &str, user_id: &str, currency: &str) -> (String, String) {
    (
        user_codes(tenant_id, user_id),
        format!("{PROMOTER_GSI1SK}#BALANCE#{currency}"),
    )
}

/// How many referrals a code brought into one program (`max_referrals` is per program).
pub fn code_program(code: &str, program_id: &str) -> Key {
    Key {
        pk: format!("CODE#{code}"),
        sk: format!("PROGRAM#{program_id}"),
    }
}

/// The partition of a code: its item and its per-program counters.
pub fn code_partition(code: &str) -> String {
    format!("CODE#{code}")
}

/// The sort key of a code's own item in its partition.
pub const CODE_ITEM_SK: &str = CODE_SK;

/// A release of held rewards still to finish: of `user`'s rewards in `program_id` (of one
/// relation, or of any: `*`).
pub fn release_job(
    tenant_id: &str,
    user_id: &str,
    program_id: &str,
    relation: Option<&str>,
) -> Key {
    Key {
        pk: user(tenant_id, user_id),
        sk: format!("RELEASE#{program_id}#{}", relation.unwrap_or("*")),
    }
}

/// GSI2 key of an unfinished release job, oldest first, for the reconciler.
pub fn release_job_pending(created: &str, key: &Key) -> (String, String) {
    (
        RELEASES_PENDING.to_owned(),
        format!("{created}#{}#{}", key.pk, key.sk),
    )
}

/// The GSI2 partition of unfinished release jobs.
pub const RELEASES_PENDING: &str = "RELEASES#PENDING";

/// GSI3 key of a reward: the tenant's rewards of one status, latest change first.
pub fn rewards_by_status(
    tenant_id: &str,
    status: &str,
    updated: &str,
    reward_id: &str,
) -> (String, String) {
    (
        rewards_by_status_partition(tenant_id, status),
        format!("{updated}#{reward_id}"),
    )
}

/// The GSI3 partition of a tenant's rewards of one status.
pub fn rewards_by_status_partition(tenant_id: &str, status: &str) -> String {
    format!("{}#REWARDS#{}", tenant(tenant_id), status.to_uppercase())
}

/// GSI3 key of a promoter among the tenant's promoters of its status (by user id).
pub fn promoters_by_status(tenant_id: &str, status: &str, user_id: &str) -> (String, String) {
    (
        promoters_by_status_partition(tenant_id, status),
        user_id.to_owned(),
    )
}

pub fn promoters_by_status_partition(tenant_id: &str, status: &str) -> String {
    format!("{}#PROMOTERS#{}", tenant(tenant_id), status.to_uppercase())
}

/// GSI3 key of a payout among the tenant's payouts of its status (by id: by age).
pub fn payouts_by_status(tenant_id: &str, status: &str, id: &str) -> (String, String) {
    (
        payouts_by_status_partition(tenant_id, status),
        id.to_owned(),
    )
}

pub fn payouts_by_status_partition(tenant_id: &str, status: &str) -> String {
    format!("{}#PAYOUTS#{}", tenant(tenant_id), status.to_uppercase())
}

/// GSI1 sort key of an extra code among the user's codes.
pub fn extra_code_gsi1sk(code: &str) -> String {
    format!("CODE#{code}")
}

/// A referral relation. Its key is also the rule "a user is referred once per program": the
/// relation is written with `attribute_not_exists(PK)`.
pub fn referral(tenant_id: &str, referred_user: &str, program_id: &str) -> Key {
    Key {
        pk: referred(tenant_id, referred_user),
        sk: format!("PROGRAM#{program_id}"),
    }
}

/// The partition of the relations in which `referred_user` was referred (one per program).
pub fn referred(tenant_id: &str, referred_user: &str) -> String {
    format!("{}#REFERRED#{referred_user}", tenant(tenant_id))
}

/// GSI2 key of a relation, to find it by id.
pub fn referral_by_id(tenant_id: &str, id: &str) -> (String, String) {
    (
        format!("{}#REFERRAL#{id}", tenant(tenant_id)),
        "REFERRAL".to_owned(),
    )
}

/// GSI1 partition of the relations a user referred, sorted by relation id (time).
pub fn referrals_by_referrer(tenant_id: &str, user_id: &str) -> String {
    format!("{}#REFERRALS", user(tenant_id, user_id))
}

/// Sort-key prefix of the rewards one relation gave one recipient.
pub fn relation_rewards_prefix(referral_id: &str) -> String {
    format!("{REWARD_PREFIX}{referral_id}.")
}

/// GSI2 key of a reward awaiting delivery to billing (`pending`): the sparse index the billing
/// producer and reconciler read, oldest first.
pub fn undelivered_reward(updated: &str, reward_id: &str) -> (String, String) {
    (
        UNDELIVERED_REWARDS.to_owned(),
        format!("{updated}#{reward_id}"),
    )
}

/// The GSI2 partition of rewards awaiting delivery to billing.
pub const UNDELIVERED_REWARDS: &str = "REWARD#PENDING";

/// GSI2 key of a reward held for its program's holding period, by the time it ends: the sparse
/// index the scheduled release reads, soonest first.
pub fn held_until(due_at: &str, tenant_id: &str, user: &str, reward_id: &str) -> (String, String) {
    (
        HELD_UNTIL.to_owned(),
        format!("{due_at}#{tenant_id}#{user}#{reward_id}"),
    )
}

/// The GSI2 partition of rewards in a holding period.
pub const HELD_UNTIL: &str = "REWARD#HELD_UNTIL";

/// The record of a processed event (`kind`: `invoice`, `verification`), for idempotency.
pub fn event(tenant_id: &str, kind: &str, event_id: &str) -> Key {
    Key {
        pk: format!("{}#EVENT#{kind}#{event_id}", tenant(tenant_id)),
        sk: "EVENT".to_owned(),
    }
}

/// An email invitation: one per email and tenant (whoever invited first keeps it).
pub fn invitation(tenant_id: &str, email: &str) -> Key {
    Key {
        pk: format!("{}#INVITE#{email}", tenant(tenant_id)),
        sk: "INVITE".to_owned(),
    }
}

/// The user an email belongs to, as sign-ups reported it (seed 004 names users by email).
pub fn email_owner(tenant_id: &str, email: &str) -> Key {
    Key {
        pk: format!("{}#EMAIL#{email}", tenant(tenant_id)),
        sk: "USER".to_owned(),
    }
}

/// How many qualified referrals a referrer has in a program (for `min_referrals`).
pub fn referrer_stats(tenant_id: &str, referrer: &str, program_id: &str) -> Key {
    Key {
        pk: user(tenant_id, referrer),
        sk: format!("STATS#PROGRAM#{program_id}"),
    }
}

/// A promoter's figures of one UTC day (clicks, sign-ups, ... earned) as referrer.
pub fn promoter_day(tenant_id: &str, user_id: &str, date: &str) -> Key {
    Key {
        pk: user(tenant_id, user_id),
        sk: format!("{PROMOTER_DAY_PREFIX}{date}"),
    }
}

/// Sort-key prefix of a promoter's days (a range of days is a key range).
pub const PROMOTER_DAY_PREFIX: &str = "DAY#";

/// A referrer's entry in a program's leaderboard of one period (`all`, or a month).
pub fn board_entry(tenant_id: &str, program_id: &str, period: &str, referrer: &str) -> Key {
    Key {
        pk: board(tenant_id, program_id, period),
        sk: referrer.to_owned(),
    }
}

/// The partition of a program's leaderboard of one period.
pub fn board(tenant_id: &str, program_id: &str, period: &str) -> String {
    format!("{}#BOARD#{program_id}#{period}", tenant(tenant_id))
}

/// A program's figures of one UTC day.
pub fn program_day(tenant_id: &str, program_id: &str, date: &str) -> Key {
    Key {
        pk: program_days(tenant_id, program_id),
        sk: date.to_owned(),
    }
}

/// The partition of a program's days.
pub fn program_days(tenant_id: &str, program_id: &str) -> String {
    format!("{}#PROGRAM_DAYS#{program_id}", tenant(tenant_id))
}

/// What a referrer earned in a program, counted against its `max_earnings_per_promoter`.
pub fn referrer_earnings(tenant_id: &str, referrer: &str, program_id: &str) -> Key {
    Key {
        pk: user(tenant_id, referrer),
        sk: format!("EARNINGS#PROGRAM#{program_id}"),
    }
}

/// What a program spent of its budget in one period (`total`, or a month `2026-11`).
pub fn program_budget(tenant_id: &str, program_id: &str, bucket: &str) -> Key {
    Key {
        pk: format!("{}#BUDGET#{program_id}", tenant(tenant_id)),
        sk: bucket.to_owned(),
    }
}

/// The promoters using one payout address (`digest`: of the method and the address).
pub fn payout_address(tenant_id: &str, digest: &str) -> Key {
    Key {
        pk: format!("{}#PAYOUT_ADDRESS#{digest}", tenant(tenant_id)),
        sk: "USERS".to_owned(),
    }
}

/// A reward lives in its recipient's partition.
pub fn reward(tenant_id: &str, recipient: &str, id: &str) -> Key {
    Key {
        pk: user(tenant_id, recipient),
        sk: format!("REWARD#{id}"),
    }
}

/// Sort-key prefix of a user's rewards.
pub const REWARD_PREFIX: &str = "REWARD#";

/// GSI1 partition of a user's ledger, sorted by `{created}#{reward id}`.
pub fn ledger(tenant_id: &str, user_id: &str) -> String {
    format!("{}#LEDGER", user(tenant_id, user_id))
}

/// GSI1 sort key of a ledger entry: its creation time first, so a time range is a key range.
pub fn ledger_gsi1sk(created: &str, reward_id: &str) -> String {
    format!("{created}#{reward_id}")
}

/// The partition of a user's rewards (for queries).
pub fn user_partition(tenant_id: &str, user_id: &str) -> String {
    user(tenant_id, user_id)
}

pub fn payout(tenant_id: &str, id: &str) -> Key {
    Key {
        pk: format!("{}#PAYOUT#{id}", tenant(tenant_id)),
        sk: "PAYOUT".to_owned(),
    }
}

/// GSI1 partition of a user's payouts, sorted by payout id (time).
pub fn payouts_by_user(tenant_id: &str, user_id: &str) -> String {
    format!("{}#PAYOUTS", user(tenant_id, user_id))
}

/// A tenant's own item, beside its programs in its partition.
pub fn tenant_item(tenant_id: &str) -> Key {
    Key {
        pk: tenant(tenant_id),
        sk: "TENANT".to_owned(),
    }
}

/// GSI1 partition of every tenant (the operator's list), sorted by id.
pub const TENANTS: &str = "TENANTS";

/// GSI1 sort key of a tenant in [`TENANTS`].
pub fn tenant_gsi1sk(tenant_id: &str) -> String {
    tenant(tenant_id)
}

/// An API key, by the digest of the key: authenticating a request is one `GetItem`.
pub fn api_key(digest: &str) -> Key {
    Key {
        pk: format!("APIKEY#{digest}"),
        sk: "APIKEY".to_owned(),
    }
}

/// A webhook endpoint, beside the tenant's programs in its partition.
pub fn webhook_endpoint(tenant_id: &str, id: &str) -> Key {
    Key {
        pk: tenant(tenant_id),
        sk: format!("{WEBHOOK_PREFIX}{id}"),
    }
}

/// Sort-key prefix of a tenant's webhook endpoints (for `begins_with`).
pub const WEBHOOK_PREFIX: &str = "WEBHOOK#";

/// An event as told to webhook endpoints (kept for replay; DynamoDB's TTL removes it).
pub fn webhook_event(tenant_id: &str, id: &str) -> Key {
    Key {
        pk: format!("{}#WEBHOOK_EVENT#{id}", tenant(tenant_id)),
        sk: "WEBHOOK_EVENT".to_owned(),
    }
}

/// The counter of a tenant's webhook endpoints (not under [`WEBHOOK_PREFIX`]).
pub fn webhook_endpoint_count(tenant_id: &str) -> Key {
    Key {
        pk: tenant(tenant_id),
        sk: "WEBHOOK_COUNT".to_owned(),
    }
}

/// The delivery log of one event to one endpoint, in the endpoint's log partition (event ids
/// sort by time: the newest event last).
pub fn webhook_delivery(tenant_id: &str, endpoint_id: &str, event_id: &str) -> Key {
    Key {
        pk: webhook_deliveries(tenant_id, endpoint_id),
        sk: format!("{DELIVERY_PREFIX}{event_id}"),
    }
}

/// The partition of an endpoint's delivery log.
pub fn webhook_deliveries(tenant_id: &str, endpoint_id: &str) -> String {
    format!("{}#WEBHOOK#{endpoint_id}", tenant(tenant_id))
}

/// Sort-key prefix of a delivery log's items.
pub const DELIVERY_PREFIX: &str = "DELIVERY#";

/// Deliveries an admin asked for (a test, a replay), read by the outbox from the stream.
pub fn delivery_request(tenant_id: &str, id: &str) -> Key {
    Key {
        pk: format!("{}#DELIVERY_REQUEST#{id}", tenant(tenant_id)),
        sk: "DELIVERY_REQUEST".to_owned(),
    }
}

/// Names compare case-insensitively and without surrounding or repeated white space.
pub fn normalized_name(name: &str) -> String {
    name.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn program_keys_are_tenant_scoped() {
        let key = program("acme", "01J0000000000000000000000A");
        assert_eq!(key.pk, "TENANT#acme");
        assert_eq!(key.sk, "PROGRAM#01J0000000000000000000000A");
        assert!(key.sk.starts_with(program_prefix()));
        assert_ne!(program("other", "x").pk, program("acme", "x").pk);
    }

    #[test]
    fn name_guards_ignore_case_and_spacing() {
        assert_eq!(
            program_name("acme", "  Spring   Launch "),
            program_name("acme", "spring launch")
        );
        assert_ne!(
            program_name("acme", "Spring"),
            program_name("globex", "Spring")
        );
        assert!(
            !program_name("acme", "x")
                .pk
                .starts_with(&program("acme", "x").sk)
        );
    }
}
