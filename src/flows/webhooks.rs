//! Telnyx webhooks as facts. The signature is checked on the raw body before anything is parsed
//! or written; a refused webhook is logged with its reason, counted and remembered for
//! `koinonia doctor`, never stored. A signed `message.received` becomes an inbound message, a
//! `message.sent` / `message.finalized` a delivery report; every other event is acknowledged
//! and ignored. A redelivered event changes nothing.

use http::HeaderMap;

use crate::clock;
use crate::db;
use crate::db::Db;
use crate::domain::{ClientAddr, MessageId, Phone};
use crate::flows::inbound::{self, AnnouncedFile, InboundMessage};
use crate::flows::outbound::{self, DeliveryReport, ReportOutcome};
use crate::telnyx::webhook::{self, Envelope, ReceivedPayload};

/// What taking webhooks needs: the signature key and limits, and the inbound intake.
pub struct Deps<'a> {
    pub db: &'a Db,
    pub limits: &'a crate::limits::AbuseLimits,
    pub config: &'a crate::config::Config,
    pub live: &'a crate::live::Live,
    pub intake: &'a inbound::Intake,
    pub phone: &'a crate::crypto::phone::PhoneCrypto,
}

/// The two webhook routes (with their aliases).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// The messaging profile's webhook: inbound messages (and the profile's delivery events).
    Mms,
    /// The `webhook_url` of each sent message: its delivery reports.
    Status,
}

impl Route {
    fn label(self) -> &'static str {
        match self {
            Self::Mms => "mms",
            Self::Status => "status",
        }
    }
}

/// A webhook that was taken: Telnyx may stop delivering it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Taken {
    Recorded,
    /// Seen before: nothing changed.
    Duplicate,
    /// Knowingly not acted on (an event type koinonia does not read, a number no church owns,
    /// a report for a message koinonia does not know).
    Ignored,
}

