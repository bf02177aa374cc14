//! Malware scanning: every file — a member's, a leader's upload — streams through ClamAV's
//! daemon while it streams into the store (one pass; no second copy, no temporary file), and
//! the store's object is completed only when the scanner found nothing.
//!
//! - `CLAMD_ADDRESS` unset: files are kept **not scanned** (and say so).
//! - The scanner answers: **clean** files are kept; an **infected** file is never stored (its
//!   upload is aborted) and reads "Blocked: this file contains malware (signature)".
//! - The scanner cannot answer (down, timed out): with `CLAMD_REQUIRED=true` the file is
//!   **held** — not stored, retried with backoff, failed after the last attempt; without it the
//!   file is kept **not scanned**, with the reason.
//! - Longer than clamd's `StreamMaxLength`: `CLAMD_TOO_LARGE=not_scanned` (default) keeps it
//!   not scanned with the reason; `refuse` refuses it.

pub mod clamd;

use std::time::Duration;

pub use clamd::{Address, Clamd, ClamdError, Verdict};

/// What to do with a file clamd will not judge because of its length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TooLarge {
    NotScanned,
    Refuse,
}

/// The scanner settings (`CLAMD_*`).
#[derive(Debug, Clone)]
pub struct ScanSettings {
    pub address: Option<Address>,
    pub required: bool,
    pub timeout: Duration,
    pub too_large: TooLarge,
}

impl Default for ScanSettings {
    fn default() -> Self {
        Self { address: None, required: false, timeout: Duration::from_secs(60), too_large: TooLarge::NotScanned }
    }
}

/// What scanning decided for one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// clamd found nothing.
    Clean,
    /// Kept without a verdict; the reason is shown with the file.
    NotScanned(String),
    /// A signature matched: the file is not kept.
    Infected(String),
    /// No verdict and one is required: try again later.
    Hold(String),
    /// Too long to scan, and such files are refused.
    Refused(String),
}

impl Outcome {
    /// Whether the file may be kept (and shown, sent, exported).
    pub fn releases(&self) -> bool {
        matches!(self, Self::Clean | Self::NotScanned(_))
    }

    /// The scan state stored with an attachment: `clean` or `not_scanned`, and its detail.
    pub fn recorded(&self) -> (&'static str, Option<String>) {
        match self {
            Self::Clean => ("clean", None),
            Self::NotScanned(why) => ("not_scanned", Some(why.clone())),
            Self::Infected(sig) => ("infected", Some(sig.clone())),
            Self::Hold(why) | Self::Refused(why) => ("not_scanned", Some(why.clone())),
        }
    }
}

/// The sentence leaders read for a blocked file.
pub fn blocked_reason(signature: &str) -> String {
    format!("Blocked: this file contains malware ({signature})")
}

/// The deployment's scanner (or none).
#[derive(Debug, Clone)]
pub struct Scanner {
    clamd: Option<Clamd>,
    required: bool,
    too_large: TooLarge,
}

impl Scanner {
    pub fn new(settings: &ScanSettings) -> Self {
        Self {
            clamd: settings.address.clone().map(|a| Clamd::new(a, settings.timeout)),
            required: settings.required,
            too_large: settings.too_large,
        }
    }

    /// The daemon, when scanning is on.
    pub fn clamd(&self) -> Option<&Clamd> {
        self.clamd.as_ref()
    }

    /// Starts scanning one file; feed it every byte, then [`Session::finish`].
    pub async fn start(&self) -> Session {
        let state = match &self.clamd {
            None => State::Off,
            Some(c) => match c.scan().await {
                Ok(scan) => State::Scanning(Box::new(scan)),
                Err(e) => State::Failed(e),
            },
        };
        Session { state, required: self.required, too_large: self.too_large }
    }
}

enum State {
    Off,
    Scanning(Box<clamd::Scan>),
    Failed(ClamdError),
}

/// One file's scan under way.
pub struct Session {
    state: State,
    required: bool,
    too_large: TooLarge,
}

impl Session {
    pub async fn write(&mut self, bytes: &[u8]) {
        if let State::Scanning(scan) = &mut self.state {
            scan.write(bytes).await;
        }
    }

    /// The verdict, with the deployment's policy applied.
    pub async fn finish(self) -> Outcome {
        let result = match self.state {
            State::Off => return Outcome::NotScanned("virus scanning is not set up (CLAMD_ADDRESS)".into()),
            State::Scanning(scan) => scan.finish().await,
            State::Failed(e) => Err(e),
        };
        let outcome = match result {
            Ok(Verdict::Clean) => Outcome::Clean,
            Ok(Verdict::Infected(sig)) => Outcome::Infected(sig),
            Ok(Verdict::TooLarge) => {
                let why = "longer than the virus scanner accepts (clamd's StreamMaxLength)".to_owned();
                match self.too_large {
                    TooLarge::NotScanned => Outcome::NotScanned(why),
                    TooLarge::Refuse => Outcome::Refused(format!("the file is {why}")),
                }
            }
            Err(e) if self.required => Outcome::Hold(e.to_string()),
            Err(e) => Outcome::NotScanned(e.to_string()),
        };
        let label = match &outcome {
            Outcome::Clean => "clean",
            Outcome::NotScanned(_) => "not_scanned",
            Outcome::Infected(_) => "infected",
            Outcome::Hold(_) => "held",
            Outcome::Refused(_) => "refused",
        };
        metrics::counter!("koinonia_scans_total", "outcome" => label).increment(1);
        outcome
    }
}
