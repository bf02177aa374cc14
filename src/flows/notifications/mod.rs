//! Telling leaders of new messages when the dashboard is closed: each leader's choice (push,
//! e-mail), the browsers they subscribed for push, the church's privacy setting, and the job that
//! sends the notifications of one inbound batch.
//!
//! A notification says who wrote — the member's name, or the last four digits of the number — and
//! which conversation; the message's first 60 characters only when the church's admins turned
//! that on. Each conversation of a batch gives one notification per browser, tagged with the
//! conversation so that a newer one replaces it on the screen (a burst of 200 texts is one
//! notification, not 200).

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::stream::{self, StreamExt};

use crate::clock;
use crate::config::Config;
use crate::db::{self, Conn, Db};
use crate::domain::{mask_last4, Actor, ChurchId, ConversationId, MessageId};
use crate::flows::audit;
use crate::jobs::{JobError, JobKind, PushTarget};
use crate::media::fetch::Fetcher;
use crate::notify::push::{self, Delivery, Notice, Subscription, SubscriptionError, Urgency};

pub mod email;

/// Browsers kept per leader; a new one beyond this replaces the oldest.
pub const MAX_SUBSCRIPTIONS_PER_LEADER: i64 = 10;
/// Characters of the message a notification may carry (when the church allows it).
pub const TEXT_CHARS: usize = 60;
/// Notifications one browser gets from one batch at most; more conversations than this are
/// summed up in one "N conversations" notification.
pub const MAX_NOTICES_PER_BROWSER: usize = 5;
/// Pushes in flight at once for one job: a slow push service holds one slot, not the others.
const CONCURRENT_PUSHES: usize = 8;
/// Longest wait for one push service to answer.
pub const PUSH_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Deps<'a> {
    pub db: &'a Db,
    pub fetcher: &'a Fetcher,
    pub config: &'a Config,
}

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("{0}")]
    Invalid(String),
    #[error("push notifications are off on this server (no VAPID key is configured)")]
    PushOff,
    #[error("only an admin of the church can do this")]
    AdminOnly,
    #[error("not found")]
    NotFound,
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

impl From<SubscriptionError> for NotifyError {
    fn from(e: SubscriptionError) -> Self {
        Self::Invalid(e.to_string())
    }
}

/// A leader's notification settings and what the server offers.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The leader chose push notifications.
    pub push: bool,
    /// The leader chose e-mail notifications (stored; sending comes later).
    pub email: bool,
    /// The church's notifications carry the first 60 characters of the message.
    pub include_text: bool,
    /// The server has a VAPID key: push can be turned on.
    pub push_available: bool,
    /// `SMTP_URL` is configured.
    pub email_available: bool,
    /// Browsers of this leader subscribed.
    pub devices: i64,
}

/// The VAPID public key browsers subscribe with, when push is on.
pub fn public_key(config: &Config) -> Option<&str> {
    config.secrets.vapid.as_ref().map(|k| k.public_key())
}

fn leader_of(actor: &Actor) -> Result<crate::domain::LeaderId, NotifyError> {
    actor.leader_id().ok_or(NotifyError::NotFound)
}

pub async fn settings(deps: &Deps<'_>, actor: &Actor) -> Result<Settings, NotifyError> {
    let leader = leader_of(actor)?;
    let mut pooled = deps.db.acquire().await?;
    let c = &mut pooled.conn();
    let choice = db::leaders::notify_choice(c, actor.church, leader).await?.ok_or(NotifyError::NotFound)?;
    let include_text = db::churches::push_include_text(c, actor.church).await?.unwrap_or(false);
    let devices = db::push_subscriptions::count_for_leader(c, actor.church, leader).await?;
    Ok(Settings {
        push: choice.notify_push,
        email: choice.notify_email,
        include_text,
        push_available: deps.config.secrets.vapid.is_some(),
        email_available: deps.config.email.is_some(),
        devices,
    })
}

/// What a leader changes; `None` leaves a setting as it is.
#[derive(Debug, Default, Clone, Copy)]
pub struct Change {
    pub push: Option<bool>,
    pub email: Option<bool>,
    /// The church's setting: admins only.
    pub include_text: Option<bool>,
}

