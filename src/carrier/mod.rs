//! Carriers: who takes an outbound message. Telnyx in production; the sandbox carrier (when no
//! `TELNYX_API_KEY` is configured) "delivers" to the built-in phone simulator instead, through
//! the same outbox, send job and status handling.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota};

use crate::config::Config;
use crate::telnyx::api::{SendError, SendMessage, SentMessage, TelnyxClient, TelnyxError, To};

/// The carrier of this deployment.
#[derive(Clone)]
pub enum Carrier {
    Telnyx(TelnyxClient),
    Sandbox,
}

impl Carrier {
    pub fn from_config(config: &Config) -> Result<Self, TelnyxError> {
        match &config.telnyx_api_key {
            Some(key) => Ok(Self::Telnyx(TelnyxClient::with_timeouts(
                &config.telnyx_api_base_url,
                key.clone(),
                crate::telnyx::api::CONNECT_TIMEOUT,
                config.workers.telnyx_timeout,
            )?)),
            None => Ok(Self::Sandbox),
        }
    }

    pub fn is_sandbox(&self) -> bool {
        matches!(self, Self::Sandbox)
    }

    /// Hands a message to the carrier.
    pub async fn send(&self, msg: &SendMessage<'_>) -> Result<SentMessage, SendError> {
        match self {
            Self::Telnyx(client) => client.send_message(msg).await,
            // The simulator's inbox is the conversation itself: the member "receives" at once.
            Self::Sandbox => {
                let numbers: Vec<&str> = match msg.to {
                    To::One(n) => vec![n],
                    To::Group(ns) => ns.iter().map(String::as_str).collect(),
                };
                Ok(SentMessage {
                    id: format!("sandbox-{}", uuid::Uuid::new_v4()),
                    to_status: Some("delivered".to_owned()),
                    recipients: numbers.into_iter().map(|n| (n.to_owned(), Some("delivered".to_owned()))).collect(),
                })
            }
        }
    }
}

/// Outbound pacing: per church number and for the whole account, so a burst of replies waits in
/// the queue instead of drawing rate-limit errors from the carrier. Limits are per process.
#[derive(Clone)]
pub struct SendLimits {
    per_number: Arc<DefaultKeyedRateLimiter<String>>,
    account: Arc<DefaultDirectRateLimiter>,
}

fn quota(per_second: f64) -> Quota {
    let period = Duration::from_secs_f64(1.0 / per_second.max(1e-6));
    // Bursts of one second's worth (at least one message).
    let burst = NonZeroU32::new(per_second.ceil().clamp(1.0, 1e6) as u32).unwrap_or(NonZeroU32::MIN);
    Quota::with_period(period).unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN)).allow_burst(burst)
}

impl SendLimits {
    pub fn new(per_number: f64, account: f64) -> Self {
        Self {
            per_number: Arc::new(governor::RateLimiter::keyed(quota(per_number))),
            account: Arc::new(governor::RateLimiter::direct(quota(account))),
        }
    }

    /// `Ok` when a message from `number` may go now; otherwise how long to wait.
    pub fn check(&self, number: &str) -> Result<(), Duration> {
        let clock = DefaultClock::default();
        if let Err(not_until) = self.per_number.check_key(&number.to_owned()) {
            return Err(not_until.wait_time_from(clock.now()));
        }
        if let Err(not_until) = self.account.check() {
            return Err(not_until.wait_time_from(clock.now()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_pace_per_number_and_account() {
        let limits = SendLimits::new(1.0, 2.0);
        assert!(limits.check("+15550000001").is_ok());
        let wait = limits.check("+15550000001").expect_err("second within a second waits");
        assert!(wait <= Duration::from_secs(1));
        assert!(limits.check("+15550000002").is_ok(), "another number has its own budget");
        assert!(limits.check("+15550000003").is_err(), "the account's two per second are used");
    }
}
