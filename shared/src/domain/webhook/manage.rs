//! Webhook endpoint use cases (a tenant's admin): create (the secret shown once), list, read,
//! change, delete, rotate the secret with an overlap, send a test event, replay an event, read
//! the delivery log. Changes are conditional on the version read; the number of endpoints is
//! capped by a counter in the same transaction as the endpoint's creation.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::delivery::{DeliveryLog, DeliveryRequest, DeliveryRequested};
use super::{EndpointView, MAX_ENDPOINTS, WebhookEndpoint};
use crate::domain::event::{Event, EventType};
use crate::domain::program::{nullable, present};
use crate::domain::tenant::{ROTATION_OVERLAP, SigningSecret};
use crate::error::{Error, Result};
use crate::outbound::{self, Policy};
use crate::page::{Page, PageRequest};
use crate::store::{Replaced, WebhookStore};

/// Attempts of a read-modify-write against concurrent changes of the same endpoint.
const ATTEMPTS: usize = 5;
const MAX_DESCRIPTION: usize = 500;

/// The body of `POST /v1/webhook-endpoints` (`url` required) and of `PATCH
/// /v1/webhook-endpoints/{id}`. `event_types` empty or absent: every type.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointInput {
    #[serde(default, deserialize_with = "present")]
    pub url: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub description: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    pub event_types: Option<Vec<String>>,
    #[serde(default, deserialize_with = "present")]
    pub enabled: Option<bool>,
}

/// The body of `POST /v1/events/{id}/replay`: one endpoint, else every enabled endpoint that
/// takes the event's type.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayInput {
    #[serde(default, deserialize_with = "present")]
    pub endpoint_id: Option<String>,
}

/// A new endpoint, with its signing secret shown this once.
#[derive(Clone, Debug, Serialize)]
pub struct CreatedEndpoint {
    #[serde(flatten)]
    pub endpoint: EndpointView,
    pub secret: String,
}

/// A new signing secret, shown once; the previous one signs beside it until it retires.
#[derive(Clone, Debug, Serialize)]
pub struct RotatedEndpointSecret {
    pub secret: String,
    #[serde(with = "crate::clock::rfc3339::option")]
    pub previous_secret_retires_at: Option<OffsetDateTime>,
}

fn event_types(names: &[String]) -> Result<Vec<EventType>> {
    let mut types = Vec::new();
    for name in names {
        match EventType::parse(name) {
            Some(EventType::WebhookTest) | None => {
                let catalogue: Vec<&str> = EventType::ALL
                    .iter()
                    .filter(|t| **t != EventType::WebhookTest)
                    .map(|t| t.as_str())
                    .collect();
                return Err(Error::invalid(
                    "event_types",
                    format!(
                        "'{name}' is not an event type; the catalogue: {}",
                        catalogue.join(", ")
                    ),
                ));
            }
            Some(event_type) if !types.contains(&event_type) => types.push(event_type),
            Some(_) => {}
        }
    }
    types.sort();
    Ok(types)
}

impl EndpointInput {
    /// Applies the change after validating every field; the URL's host is resolved and checked
    /// (https and public addresses, see [`crate::outbound`]).
    async fn apply(self, endpoint: &mut WebhookEndpoint, policy: Policy) -> Result<()> {
        if let Some(url) = &self.url {
            outbound::check_saved("url", url, policy).await?;
            endpoint.url = url.clone();
        }
        if let Some(description) = self.description {
            if let Some(text) = &description
                && (text.chars().count() > MAX_DESCRIPTION || text.chars().any(char::is_control))
            {
                return Err(Error::invalid(
                    "description",
                    format!(
                        "must be at most {MAX_DESCRIPTION} characters without control characters"
                    ),
                ));
            }
            endpoint.description = description.filter(|text| !text.trim().is_empty());
        }
        if let Some(names) = &self.event_types {
            endpoint.event_types = event_types(names)?;
        }
        match self.enabled {
            Some(true) => {
                endpoint.enabled = true;
                endpoint.disabled_reason = None;
                endpoint.failing_since = None;
            }
            Some(false) => {
                endpoint.enabled = false;
                endpoint.disabled_reason = Some(super::DisabledReason::ByAdmin);
            }
            None => {}
        }
        Ok(())
    }
}