pub async fn update(deps: &Deps<'_>, actor: &Actor, change: Change) -> Result<Settings, NotifyError> {
    let leader = leader_of(actor)?;
    if change.include_text.is_some() && !actor.is_admin() {
        return Err(NotifyError::AdminOnly);
    }
    if change.push == Some(true) && deps.config.secrets.vapid.is_none() {
        return Err(NotifyError::PushOff);
    }
    let mut tx = deps.db.begin().await?;
    let c = &mut tx.conn();
    if !db::leaders::set_notify_choice(c, actor.church, leader, change.push, change.email).await? {
        return Err(NotifyError::NotFound);
    }
    if let Some(include) = change.include_text {
        let before = db::churches::push_include_text(c, actor.church).await?.ok_or(NotifyError::NotFound)?;
        if before != include {
            db::churches::set_push_include_text(c, actor.church, include).await?;
            let detail = serde_json::json!({ "from": before, "to": include });
            audit::record(c, audit::Entry::by(actor, "church.push_include_text").detail(detail)).await?;
        }
    }
    tx.commit().await?;
    settings(deps, actor).await
}

/// Records this browser's subscription for the leader, who thereby chooses push. A leader keeps
/// at most [`MAX_SUBSCRIPTIONS_PER_LEADER`] browsers: the oldest goes.
pub async fn subscribe(
    deps: &Deps<'_>,
    actor: &Actor,
    endpoint: &str,
    p256dh: &str,
    auth: &str,
) -> Result<Settings, NotifyError> {
    let leader = leader_of(actor)?;
    if deps.config.secrets.vapid.is_none() {
        return Err(NotifyError::PushOff);
    }
    let sub = Subscription::parse(deps.fetcher, endpoint, p256dh, auth)?;
    let now = clock::now();
    let mut tx = deps.db.begin().await?;
    let c = &mut tx.conn();
    if !db::leaders::set_notify_choice(c, actor.church, leader, Some(true), None).await? {
        return Err(NotifyError::NotFound);
    }
    let row = db::push_subscriptions::SubscriptionRow {
        id: uuid::Uuid::now_v7(),
        church_id: actor.church,
        leader_id: leader,
        endpoint: sub.endpoint.to_string(),
        p256dh: sub.p256dh,
        auth: sub.auth,
        created_at: now,
        last_used_at: None,
    };
    db::push_subscriptions::upsert(c, &row).await?;
    db::push_subscriptions::keep_newest(c, leader, MAX_SUBSCRIPTIONS_PER_LEADER).await?;
    tx.commit().await?;
    settings(deps, actor).await
}

/// Forgets one of the leader's browsers (by its endpoint); 404 when it is not theirs. The
/// leader's choice of push ends with their last browser.
pub async fn unsubscribe(deps: &Deps<'_>, actor: &Actor, endpoint: &str) -> Result<Settings, NotifyError> {
    let leader = leader_of(actor)?;
    if endpoint.len() > push::MAX_ENDPOINT_BYTES {
        return Err(NotifyError::NotFound);
    }
    // Stored endpoints are normalised URLs: compare the same form.
    let endpoint = url::Url::parse(endpoint.trim()).map(|u| u.to_string()).map_err(|_| NotifyError::NotFound)?;
    let mut tx = deps.db.begin().await?;
    let c = &mut tx.conn();
    if !db::push_subscriptions::delete_by_endpoint(c, actor.church, leader, &endpoint).await? {
        return Err(NotifyError::NotFound);
    }
    if db::push_subscriptions::count_for_leader(c, actor.church, leader).await? == 0 {
        db::leaders::set_notify_choice(c, actor.church, leader, Some(false), None).await?;
    }
    tx.commit().await?;
    settings(deps, actor).await
}

