//! Streaming, one-pass inspection of a media file as its bytes go by.
//!
//! [`Inspector`] is fed chunks in order (any sizes) and never holds the whole
//! file: it hashes with SHA-256, counts bytes, keeps the first [`HEAD_LEN`]
//! bytes for magic-number sniffing (`infer`) and `imagesize`, checks that the
//! stream is UTF-8 (for text and vCards), and runs one container walker that
//! reads durations and dimensions from headers without decoding:
//!
//! | format | how |
//! | --- | --- |
//! | ISO-BMFF (mp4/mov/3gp/m4a) | top-level boxes skipped by size, only `moov` captured (≤ [`MOOV_CAP`]): `mvhd`, `tkhd`, `hdlr`; fragmented files: `moof`/`trun` durations |
//! | WAV / AVI | `fmt ` byte rate and `data` size / `avih` |
//! | MP3 / ADTS AAC | ID3v2 skipped, Xing/Info/VBRI frame count, else frame headers walked |
//! | AMR-NB / AMR-WB | frames walked, 20 ms each |
//! | Ogg (Vorbis/Opus) | pages walked, last granule position |
//! | JPEG | segments walked to SOFn, EXIF orientation applied |
//! | OLE2 (doc/xls) | first directory sector read for stream names / root CLSID |
//! | ZIP (docx/xlsx) | local headers walked for `[Content_Types].xml` and `word/` / `xl/` |
//!
//! The type is decided on the bytes only, and reported as docs/api.md spells it
//! (see [`crate::media::mime`]). Width and height are display dimensions
//! (EXIF orientation, HEIF `irot` and a track's 90° matrix are applied).
//!
//! Inspecting only a prefix (e.g. the head, to pick a content type early) is
//! weaker than the whole stream: some formats are proven later (MP3 frames
//! after a long ID3 tag, an OLE2 directory past the head, a `moov` showing an
//! "mp4" has no video). A prefix then reports neither `mime_type` nor
//! `detected` ("unknown yet"), or video where the end says audio/mp4.

use sha2::{Digest, Sha256};

use crate::media::mime::{self, MediaKind};

/// Leading bytes kept for sniffing and `imagesize`.
pub const HEAD_LEN: usize = 64 * 1024;
/// Largest ISO-BMFF `moov` box captured; a bigger one leaves the duration unknown.
pub const MOOV_CAP: u64 = 16 * 1024 * 1024;
/// Bytes needed before a container walker is chosen.
const PROBE_LEN: usize = 16;

/// Feeds on a byte stream and reports what the file is (see the module docs).
pub struct Inspector {
    hasher: Sha256,
    size: u64,
    head: Vec<u8>,
    text: text::TextCheck,
    probed: bool,
    walker: Option<driver::Driver>,
}

/// What an [`Inspector`] found.
#[derive(Debug, Clone, PartialEq)]
pub struct Inspection {
    /// SHA-256 of the whole stream, lowercase hex.
    pub sha256: String,
    pub size_bytes: u64,
    /// An allowed type as docs/api.md spells it, or `None` when the file is rejected.
    pub mime_type: Option<&'static str>,
    pub kind: Option<MediaKind>,
    /// What the bytes look like when they are not allowed (e.g. `application/zip`).
    pub detected: Option<String>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub duration_seconds: Option<f64>,
}

impl Inspection {
    /// Why the file is refused, or `None` when its type is allowed.
    pub fn rejection_reason(&self) -> Option<String> {
        if self.mime_type.is_some() {
            None
        } else if self.size_bytes == 0 {
            Some("empty file".to_owned())
        } else if let Some(detected) = &self.detected {
            Some(format!("file type {detected} is not allowed"))
        } else {
            Some("unrecognised file type".to_owned())
        }
    }
}

impl Default for Inspector {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Inspector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inspector").field("bytes_seen", &self.size).finish_non_exhaustive()
    }
}