fn new_secret(now: OffsetDateTime) -> SigningSecret {
    SigningSecret {
        secret: crate::id::signing_secret(),
        created_at: now,
        retires_at: None,
    }
}

/// A new endpoint of `tenant`; 409 when it has [`MAX_ENDPOINTS`] already.
pub async fn create(
    store: &impl WebhookStore,
    tenant: &str,
    input: EndpointInput,
    policy: Policy,
) -> Result<CreatedEndpoint> {
    if input.url.is_none() {
        return Err(Error::invalid("url", "is required"));
    }
    let now = crate::clock::now();
    let mut endpoint = WebhookEndpoint {
        id: crate::id::new_id(),
        tenant: tenant.to_owned(),
        url: String::new(),
        description: None,
        event_types: Vec::new(),
        enabled: true,
        disabled_reason: None,
        secrets: vec![new_secret(now)],
        failing_since: None,
        created_at: now,
        updated_at: now,
        version: 1,
    };
    input.apply(&mut endpoint, policy).await?;
    if !store.insert_endpoint(&endpoint, MAX_ENDPOINTS).await? {
        return Err(Error::Conflict(format!(
            "the tenant has {MAX_ENDPOINTS} webhook endpoints, the most it may have; delete one first"
        )));
    }
    Ok(CreatedEndpoint {
        secret: endpoint.secrets[0].secret.clone(),
        endpoint: endpoint.view(),
    })
}

/// The endpoint, or 404.
pub async fn get(store: &impl WebhookStore, tenant: &str, id: &str) -> Result<WebhookEndpoint> {
    let found = if crate::id::is_id(id) {
        store.get_endpoint(tenant, id).await?
    } else {
        None
    };
    found.ok_or_else(|| Error::NotFound(format!("no webhook endpoint '{id}'")))
}

/// Every endpoint of the tenant (at most [`MAX_ENDPOINTS`]), oldest first.
pub async fn list(store: &impl WebhookStore, tenant: &str) -> Result<Page<EndpointView>> {
    Ok(Page {
        items: store
            .webhook_endpoints(tenant)
            .await?
            .iter()
            .map(WebhookEndpoint::view)
            .collect(),
        next_cursor: None,
    })
}

/// Reads the endpoint, changes it, writes it if nobody else did meanwhile (else again).
async fn modify<T, F, Fut>(
    store: &impl WebhookStore,
    tenant: &str,
    id: &str,
    mut change: F,
) -> Result<(WebhookEndpoint, T)>
where
    F: FnMut(WebhookEndpoint) -> Fut,
    Fut: std::future::Future<Output = Result<(WebhookEndpoint, T)>>,
{
    for _ in 0..ATTEMPTS {
        let current = get(store, tenant, id).await?;
        let version = current.version;
        let (mut next, answer) = change(current).await?;
        next.version = version + 1;
        next.updated_at = crate::clock::now();
        if store.replace_endpoint(version, &next).await? == Replaced::Done {
            return Ok((next, answer));
        }
    }
    Err(Error::unavailable(format!(
        "webhook endpoint {id} kept changing under this write"
    )))
}

pub async fn change(
    store: &impl WebhookStore,
    tenant: &str,
    id: &str,
    input: EndpointInput,
    policy: Policy,
) -> Result<EndpointView> {
    let (endpoint, ()) = modify(store, tenant, id, |mut endpoint| {
        let input = input.clone();
        async move {
            input.apply(&mut endpoint, policy).await?;
            Ok((endpoint, ()))
        }
    })
    .await?;
    Ok(endpoint.view())
}

/// Deletes the endpoint: nothing more is sent to it (deliveries already queued are dropped).
pub async fn delete(store: &impl WebhookStore, tenant: &str, id: &str) -> Result<()> {
    for _ in 0..ATTEMPTS {
        let endpoint = get(store, tenant, id).await?;
        if store.delete_endpoint(&endpoint).await? {
            return Ok(());
        }
    }
    Err(Error::unavailable(format!(
        "webhook endpoint {id} kept changing under this delete"
    )))
}