#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// Too many refused webhooks from this address: wait this many seconds.
    #[error("too many requests; try again in {0} seconds")]
    RateLimited(u64),
    #[error("invalid webhook signature")]
    BadSignature,
    /// Signed, but not readable: the sentence says what.
    #[error("{0}")]
    Unreadable(&'static str),
    /// Not recorded: Telnyx delivers it again.
    #[error("cannot record inbound message: {0}")]
    Inbound(#[from] inbound::InboundError),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

fn rejected(route: Route, reason: &'static str) {
    metrics::counter!("koinonia_webhooks_rejected_total", "route" => route.label(), "reason" => reason).increment(1);
}

/// Takes one webhook as it arrived: `hint` is koinonia's own message id from a status route's
/// `m` parameter.
pub async fn receive(
    deps: &Deps<'_>,
    route: Route,
    client: ClientAddr,
    headers: &HeaderMap,
    body: &[u8],
    hint: Option<MessageId>,
) -> Result<Taken, WebhookError> {
    let env = verified(deps, route, client, headers, body).await?;
    match (route, env.data.event_type.as_str()) {
        (Route::Mms, "message.received") => received(deps, env).await,
        // The profile's webhook URL also gets delivery events; those are the status route's.
        (_, "message.sent" | "message.finalized") => delivery(deps, route, env, hint).await,
        (Route::Mms, other) => {
            tracing::info!(event_type = other, "webhook event ignored");
            Ok(Taken::Ignored)
        }
        (Route::Status, other) => {
            tracing::info!(event_type = %other, "delivery route: event ignored");
            Ok(Taken::Ignored)
        }
    }
}

/// Verifies and parses.
async fn verified(
    deps: &Deps<'_>,
    route: Route,
    client: ClientAddr,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Envelope, WebhookError> {
    let label = route.label();
    let now = clock::now().timestamp();
    if let Err(e) = webhook::verify(deps.config.telnyx_public_key.as_ref(), headers, body, now) {
        rejected(route, e.label());
        // Only refused webhooks count against an address: a correctly signed one never waits.
        if let Err(wait) = deps.limits.bad_webhook(client.0) {
            metrics::counter!("koinonia_rate_limited_total", "what" => "webhook").increment(1);
            return Err(WebhookError::RateLimited(crate::limits::retry_after_secs(wait)));
        }
        tracing::warn!(route = label, reason = %e, client = ?client.0, "webhook refused: bad signature");
        remember_rejection(deps, route, e.to_string(), client).await;
        return Err(WebhookError::BadSignature);
    }
    match webhook::parse_envelope(body) {
        Some(env) => {
            metrics::counter!("koinonia_webhooks_received_total", "route" => label, "event" => event_label(&env.data.event_type))
                .increment(1);
            Ok(env)
        }
        None => {
            rejected(route, "bad_body");
            tracing::warn!(route = label, "webhook refused: body is not a Telnyx event");
            remember_rejection(deps, route, "the body is not a Telnyx event".into(), client).await;
            Err(WebhookError::Unreadable("body is not a Telnyx event"))
        }
    }
}

/// The event type as a metric label: the types koinonia reads by name, every other as `other`,
/// so the number of series stays bounded whatever arrives.
fn event_label(event_type: &str) -> &'static str {
    match event_type {
        "message.received" => "message.received",
        "message.sent" => "message.sent",
        "message.finalized" => "message.finalized",
        _ => "other",
    }
}

/// Keeps a refused webhook's reason for `koinonia doctor` (best effort, never blocks the answer).
async fn remember_rejection(deps: &Deps<'_>, route: Route, reason: String, client: ClientAddr) {
    let addr = client.to_db();
    let result = async {
        let mut pooled = deps.db.acquire().await?;
        db::webhook_rejections::record(&mut pooled.conn(), route.label(), &reason, addr.as_deref(), clock::now()).await
    }
    .await;
    if let Err(e) = result {
        tracing::warn!(error = %e, "could not record a refused webhook");
    }
}

/// `message.received`: the carrier's payload as an inbound message, recorded.
async fn received(deps: &Deps<'_>, env: Envelope) -> Result<Taken, WebhookError> {
    let event_id = env.data.id.clone();
    let msg = inbound_message(env)?;
    match deps.intake.record(msg).await? {
        inbound::Outcome::Recorded { message, files, .. } => {
            // Debug, as every request is: a line per message cost a tenth of the intake's CPU
            // (README, Performance); `webhook_events` and the metrics keep the record.
            tracing::debug!(%message, files, "inbound message recorded");
            Ok(Taken::Recorded)
        }
        inbound::Outcome::Duplicate => {
            metrics::counter!("koinonia_webhooks_duplicate_total").increment(1);
            tracing::info!(event = %event_id, "redelivered event ignored");
            Ok(Taken::Duplicate)
        }
        inbound::Outcome::UnknownNumber => {
            // Acknowledged so Telnyx stops retrying; nothing stored.
            rejected(Route::Mms, "unknown_number");
            tracing::warn!(event = %event_id, "inbound message to a number no church owns; dropped");
            Ok(Taken::Ignored)
        }
    }
}

/// What koinonia reads of a `message.received` event.
fn inbound_message(env: Envelope) -> Result<InboundMessage, WebhookError> {
    let payload: ReceivedPayload = serde_json::from_value(env.data.payload).map_err(|e| {
        rejected(Route::Mms, "bad_payload");
        tracing::warn!(error = %e, "webhook refused: message.received payload unreadable");
        WebhookError::Unreadable("message.received payload is not readable")
    })?;
    let Ok(from) = Phone::parse(&payload.from.phone_number) else {
        rejected(Route::Mms, "bad_number");
        tracing::warn!("webhook refused: sender number unreadable");
        return Err(WebhookError::Unreadable("payload.from.phone_number is not a phone number"));
    };
    let to: Vec<Phone> = payload.to.iter().filter_map(|p| Phone::parse(&p.phone_number).ok()).collect();
    let cc: Vec<Phone> = payload
        .cc
        .iter()
        .filter_map(|p| Phone::parse(&p.phone_number).ok())
        .filter(|p| !to.contains(p) && *p != from)
        .collect();
    Ok(InboundMessage {
        event_id: Some(env.data.id),
        event_type: env.data.event_type,
        from,
        to,
        cc,
        text: payload.text.unwrap_or_default(),
        files: payload
            .media
            .iter()
            .map(|m| AnnouncedFile {
                url: m.url.clone(),
                declared_type: m.content_type.clone(),
                declared_size: m.size,
                declared_sha256: m.declared_sha256(),
                name: None,
            })
            .collect(),
        autoresponse_type: payload.autoresponse_type,
    })
}

#[derive(serde::Deserialize)]
struct StatusPayload {
    id: String,
    #[serde(default)]
    group_message_id: Option<String>,
    #[serde(default)]
    to: Vec<crate::telnyx::webhook::Party>,
    #[serde(default)]
    errors: Vec<crate::telnyx::api::ApiErrorDetail>,
}

/// `message.sent` / `message.finalized`: moves the message's delivery status forward.
async fn delivery(
    deps: &Deps<'_>,
    route: Route,
    env: Envelope,
    hint: Option<MessageId>,
) -> Result<Taken, WebhookError> {
    let payload: StatusPayload = serde_json::from_value(env.data.payload).map_err(|e| {
        rejected(Route::Status, "bad_payload");
        tracing::warn!(error = %e, route = route.label(), "delivery report unreadable");
        WebhookError::Unreadable("delivery report payload is not readable")
    })?;
    let report = DeliveryReport {
        event_id: Some(env.data.id.clone()),
        event_type: env.data.event_type.clone(),
        message: hint,
        provider_id: payload.id,
        group_message_id: payload.group_message_id.filter(|g| !g.is_empty()),
        status: payload.to.first().and_then(|t| t.status.clone()).unwrap_or_default(),
        recipients: payload
            .to
            .iter()
            .take(crate::flows::inbound::MAX_GROUP_MEMBERS)
            .map(|t| (t.phone_number.clone(), t.status.clone().unwrap_or_default()))
            .collect(),
        errors: payload.errors,
    };
    match outbound::apply_report(deps.db, deps.phone, deps.live, &report).await? {
        ReportOutcome::Applied => Ok(Taken::Recorded),
        ReportOutcome::Duplicate => {
            metrics::counter!("koinonia_webhooks_duplicate_total").increment(1);
            Ok(Taken::Duplicate)
        }
        ReportOutcome::UnknownMessage => {
            tracing::info!(event = %env.data.id, "delivery report for a message koinonia does not know; ignored");
            Ok(Taken::Ignored)
        }
    }
}
