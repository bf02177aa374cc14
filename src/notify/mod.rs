//! Notifications to leaders outside the dashboard. Web Push ([`push`], RFC 8030/8291) with
//! koinonia's VAPID identity ([`vapid`], RFC 8292); e-mail is only a stored choice so far.

pub mod push;
pub mod vapid;
