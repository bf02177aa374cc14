//! Who does something, and from where: what the rules need to know about a request, without
//! knowing it was an HTTP request.

use std::net::IpAddr;

use super::{ChurchId, LeaderId};

/// The address a request came from; none for the command line and koinonia's own work.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClientAddr(pub Option<IpAddr>);

impl ClientAddr {
    pub fn to_db(self) -> Option<String> {
        self.0.map(|ip| ip.to_string())
    }
}

/// What kind of actor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A signed-in leader of the church.
    Leader { id: LeaderId, admin: bool },
    /// Someone at the command line of the server (`koinonia …`): trusted like an admin.
    Operator,
    /// koinonia itself (retention, sweeps).
    System,
}

/// Someone acting in one church.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Actor {
    pub church: ChurchId,
    pub role: Role,
    pub client: ClientAddr,
}

impl Actor {
    pub fn leader(church: ChurchId, id: LeaderId, admin: bool, client: ClientAddr) -> Self {
        Self { church, role: Role::Leader { id, admin }, client }
    }

    pub fn operator(church: ChurchId) -> Self {
        Self { church, role: Role::Operator, client: ClientAddr::default() }
    }

    pub fn system(church: ChurchId) -> Self {
        Self { church, role: Role::System, client: ClientAddr::default() }
    }

    /// The leader acting, if a leader is.
    pub fn leader_id(&self) -> Option<LeaderId> {
        match self.role {
            Role::Leader { id, .. } => Some(id),
            Role::Operator | Role::System => None,
        }
    }

    /// Whether the actor may do what only a church's admins may.
    pub fn is_admin(&self) -> bool {
        match self.role {
            Role::Leader { admin, .. } => admin,
            Role::Operator | Role::System => true,
        }
    }

    /// How the audit log names the kind of actor (an operator's commands are the system's).
    pub fn kind(&self) -> &'static str {
        match self.role {
            Role::Leader { .. } => "leader",
            Role::Operator | Role::System => "system",
        }
    }
}
