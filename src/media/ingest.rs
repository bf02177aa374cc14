//! Inbound files: download → inspect (SHA-256, type, dimensions, duration) → store, in one pass.
//!
//! The first 64 KiB are held back until the type is known, so a file of a type that is not
//! allowed is refused before any upload starts and the object gets its real `Content-Type`. The
//! rest streams straight through: memory stays flat whatever the file's size. An upload is
//! completed only after the whole file passed every check; otherwise it is aborted and nothing
//! is left in the store.

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::StreamExt;

use super::fetch::FetchError;
use super::inspect::{Inspection, Inspector};
use super::store::{MediaStore, MediaWriter, ObjectInfo, StoreError};

/// Source URLs of files staged by the phone simulator: `sandbox:{store key}`.
pub const SANDBOX_SCHEME: &str = "sandbox:";
/// Where the simulator stages files; a `sandbox:` URL may name nothing else.
pub const SANDBOX_PREFIX: &str = "sandbox/";

/// The staged key a source URL names, when it is one the simulator can have made: only with the
/// sandbox carrier, and only under the staging prefix (never another church's stored object).
/// Any other `sandbox:` URL (say, in a signed webhook naming another church's object) fails.
pub fn staged_key(url: &str, sandbox_carrier: bool) -> Option<&str> {
    let key = url.strip_prefix(SANDBOX_SCHEME)?;
    let plain = key.strip_prefix(SANDBOX_PREFIX)?;
    let ok = sandbox_carrier && !plain.is_empty() && !plain.contains('/') && !key.contains("..");
    ok.then_some(key)
}

/// Bytes held back, step by step, to decide the type before the upload starts.
const HEAD_STEPS: [usize; 4] = [64 << 10, 256 << 10, 1 << 20, 2 << 20];

/// Why a file could not be stored, worded for a leader.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("{0}")]
    Fetch(#[from] FetchError),
    #[error("file type {0} is not allowed")]
    NotAllowed(String),
    #[error("{0}")]
    Rejected(String),
    #[error("file is larger than the {0} limit")]
    TooLarge(String),
    #[error("downloaded file does not match the SHA-256 the carrier announced")]
    HashMismatch,
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    /// The uploader's request body broke off, was malformed or outgrew the request limit.
    #[error("upload: {message}")]
    Upload { message: String, too_large: bool },
    /// The virus scanner found this signature: the file is not kept.
    #[error("{}", crate::scan::blocked_reason(.0))]
    Infected(String),
    /// No verdict from the virus scanner, and one is required: try again later.
    #[error("waiting for the virus scanner: {0}")]
    ScannerUnavailable(String),
    /// Too long for the virus scanner, and such files are refused (`CLAMD_TOO_LARGE=refuse`).
    #[error("{0}")]
    NotScannable(String),
}

/// What leaders read when the store failed: the detail (folder path, S3 endpoint and bucket) is
/// for operators and stays in the server log.
pub const STORE_FAILED: &str = "the file could not be saved to the media store (the server log has the details)";

impl IngestError {
    /// The reason shown to leaders: the error itself, except for storage failures, whose detail
    /// names the deployment's internals.
    pub fn leader_reason(&self) -> String {
        match self {
            Self::Store(_) => STORE_FAILED.to_owned(),
            other => other.to_string(),
        }
    }

    /// Whether another attempt may succeed (a network hiccup, the store) or cannot (the file
    /// itself is refused).
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Fetch(f) => f.is_retryable(),
            Self::HashMismatch | Self::Store(_) | Self::ScannerUnavailable(_) => true,
            Self::NotAllowed(_)
            | Self::Rejected(_)
            | Self::TooLarge(_)
            | Self::Upload { .. }
            | Self::Infected(_)
            | Self::NotScannable(_) => false,
        }
    }
}

/// What a finished pass produced.
pub struct Ingested {
    pub inspection: Inspection,
    pub bytes: u64,
    /// The scanner's word: clean, or not scanned (and why).
    pub scan: crate::scan::Outcome,
}

impl Ingested {
    /// The scan state and detail to store with the attachment.
    pub fn scan_record(&self) -> (&'static str, Option<String>) {
        self.scan.recorded()
    }
}

