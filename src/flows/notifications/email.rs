//! E-mail notifications: a conversation whose oldest unread message has waited
//! `NOTIFY_EMAIL_AFTER_MINUTES` e-mails each leader of its church who chose e-mail — at most one
//! e-mail per conversation an hour, and only for messages the last one did not tell of. Reading
//! the conversation (for the whole church) before then sends nothing. The e-mail names who wrote
//! (name or masked number) and links to the thread; it never carries the message.
//!
//! A sweep runs every minute inside `serve` ([`run`]); several instances may sweep at once, the
//! claim in the database decides which one sends.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use crate::clock;
use crate::config::{Config, EmailSettings};
use crate::db::{self, Db};
use crate::notify::email::Mailer;

/// Between two sweeps.
pub const SWEEP_EVERY: Duration = Duration::from_secs(60);
/// At most one e-mail per conversation in this long.
pub const THROTTLE: Duration = Duration::from_secs(3600);
/// Conversations quiet for longer than this are not e-mailed about (turning e-mail on does not
/// send a church's whole unread history).
pub const ACTIVE_WITHIN: Duration = Duration::from_secs(24 * 3600);
/// Conversations one sweep looks at; the rest wait for the next.
const PER_SWEEP: i64 = 200;

/// What one sweep did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    /// Conversations e-mailed about.
    pub conversations: usize,
    /// E-mails the SMTP server took.
    pub sent: usize,
    pub failed: usize,
}

fn ago(now: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    now - chrono::Duration::from_std(d).unwrap_or(chrono::Duration::zero())
}

/// One sweep at `now`.
pub async fn sweep(
    db: &Db,
    mailer: &Mailer,
    config: &Config,
    settings: &EmailSettings,
    now: DateTime<Utc>,
) -> Result<Swept, sqlx::Error> {
    let told_before = ago(now, THROTTLE);
    let due = {
        let mut pooled = db.acquire().await?;
        db::conversations::waiting(
            &mut pooled.conn(),
            ago(now, settings.after),
            ago(now, ACTIVE_WITHIN),
            told_before,
            PER_SWEEP,
        )
        .await?
    };
    let mut swept = Swept::default();
    for w in due {
        let (claimed, to, church) = {
            let mut pooled = db.acquire().await?;
            let c = &mut pooled.conn();
            let to = db::leaders::email_recipients(c, w.church_id).await?;
            if to.is_empty() {
                continue;
            }
            let claimed = db::conversations::claim_email(c, &w, told_before, now).await?;
            let church = db::churches::get(c, w.church_id).await?.map(|ch| ch.name).unwrap_or_default();
            (claimed, to, church)
        };
        if !claimed {
            continue; // another instance sends it
        }
        swept.conversations += 1;
        let (subject, body) = message(config, settings, &church, &w);
        let mut delivered = 0;
        for address in &to {
            match mailer.send(address, &subject, body.clone()).await {
                Ok(()) => delivered += 1,
                Err(e) => {
                    swept.failed += 1;
                    tracing::warn!(error = %e, conversation = %w.id, "an e-mail notification was not sent");
                }
            }
        }
        swept.sent += delivered;
        metrics::counter!("koinonia_email_notifications_total", "outcome" => "sent").increment(delivered as u64);
        metrics::counter!("koinonia_email_notifications_total", "outcome" => "failed")
            .increment((to.len() - delivered) as u64);
        if delivered == 0 {
            // Nobody got it: the next sweep tries again.
            let mut pooled = db.acquire().await?;
            db::conversations::release_email(&mut pooled.conn(), w.id, now).await?;
        }
    }
    Ok(swept)
}

/// The e-mail about one conversation: who wrote and where to read it; never what they wrote.
fn message(
    config: &Config,
    settings: &EmailSettings,
    church: &str,
    w: &db::conversations::Waiting,
) -> (String, String) {
    let who = crate::domain::name_or_masked(w.first_name.as_deref(), w.last_name.as_deref(), &w.phone_last4);
    let place = if church.is_empty() { "your church's".to_owned() } else { format!("{church}'s") };
    let kind = if w.is_group { "a group text with " } else { "" };
    let minutes = settings.after.as_secs() / 60;
    let subject = format!("New message from {who} waiting in the inbox");
    let body = format!(
        "A message in {kind}{who} has been waiting unread for more than {minutes} minute{s} in {place} koinonia inbox.\n\n\
         Read and answer it: {link}\n\n\
         You get these e-mails because you chose them in Settings ({settings_link}). At most one an hour per conversation.\n",
        s = if minutes == 1 { "" } else { "s" },
        link = config.public_url(&format!("/inbox/{}", w.id)),
        settings_link = config.public_url("/settings"),
    );
    (subject, body)
}

/// Sweeps every [`SWEEP_EVERY`] until `shutdown` (nothing without `SMTP_URL`).
pub async fn run(db: Db, config: std::sync::Arc<Config>, shutdown: CancellationToken) {
    let Some(settings) = config.email.clone() else { return };
    let mailer = match Mailer::new(&settings.smtp) {
        Ok(m) => m,
        Err(e) => {
            tracing::error!(error = %e, "e-mail notifications are off: the SMTP transport could not be made");
            return;
        }
    };
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(SWEEP_EVERY) => {}
        }
        match sweep(&db, &mailer, &config, &settings, clock::now()).await {
            Ok(s) if s.conversations > 0 => {
                tracing::info!(
                    conversations = s.conversations,
                    sent = s.sent,
                    failed = s.failed,
                    "e-mail notifications sent"
                )
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "the e-mail notification sweep failed; next one in a minute"),
        }
    }
}