impl Inspector {
    /// An inspector that has seen no bytes yet.
    pub fn new() -> Self {
        Inspector {
            hasher: Sha256::new(),
            size: 0,
            head: Vec::new(),
            text: text::TextCheck::default(),
            probed: false,
            walker: None,
        }
    }

    /// Feeds the next bytes of the stream.
    pub fn update(&mut self, chunk: &[u8]) {
        if chunk.is_empty() {
            return;
        }
        self.hasher.update(chunk);
        self.size = self.size.saturating_add(chunk.len() as u64);
        self.text.update(chunk);
        let to_head = chunk.len().min(HEAD_LEN - self.head.len());
        self.head.extend_from_slice(&chunk[..to_head]);

        if let Some(walker) = &mut self.walker {
            walker.feed(chunk);
        } else if !self.probed && self.head.len() >= PROBE_LEN {
            // Everything before this chunk is in `head`; so is `chunk[..to_head]`.
            self.probe();
            if let Some(walker) = &mut self.walker {
                walker.feed(&chunk[to_head..]);
            }
        }
    }

    /// Bytes fed so far.
    pub fn bytes_seen(&self) -> u64 {
        self.size
    }

    /// Ends the stream and reports.
    pub fn finish(mut self) -> Inspection {
        if !self.probed {
            self.probe();
        }
        let facts = match self.walker.take() {
            Some(walker) => walker.finish(self.size),
            None => Facts::default(),
        };
        let sha256 = hex::encode(self.hasher.finalize());
        if self.size == 0 {
            return Inspection {
                sha256,
                size_bytes: 0,
                mime_type: None,
                kind: None,
                detected: None,
                width: None,
                height: None,
                duration_seconds: None,
            };
        }

        let verdict = classify(&self.head, &facts, self.text.is_text());
        let (mime_type, kind, detected) = match verdict {
            Sniff::Allowed(m) => (Some(m), mime::kind_of(m), None),
            Sniff::Other(d) => (None, None, Some(d)),
            Sniff::Unknown => (None, None, None),
        };
        let (width, height) = match kind {
            Some(MediaKind::Image) => match (facts.width, facts.height, mime_type) {
                (Some(w), Some(h), _) => (Some(w), Some(h)),
                (_, _, Some("image/heic")) => {
                    bmff::heif_size(&self.head).map_or_else(|| image_size(&self.head), |(w, h)| (Some(w), Some(h)))
                }
                _ => image_size(&self.head),
            },
            Some(MediaKind::Video) => (facts.width, facts.height),
            _ => (None, None),
        };
        let duration_seconds = match kind {
            Some(MediaKind::Video | MediaKind::Audio) => facts.duration.filter(|d| d.is_finite() && *d >= 0.0),
            _ => None,
        };
        Inspection { sha256, size_bytes: self.size, mime_type, kind, detected, width, height, duration_seconds }
    }

    /// Chooses the container walker from the first bytes and replays `head` into it.
    fn probe(&mut self) {
        self.probed = true;
        self.walker = driver::Driver::for_head(&self.head);
        if let Some(walker) = &mut self.walker {
            walker.feed(&self.head);
        }
    }
}

