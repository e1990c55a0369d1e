//! Events: every state change a tenant's product may react to, as the engine tells its webhook
//! endpoints. Events are derived from the changes of stored entities (the table is the outbox:
//! what a transaction committed is what is told, nothing a cancelled one wrote), so no operation
//! has to remember to emit them. Pure: the stream reading and delivery are in `delivery`.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::clock::rfc3339;
use crate::domain::ledger::{Payout, PayoutStatus, Reward, RewardStatus};
use crate::domain::promoter::Promoter;
use crate::domain::referral::{Referral, ReferralStatus};
use crate::domain::webhook::WebhookEndpoint;

/// How long events are kept for replay (`POST /v1/events/{id}/replay`).
pub const EVENT_RETENTION: time::Duration = time::Duration::days(30);

/// The catalogue (openapi.yaml's `webhooks` section has the schema of each).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum EventType {
    #[serde(rename = "promoter.created")]
    PromoterCreated,
    /// An admin suspended or reactivated a promoter.
    #[serde(rename = "promoter.status_changed")]
    PromoterStatusChanged,
    #[serde(rename = "referral.created")]
    ReferralCreated,
    #[serde(rename = "referral.verified")]
    ReferralVerified,
    #[serde(rename = "referral.converted")]
    ReferralConverted,
    #[serde(rename = "referral.completed")]
    ReferralCompleted,
    #[serde(rename = "reward.created")]
    RewardCreated,
    #[serde(rename = "reward.status_changed")]
    RewardStatusChanged,
    /// A refund took part of a reward off (before delivery) or back (after), status unchanged.
    #[serde(rename = "reward.adjusted")]
    RewardAdjusted,
    #[serde(rename = "payout.requested")]
    PayoutRequested,
    #[serde(rename = "payout.paid")]
    PayoutPaid,
    #[serde(rename = "webhook_endpoint.disabled")]
    WebhookEndpointDisabled,
    /// Sent by `POST /v1/webhook-endpoints/{id}/test` to that endpoint only.
    #[serde(rename = "webhook.test")]
    WebhookTest,
}

impl EventType {
    pub const ALL: [EventType; 13] = [
        EventType::PromoterCreated,
        EventType::PromoterStatusChanged,
        EventType::ReferralCreated,
        EventType::ReferralVerified,
        EventType::ReferralConverted,
        EventType::ReferralCompleted,
        EventType::RewardCreated,
        EventType::RewardStatusChanged,
        EventType::RewardAdjusted,
        EventType::PayoutRequested,
        EventType::PayoutPaid,
        EventType::WebhookEndpointDisabled,
        EventType::WebhookTest,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::PromoterCreated => "promoter.created",
            EventType::PromoterStatusChanged => "promoter.status_changed",
            EventType::ReferralCreated => "referral.created",
            EventType::ReferralVerified => "referral.verified",
            EventType::ReferralConverted => "referral.converted",
            EventType::ReferralCompleted => "referral.completed",
            EventType::RewardCreated => "reward.created",
            EventType::RewardStatusChanged => "reward.status_changed",
            EventType::RewardAdjusted => "reward.adjusted",
            EventType::PayoutRequested => "payout.requested",
            EventType::PayoutPaid => "payout.paid",
            EventType::WebhookEndpointDisabled => "webhook_endpoint.disabled",
            EventType::WebhookTest => "webhook.test",
        }
    }

    pub fn parse(text: &str) -> Option<EventType> {
        EventType::ALL.into_iter().find(|t| t.as_str() == text)
    }
}

impl std::fmt::Display for EventType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One event: the body every endpoint receives. `id` is the same on every attempt and replay
/// (the `webhook-id` header), so a receiver deduplicates by it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: EventType,
    #[serde(with = "rfc3339")]
    pub timestamp: OffsetDateTime,
    pub tenant: String,
    pub data: Value,
}

