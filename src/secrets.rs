//! The three keys koinonia cannot run without: the phone blind-index key, the phone encryption key
//! and the session-signing secret.
//!
//! With PostgreSQL (a deployment at scale) they must be given in the environment, identical on
//! every instance. In embedded mode (SQLite) a missing one is generated once into
//! `{KOINONIA_DATA_DIR}/secrets.env` (mode 0600) and read from there on every later start, so
//! `cargo run --release` needs no configuration and keeps its data readable across restarts.
//!
//! Rotation adds two optional variables (in the environment, or in `secrets.env` in embedded
//! mode): `PHONE_ENCRYPTION_KEY_PREVIOUS` (decrypt-only keys) and `JWT_SECRET_PREVIOUS` (sessions
//! signed before the rotation stay valid until they expire).
//!
//! One optional key sits beside them: `VAPID_PRIVATE_KEY`, koinonia's identity towards browsers'
//! push services (Web Push notifications). In embedded mode it is generated into `secrets.env`
//! like the others — appended to a file of an earlier version, whose values stay as they are.
//! With PostgreSQL it comes from the environment; without it push notifications are off and
//! everything else runs as before.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

use base64::Engine;
use secrecy::{ExposeSecret, SecretBox};

use crate::config::{decode_key32, ConfigError};

pub const PHONE_HASH_KEY: &str = "PHONE_HASH_KEY";
pub const PHONE_ENCRYPTION_KEY: &str = "PHONE_ENCRYPTION_KEY";
pub const JWT_SECRET: &str = "JWT_SECRET";
/// Earlier phone encryption keys (comma-separated), used only to read numbers not yet
/// re-encrypted under `PHONE_ENCRYPTION_KEY` (`koinonia keys reencrypt`).
pub const PHONE_ENCRYPTION_KEY_PREVIOUS: &str = "PHONE_ENCRYPTION_KEY_PREVIOUS";
/// The session secret before the last rotation: sessions it signed stay valid until they expire.
pub const JWT_SECRET_PREVIOUS: &str = "JWT_SECRET_PREVIOUS";
/// The VAPID private key (base64url P-256 scalar) of Web Push notifications; optional.
pub const VAPID_PRIVATE_KEY: &str = "VAPID_PRIVATE_KEY";
const FILE_NAME: &str = "secrets.env";

pub struct Secrets {
    pub phone_hash_key: SecretBox<[u8; 32]>,
    pub phone_encryption_key: SecretBox<[u8; 32]>,
    pub jwt_secret: SecretBox<Vec<u8>>,
    /// Decrypt-only keys of earlier rotations, newest first.
    pub phone_encryption_key_previous: Vec<SecretBox<[u8; 32]>>,
    /// Verify-only session secret of the last rotation.
    pub jwt_secret_previous: Option<SecretBox<Vec<u8>>>,
    /// The Web Push (VAPID) key; `None` when push notifications are off.
    pub vapid: Option<crate::notify::vapid::VapidKey>,
    /// Where the VAPID key came from (for `doctor`): the environment or `secrets.env`.
    pub vapid_source: VapidSource,
}

/// Where the VAPID key came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VapidSource {
    Environment,
    SecretsFile,
    /// Not set (PostgreSQL without `VAPID_PRIVATE_KEY`): push is off.
    Missing,
}