/// A new secret; the previous one keeps signing beside it for [`ROTATION_OVERLAP`].
pub async fn rotate_secret(
    store: &impl WebhookStore,
    tenant: &str,
    id: &str,
) -> Result<RotatedEndpointSecret> {
    let (_, rotated) = modify(store, tenant, id, |mut endpoint| async move {
        let now = crate::clock::now();
        let retires = now + ROTATION_OVERLAP;
        let previous = endpoint.secrets.drain(..).next().map(|mut secret| {
            secret.retires_at = Some(retires);
            secret
        });
        let fresh = new_secret(now);
        let answer = RotatedEndpointSecret {
            secret: fresh.secret.clone(),
            previous_secret_retires_at: previous.as_ref().and(Some(retires)),
        };
        endpoint.secrets = std::iter::once(fresh).chain(previous).collect();
        Ok((endpoint, answer))
    })
    .await?;
    Ok(rotated)
}

fn enabled(endpoint: &WebhookEndpoint) -> Result<()> {
    if endpoint.enabled {
        return Ok(());
    }
    Err(Error::Conflict(format!(
        "the webhook endpoint {} is disabled ({}); enable it with PATCH first",
        endpoint.id,
        match endpoint.disabled_reason {
            Some(super::DisabledReason::Gone) => "it answered 410 Gone",
            Some(super::DisabledReason::Failing) => "every delivery failed for 3 days",
            _ => "by an admin",
        }
    )))
}

async fn request(
    store: &impl WebhookStore,
    tenant: &str,
    event: Event,
    endpoint_ids: Vec<String>,
) -> Result<DeliveryRequested> {
    let answer = DeliveryRequested {
        event_id: event.id.clone(),
        event_type: event.event_type,
        endpoint_ids: endpoint_ids.clone(),
    };
    store
        .request_deliveries(&DeliveryRequest {
            id: crate::id::new_id(),
            tenant: tenant.to_owned(),
            endpoint_ids,
            event,
            created_at: crate::clock::now(),
        })
        .await?;
    Ok(answer)
}

/// Sends a `webhook.test` event to the endpoint (through the outbox, within seconds).
pub async fn test(store: &impl WebhookStore, tenant: &str, id: &str) -> Result<DeliveryRequested> {
    let endpoint = get(store, tenant, id).await?;
    enabled(&endpoint)?;
    let now = crate::clock::now();
    let event = Event::new(
        EventType::WebhookTest,
        tenant,
        &format!("{id}|{}", crate::id::new_id()),
        now,
        serde_json::json!({
            "endpoint_id": id,
            "message": "A test event: this endpoint receives the referral engine's events.",
        }),
    );
    request(store, tenant, event, vec![endpoint.id]).await
}

/// Sends a kept event again (same id, new signature): to one endpoint, else to every enabled
/// endpoint that takes its type now.
pub async fn replay(
    store: &impl WebhookStore,
    tenant: &str,
    event_id: &str,
    input: ReplayInput,
) -> Result<DeliveryRequested> {
    let event = store.get_event(tenant, event_id).await?.ok_or_else(|| {
        Error::NotFound(format!(
            "no event '{event_id}' (events are kept {} days)",
            crate::domain::event::EVENT_RETENTION.whole_days()
        ))
    })?;
    let endpoint_ids = match &input.endpoint_id {
        Some(id) => {
            let endpoint = get(store, tenant, id).await?;
            enabled(&endpoint)?;
            vec![endpoint.id]
        }
        None => store
            .webhook_endpoints(tenant)
            .await?
            .into_iter()
            .filter(|endpoint| endpoint.enabled && endpoint.wants(event.event_type))
            .map(|endpoint| endpoint.id)
            .collect(),
    };
    if endpoint_ids.is_empty() {
        return Err(Error::Conflict(format!(
            "no enabled webhook endpoint takes {} events",
            event.event_type
        )));
    }
    request(store, tenant, event, endpoint_ids).await
}

/// A page of the endpoint's delivery log, newest event first.
pub async fn deliveries(
    store: &impl WebhookStore,
    tenant: &str,
    id: &str,
    page: &PageRequest,
) -> Result<Page<DeliveryLog>> {
    let endpoint = get(store, tenant, id).await?;
    store.deliveries(tenant, &endpoint.id, page).await
}
