//! The audit trail: one row per sensitive action (media views, deletions, logins).

use serde_json::Value;
use sqlx::types::Json;

use crate::clock;
use crate::db::{self, Conn};
use crate::domain::{Actor, ChurchId, ClientAddr};

/// One audited action.
pub struct Entry {
    pub church: Option<ChurchId>,
    pub actor_type: &'static str,
    pub actor_id: Option<uuid::Uuid>,
    pub action: &'static str,
    pub subject: Option<(&'static str, uuid::Uuid)>,
    pub client: ClientAddr,
    pub detail: Option<Value>,
}

impl Entry {
    /// An action of `actor` in their church.
    pub fn by(actor: &Actor, action: &'static str) -> Self {
        Self {
            church: Some(actor.church),
            actor_type: actor.kind(),
            actor_id: actor.leader_id().map(|l| l.0),
            action,
            subject: None,
            client: actor.client,
            detail: None,
        }
    }

    /// An action of a member (who has no account: their link's token was the credential).
    pub fn member(church: ChurchId, action: &'static str, client: ClientAddr) -> Self {
        Self { church: Some(church), actor_type: "member", actor_id: None, action, subject: None, client, detail: None }
    }

    pub fn subject(mut self, kind: &'static str, id: uuid::Uuid) -> Self {
        self.subject = Some((kind, id));
        self
    }

    pub fn detail(mut self, detail: Value) -> Self {
        self.detail = Some(detail);
        self
    }
}

pub async fn record(c: &mut Conn<'_>, e: Entry) -> Result<(), sqlx::Error> {
    db::audit::insert(
        c,
        &db::audit::AuditRow {
            id: uuid::Uuid::now_v7(),
            church_id: e.church,
            actor_type: e.actor_type.to_owned(),
            actor_id: e.actor_id,
            action: e.action.to_owned(),
            subject_type: e.subject.map(|(k, _)| k.to_owned()),
            subject_id: e.subject.map(|(_, id)| id),
            client_addr: e.client.to_db(),
            detail: e.detail.map(Json),
            created_at: clock::now(),
        },
    )
    .await
}

/// A page of the church's audit log, newest first, each entry with its leader's email;
/// `None` for a cursor koinonia did not give.
pub async fn page(
    db: &db::Db,
    church: ChurchId,
    cursor: Option<&str>,
    limit: i64,
) -> Result<Option<super::Page<(db::audit::AuditRow, Option<String>)>>, sqlx::Error> {
    let before = match cursor.filter(|c| !c.is_empty()) {
        Some(c) => match c.parse::<uuid::Uuid>() {
            Ok(id) => Some(id),
            Err(_) => return Ok(None),
        },
        None => None,
    };
    let mut pooled = db.acquire().await?;
    let rows = db::audit::page_with_actor(&mut pooled.conn(), church, before, limit + 1).await?;
    Ok(Some(super::Page::of(rows, limit, |(r, _)| r.id.to_string())))
}