/// A type verdict: allowed (docs/api.md spelling), recognised but not allowed, or unknown.
#[derive(Debug, Clone, PartialEq)]
enum Sniff {
    Allowed(&'static str),
    Other(String),
    Unknown,
}

impl Sniff {
    /// Allowed when `name` is in the allowed table (media/mime.rs), else recognised but not allowed.
    fn named(name: &str) -> Sniff {
        match mime::canonical(name) {
            Some((allowed, _)) => Sniff::Allowed(allowed),
            None => Sniff::Other(name.to_owned()),
        }
    }
}

/// What a container walker learnt.
#[derive(Debug, Default, Clone, PartialEq)]
struct Facts {
    /// The type, when the walker can tell better than the head's magic bytes.
    mime: Option<Sniff>,
    duration: Option<f64>,
    width: Option<u32>,
    height: Option<u32>,
    /// ISO-BMFF only, once `moov` was read: (has a video track, has an audio track).
    tracks: Option<(bool, bool)>,
}

/// Decides the type from the walker's findings, the head, and the UTF-8 check.
fn classify(head: &[u8], facts: &Facts, text: bool) -> Sniff {
    let mut verdict = facts.mime.clone().unwrap_or_else(|| sniff_head(head));
    if let (Sniff::Allowed(m), Some((false, true))) = (&verdict, facts.tracks) {
        if matches!(*m, "video/mp4" | "video/quicktime" | "video/3gpp") {
            verdict = Sniff::Allowed("audio/mp4");
        }
    }
    match verdict {
        Sniff::Allowed(_) => verdict,
        // Text has no magic bytes; UTF-8 that merely starts like something
        // else ("MZ", "BM", "{\\rtf", "%!PS") is still text.
        _ if text => Sniff::Allowed(text::text_type(head)),
        // Some writers put junk before a PDF header; readers accept it within 1 KiB.
        Sniff::Unknown if pdf_after_junk(head) => Sniff::Allowed("application/pdf"),
        _ => verdict,
    }
}

fn pdf_after_junk(head: &[u8]) -> bool {
    let start = head.get(..1024).unwrap_or(head);
    start.windows(5).any(|w| w == b"%PDF-")
}

/// The type suggested by the first bytes alone.
fn sniff_head(head: &[u8]) -> Sniff {
    if let Some(sniff) = bmff::sniff(head) {
        return sniff;
    }
    if amr::is_amr(head) {
        return Sniff::Allowed("audio/amr");
    }
    if mpeg::looks_like(head) {
        return Sniff::Unknown; // only frames found by the walker make it MP3/AAC
    }
    if head.starts_with(&cfb::SIGNATURE) {
        return Sniff::Other("application/x-ole-storage".to_owned());
    }
    if head.starts_with(b"OggS") {
        return Sniff::Allowed("audio/ogg");
    }
    if head.starts_with(b"RIFF") {
        match head.get(8..12) {
            Some(b"WAVE") => return Sniff::Allowed("audio/wav"),
            Some(b"AVI ") => return Sniff::Allowed("video/x-msvideo"),
            Some(b"WEBP") => return Sniff::Allowed("image/webp"),
            _ => {}
        }
    }
    match infer::get(head) {
        // infer's QuickTime test also matches "moov"/"mdat" at offsets 4 and 12
        // of any bytes; real QuickTime files were recognised above.
        Some(found) if found.mime_type() == "video/quicktime" => Sniff::Unknown,
        Some(found) => from_infer(found),
        None => Sniff::Unknown,
    }
}

/// Maps `infer`'s names to the allowed spelling (media/mime.rs).
fn from_infer(found: infer::Type) -> Sniff {
    if found.matcher_type() == infer::MatcherType::Text {
        return Sniff::Unknown; // HTML, XML, scripts: plain text if they are UTF-8
    }
    let name = found.mime_type();
    Sniff::named(match name {
        "audio/x-wav" => "audio/wav",
        "audio/m4a" => "audio/mp4",
        "audio/opus" => "audio/ogg",
        "image/heif" => "image/heic",
        "video/x-m4v" => "video/mp4",
        other => other,
    })
}

/// Width and height from the head with `imagesize`.
fn image_size(head: &[u8]) -> (Option<u32>, Option<u32>) {
    match imagesize::blob_size(head) {
        Ok(size) => (u32::try_from(size.width).ok(), u32::try_from(size.height).ok()),
        Err(_) => (None, None),
    }
}

mod bytes;

mod text;

mod driver;

mod bmff;

mod riff;

mod mpeg;

mod amr;

mod ogg;

mod jpeg;

mod cfb;

mod zip;

#[cfg(test)]
mod tests;