/// Streams `body` into `store` at `key`, inspecting and virus-scanning it on the way.
/// `declared_sha256`, when the sender announced one, must match; `max` bytes at most are
/// accepted. The object is completed only when every check passed, the scanner's included.
#[allow(clippy::too_many_arguments)]
pub async fn stream_into_store(
    store: &MediaStore,
    scanner: &crate::scan::Scanner,
    max: u64,
    body: BoxStream<'_, Result<Bytes, IngestError>>,
    key: &str,
    info_name: &str,
    conversation: crate::domain::ConversationId,
    declared_sha256: Option<&str>,
) -> Result<Ingested, IngestError> {
    let too_large = || IngestError::TooLarge(format_size(max));
    let mut inspector = Inspector::new();
    // Fused: the head loop may already have seen the end.
    let mut body = body.fuse();

    // 1. Hold back the head and decide the type on it; read further only while the bytes so far
    //    neither prove an allowed type nor a forbidden one (e.g. an MP3 behind a large ID3 tag).
    let mut head: Vec<Bytes> = Vec::new();
    let mut head_len = 0usize;
    let mut ended = false;
    let mut content_type = None;
    for step in HEAD_STEPS {
        while head_len < step && !ended {
            match body.next().await {
                Some(chunk) => {
                    let chunk = chunk?;
                    head_len += chunk.len();
                    head.push(chunk);
                }
                None => ended = true,
            }
        }
        if head_len as u64 > max {
            return Err(too_large());
        }
        let provisional = {
            let mut probe = Inspector::new();
            head.iter().for_each(|c| probe.update(c));
            probe.finish()
        };
        if let Some(m) = provisional.mime_type {
            content_type = Some(m);
            break;
        }
        if provisional.detected.is_some() || ended {
            return Err(rejection(&provisional));
        }
    }
    // Still undecided after the longest head: text cut mid-character, or a type proven only by
    // its end. The final inspection decides; the object is typed as well as can be told now.
    let content_type =
        content_type.unwrap_or(if looks_like_text(&head) { "text/plain" } else { "application/octet-stream" });

    // 2. Stream head + rest into the store, inspecting as we go.
    let info = ObjectInfo {
        content_type,
        original_filename: info_name,
        conversation_id: conversation,
        uploaded_at: crate::clock::now(),
    };
    let mut writer = store.writer(key, &info).await?;
    let mut scan = scanner.start().await;
    let result = async {
        for chunk in std::mem::take(&mut head) {
            inspector.update(&chunk);
            scan.write(&chunk).await;
            writer.put(chunk).await?;
        }
        while let Some(chunk) = body.next().await {
            let chunk = chunk?;
            if inspector.bytes_seen() + chunk.len() as u64 > max {
                return Err(too_large());
            }
            inspector.update(&chunk);
            scan.write(&chunk).await;
            writer.put(chunk).await?;
        }
        Ok::<(), IngestError>(())
    }
    .await;
    if let Err(e) = result {
        writer.abort().await;
        return Err(e);
    }

    // 3. Judge the whole file before the object becomes visible.
    let inspection = inspector.finish();
    if let Err(e) = check_final(&inspection, declared_sha256) {
        writer.abort().await;
        return Err(e);
    }
    let scan = scan.finish().await;
    let refused = match &scan {
        crate::scan::Outcome::Infected(sig) => Some(IngestError::Infected(sig.clone())),
        crate::scan::Outcome::Hold(why) => Some(IngestError::ScannerUnavailable(why.clone())),
        crate::scan::Outcome::Refused(why) => Some(IngestError::NotScannable(why.clone())),
        crate::scan::Outcome::Clean | crate::scan::Outcome::NotScanned(_) => None,
    };
    if let Some(e) = refused {
        writer.abort().await;
        return Err(e);
    }
    let bytes = finish(writer).await?;
    Ok(Ingested { inspection, bytes, scan })
}

async fn finish(writer: MediaWriter) -> Result<u64, IngestError> {
    Ok(writer.finish().await?)
}

fn check_final(inspection: &Inspection, declared_sha256: Option<&str>) -> Result<(), IngestError> {
    if inspection.mime_type.is_none() {
        return Err(rejection(inspection));
    }
    if let Some(expected) = declared_sha256 {
        if !expected.eq_ignore_ascii_case(&inspection.sha256) {
            return Err(IngestError::HashMismatch);
        }
    }
    Ok(())
}

/// Why an inspected file is refused.
fn rejection(inspection: &Inspection) -> IngestError {
    match &inspection.detected {
        Some(d) => IngestError::NotAllowed(d.clone()),
        None => IngestError::Rejected(inspection.rejection_reason().unwrap_or_else(|| "unrecognised file type".into())),
    }
}

/// Printable ASCII/UTF-8 head (for deciding to keep reading a large text file).
fn looks_like_text(head: &[Bytes]) -> bool {
    head.iter().all(|c| !c.contains(&0))
}

#[cfg(test)]
mod staged_tests {
    use super::staged_key;

    #[test]
    fn only_staged_keys_with_the_sandbox_carrier() {
        assert_eq!(staged_key("sandbox:sandbox/0a1b_photo.jpg", true), Some("sandbox/0a1b_photo.jpg"));
        assert_eq!(staged_key("sandbox:sandbox/0a1b_photo.jpg", false), None, "Telnyx carrier");
        assert_eq!(staged_key("sandbox:conversations/church/conv/file.jpg", true), None, "a stored object");
        assert_eq!(staged_key("sandbox:sandbox/../conversations/x", true), None);
        assert_eq!(staged_key("sandbox:sandbox/", true), None);
        assert_eq!(staged_key("https://media.example.org/x.jpg", true), None);
    }
}

/// `500.0 MB` (decimal megabytes with one decimal, as the API's messages show).
pub fn format_size(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1_048_576.0)
}

/// Adds the type's extension to a name that has none (`image-1` → `image-1.jpg`).
pub fn with_extension(name: &str, mime: &str) -> String {
    let has_ext = name.rsplit_once('.').is_some_and(|(stem, ext)| !stem.is_empty() && (1..=5).contains(&ext.len()));
    if has_ext {
        name.to_owned()
    } else {
        format!("{name}.{}", super::mime::extension_for(mime))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_like_the_spec() {
        assert_eq!(format_size(524_288_000), "500.0 MB");
        assert_eq!(format_size(614_400), "0.6 MB");
    }

    #[test]
    fn extensions_added_only_when_missing() {
        assert_eq!(with_extension("image-1", "image/jpeg"), "image-1.jpg");
        assert_eq!(with_extension("photo.png", "image/jpeg"), "photo.png");
    }
}
