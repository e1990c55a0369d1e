//! Webhook endpoints: where a tenant wants its events, which ones, and the secrets they are
//! signed with (Standard Webhooks). The engine disables an endpoint that answers `410 Gone` or
//! has failed for [`FAILING_DISABLES_AFTER`]; an admin enables it again.

pub mod delivery;
pub mod manage;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::clock::rfc3339;
use crate::domain::event::EventType;
use crate::domain::tenant::SigningSecret;

/// An endpoint failing every delivery for this long is disabled.
pub const FAILING_DISABLES_AFTER: time::Duration = time::Duration::days(3);
/// The most endpoints a tenant has at once.
pub const MAX_ENDPOINTS: usize = 20;

/// Why an endpoint is disabled: by an admin, or by the engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DisabledReason {
    /// `enabled: false` by an admin.
    ByAdmin,
    /// The endpoint answered `410 Gone`.
    Gone,
    /// Every delivery failed for [`FAILING_DISABLES_AFTER`].
    Failing,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WebhookEndpoint {
    pub id: String,
    pub tenant: String,
    pub url: String,
    pub description: Option<String>,
    /// The event types sent here; empty: every type.
    pub event_types: Vec<EventType>,
    pub enabled: bool,
    pub disabled_reason: Option<DisabledReason>,
    /// Newest first; an older one signs beside it until `retires_at`.
    pub secrets: Vec<SigningSecret>,
    /// Since when every delivery has failed (cleared by a success).
    #[serde(default, with = "rfc3339::option")]
    pub failing_since: Option<OffsetDateTime>,
    #[serde(with = "rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "rfc3339")]
    pub updated_at: OffsetDateTime,
    pub version: u64,
}

impl WebhookEndpoint {
    /// Whether events of `event_type` go here (while enabled).
    pub fn wants(&self, event_type: EventType) -> bool {
        match event_type {
            // Sent to one endpoint on request, never by subscription.
            EventType::WebhookTest => false,
            _ => self.event_types.is_empty() || self.event_types.contains(&event_type),
        }
    }

    /// The secrets a delivery at `now` is signed with: the newest, and any older one whose
    /// overlap has not ended.
    pub fn signing_secrets(&self, now: OffsetDateTime) -> Vec<&str> {
        SigningSecret::live(&self.secrets, now)
    }

    /// Whether the engine (not an admin) disabled it.
    pub fn disabled_by_engine(&self) -> bool {
        matches!(
            self.disabled_reason,
            Some(DisabledReason::Gone | DisabledReason::Failing)
        )
    }

    pub fn view(&self) -> EndpointView {
        let now = crate::clock::now();
        EndpointView {
            id: self.id.clone(),
            url: self.url.clone(),
            description: self.description.clone(),
            event_types: self.event_types.clone(),
            enabled: self.enabled,
            disabled_reason: self.disabled_reason,
            failing_since: self.failing_since,
            secret_created_at: self.secrets.first().map(|s| s.created_at),
            previous_secret_retires_at: SigningSecret::overlap_ends(&self.secrets, now),
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

/// An endpoint as the API answers it: never its secrets.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EndpointView {
    pub id: String,
    pub url: String,
    pub description: Option<String>,
    pub event_types: Vec<EventType>,
    pub enabled: bool,
    pub disabled_reason: Option<DisabledReason>,
    #[serde(with = "rfc3339::option")]
    pub failing_since: Option<OffsetDateTime>,
    #[serde(with = "rfc3339::option")]
    pub secret_created_at: Option<OffsetDateTime>,
    #[serde(with = "rfc3339::option")]
    pub previous_secret_retires_at: Option<OffsetDateTime>,
    #[serde(with = "rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "rfc3339")]
    pub updated_at: OffsetDateTime,
}
