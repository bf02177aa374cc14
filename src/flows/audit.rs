//! The audit trail: one row per sensitive action (media views, deletions, logins).

use serde_json::Value;
use sqlx::types::Json;

use crate::clock;
use crate::db::{self, Conn};
use crate::domain::{ChurchId, LeaderId};
use crate::web::auth::ClientAddr;

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
    /// An action of a signed-in leader.
    pub fn leader(church: ChurchId, leader: LeaderId, action: &'static str, client: ClientAddr) -> Self {
        Self {
            church: Some(church),
            actor_type: "leader",
            actor_id: Some(leader.0),
            action,
            subject: None,
            client,
            detail: None,
        }
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
