//! Leaders' passwords: argon2id with the crate's recommended parameters (19 MiB, 2 passes).
//!
//! Hashing is deliberately expensive, so it is also a way to exhaust a server: 150 concurrent
//! logins each asking for 19 MiB on an unbounded blocking thread once took a server to 7.5 GB.
//! [`Hasher`] bounds it. At most `workers` hashes run at once (one per core by default), each in
//! a memory buffer taken from a pool that is allocated once and reused, so logins cause no
//! allocation storm and the memory they use is fixed. Callers beyond that wait in a queue that
//! is bounded in length and in time; past either bound they get [`PasswordError::Busy`], which
//! the web layer answers with 503 and `retry-after`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use argon2::password_hash::{rand_core::OsRng, Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use subtle::ConstantTimeEq;
use tokio::sync::Semaphore;

/// Shortest accepted password.
pub const MIN_LEN: usize = 10;
/// Longest accepted password, in characters.
pub const MAX_LEN: usize = 1024;
/// Stored hashes asking for more memory than this (KiB) are not computed: they were not made by
/// koinonia, and computing them would break the memory bound.
const MAX_M_COST: u32 = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("password must be at least {MIN_LEN} characters")]
    TooShort,
    #[error("password must be at most {MAX_LEN} characters")]
    TooLong,
    #[error("password hashing failed")]
    Hash,
    /// Every hashing slot is busy and the queue is full or waited too long.
    #[error("the server is busy checking passwords; try again in a few seconds")]
    Busy,
}

pub fn check_strength(password: &str) -> Result<(), PasswordError> {
    match password.chars().count() {
        n if n < MIN_LEN => Err(PasswordError::TooShort),
        n if n > MAX_LEN => Err(PasswordError::TooLong),
        _ => Ok(()),
    }
}

/// A hash of a random password nobody knows, in today's parameters: an unknown email is checked
/// against it so that the answer costs as much as for a real account and does not reveal which
/// emails are registered. (A constant, so it costs no hashing of its own.)
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$3Tr6u7EYh6i0OqX0o1VPZw$Qk0BVBIq8EUb7O0KgqZrLM9g3dZbv9u0AowUSS0Wnpk";

/// How hashing is bounded.
#[derive(Debug, Clone, Copy)]
pub struct HasherLimits {
    /// Hashes computed at once (each holds one 19 MiB buffer).
    pub workers: usize,
    /// Callers that may wait for a slot; more are refused at once.
    pub max_waiting: usize,
    /// How long a caller waits for a slot before it is refused.
    pub max_wait: Duration,
}

impl HasherLimits {
    /// One hash per core, 32 waiting per core, 5 s at most in the queue.
    pub fn for_this_machine() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        Self { workers: cores, max_waiting: 32 * cores, max_wait: Duration::from_secs(5) }
    }
}

/// The bounded password hasher of a process. Cheap to clone.
#[derive(Clone)]
pub struct Hasher(Arc<Inner>);

struct Inner {
    limits: HasherLimits,
    slots: Semaphore,
    waiting: AtomicUsize,
    /// Memory buffers for argon2, at most one per slot, reused from call to call.
    buffers: Mutex<Vec<Vec<Block>>>,
}

impl Hasher {
    pub fn new(limits: HasherLimits) -> Self {
        let workers = limits.workers.max(1);
        Self(Arc::new(Inner {
            limits: HasherLimits { workers, ..limits },
            slots: Semaphore::new(workers),
            waiting: AtomicUsize::new(0),
            buffers: Mutex::new(Vec::with_capacity(workers)),
        }))
    }

    /// A PHC string (`$argon2id$v=19$…`) of a new password (its strength checked first).
    pub async fn hash(&self, password: &str) -> Result<String, PasswordError> {
        check_strength(password)?;
        let password = password.to_owned();
        self.run(move |memory| hash_with(&password, memory)).await?
    }

    /// Whether `password` matches the stored PHC string; `None` (no such account) checks against
    /// a dummy hash at the same cost and answers false.
    pub async fn verify(&self, password: &str, stored: Option<&str>) -> Result<bool, PasswordError> {
        if password.chars().count() > MAX_LEN {
            return Ok(false);
        }
        let (phc, real) = match stored {
            Some(phc) => (phc.to_owned(), true),
            None => (DUMMY_HASH.to_owned(), false),
        };
        let password = password.to_owned();
        let matches = self.run(move |memory| verify_with(&password, &phc, memory)).await?;
        Ok(real && matches)
    }

    /// Runs `work` on a blocking thread once a slot is free, with a pooled buffer.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Vec<Block>) -> T + Send + 'static,
    ) -> Result<T, PasswordError> {
        let inner = &self.0;
        let permit = match inner.slots.try_acquire() {
            Ok(p) => p,
            Err(_) => {
                if inner.waiting.fetch_add(1, Ordering::AcqRel) >= inner.limits.max_waiting {
                    inner.waiting.fetch_sub(1, Ordering::AcqRel);
                    return Err(PasswordError::Busy);
                }
                let waited = tokio::time::timeout(inner.limits.max_wait, inner.slots.acquire()).await;
                inner.waiting.fetch_sub(1, Ordering::AcqRel);
                match waited {
                    Ok(Ok(p)) => p,
                    _ => return Err(PasswordError::Busy),
                }
            }
        };
        let mut memory = inner.buffers.lock().map(|mut b| b.pop()).unwrap_or_default().unwrap_or_default();
        let pool = Arc::clone(&self.0);
        let (out, memory) = tokio::task::spawn_blocking(move || {
            let out = work(&mut memory);
            (out, memory)
        })
        .await
        .map_err(|_| PasswordError::Hash)?;
        if let Ok(mut buffers) = pool.buffers.lock() {
            if buffers.len() < pool.limits.workers {
                buffers.push(memory);
            }
        }
        drop(permit);
        Ok(out)
    }
}