/// Inside an inbound batch's transaction: one notification job per church of the batch, naming
/// the newest message of each of its conversations — written only when one of the church's
/// leaders chose push and has a browser (one statement per church, whichever it is). Returns
/// the churches whose job was written. Nothing at all when push is off.
pub(crate) async fn queue_push(
    c: &mut Conn<'_>,
    config: &Config,
    messages: impl Iterator<Item = (ChurchId, ConversationId, MessageId)>,
    now: DateTime<Utc>,
) -> Result<HashSet<ChurchId>, sqlx::Error> {
    let mut queued = HashSet::new();
    if config.secrets.vapid.is_none() {
        return Ok(queued);
    }
    let mut by_church: HashMap<ChurchId, Vec<PushTarget>> = HashMap::new();
    for (church, conversation_id, message_id) in messages {
        let list = by_church.entry(church).or_default();
        match list.iter_mut().find(|t| t.conversation_id == conversation_id) {
            Some(t) => t.message_id = t.message_id.max(message_id),
            None => list.push(PushTarget { conversation_id, message_id }),
        }
    }
    let mut churches: Vec<_> = by_church.into_iter().collect();
    churches.sort_by_key(|(church, _)| *church);
    for (church, messages) in churches {
        let job = crate::jobs::Job::PushNotify { messages };
        let row = db::jobs::JobRow {
            church_id: Some(church),
            max_attempts: 5,
            ..crate::jobs::queue::queued_row(JobKind::PushNotify.as_str(), job.payload(), now)
        };
        if db::push_subscriptions::insert_job_if_subscribed(c, &row).await? {
            queued.insert(church);
        }
    }
    Ok(queued)
}

/// The notification of one new message.
fn notice(row: &db::push_subscriptions::NoticeRow, include_text: bool) -> Notice {
    let masked = mask_last4(&row.phone_last4);
    let sender = crate::domain::name_or_masked(row.first_name.as_deref(), row.last_name.as_deref(), &row.phone_last4);
    let title = if row.is_group { format!("{sender} · group text") } else { sender };
    let text = row.content.split_whitespace().collect::<Vec<_>>().join(" ");
    let body = if include_text && !text.is_empty() {
        let mut first: String = text.chars().take(TEXT_CHARS).collect();
        if text.chars().count() > TEXT_CHARS {
            first.push('…');
        }
        first
    } else {
        format!("New message from {masked}")
    };
    Notice { title, body, url: format!("/inbox/{}", row.conversation_id), tag: row.conversation_id.to_string() }
}

/// A summary for a browser with more new conversations than [`MAX_NOTICES_PER_BROWSER`].
fn summary(count: usize) -> Notice {
    Notice {
        title: "New messages".into(),
        body: format!("{count} conversations have new messages"),
        url: "/inbox".into(),
        tag: "koinonia-inbox".into(),
    }
}

