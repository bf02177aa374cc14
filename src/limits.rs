//! Abuse limits (docs/flows.md, "Abuse limits"): login attempts per account and per client address,
//! replies and uploads per leader, and webhooks whose signature fails per client address. Each
//! is a token bucket (GCRA, `governor`) kept in memory per process; a limited request gets 429
//! with `retry-after`. A correctly signed webhook is never limited.
//!
//! Logins are limited per client address and per account *and* address: an outsider guessing a
//! leader's password uses up only their own allowance, never the leader's. Across all addresses an
//! account's attempts are slowed down (a delay before the password is checked), not refused, so a
//! botnet cannot lock the real leader out either.
//!
//! The maps are bounded: keys are fixed-size (an email is kept as 16 bytes of its SHA-256, an
//! IPv6 client as its /64), idle keys are pruned every minute ([`AbuseLimits::prune`]), and a map
//! that still grows past `max_keys` is emptied (memory bounded; limits restart).

use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};

use sha2::Digest;

use crate::domain::LeaderId;

/// An account as a limiter key: 16 bytes of the SHA-256 of the lower-cased email, whatever its length.
type AccountKey = [u8; 16];

fn account_key(email: &str) -> AccountKey {
    let digest = sha2::Sha256::digest(email.trim().to_lowercase().as_bytes());
    let mut key = [0u8; 16];
    key.copy_from_slice(&digest[..16]);
    key
}

/// A bucket: `burst` at once, then one more every `every`.
#[derive(Debug, Clone, Copy)]
pub struct Rate {
    pub burst: u32,
    pub every: Duration,
}

/// The limits of a deployment.
#[derive(Debug, Clone)]
pub struct LimitSettings {
    /// Login attempts for one account from one address (429 past it).
    pub login_per_account: Rate,
    pub login_per_address: Rate,
    /// Login attempts for one account from all addresses together: past it, attempts are slowed
    /// down by up to `login_slowdown`, never refused.
    pub login_per_account_any_address: Rate,
    pub login_slowdown: Duration,
    pub replies_per_leader: Rate,
    pub uploads_per_leader: Rate,
    pub bad_webhooks_per_address: Rate,
    /// Keys kept per limiter at most.
    pub max_keys: usize,
}

impl Default for LimitSettings {
    fn default() -> Self {
        Self {
            login_per_account: Rate { burst: 5, every: Duration::from_secs(60) },
            login_per_address: Rate { burst: 20, every: Duration::from_secs(6) },
            login_per_account_any_address: Rate { burst: 10, every: Duration::from_secs(30) },
            login_slowdown: Duration::from_secs(2),
            replies_per_leader: Rate { burst: 20, every: Duration::from_secs(2) },
            uploads_per_leader: Rate { burst: 10, every: Duration::from_secs(6) },
            bad_webhooks_per_address: Rate { burst: 10, every: Duration::from_secs(6) },
            max_keys: 100_000,
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

/// A limiter with a cap on its keys.
struct Bounded<K: Hash + Eq + Clone> {
    rate: Rate,
    limiter: Arc<std::sync::RwLock<Arc<DefaultKeyedRateLimiter<K>>>>,
    max_keys: usize,
}

impl<K: Hash + Eq + Clone> Clone for Bounded<K> {
    fn clone(&self) -> Self {
        Self { rate: self.rate, limiter: Arc::clone(&self.limiter), max_keys: self.max_keys }
    }
}

impl<K: Hash + Eq + Clone> Bounded<K> {
    fn new(rate: Rate, max_keys: usize) -> Self {
        Self { rate, limiter: Arc::new(std::sync::RwLock::new(limiter(rate))), max_keys: max_keys.max(1) }
    }

    fn current(&self) -> Arc<DefaultKeyedRateLimiter<K>> {
        match self.limiter.read() {
            Ok(l) => Arc::clone(&l),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    fn check(&self, key: &K) -> Result<(), Duration> {
        let l = self.current();
        let res = l.check_key(key).map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()));
        if l.len() > self.max_keys {
            l.retain_recent();
            if l.len() > self.max_keys {
                tracing::warn!(keys = l.len(), "abuse limiter full: its keys are reset");
                metrics::counter!("koinonia_rate_limiter_resets_total").increment(1);
                if let Ok(mut w) = self.limiter.write() {
                    *w = limiter(self.rate);
                }
            }
        }
        res
    }

    fn prune(&self) {
        let l = self.current();
        l.retain_recent();
        l.shrink_to_fit();
    }

    fn len(&self) -> usize {
        self.current().len()
    }
}

/// The limiters of this process.
#[derive(Clone)]
pub struct AbuseLimits {
    login_pair: Bounded<(AccountKey, Option<IpAddr>)>,
    login_account: Bounded<AccountKey>,
    login_address: Bounded<IpAddr>,
    login_slowdown: Duration,
    replies: Bounded<LeaderId>,
    uploads: Bounded<LeaderId>,
    bad_webhooks: Bounded<IpAddr>,
}

/// A login attempt may go ahead after `delay` (zero unless the account is under attack).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginPermit {
    pub delay: Duration,
}

impl AbuseLimits {
    pub fn new(s: &LimitSettings) -> Self {
        Self {
            login_pair: Bounded::new(s.login_per_account, s.max_keys),
            login_account: Bounded::new(s.login_per_account_any_address, s.max_keys),
            login_address: Bounded::new(s.login_per_address, s.max_keys),
            login_slowdown: s.login_slowdown,
            replies: Bounded::new(s.replies_per_leader, s.max_keys),
            uploads: Bounded::new(s.uploads_per_leader, s.max_keys),
            bad_webhooks: Bounded::new(s.bad_webhooks_per_address, s.max_keys),
        }
    }

    /// A login (or password-check) attempt for `email` from `addr`: refused when this address
    /// tried too often, or tried this account too often; slowed down when the account is tried
    /// too often from everywhere.
    pub fn login(&self, email: &str, addr: Option<IpAddr>) -> Result<LoginPermit, Duration> {
        let addr = addr.map(crate::net::client_key);
        if let Some(ip) = addr {
            self.login_address.check(&ip)?;
        }
        let account = account_key(email);
        self.login_pair.check(&(account, addr))?;
        let delay = match self.login_account.check(&account) {
            Ok(()) => Duration::ZERO,
            Err(wait) => wait.min(self.login_slowdown),
        };
        Ok(LoginPermit { delay })
    }

    pub fn reply(&self, leader: LeaderId) -> Result<(), Duration> {
        self.replies.check(&leader)
    }

    pub fn upload(&self, leader: LeaderId) -> Result<(), Duration> {
        self.uploads.check(&leader)
    }

    /// A webhook whose signature failed, from `addr`.
    pub fn bad_webhook(&self, addr: Option<IpAddr>) -> Result<(), Duration> {
        match addr {
            Some(ip) => self.bad_webhooks.check(&crate::net::client_key(ip)),
            None => Ok(()),
        }
    }

    /// Forgets keys whose buckets are full again (run every minute by `serve`).
    pub fn prune(&self) {
        self.login_pair.prune();
        self.login_account.prune();
        self.login_address.prune();
        self.replies.prune();
        self.uploads.prune();
        self.bad_webhooks.prune();
    }

    /// Keys held, over all limiters.
    pub fn keys(&self) -> usize {
        self.login_pair.len()
            + self.login_account.len()
            + self.login_address.len()
            + self.replies.len()
            + self.uploads.len()
            + self.bad_webhooks.len()
    }
}

/// Prunes the limiters every minute until `shutdown`.
pub async fn run_pruning(limits: AbuseLimits, shutdown: tokio_util::sync::CancellationToken) {
    let mut every = tokio::time::interval(Duration::from_secs(60));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = every.tick() => limits.prune(),
        }
    }
}