/// `memory` grown (never shrunk) to the block count of `params`.
fn blocks_for<'a>(memory: &'a mut Vec<Block>, params: &Params) -> &'a mut [Block] {
    let n = params.block_count();
    if memory.len() < n {
        memory.resize(n, Block::default());
    }
    &mut memory[..n]
}

fn hash_with(password: &str, memory: &mut Vec<Block>) -> Result<String, PasswordError> {
    let params = Params::default();
    let salt = SaltString::generate(&mut OsRng);
    let mut salt_bytes = [0u8; 64];
    let salt_raw = salt.decode_b64(&mut salt_bytes).map_err(|_| PasswordError::Hash)?;
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    argon
        .hash_password_into_with_memory(password.as_bytes(), salt_raw, &mut out, blocks_for(memory, &params))
        .map_err(|_| PasswordError::Hash)?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params).map_err(|_| PasswordError::Hash)?,
        salt: Some(salt.as_salt()),
        hash: Some(Output::new(&out).map_err(|_| PasswordError::Hash)?),
    };
    Ok(phc.to_string())
}

fn verify_with(password: &str, phc: &str, memory: &mut Vec<Block>) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else { return false };
    let (Ok(algorithm), Ok(params)) = (Algorithm::try_from(parsed.algorithm), Params::try_from(&parsed)) else {
        return false;
    };
    let version = parsed.version.map_or(Ok(Version::V0x13), Version::try_from);
    let (Ok(version), Some(salt), Some(expected)) = (version, parsed.salt, parsed.hash) else { return false };
    if params.m_cost() > MAX_M_COST {
        return false;
    }
    let mut salt_bytes = [0u8; 64];
    let Ok(salt_raw) = salt.decode_b64(&mut salt_bytes) else { return false };
    let mut out = [0u8; 64];
    let Some(out) = out.get_mut(..expected.len()) else { return false };
    let argon = Argon2::new(algorithm, version, params.clone());
    if argon.hash_password_into_with_memory(password.as_bytes(), salt_raw, out, blocks_for(memory, &params)).is_err() {
        return false;
    }
    bool::from(out.ct_eq(expected.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hasher(workers: usize, max_waiting: usize, max_wait: Duration) -> Hasher {
        Hasher::new(HasherLimits { workers, max_waiting, max_wait })
    }

    #[tokio::test]
    async fn hash_and_verify() {
        let h = hasher(1, 4, Duration::from_secs(30));
        let phc = h.hash("correct horse battery").await.expect("hash");
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(h.verify("correct horse battery", Some(&phc)).await.expect("verify"));
        assert!(!h.verify("wrong horse battery", Some(&phc)).await.expect("verify"));
        assert!(!h.verify("x", Some("not a hash")).await.expect("verify"));
        assert!(matches!(h.hash("short").await, Err(PasswordError::TooShort)));
        // Hashes made by the argon2 crate's own API (earlier releases) still verify.
        use argon2::password_hash::PasswordHasher;
        let salt = SaltString::generate(&mut OsRng);
        let old = Argon2::default().hash_password(b"an older password", &salt).expect("hash").to_string();
        assert!(h.verify("an older password", Some(&old)).await.expect("verify"));
        assert!(!h.verify("another password", Some(&old)).await.expect("verify"));
    }

    #[tokio::test]
    async fn the_dummy_hash_is_in_todays_parameters_and_matches_nothing() {
        let parsed = PasswordHash::new(DUMMY_HASH).expect("parses");
        let params = Params::try_from(&parsed).expect("params");
        let today = Params::default();
        assert_eq!(
            (params.m_cost(), params.t_cost(), params.p_cost()),
            (today.m_cost(), today.t_cost(), today.p_cost())
        );
        assert_eq!(parsed.algorithm, Algorithm::Argon2id.ident());
        let h = hasher(1, 4, Duration::from_secs(30));
        assert!(!h.verify("not-a-real-password-0000", None).await.expect("verify"));
        assert!(!h.verify("", None).await.expect("verify"));
    }

    #[tokio::test]
    async fn callers_beyond_the_queue_are_refused_and_buffers_are_reused() {
        // One slot, held here; one caller may wait for it, the next is refused at once.
        let h = hasher(1, 1, Duration::from_secs(60));
        let held = h.0.slots.try_acquire().expect("the slot is free");
        let waiter = {
            let h = h.clone();
            tokio::spawn(async move { h.hash("the waiting password").await })
        };
        while h.0.waiting.load(Ordering::Acquire) == 0 {
            tokio::task::yield_now().await;
        }
        assert!(matches!(h.hash("one too many waiting").await, Err(PasswordError::Busy)));
        drop(held);
        assert!(waiter.await.expect("task").is_ok(), "the waiting caller gets the slot");
        assert!(h.verify("the waiting password", None).await.is_ok());
        assert_eq!(h.0.buffers.lock().expect("lock").len(), 1, "one buffer, kept for the next call");
    }

    #[tokio::test]
    async fn a_caller_waits_no_longer_than_the_deadline() {
        let h = hasher(1, 8, Duration::from_millis(20));
        let _held = h.0.slots.try_acquire().expect("the slot is free");
        let started = std::time::Instant::now();
        assert!(matches!(h.verify("a long password", None).await, Err(PasswordError::Busy)));
        assert!(started.elapsed() >= Duration::from_millis(20));
    }
}
