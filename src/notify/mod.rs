//! Notifications to leaders outside the dashboard: Web Push ([`push`], RFC 8030/8291) with
//! koinonia's VAPID identity ([`vapid`], RFC 8292), and e-mail through the deployment's SMTP
//! server ([`email`]).

pub mod email;
pub mod push;
pub mod vapid;