/// Reads the secrets from `vars`, falling back (embedded mode only) to the generated file.
pub fn load(vars: &HashMap<String, String>, data_dir: &Path, embedded: bool) -> Result<Secrets, ConfigError> {
    let given = |name: &str| vars.get(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
    let mut values: HashMap<&'static str, String> = HashMap::new();
    for name in [PHONE_HASH_KEY, PHONE_ENCRYPTION_KEY, JWT_SECRET] {
        if let Some(v) = given(name) {
            values.insert(name, v);
        }
    }
    if values.len() < 3 {
        if !embedded {
            let missing = [PHONE_HASH_KEY, PHONE_ENCRYPTION_KEY, JWT_SECRET]
                .into_iter()
                .find(|n| !values.contains_key(n))
                .unwrap_or(PHONE_HASH_KEY);
            return Err(ConfigError::Missing {
                var: missing,
                why: "with PostgreSQL (every instance must share it); generate one with `openssl rand -base64 32`",
            });
        }
        fill_from_file(&mut values, data_dir)?;
    }
    // The rotation variables are optional; in embedded mode they may also sit in secrets.env.
    let mut previous: HashMap<&'static str, String> = HashMap::new();
    for name in [PHONE_ENCRYPTION_KEY_PREVIOUS, JWT_SECRET_PREVIOUS] {
        if let Some(v) = given(name) {
            previous.insert(name, v);
        }
    }
    if embedded && previous.len() < 2 {
        for (name, value) in previous_from_file(data_dir)? {
            previous.entry(name).or_insert(value);
        }
    }
    let get = |name: &'static str| values.get(name).cloned().unwrap_or_default();
    let jwt = session_secret(JWT_SECRET, get(JWT_SECRET))?;
    let phone_encryption_key_previous = match previous.get(PHONE_ENCRYPTION_KEY_PREVIOUS) {
        None => Vec::new(),
        Some(list) => list
            .split(',')
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .map(|k| decode_key32(PHONE_ENCRYPTION_KEY_PREVIOUS, k))
            .collect::<Result<_, _>>()?,
    };
    let jwt_secret_previous =
        previous.get(JWT_SECRET_PREVIOUS).map(|v| session_secret(JWT_SECRET_PREVIOUS, v.clone())).transpose()?;
    let (vapid, vapid_source) = vapid_key(given(VAPID_PRIVATE_KEY), data_dir, embedded)?;
    Ok(Secrets {
        phone_hash_key: decode_key32(PHONE_HASH_KEY, &get(PHONE_HASH_KEY))?,
        phone_encryption_key: decode_key32(PHONE_ENCRYPTION_KEY, &get(PHONE_ENCRYPTION_KEY))?,
        jwt_secret: jwt,
        phone_encryption_key_previous,
        jwt_secret_previous,
        vapid,
        vapid_source,
    })
}

/// The VAPID key: from the environment; else (embedded mode) from `secrets.env`, generated and
/// appended there when the file lacks it; else none (push off).
fn vapid_key(
    given: Option<String>,
    data_dir: &Path,
    embedded: bool,
) -> Result<(Option<crate::notify::vapid::VapidKey>, VapidSource), ConfigError> {
    use crate::notify::vapid::{self, VapidKey};
    let parse = |raw: &str, source: VapidSource| {
        VapidKey::from_base64(raw).map(|k| (Some(k), source)).map_err(|e| ConfigError::Invalid {
            var: VAPID_PRIVATE_KEY,
            problem: match source {
                VapidSource::SecretsFile => format!("in {}: {e}", data_dir.join(FILE_NAME).display()),
                _ => e.to_string(),
            },
        })
    };
    if let Some(raw) = given {
        return parse(&raw, VapidSource::Environment);
    }
    if !embedded {
        return Ok((None, VapidSource::Missing));
    }
    let (path, existing) = read_file(data_dir, true)?;
    let stored = entries(&existing).get(VAPID_PRIVATE_KEY).filter(|v| !v.is_empty()).map(|v| (*v).to_owned());
    if let Some(raw) = stored {
        return parse(&raw, VapidSource::SecretsFile);
    }
    let generated =
        vapid::generate().map_err(|e| ConfigError::Secrets(format!("cannot generate {VAPID_PRIVATE_KEY}: {e}")))?;
    let newline = if existing.is_empty() || existing.ends_with('\n') { "" } else { "\n" };
    append(&path, existing.is_empty(), &format!("{newline}{VAPID_PRIVATE_KEY}={generated}\n"))?;
    tracing::info!(path = %path.display(), "generated the Web Push (VAPID) key");
    parse(&generated, VapidSource::SecretsFile)
}

/// `secrets.env` of `data_dir` and what it holds (empty when it does not exist yet); with
/// `create`, the folder is made first.
fn read_file(data_dir: &Path, create: bool) -> Result<(std::path::PathBuf, String), ConfigError> {
    if create {
        std::fs::create_dir_all(data_dir).map_err(|e| {
            ConfigError::Secrets(format!("KOINONIA_DATA_DIR: cannot create {}: {e}", data_dir.display()))
        })?;
    }
    let path = data_dir.join(FILE_NAME);
    match std::fs::read_to_string(&path) {
        Ok(s) => Ok((path, s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok((path, String::new())),
        Err(e) => Err(ConfigError::Secrets(format!("cannot read {}: {e}", path.display()))),
    }
}

/// The `NAME=value` lines of `secrets.env`, trimmed.
fn entries(text: &str) -> HashMap<&str, &str> {
    text.lines().filter_map(|l| l.split_once('=')).map(|(k, v)| (k.trim(), v.trim())).collect()
}

/// Appends lines to `secrets.env` (mode 0600), the header first when the file is new. What the
/// file holds already is never rewritten.
fn append(path: &Path, new_file: bool, lines: &str) -> Result<(), ConfigError> {
    let fail = |e: std::io::Error| ConfigError::Secrets(format!("cannot write {}: {e}", path.display()));
    let mut opts = std::fs::OpenOptions::new();
    opts.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut file = opts.open(path).map_err(fail)?;
    if new_file {
        let header = "# Generated by koinonia on first start. Keep this file private and backed up:\n\
                      # without it the members' phone numbers in the database cannot be read.\n";
        file.write_all(header.as_bytes()).map_err(fail)?;
    }
    file.write_all(lines.as_bytes()).and_then(|_| file.sync_all()).map_err(fail)
}

/// A session-signing secret: any text of at least 32 bytes.
fn session_secret(var: &'static str, value: String) -> Result<SecretBox<Vec<u8>>, ConfigError> {
    if value.len() < 32 {
        return Err(ConfigError::Invalid {
            var,
            problem: format!("must be at least 32 bytes long, got {}", value.len()),
        });
    }
    Ok(SecretBox::new(Box::new(value.into_bytes())))
}

/// The rotation variables an operator wrote into `secrets.env` (embedded mode), if any.
fn previous_from_file(data_dir: &Path) -> Result<Vec<(&'static str, String)>, ConfigError> {
    let (_, text) = read_file(data_dir, false)?;
    let stored = entries(&text);
    let mut out = Vec::new();
    for name in [PHONE_ENCRYPTION_KEY_PREVIOUS, JWT_SECRET_PREVIOUS] {
        if let Some(v) = stored.get(name).filter(|v| !v.is_empty()) {
            out.push((name, (*v).to_owned()));
        }
    }
    Ok(out)
}

/// Takes missing values from `secrets.env`, generating (and appending) those it lacks too.
fn fill_from_file(values: &mut HashMap<&'static str, String>, data_dir: &Path) -> Result<(), ConfigError> {
    let fail = |what: String| ConfigError::Secrets(what);
    let (path, existing) = read_file(data_dir, true)?;
    let stored = entries(&existing);
    let mut appended = String::new();
    for name in [PHONE_HASH_KEY, PHONE_ENCRYPTION_KEY, JWT_SECRET] {
        if values.contains_key(name) {
            continue;
        }
        let value = match stored.get(name) {
            Some(v) if !v.is_empty() => (*v).to_owned(),
            _ => {
                let len = if name == JWT_SECRET { 48 } else { 32 };
                let generated = generate(len).map_err(|e| fail(format!("cannot generate {name}: {e}")))?;
                appended.push_str(&format!("{name}={generated}\n"));
                generated
            }
        };
        values.insert(name, value);
    }
    if !appended.is_empty() {
        append(&path, existing.is_empty(), &appended)?;
        tracing::info!(path = %path.display(), "generated missing secrets");
    }
    Ok(())
}

/// `len` random bytes, base64.
pub fn generate(len: usize) -> Result<String, getrandom::Error> {
    let mut buf = vec![0u8; len];
    getrandom::fill(&mut buf)?;
    Ok(base64::engine::general_purpose::STANDARD.encode(&buf))
}

impl Secrets {
    /// A key derived from the session secret for one purpose (e.g. signing local media URLs), so
    /// no two uses share a key.
    pub fn derived_key(&self, purpose: &str) -> [u8; 32] {
        derive(self.jwt_secret.expose_secret(), purpose)
    }

    /// The same purpose's key derived from `JWT_SECRET_PREVIOUS`, if set: what was signed before
    /// the rotation still verifies.
    pub fn derived_key_previous(&self, purpose: &str) -> Option<[u8; 32]> {
        self.jwt_secret_previous.as_ref().map(|s| derive(s.expose_secret(), purpose))
    }
}

fn derive(secret: &[u8], purpose: &str) -> [u8; 32] {
    use hmac::{Mac, SimpleHmac};
    type H = SimpleHmac<sha2::Sha256>;
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = match <H as Mac>::new_from_slice(secret) {
        Ok(m) => m,
        Err(_) => return [0u8; 32],
    };
    mac.update(b"koinonia/");
    mac.update(purpose.as_bytes());
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_secrets_are_generated_once_and_reused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = load(&HashMap::new(), dir.path(), true).expect("first load");
        let b = load(&HashMap::new(), dir.path(), true).expect("second load");
        assert_eq!(a.phone_hash_key.expose_secret(), b.phone_hash_key.expose_secret());
        assert_eq!(a.jwt_secret.expose_secret(), b.jwt_secret.expose_secret());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(FILE_NAME)).expect("file").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn postgres_mode_requires_secrets_and_names_the_variable() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = load(&HashMap::new(), dir.path(), false).err().expect("must fail");
        assert!(err.to_string().contains(PHONE_HASH_KEY), "{err}");
        assert!(!dir.path().join(FILE_NAME).exists());
    }

    #[test]
    fn short_keys_are_refused_by_name() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut vars = HashMap::new();
        vars.insert(PHONE_HASH_KEY.to_owned(), "c2hvcnQ=".to_owned());
        vars.insert(PHONE_ENCRYPTION_KEY.to_owned(), generate(32).expect("rng"));
        vars.insert(JWT_SECRET.to_owned(), "x".repeat(40));
        let err = load(&vars, dir.path(), false).err().expect("must fail");
        assert!(err.to_string().starts_with("PHONE_HASH_KEY"), "{err}");
    }

    #[test]
    fn previous_keys_are_optional_listed_and_refused_by_name() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut vars = HashMap::new();
        vars.insert(PHONE_HASH_KEY.to_owned(), generate(32).expect("rng"));
        vars.insert(PHONE_ENCRYPTION_KEY.to_owned(), generate(32).expect("rng"));
        vars.insert(JWT_SECRET.to_owned(), "x".repeat(40));
        let plain = load(&vars, dir.path(), false).expect("without previous keys");
        assert!(plain.phone_encryption_key_previous.is_empty() && plain.jwt_secret_previous.is_none());

        let (a, b) = (generate(32).expect("rng"), generate(32).expect("rng"));
        vars.insert(PHONE_ENCRYPTION_KEY_PREVIOUS.to_owned(), format!("{a}, {b}"));
        vars.insert(JWT_SECRET_PREVIOUS.to_owned(), "y".repeat(32));
        let rotated = load(&vars, dir.path(), false).expect("with previous keys");
        assert_eq!(rotated.phone_encryption_key_previous.len(), 2);
        assert_eq!(rotated.jwt_secret_previous.as_ref().map(|s| s.expose_secret().len()), Some(32));
        assert_ne!(rotated.derived_key("csrf"), rotated.derived_key_previous("csrf").expect("previous"));

        for (var, bad) in
            [(PHONE_ENCRYPTION_KEY_PREVIOUS, format!("{a},c2hvcnQ=")), (JWT_SECRET_PREVIOUS, "short".into())]
        {
            let mut v = vars.clone();
            v.insert(var.to_owned(), bad);
            let err = load(&v, dir.path(), false).err().expect("must fail");
            assert!(err.to_string().starts_with(var), "{err}");
            assert!(!err.to_string().contains(&a), "the key is not echoed: {err}");
        }
    }

    #[test]
    fn embedded_mode_reads_previous_keys_from_the_secrets_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        load(&HashMap::new(), dir.path(), true).expect("generated");
        let old = generate(32).expect("rng");
        let mut file = std::fs::OpenOptions::new().append(true).open(dir.path().join(FILE_NAME)).expect("open");
        file.write_all(format!("{PHONE_ENCRYPTION_KEY_PREVIOUS}={old}\n").as_bytes()).expect("write");
        let s = load(&HashMap::new(), dir.path(), true).expect("load");
        assert_eq!(s.phone_encryption_key_previous.len(), 1);
        assert!(s.jwt_secret_previous.is_none());
    }

    #[test]
    fn an_earlier_secrets_file_gains_the_vapid_key_and_keeps_its_values() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(FILE_NAME);
        let old = format!(
            "# from an earlier version\n{PHONE_HASH_KEY}={}\n{PHONE_ENCRYPTION_KEY}={}\n{JWT_SECRET}={}",
            generate(32).expect("rng"),
            generate(32).expect("rng"),
            "j".repeat(48)
        );
        std::fs::write(&path, &old).expect("write");
        let first = load(&HashMap::new(), dir.path(), true).expect("load");
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(text.starts_with(&old), "the earlier values are untouched");
        assert_eq!(text.matches(VAPID_PRIVATE_KEY).count(), 1);
        assert_eq!(first.vapid_source, VapidSource::SecretsFile);
        let second = load(&HashMap::new(), dir.path(), true).expect("load again");
        let (a, b) = (first.vapid.expect("key"), second.vapid.expect("key"));
        assert_eq!(a.public_key(), b.public_key(), "generated once, then read back");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), text, "nothing appended twice");
    }

    #[test]
    fn without_a_vapid_key_postgres_mode_starts_with_push_off_and_a_bad_one_is_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut vars = HashMap::new();
        vars.insert(PHONE_HASH_KEY.to_owned(), generate(32).expect("rng"));
        vars.insert(PHONE_ENCRYPTION_KEY.to_owned(), generate(32).expect("rng"));
        vars.insert(JWT_SECRET.to_owned(), "x".repeat(40));
        let s = load(&vars, dir.path(), false).expect("starts");
        assert!(s.vapid.is_none() && s.vapid_source == VapidSource::Missing);
        assert!(!dir.path().join(FILE_NAME).exists(), "nothing generated with PostgreSQL");
        let key = crate::notify::vapid::generate().expect("rng");
        vars.insert(VAPID_PRIVATE_KEY.to_owned(), key.clone());
        assert_eq!(load(&vars, dir.path(), false).expect("with key").vapid_source, VapidSource::Environment);
        let bad = format!("{}x", &key[..20]);
        vars.insert(VAPID_PRIVATE_KEY.to_owned(), bad.clone());
        let err = load(&vars, dir.path(), false).err().expect("must fail").to_string();
        assert!(err.starts_with(VAPID_PRIVATE_KEY) && !err.contains(&bad), "{err}");
    }
}