impl Event {
    /// An event whose id follows from what it tells: the same change read twice (a stream batch
    /// retried, a replay of the stream) gives the same id. The id is a ULID of the change's time,
    /// so ids sort by time.
    pub fn new(
        event_type: EventType,
        tenant: &str,
        subject: &str,
        timestamp: OffsetDateTime,
        data: Value,
    ) -> Event {
        let digest = Sha256::digest(format!("{event_type}|{tenant}|{subject}").as_bytes());
        let mut random = [0u8; 16];
        random[6..].copy_from_slice(&digest[..10]);
        let millis = u64::try_from(timestamp.unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
        let id = ulid::Ulid::from_parts(millis, u128::from_be_bytes(random));
        Event {
            id: format!("evt_{id}"),
            event_type,
            timestamp,
            tenant: tenant.to_owned(),
            data,
        }
    }
}

/// A stored entity whose changes are events.
#[derive(Clone, Debug, PartialEq)]
pub enum Entity {
    Promoter(Box<Promoter>),
    Referral(Box<Referral>),
    Reward(Box<Reward>),
    Payout(Box<Payout>),
    WebhookEndpoint(Box<WebhookEndpoint>),
    /// Deliveries an admin asked for (a test, a replay): no event of its own.
    DeliveryRequest(Box<crate::domain::webhook::delivery::DeliveryRequest>),
}

fn data(value: &impl Serialize) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

/// The events of one entity changing from `old` to `new` (`None`: absent before, or deleted).
/// Changes that tell nothing (a click counted, a delivery attempt recorded) give none.
pub fn events_of(old: Option<&Entity>, new: Option<&Entity>) -> Vec<Event> {
    match (old, new) {
        (None, Some(Entity::Promoter(promoter))) => vec![Event::new(
            EventType::PromoterCreated,
            &promoter.tenant,
            &promoter.user_id,
            promoter.created,
            serde_json::json!({
                "user_id": promoter.user_id,
                "referral_code": promoter.referral_code,
                "created": crate::clock::format(promoter.created),
            }),
        )],
        (Some(Entity::Promoter(old)), Some(Entity::Promoter(new))) if old.status != new.status => {
            vec![Event::new(
                EventType::PromoterStatusChanged,
                &new.tenant,
                &format!(
                    "{}|{}|{}",
                    new.user_id,
                    new.status.as_str(),
                    crate::clock::format(new.updated)
                ),
                new.updated,
                serde_json::json!({
                    "user_id": new.user_id,
                    "referral_code": new.referral_code,
                    "status": new.status,
                    "previous_status": old.status,
                    "updated": crate::clock::format(new.updated),
                }),
            )]
        }
        (old, Some(Entity::Referral(new))) => {
            let old = match old {
                Some(Entity::Referral(old)) => Some(old.as_ref()),
                _ => None,
            };
            referral_events(old, new)
        }
        (old, Some(Entity::Reward(new))) => {
            let old = match old {
                Some(Entity::Reward(old)) => Some(old.as_ref()),
                _ => None,
            };
            reward_events(old, new)
        }
        (old, Some(Entity::Payout(new))) => {
            let was = match old {
                Some(Entity::Payout(old)) => Some(old.status),
                _ => None,
            };
            let event_type = match (was, new.status) {
                (None, PayoutStatus::Requested) => EventType::PayoutRequested,
                (Some(PayoutStatus::Requested) | None, PayoutStatus::Paid) => EventType::PayoutPaid,
                _ => return Vec::new(),
            };
            let at = new.paid_at.unwrap_or(new.created);
            vec![Event::new(event_type, &new.tenant, &new.id, at, data(new))]
        }
        (Some(Entity::WebhookEndpoint(old)), Some(Entity::WebhookEndpoint(new)))
            if old.enabled && !new.enabled && new.disabled_by_engine() =>
        {
            vec![Event::new(
                EventType::WebhookEndpointDisabled,
                &new.tenant,
                &format!("{}|{}", new.id, new.version),
                new.updated_at,
                data(&new.view()),
            )]
        }
        _ => Vec::new(),
    }
}

fn referral_events(old: Option<&Referral>, new: &Referral) -> Vec<Event> {
    let mut events = Vec::new();
    let mut add = |event_type: EventType| {
        events.push(Event::new(
            event_type,
            &new.tenant,
            &new.id,
            if event_type == EventType::ReferralCreated {
                new.created
            } else {
                new.updated
            },
            data(new),
        ));
    };
    let Some(old) = old else {
        add(EventType::ReferralCreated);
        if new.verified {
            add(EventType::ReferralVerified);
        }
        return events;
    };
    if !old.verified && new.verified {
        add(EventType::ReferralVerified);
    }
    if old.paid_total == 0 && new.paid_total > 0 {
        add(EventType::ReferralConverted);
    }
    if old.status != ReferralStatus::Completed && new.status == ReferralStatus::Completed {
        add(EventType::ReferralCompleted);
    }
    events
}

fn reward_events(old: Option<&Reward>, new: &Reward) -> Vec<Event> {
    match old {
        None => vec![Event::new(
            EventType::RewardCreated,
            &new.tenant,
            &new.id,
            new.created,
            data(new),
        )],
        Some(old) if old.status != new.status => {
            let mut body = data(new);
            if let Value::Object(fields) = &mut body {
                fields.insert("previous_status".into(), data(&old.status));
                fields.insert("status_reason".into(), data(&status_reason(new)));
            }
            vec![Event::new(
                EventType::RewardStatusChanged,
                &new.tenant,
                &format!(
                    "{}|{}|{}|{}",
                    new.id,
                    old.status.as_str(),
                    new.status.as_str(),
                    crate::clock::format(new.updated)
                ),
                new.updated,
                body,
            )]
        }
        Some(old) if (old.reduced, old.taken_back) != (new.reduced, new.taken_back) => {
            vec![Event::new(
                EventType::RewardAdjusted,
                &new.tenant,
                &format!("{}|{}|{}", new.id, new.reduced, new.taken_back),
                new.updated,
                data(new),
            )]
        }
        Some(_) => Vec::new(),
    }
}

/// Why a reward is in its status, in words, where there is more to say than the status.
fn status_reason(reward: &Reward) -> Option<String> {
    match reward.status {
        RewardStatus::Held => Some(
            reward
                .holds
                .iter()
                .map(|hold| data(hold).as_str().unwrap_or_default().to_owned())
                .collect::<Vec<_>>()
                .join(", "),
        ),
        RewardStatus::Failed => reward.last_error.clone(),
        RewardStatus::Reversed => reward
            .denial
            .clone()
            .or_else(|| reward.refund_reason.map(|r| r.as_str().to_owned())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ledger::Hold;
    use crate::domain::program::{Delivery, Recipient, RewardKind};
    use time::macros::datetime;

    fn reward(status: RewardStatus) -> Reward {
        Reward {
            id: "01REL.referee-signup".into(),
            tenant: "acme".into(),
            user_id: "bob".into(),
            recipient: Recipient::Referee,
            program_id: "P1".into(),
            program_name: Some("Launch".into()),
            referral_id: Some("01REL".into()),
            referrer_user_id: Some("alice".into()),
            code: Some("ALICE".into()),
            kind: RewardKind::Cash,
            amount: 1000,
            currency: "USD".into(),
            delivery: Delivery::BillingCredit,
            status,
            holds: if status == RewardStatus::Held {
                vec![Hold::Verification]
            } else {
                Vec::new()
            },
            due_at: None,
            denial: None,
            invoice: None,
            reduced: 0,
            taken_back: 0,
            reverses: None,
            refund_reason: None,
            budget_bucket: None,
            counts_to_cap: false,
            reason: "signup".into(),
            last_error: None,
            attempts: 0,
            created: datetime!(2026-11-24 10:00 UTC),
            updated: datetime!(2026-11-24 10:00 UTC),
        }
    }

    fn entity(reward: &Reward) -> Entity {
        Entity::Reward(Box::new(reward.clone()))
    }

    #[test]
    fn a_reward_is_created_then_changes_status_with_the_previous_one_and_why() {
        let held = reward(RewardStatus::Held);
        let created = events_of(None, Some(&entity(&held)));
        assert_eq!(created.len(), 1);
        assert_eq!(created[0].event_type, EventType::RewardCreated);
        assert_eq!(created[0].data["status"], "held");
        assert!(created[0].id.starts_with("evt_") && created[0].id.len() == 30);

        let mut pending = reward(RewardStatus::Pending);
        pending.updated = datetime!(2026-11-24 11:00 UTC);
        let changed = events_of(Some(&entity(&held)), Some(&entity(&pending)));
        assert_eq!(changed.len(), 1);
        assert_eq!(changed[0].event_type, EventType::RewardStatusChanged);
        assert_eq!(changed[0].data["previous_status"], "held");
        assert_eq!(changed[0].data["status"], "pending");
        assert_eq!(changed[0].timestamp, pending.updated);
        // Ids sort by time, and the same change always has the same id.
        assert!(changed[0].id > created[0].id);
        assert_eq!(
            changed[0].id,
            events_of(Some(&entity(&held)), Some(&entity(&pending)))[0].id
        );

        let mut failed = reward(RewardStatus::Failed);
        failed.last_error = Some("billing answered 400: no such customer".into());
        let why = events_of(Some(&entity(&pending)), Some(&entity(&failed)));
        assert_eq!(
            why[0].data["status_reason"],
            "billing answered 400: no such customer"
        );
        let on_hold = events_of(Some(&entity(&pending)), Some(&entity(&held)));
        assert_eq!(on_hold[0].data["status_reason"], "verification");

        // An attempt recorded without a change of status tells nothing.
        let mut attempted = pending.clone();
        attempted.attempts = 2;
        assert!(events_of(Some(&entity(&pending)), Some(&entity(&attempted))).is_empty());
        // Nor does a deletion.
        assert!(events_of(Some(&entity(&pending)), None).is_empty());
    }

    #[test]
    fn a_suspension_is_told_and_other_promoter_changes_are_not() {
        let at = datetime!(2026-11-24 10:00 UTC);
        let active = Promoter::new("acme", "alice", "ALICE".into(), at);
        let promoter = |p: &Promoter| Entity::Promoter(Box::new(p.clone()));
        let mut suspended = active.clone();
        suspended.status = crate::domain::promoter::PromoterStatus::Suspended;
        suspended.updated = at + time::Duration::minutes(1);
        let told = events_of(Some(&promoter(&active)), Some(&promoter(&suspended)));
        assert_eq!(told.len(), 1);
        assert_eq!(told[0].event_type, EventType::PromoterStatusChanged);
        assert_eq!(
            (&told[0].data["status"], &told[0].data["previous_status"]),
            (
                &serde_json::json!("suspended"),
                &serde_json::json!("active")
            )
        );
        let mut seen = active.clone();
        seen.recent_activity = vec!["abc".into()];
        assert!(events_of(Some(&promoter(&active)), Some(&promoter(&seen))).is_empty());
    }

    #[test]
    fn a_refund_tells_what_it_took_and_why_it_reversed() {
        let held = reward(RewardStatus::Held);
        let mut reduced = held.clone();
        reduced.reduced = 250;
        let adjusted = events_of(Some(&entity(&held)), Some(&entity(&reduced)));
        assert_eq!(adjusted.len(), 1);
        assert_eq!(adjusted[0].event_type, EventType::RewardAdjusted);
        assert_eq!(adjusted[0].data["reduced"], 250);
        let mut reversed = reduced.clone();
        reversed.reduced = 1000;
        reversed.status = RewardStatus::Reversed;
        reversed.refund_reason = Some(crate::domain::ledger::RefundReason::Chargeback);
        let changed = events_of(Some(&entity(&reduced)), Some(&entity(&reversed)));
        assert_eq!(changed[0].event_type, EventType::RewardStatusChanged);
        assert_eq!(changed[0].data["status_reason"], "chargeback");
    }

    #[test]
    fn the_catalogue_names_round_trip() {
        for event_type in EventType::ALL {
            assert_eq!(EventType::parse(event_type.as_str()), Some(event_type));
            assert_eq!(
                serde_json::to_value(event_type).unwrap(),
                event_type.as_str()
            );
        }
        assert_eq!(EventType::parse("reward.paid"), None);
    }
}
