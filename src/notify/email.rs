//! E-mail to leaders through the deployment's SMTP server (`SMTP_URL`), with lettre.
//!
//! `smtp://user:pass@host:587` sends with STARTTLS, required (add `?tls=opportunistic` to accept
//! a server without it, `?tls=none` for a relay on the same host that speaks plain SMTP);
//! `smtps://…:465` wraps the whole connection in TLS. Every step has a deadline, so a silent
//! server holds the sending task for at most [`TIMEOUT`] per message.

use std::time::Duration;

use lettre::message::{header::ContentType, Mailbox};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::{ExposeSecret, SecretString};

/// Deadline of each SMTP command (connecting included).
pub const TIMEOUT: Duration = Duration::from_secs(15);

/// How to reach the SMTP server, checked at start-up.
#[derive(Clone)]
pub struct SmtpSettings {
    /// The URL as lettre reads it (`tls=required` made explicit for `smtp://`).
    url: SecretString,
    /// The server's host, for logs (never the credentials).
    pub host: String,
    /// `From:` of every e-mail.
    pub from: Mailbox,
}

impl std::fmt::Debug for SmtpSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpSettings").field("host", &self.host).field("from", &self.from.to_string()).finish()
    }
}

impl SmtpSettings {
    /// Reads `SMTP_URL` (and `SMTP_FROM`, by default the URL's user name when it is an address,
    /// else `koinonia@` the server's host). Errors name the problem, never the password.
    pub fn parse(raw: &str, from: Option<&str>) -> Result<Self, String> {
        let mut url = url::Url::parse(raw.trim()).map_err(|e| format!("not a URL: {e}"))?;
        let host = url.host_str().filter(|h| !h.is_empty()).ok_or("the URL has no host")?.to_owned();
        let tls = url.query_pairs().find(|(k, _)| k == "tls").map(|(_, v)| v.into_owned());
        match (url.scheme(), tls.as_deref()) {
            ("smtps", None) => {}
            ("smtp", None) => {
                url.query_pairs_mut().append_pair("tls", "required");
            }
            ("smtp", Some("required" | "opportunistic")) => {}
            ("smtp", Some("none")) => {
                let others: Vec<(String, String)> = url
                    .query_pairs()
                    .filter(|(k, _)| k != "tls")
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect();
                url.set_query(None);
                if !others.is_empty() {
                    url.query_pairs_mut().extend_pairs(others);
                }
            }
            ("smtp" | "smtps", Some(other)) => {
                return Err(format!("tls must be required, opportunistic or none, not {other:?}"));
            }
            (scheme, _) => return Err(format!("the scheme must be smtp or smtps, not {scheme:?}")),
        }
        let user = percent_encoding::percent_decode_str(url.username()).decode_utf8_lossy().into_owned();
        let from = match from.map(str::trim).filter(|f| !f.is_empty()) {
            Some(f) => f.parse::<Mailbox>().map_err(|e| format!("SMTP_FROM is not an e-mail address: {e}"))?,
            None => match user.parse::<lettre::Address>() {
                Ok(address) => Mailbox::new(Some("koinonia".to_owned()), address),
                Err(_) => format!("koinonia <koinonia@{host}>")
                    .parse::<Mailbox>()
                    .map_err(|e| format!("set SMTP_FROM (no sender address follows from the URL): {e}"))?,
            },
        };
        // lettre itself must accept it (the TLS features it needs are compiled in).
        AsyncSmtpTransport::<Tokio1Executor>::from_url(url.as_str()).map_err(|e| format!("{e}"))?;
        Ok(Self { url: SecretString::from(url.to_string()), host, from })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EmailError {
    #[error("the e-mail could not be built: {0}")]
    Build(String),
    #[error("the SMTP server at {host} did not take the e-mail: {reason}")]
    Smtp { host: String, reason: String },
}

/// Sends e-mail through the configured server. Cheap to clone (connections are pooled).
#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    settings: SmtpSettings,
}

impl Mailer {
    pub fn new(settings: &SmtpSettings) -> Result<Self, EmailError> {
        crate::crypto::tls::install();
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(settings.url.expose_secret())
            .map_err(|e| EmailError::Build(e.to_string()))?
            .timeout(Some(TIMEOUT))
            .build();
        Ok(Self { transport, settings: settings.clone() })
    }

    /// Connects, greets, starts TLS and logs in as a send would, and sends nothing.
    pub async fn test_connection(&self) -> Result<(), EmailError> {
        match self.transport.test_connection().await {
            Ok(true) => Ok(()),
            Ok(false) => Err(EmailError::Smtp { host: self.settings.host.clone(), reason: "it did not answer".into() }),
            Err(e) => Err(EmailError::Smtp { host: self.settings.host.clone(), reason: e.to_string() }),
        }
    }

    /// One plain-text e-mail to `to`.
    pub async fn send(&self, to: &str, subject: &str, body: String) -> Result<(), EmailError> {
        let to: Mailbox = to.parse().map_err(|e| EmailError::Build(format!("recipient: {e}")))?;
        let message = Message::builder()
            .from(self.settings.from.clone())
            .to(to)
            .subject(subject)
            .header(ContentType::TEXT_PLAIN)
            .body(body)
            .map_err(|e| EmailError::Build(e.to_string()))?;
        self.transport
            .send(message)
            .await
            .map(|_| ())
            .map_err(|e| EmailError::Smtp { host: self.settings.host.clone(), reason: e.to_string() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smtp_urls_default_to_starttls_and_keep_the_password_out_of_sight() {
        let s = SmtpSettings::parse("smtp://church%40example.org:s3cret@mail.example.org:587", None).expect("parse");
        assert!(s.url.expose_secret().ends_with("?tls=required"), "STARTTLS unless told otherwise");
        assert_eq!(s.from.email.to_string(), "church@example.org", "the account is the sender");
        assert!(!format!("{s:?}").contains("s3cret"));
        let plain =
            SmtpSettings::parse("smtp://127.0.0.1:2525?tls=none", Some("Grace <office@grace.test>")).expect("plain");
        assert!(!plain.url.expose_secret().contains("tls="), "lettre's plain SMTP");
        assert_eq!(plain.from.to_string(), "Grace <office@grace.test>");
        assert!(SmtpSettings::parse("smtps://mail.example.org", None).is_ok());
        for bad in ["http://mail.example.org", "smtp://", "smtp://h?tls=sometimes", "not a url"] {
            let e = SmtpSettings::parse(bad, None).expect_err(bad);
            assert!(!e.contains("s3cret"));
        }
    }
}