/// The job: sends the notifications of one batch to every browser of the church's leaders who
/// chose push. A push service that says the subscription is gone (404/410) loses it; one that
/// is busy or failing (429, 5xx, no answer) gets the job retried with the queue's backoff — the
/// browsers that already had it then see it replaced (same tag), not doubled.
pub async fn send_push(deps: &Deps<'_>, church: ChurchId, targets: &[PushTarget]) -> Result<(), JobError> {
    let Some(key) = deps.config.secrets.vapid.as_ref() else { return Ok(()) };
    let (subs, include_text, rows) = {
        let mut pooled = deps.db.acquire().await?;
        let c = &mut pooled.conn();
        let subs = db::push_subscriptions::of_push_leaders(c, church).await?;
        if subs.is_empty() {
            return Ok(());
        }
        let include_text = db::churches::push_include_text(c, church).await?.unwrap_or(false);
        let ids: Vec<MessageId> = targets.iter().map(|t| t.message_id).collect();
        (subs, include_text, db::push_subscriptions::notices(c, church, &ids).await?)
    };
    // In the order of the batch; a message erased since is left out.
    let mut notices: Vec<Notice> = targets
        .iter()
        .filter_map(|t| rows.iter().find(|r| r.message_id == t.message_id))
        .map(|r| notice(r, include_text))
        .collect();
    if notices.is_empty() {
        return Ok(());
    }
    if notices.len() > MAX_NOTICES_PER_BROWSER {
        notices = vec![summary(notices.len())];
    }
    let now_unix = clock::now().timestamp();
    let subject = deps.config.push.subject.as_str();
    let mut sends = Vec::with_capacity(subs.len() * notices.len());
    for row in &subs {
        // Rows were checked when stored; one that no longer passes (a policy change) is dropped.
        let sub = match Subscription::parse(deps.fetcher, &row.endpoint, &row.p256dh, &row.auth) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(subscription = %row.id, error = %e, "push subscription no longer valid; removed");
                sends.push((row.id, Err(Delivery::Gone)));
                continue;
            }
        };
        for n in &notices {
            match push::build(key, subject, &sub, n, Urgency::High, now_unix) {
                Ok(req) => sends.push((row.id, Ok((sub.clone(), req)))),
                Err(e) => sends.push((row.id, Err(Delivery::Refused(e.to_string())))),
            }
        }
    }
    let fetcher = deps.fetcher;
    let results: Vec<(uuid::Uuid, Delivery)> = stream::iter(sends)
        .map(|(id, send)| async move {
            match send {
                Ok((sub, req)) => (id, push::send(fetcher, &sub, req, PUSH_TIMEOUT).await),
                Err(d) => (id, d),
            }
        })
        .buffer_unordered(CONCURRENT_PUSHES)
        .collect()
        .await;

    let (mut sent, mut gone, mut retry) = (Vec::new(), HashSet::new(), None::<(String, Option<Duration>)>);
    for (id, delivery) in results {
        match delivery {
            Delivery::Accepted => {
                metrics::counter!("koinonia_push_total", "outcome" => "sent").increment(1);
                sent.push(id);
            }
            Delivery::Gone => {
                if gone.insert(id) {
                    metrics::counter!("koinonia_push_total", "outcome" => "removed").increment(1);
                }
            }
            Delivery::Refused(why) => {
                metrics::counter!("koinonia_push_total", "outcome" => "failed").increment(1);
                tracing::warn!(subscription = %id, error = %why, "push refused");
            }
            Delivery::Retry { why, after } => {
                metrics::counter!("koinonia_push_total", "outcome" => "retry").increment(1);
                let later = match (&retry, after) {
                    (Some((_, Some(a))), Some(b)) => Some((*a).max(b)),
                    (Some((_, a)), b) => a.or(b),
                    (None, b) => b,
                };
                retry = Some((why, later));
            }
        }
    }
    if !sent.is_empty() || !gone.is_empty() {
        let mut pooled = deps.db.acquire().await?;
        let c = &mut pooled.conn();
        for id in &gone {
            db::push_subscriptions::delete(c, *id).await?;
        }
        db::push_subscriptions::touch(c, &sent, clock::now()).await?;
    }
    match retry {
        Some((error, after)) => Err(JobError::Retry { error, after }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(content: &str, first: Option<&str>) -> db::push_subscriptions::NoticeRow {
        db::push_subscriptions::NoticeRow {
            message_id: MessageId::new(),
            conversation_id: ConversationId::new(),
            content: content.into(),
            first_name: first.map(str::to_owned),
            last_name: None,
            phone_last4: "0101".into(),
            is_group: false,
        }
    }

    #[test]
    fn a_notice_names_the_sender_and_carries_text_only_when_allowed() {
        let r = row("Can someone call me back about Sunday's potluck? I have questions", None);
        let n = notice(&r, false);
        assert_eq!(n.title, "•••-•••-0101");
        assert_eq!(n.body, "New message from •••-•••-0101");
        assert_eq!(n.url, format!("/inbox/{}", r.conversation_id));
        assert_eq!(n.tag, r.conversation_id.to_string());
        let n = notice(&r, true);
        assert_eq!(n.body, "Can someone call me back about Sunday's potluck? I have ques…");
        assert_eq!(n.body.chars().count(), TEXT_CHARS + 1);
        assert_eq!(notice(&row("Short", Some("Ann")), true).body, "Short");
        assert_eq!(notice(&row("Short", Some("Ann")), true).title, "Ann");
        assert_eq!(notice(&row("", None), true).body, "New message from •••-•••-0101", "a file alone");
        let group = db::push_subscriptions::NoticeRow { is_group: true, ..row("Hi all", Some("Ann")) };
        assert_eq!(notice(&group, false).title, "Ann · group text");
    }
}