/// Whole seconds for `retry-after`, at least one.
pub fn retry_after_secs(wait: Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(max_keys: usize) -> LimitSettings {
        let quick = Rate { burst: 2, every: Duration::from_millis(20) };
        LimitSettings {
            login_per_account: quick,
            login_per_address: Rate { burst: 1000, every: Duration::from_millis(1) },
            login_per_account_any_address: Rate { burst: 2, every: Duration::from_secs(60) },
            login_slowdown: Duration::from_millis(1500),
            replies_per_leader: quick,
            uploads_per_leader: quick,
            bad_webhooks_per_address: quick,
            max_keys,
        }
    }

    #[test]
    fn an_outsider_cannot_lock_the_leader_out() {
        let l = AbuseLimits::new(&settings(1000));
        let outsider: IpAddr = "203.0.113.9".parse().expect("ip");
        let leader: IpAddr = "198.51.100.4".parse().expect("ip");
        assert!(l.login("pastor@grace.test", Some(outsider)).is_ok());
        assert!(l.login("pastor@grace.test", Some(outsider)).is_ok());
        assert!(l.login("pastor@grace.test", Some(outsider)).is_err(), "the outsider's own allowance is spent");
        // The leader's attempt still goes ahead: slowed down (the account is busy), not refused.
        let permit = l.login("Pastor@Grace.test", Some(leader)).expect("not refused");
        assert!(permit.delay > Duration::ZERO && permit.delay <= Duration::from_millis(1500), "{permit:?}");
    }

    #[test]
    fn keys_are_fixed_size_pruned_and_capped() {
        let l = AbuseLimits::new(&settings(50));
        let huge = "x".repeat(1_500_000);
        assert!(l.login(&huge, None).is_ok(), "a 1.5 MB email is a 16-byte key");
        for i in 0..200u32 {
            let ip = IpAddr::from([10, 0, (i / 256) as u8, (i % 256) as u8]);
            let _ = l.login(&format!("user{i}@x.test"), Some(ip));
        }
        assert!(l.login_pair.len() <= 50 && l.login_address.len() <= 50, "capped: {}", l.keys());
        std::thread::sleep(Duration::from_millis(100));
        l.prune();
        assert_eq!(l.login_pair.len(), 0, "idle keys are forgotten");
        // IPv6 clients count by /64.
        let a: IpAddr = "2001:db8:0:1::1".parse().expect("ip");
        let b: IpAddr = "2001:db8:0:1::2".parse().expect("ip");
        let _ = l.bad_webhook(Some(a));
        let _ = l.bad_webhook(Some(b));
        assert!(l.bad_webhook(Some(a)).is_err(), "two addresses of one /64 share a bucket");
    }
}
