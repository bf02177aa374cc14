//! Abuse limits (SPEC "Abuse limits"): login attempts per account and per client address,
//! replies and uploads per leader, and webhooks whose signature fails per client address. Each
//! is a token bucket (GCRA, `governor`) kept in memory per process; a limited request gets 429
//! with `retry-after`. A correctly signed webhook is never limited.

use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};

use crate::domain::LeaderId;

/// A bucket: `burst` at once, then one more every `every`.
#[derive(Debug, Clone, Copy)]
pub struct Rate {
    pub burst: u32,
    pub every: Duration,
}

/// The limits of a deployment.
#[derive(Debug, Clone)]
pub struct LimitSettings {
    pub login_per_account: Rate,
    pub login_per_address: Rate,
    pub replies_per_leader: Rate,
    pub uploads_per_leader: Rate,
    pub bad_webhooks_per_address: Rate,
}

impl Default for LimitSettings {
    fn default() -> Self {
        Self {
            login_per_account: Rate { burst: 5, every: Duration::from_secs(60) },
            login_per_address: Rate { burst: 20, every: Duration::from_secs(6) },
            replies_per_leader: Rate { burst: 20, every: Duration::from_secs(2) },
            uploads_per_leader: Rate { burst: 10, every: Duration::from_secs(6) },
            bad_webhooks_per_address: Rate { burst: 10, every: Duration::from_secs(6) },
        }
    }
}

fn limiter<K: Hash + Eq + Clone>(rate: Rate) -> Arc<DefaultKeyedRateLimiter<K>> {
    let burst = NonZeroU32::new(rate.burst).unwrap_or(NonZeroU32::MIN);
    let quota = Quota::with_period(rate.every.max(Duration::from_millis(1)))
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
        .allow_burst(burst);
    Arc::new(governor::RateLimiter::keyed(quota))
}

fn check<K: Hash + Eq + Clone>(l: &DefaultKeyedRateLimiter<K>, key: &K) -> Result<(), Duration> {
    l.check_key(key).map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
}

/// The limiters of this process.
#[derive(Clone)]
pub struct AbuseLimits {
    login_account: Arc<DefaultKeyedRateLimiter<String>>,
    login_address: Arc<DefaultKeyedRateLimiter<IpAddr>>,
    replies: Arc<DefaultKeyedRateLimiter<LeaderId>>,
    uploads: Arc<DefaultKeyedRateLimiter<LeaderId>>,
    bad_webhooks: Arc<DefaultKeyedRateLimiter<IpAddr>>,
}

impl AbuseLimits {
    pub fn new(s: &LimitSettings) -> Self {
        Self {
            login_account: limiter(s.login_per_account),
            login_address: limiter(s.login_per_address),
            replies: limiter(s.replies_per_leader),
            uploads: limiter(s.uploads_per_leader),
            bad_webhooks: limiter(s.bad_webhooks_per_address),
        }
    }

    /// A login attempt for `email` (lower-cased) from `addr`.
    pub fn login(&self, email: &str, addr: Option<IpAddr>) -> Result<(), Duration> {
        if let Some(ip) = addr {
            check(&self.login_address, &ip)?;
        }
        check(&self.login_account, &email.to_owned())
    }

    pub fn reply(&self, leader: LeaderId) -> Result<(), Duration> {
        check(&self.replies, &leader)
    }

    pub fn upload(&self, leader: LeaderId) -> Result<(), Duration> {
        check(&self.uploads, &leader)
    }

    /// A webhook whose signature failed, from `addr`.
    pub fn bad_webhook(&self, addr: Option<IpAddr>) -> Result<(), Duration> {
        match addr {
            Some(ip) => check(&self.bad_webhooks, &ip),
            None => Ok(()),
        }
    }
}

/// Whole seconds for `retry-after`, at least one.
pub fn retry_after_secs(wait: Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}
