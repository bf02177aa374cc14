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

/// Bounds-checked big- and little-endian reads.
mod bytes {
    pub fn array<const N: usize>(b: &[u8], at: usize) -> Option<[u8; N]> {
        b.get(at..at.checked_add(N)?)?.try_into().ok()
    }
    pub fn be_u16(b: &[u8], at: usize) -> Option<u16> {
        array(b, at).map(u16::from_be_bytes)
    }
    pub fn be_u32(b: &[u8], at: usize) -> Option<u32> {
        array(b, at).map(u32::from_be_bytes)
    }
    pub fn be_u64(b: &[u8], at: usize) -> Option<u64> {
        array(b, at).map(u64::from_be_bytes)
    }
    pub fn le_u16(b: &[u8], at: usize) -> Option<u16> {
        array(b, at).map(u16::from_le_bytes)
    }
    pub fn le_u32(b: &[u8], at: usize) -> Option<u32> {
        array(b, at).map(u32::from_le_bytes)
    }
    pub fn le_u64(b: &[u8], at: usize) -> Option<u64> {
        array(b, at).map(u64::from_le_bytes)
    }
}

/// Incremental UTF-8 validation and the text/vCard decision.
mod text {
    /// Tracks whether the whole stream is UTF-8 without NUL bytes.
    #[derive(Debug, Default)]
    pub struct TextCheck {
        failed: bool,
        /// An incomplete multi-byte sequence carried over from the last chunk.
        pending: [u8; 4],
        pending_len: usize,
    }

    impl TextCheck {
        pub fn update(&mut self, mut chunk: &[u8]) {
            if self.failed {
                return;
            }
            if chunk.contains(&0) {
                self.failed = true; // NUL: binary, not text
                return;
            }
            if self.pending_len > 0 {
                let need = sequence_len(self.pending[0]);
                let take = (need - self.pending_len).min(chunk.len());
                self.pending[self.pending_len..self.pending_len + take].copy_from_slice(&chunk[..take]);
                self.pending_len += take;
                chunk = &chunk[take..];
                if self.pending_len < need {
                    // Still short, but what we have must be a valid prefix.
                    if let Err(e) = std::str::from_utf8(&self.pending[..self.pending_len]) {
                        self.failed = e.error_len().is_some();
                    }
                    return;
                }
                self.pending_len = 0;
                if std::str::from_utf8(&self.pending[..need]).is_err() {
                    self.failed = true;
                    return;
                }
            }
            if let Err(e) = std::str::from_utf8(chunk) {
                if e.error_len().is_some() {
                    self.failed = true;
                } else {
                    let tail = &chunk[e.valid_up_to()..];
                    self.pending[..tail.len()].copy_from_slice(tail);
                    self.pending_len = tail.len();
                }
            }
        }

        /// True when every byte seen is valid UTF-8 with no sequence left open.
        pub fn is_text(&self) -> bool {
            !self.failed && self.pending_len == 0
        }
    }

    /// The length of a sequence from its (already validated) lead byte.
    fn sequence_len(lead: u8) -> usize {
        match lead {
            0xF0..=0xF7 => 4,
            0xE0..=0xEF => 3,
            _ => 2,
        }
    }

    /// `text/vcard` when the text begins with `BEGIN:VCARD`, else `text/plain`.
    pub fn text_type(head: &[u8]) -> &'static str {
        let body = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(head);
        let start = body.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(body.len());
        match body.get(start..start + 11) {
            Some(tag) if tag.eq_ignore_ascii_case(b"BEGIN:VCARD") => "text/vcard",
            _ => "text/plain",
        }
    }
}

/// Feeds a stream to a walker in the pieces it asks for.
mod driver {
    use super::{amr, bmff, cfb, jpeg, mpeg, ogg, riff, zip, Facts, HEAD_LEN};

    /// What a walker asks of the stream next: drop `skip` bytes, then hand
    /// over exactly `read` bytes. `read == 0` means it is done.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct Next {
        pub skip: u64,
        pub read: usize,
    }

    impl Next {
        pub const DONE: Next = Next { skip: 0, read: 0 };

        pub fn read(read: usize) -> Self {
            Next { skip: 0, read }
        }

        pub fn skip(skip: u64, then_read: usize) -> Self {
            Next { skip, read: then_read }
        }
    }

    /// A container parser driven by [`Driver`].
    pub trait Walk: Send {
        /// The first request.
        fn start(&mut self) -> Next;
        /// `bytes` are exactly what was asked for; `end` is the stream offset just past them.
        fn step(&mut self, bytes: &[u8], end: u64) -> Next;
        /// End of stream: `partial` holds a read cut short, `total` is the stream length.
        fn finish(&mut self, partial: &[u8], total: u64) -> Facts;
    }

    pub struct Driver {
        walker: Box<dyn Walk>,
        next: Next,
        buf: Vec<u8>,
        pos: u64,
    }

    impl Driver {
        /// The walker for a stream beginning with `head`, if any applies.
        pub fn for_head(head: &[u8]) -> Option<Self> {
            let walker: Box<dyn Walk> = if bmff::sniff(head).is_some() {
                Box::new(bmff::Bmff::default())
            } else if amr::is_amr(head) {
                Box::new(amr::Amr::default())
            } else if mpeg::looks_like(head) {
                Box::new(mpeg::Mpeg::default())
            } else if head.starts_with(&cfb::SIGNATURE) {
                Box::new(cfb::Cfb::default())
            } else if head.starts_with(b"OggS") {
                Box::new(ogg::Ogg::default())
            } else if head.starts_with(b"RIFF") {
                Box::new(riff::Riff::default())
            } else if head.starts_with(&[0xFF, 0xD8]) {
                Box::new(jpeg::Jpeg::default())
            } else if head.starts_with(zip::SIGNATURE) {
                Box::new(zip::Zip::default())
            } else {
                return None;
            };
            Some(Self::new(walker))
        }

        fn new(mut walker: Box<dyn Walk>) -> Self {
            let next = walker.start();
            Driver { walker, next, buf: Vec::new(), pos: 0 }
        }

        pub fn feed(&mut self, mut data: &[u8]) {
            while !data.is_empty() && self.next.read > 0 {
                if self.next.skip > 0 {
                    let n = usize::try_from(self.next.skip).unwrap_or(usize::MAX).min(data.len());
                    data = &data[n..];
                    self.next.skip -= n as u64;
                    self.pos += n as u64;
                    continue;
                }
                let n = (self.next.read - self.buf.len()).min(data.len());
                self.buf.extend_from_slice(&data[..n]);
                data = &data[n..];
                self.pos += n as u64;
                if self.buf.len() == self.next.read {
                    self.next = self.walker.step(&self.buf, self.pos);
                    self.buf.clear();
                    if self.buf.capacity() > HEAD_LEN {
                        self.buf = Vec::new(); // release a captured moov
                    }
                }
            }
        }

        pub fn finish(mut self, total: u64) -> Facts {
            self.walker.finish(&self.buf, total)
        }
    }
}

/// ISO base media files: MP4, QuickTime, 3GP, M4A, HEIC.
mod bmff {
    use super::bytes::{array, be_u16, be_u32, be_u64};
    use super::driver::{Next, Walk};
    use super::{Facts, Sniff, MOOV_CAP};

    /// Largest `moof` (fragmented MP4) read for sample durations.
    const MOOF_CAP: u64 = 1024 * 1024;

    /// The type from the `ftyp` brands (or a bare QuickTime atom), if ISO-BMFF.
    pub fn sniff(head: &[u8]) -> Option<Sniff> {
        let kind = array::<4>(head, 4)?;
        let size = be_u32(head, 0)?;
        if &kind == b"ftyp" && size >= 16 {
            let major = array::<4>(head, 8)?;
            let end = usize::try_from(size).unwrap_or(usize::MAX).min(head.len());
            let compatible: Vec<[u8; 4]> =
                head.get(16..end).unwrap_or_default().chunks_exact(4).filter_map(|c| c.try_into().ok()).collect();
            return Some(brand_type(&major, &compatible));
        }
        // Old QuickTime files start straight with an atom (a small one, or a
        // 64-bit size: so "I'm free" is not a movie).
        let qt_atoms: [&[u8; 4]; 6] = [b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot"];
        (qt_atoms.contains(&&kind) && (size == 1 || (8..1 << 24).contains(&size)))
            .then_some(Sniff::Allowed("video/quicktime"))
    }

    fn brand_type(major: &[u8; 4], compatible: &[[u8; 4]]) -> Sniff {
        const HEIC: [&[u8; 4]; 6] = [b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx"];
        let has = |brand: &[u8; 4]| compatible.iter().any(|c| c == brand);
        let image_container = major == b"mif1" || major == b"msf1";
        if HEIC.contains(&major) || (image_container && HEIC.iter().any(|b| has(b))) {
            Sniff::Allowed("image/heic")
        } else if major == b"avif" || major == b"avis" || has(b"avif") || has(b"avis") {
            Sniff::Other("image/avif".to_owned())
        } else if image_container {
            Sniff::Other("image/heif".to_owned())
        } else if major == b"crx " {
            Sniff::Other("image/x-canon-cr3".to_owned())
        } else if major == b"qt  " {
            Sniff::Allowed("video/quicktime")
        } else if major.starts_with(b"3g") {
            Sniff::Allowed("video/3gpp") // 3gp*, and 3g2* from CDMA phones
        } else if major == b"M4A " || major == b"M4B " || major == b"M4P " {
            Sniff::Allowed("audio/mp4")
        } else {
            Sniff::Allowed("video/mp4")
        }
    }

    /// Display size of a HEIF's primary item: its `ispe`, turned by its `irot`.
    /// (`imagesize` takes the largest `ispe`, which for a grid is a tile's.)
    pub fn heif_size(head: &[u8]) -> Option<(u32, u32)> {
        let meta = children(head).find(|(k, _)| k == b"meta")?.1.get(4..)?;
        let pitm = child(meta, b"pitm")?;
        let primary = if pitm.first() == Some(&0) { u32::from(be_u16(pitm, 4)?) } else { be_u32(pitm, 4)? };
        let iprp = child(meta, b"iprp")?;
        let properties: Vec<([u8; 4], &[u8])> = children(child(iprp, b"ipco")?).collect();
        let (mut size, mut turns) = (None, 0);
        for index in item_properties(child(iprp, b"ipma")?, primary)? {
            let Some((kind, p)) = index.checked_sub(1).and_then(|i| properties.get(i)) else {
                continue;
            };
            match kind {
                b"ispe" => size = Some((be_u32(p, 4)?, be_u32(p, 8)?)),
                b"irot" => turns = p.first()? & 0x03,
                _ => {}
            }
        }
        let (w, h) = size.filter(|(w, h)| *w > 0 && *h > 0)?;
        Some(if turns % 2 == 1 { (h, w) } else { (w, h) })
    }

    /// The 1-based property indices `ipma` associates with `item`.
    fn item_properties(ipma: &[u8], item: u32) -> Option<Vec<usize>> {
        let version = *ipma.first()?;
        let wide_index = ipma.get(3)? & 1 == 1;
        let count = be_u32(ipma, 4)?;
        let mut at = 8;
        for _ in 0..count {
            let id = if version < 1 {
                at += 2;
                u32::from(be_u16(ipma, at - 2)?)
            } else {
                at += 4;
                be_u32(ipma, at - 4)?
            };
            let n = usize::from(*ipma.get(at)?);
            at += 1;
            let mut indices = Vec::with_capacity(n);
            for _ in 0..n {
                let index = if wide_index {
                    at += 2;
                    usize::from(be_u16(ipma, at - 2)? & 0x7FFF)
                } else {
                    at += 1;
                    usize::from(ipma.get(at - 1)? & 0x7F)
                };
                indices.push(index);
            }
            if id == item {
                return Some(indices);
            }
        }
        None
    }

    #[derive(Debug, Default)]
    enum State {
        #[default]
        Header,
        LargeSize([u8; 4]),
        Moov,
        /// A `moov` with size 0 (to the end of the file): parsed at `finish`.
        MoovToEnd,
        Moof,
        Done,
    }

    /// Walks top-level boxes, skipping everything but `moov` (and the `moof`s
    /// of a fragmented file, whose `mvhd` has no duration).
    #[derive(Debug, Default)]
    pub struct Bmff {
        state: State,
        movie: Option<Movie>,
        /// Fragmented files: summed sample durations by track id.
        fragments: Vec<(u32, u64)>,
    }

    impl Bmff {
        fn on_box(&mut self, kind: [u8; 4], payload: u64) -> Next {
            let wanted = match &kind {
                b"moov" => Some(State::Moov),
                b"moof" if payload <= MOOF_CAP && self.movie.is_some() => Some(State::Moof),
                _ => None,
            };
            match wanted {
                Some(State::Moov) if payload == 0 || payload > MOOV_CAP => {
                    self.state = State::Done;
                    Next::DONE
                }
                Some(state) if payload > 0 => {
                    self.state = state;
                    Next::read(payload as usize)
                }
                _ => {
                    self.state = State::Header;
                    Next::skip(payload, 8)
                }
            }
        }

        /// Adds a `moof`'s sample durations (`traf/tfhd` defaults, `trun` entries).
        fn add_fragment(&mut self, moof: &[u8]) {
            let Some(movie) = &self.movie else { return };
            for (_, traf) in children(moof).filter(|(k, _)| k == b"traf") {
                let Some((track, tfhd_default)) = child(traf, b"tfhd").and_then(tfhd) else {
                    continue;
                };
                let default = tfhd_default.or_else(|| movie.trex_duration(track));
                let total: u64 = children(traf)
                    .filter(|(k, _)| k == b"trun")
                    .map(|(_, trun)| trun_duration(trun, default.unwrap_or(0)))
                    .sum();
                match self.fragments.iter_mut().find(|(id, _)| *id == track) {
                    Some((_, sum)) => *sum = sum.saturating_add(total),
                    None => self.fragments.push((track, total)),
                }
            }
        }
    }

    /// Track id and default sample duration from a `tfhd`.
    fn tfhd(p: &[u8]) -> Option<(u32, Option<u32>)> {
        let flags = be_u32(p, 0)? & 0x00FF_FFFF;
        let track = be_u32(p, 4)?;
        if flags & 0x08 == 0 {
            return Some((track, None));
        }
        let mut at = 8;
        if flags & 0x01 != 0 {
            at += 8; // base data offset
        }
        if flags & 0x02 != 0 {
            at += 4; // sample description index
        }
        Some((track, be_u32(p, at)))
    }

    /// Sum of a `trun`'s sample durations (`default` for samples without one).
    fn trun_duration(p: &[u8], default: u32) -> u64 {
        let flags = be_u32(p, 0).unwrap_or(0) & 0x00FF_FFFF;
        let count = u64::from(be_u32(p, 4).unwrap_or(0));
        if flags & 0x100 == 0 {
            return count * u64::from(default);
        }
        let mut at = 8 + 4 * usize::from(flags & 0x01 != 0) + 4 * usize::from(flags & 0x04 != 0);
        let stride = [0x100, 0x200, 0x400, 0x800].iter().filter(|bit| flags & **bit != 0).count() * 4;
        let mut total = 0u64;
        for _ in 0..count {
            let Some(duration) = be_u32(p, at) else { break };
            total += u64::from(duration);
            at += stride;
        }
        total
    }

    impl Walk for Bmff {
        fn start(&mut self) -> Next {
            Next::read(8)
        }

        fn step(&mut self, bytes: &[u8], _end: u64) -> Next {
            match std::mem::take(&mut self.state) {
                State::Header => {
                    let (Some(size), Some(kind)) = (be_u32(bytes, 0), array::<4>(bytes, 4)) else {
                        return Next::DONE;
                    };
                    match size {
                        1 => {
                            self.state = State::LargeSize(kind);
                            Next::read(8)
                        }
                        0 if &kind == b"moov" => {
                            self.state = State::MoovToEnd;
                            Next::read(MOOV_CAP as usize)
                        }
                        2..=7 | 0 => Next::DONE,
                        _ => self.on_box(kind, u64::from(size) - 8),
                    }
                }
                State::LargeSize(kind) => match be_u64(bytes, 0) {
                    Some(size) if size >= 16 => self.on_box(kind, size - 16),
                    _ => Next::DONE,
                },
                State::Moov | State::MoovToEnd => {
                    let movie = Movie::parse(bytes);
                    let fragmented = movie.fragmented;
                    self.movie = Some(movie);
                    if fragmented {
                        self.state = State::Header;
                        return Next::read(8);
                    }
                    Next::DONE
                }
                State::Moof => {
                    self.add_fragment(bytes);
                    self.state = State::Header;
                    Next::read(8)
                }
                State::Done => Next::DONE,
            }
        }

        fn finish(&mut self, partial: &[u8], _total: u64) -> Facts {
            if matches!(self.state, State::MoovToEnd) {
                self.movie = Some(Movie::parse(partial));
            }
            let Some(movie) = &self.movie else {
                return Facts::default();
            };
            let video = movie.tracks.iter().find(|t| &t.handler == b"vide");
            let audio = movie.tracks.iter().any(|t| &t.handler == b"soun");
            let (width, height) = video
                .map(|t| (t.width, t.height))
                .filter(|(w, h)| *w > 0 && *h > 0)
                .map_or((None, None), |(w, h)| (Some(w), Some(h)));
            Facts {
                duration: movie.duration().or_else(|| movie.fragments_duration(&self.fragments)),
                width,
                height,
                tracks: Some((video.is_some(), audio)),
                ..Facts::default()
            }
        }
    }

    /// Child boxes of a payload held in memory: (type, payload).
    fn children(mut rest: &[u8]) -> impl Iterator<Item = ([u8; 4], &[u8])> {
        std::iter::from_fn(move || {
            let size = be_u32(rest, 0)?;
            let kind = array::<4>(rest, 4)?;
            let (header, size) = match size {
                1 => (16, usize::try_from(be_u64(rest, 8)?).ok()?),
                0 => (8, rest.len()),
                n => (8, usize::try_from(n).ok()?),
            };
            let payload = rest.get(header..size)?;
            rest = rest.get(size..)?;
            Some((kind, payload))
        })
    }

    fn child<'a>(payload: &'a [u8], kind: &[u8; 4]) -> Option<&'a [u8]> {
        children(payload).find(|(k, _)| k == kind).map(|(_, p)| p)
    }

    #[derive(Debug, Default)]
    struct Movie {
        timescale: u32,
        duration: Option<u64>,
        tracks: Vec<Track>,
        /// Has `mvex`: samples are described by `moof`s after the `moov`.
        fragmented: bool,
        /// `mvex/trex`: (track id, default sample duration).
        trex: Vec<(u32, u32)>,
    }

    #[derive(Debug)]
    struct Track {
        id: u32,
        /// `mdhd` timescale, for fragment durations.
        timescale: u32,
        handler: [u8; 4],
        width: u32,
        height: u32,
    }

    impl Movie {
        fn parse(moov: &[u8]) -> Movie {
            let mut movie = Movie::default();
            for (kind, payload) in children(moov) {
                match &kind {
                    b"mvhd" => movie.read_mvhd(payload),
                    b"trak" => movie.tracks.extend(Track::parse(payload)),
                    b"mvex" => {
                        movie.fragmented = true;
                        let trex = children(payload).filter(|(k, _)| k == b"trex");
                        movie.trex.extend(trex.filter_map(|(_, p)| Some((be_u32(p, 4)?, be_u32(p, 12)?))));
                    }
                    _ => {}
                }
            }
            movie
        }

        fn trex_duration(&self, track: u32) -> Option<u32> {
            self.trex.iter().find(|(id, _)| *id == track).map(|(_, d)| *d)
        }

        /// The longest track's summed fragment durations, in seconds.
        fn fragments_duration(&self, fragments: &[(u32, u64)]) -> Option<f64> {
            fragments
                .iter()
                .filter_map(|(id, total)| {
                    let track = self.tracks.iter().find(|t| t.id == *id)?;
                    (track.timescale > 0).then(|| *total as f64 / f64::from(track.timescale))
                })
                .filter(|d| *d > 0.0)
                .reduce(f64::max)
        }

        fn read_mvhd(&mut self, p: &[u8]) {
            let (timescale, duration) = if p.first() == Some(&1) {
                (be_u32(p, 20), be_u64(p, 24).filter(|d| *d != u64::MAX))
            } else {
                let d = be_u32(p, 16).filter(|d| *d != u32::MAX);
                (be_u32(p, 12), d.map(u64::from))
            };
            self.timescale = timescale.unwrap_or(0);
            self.duration = duration;
        }

        fn duration(&self) -> Option<f64> {
            let d = self.duration.filter(|d| *d > 0)?;
            (self.timescale > 0).then(|| d as f64 / f64::from(self.timescale))
        }
    }

    impl Track {
        fn parse(trak: &[u8]) -> Option<Track> {
            let mdia = child(trak, b"mdia")?;
            let handler = array::<4>(child(mdia, b"hdlr")?, 8)?;
            let tkhd = child(trak, b"tkhd").unwrap_or_default();
            let v1 = tkhd.first() == Some(&1);
            let id = be_u32(tkhd, if v1 { 20 } else { 12 }).unwrap_or(0);
            let mdhd = child(mdia, b"mdhd").unwrap_or_default();
            let timescale = be_u32(mdhd, if mdhd.first() == Some(&1) { 20 } else { 12 });
            let (mut width, mut height) = tkhd_size(tkhd);
            if &handler == b"vide" && (width == 0 || height == 0) {
                (width, height) = stsd_size(mdia).unwrap_or((0, 0));
            }
            Some(Track { id, timescale: timescale.unwrap_or(0), handler, width, height })
        }
    }

    /// Presentation size from `tkhd` (16.16 fixed point), swapped for a 90° matrix.
    fn tkhd_size(p: &[u8]) -> (u32, u32) {
        let (matrix, size) = if p.first() == Some(&1) { (52, 88) } else { (40, 76) };
        let w = be_u32(p, size).unwrap_or(0) >> 16;
        let h = be_u32(p, size + 4).unwrap_or(0) >> 16;
        let a = be_u32(p, matrix).unwrap_or(0);
        let d = be_u32(p, matrix + 16).unwrap_or(0);
        if a == 0 && d == 0 {
            (h, w)
        } else {
            (w, h)
        }
    }

    /// Coded size from the first visual sample entry (`mdia/minf/stbl/stsd`).
    fn stsd_size(mdia: &[u8]) -> Option<(u32, u32)> {
        let stbl = child(child(mdia, b"minf")?, b"stbl")?;
        let stsd = child(stbl, b"stsd")?;
        let (_, entry) = children(stsd.get(8..)?).next()?;
        Some((u32::from(be_u16(entry, 24)?), u32::from(be_u16(entry, 26)?)))
    }
}

/// RIFF: WAV (`fmt ` byte rate, `data` size) and AVI (`avih`).
mod riff {
    use super::bytes::{array, le_u32};
    use super::driver::{Next, Walk};
    use super::Facts;

    #[derive(Debug, Default, Clone, Copy, PartialEq)]
    enum State {
        #[default]
        Header,
        Chunk,
        Fmt {
            rest: u64,
        },
        ListType {
            size: u64,
        },
        Avih,
        Done,
    }

    #[derive(Debug, Default)]
    pub struct Riff {
        state: State,
        avi: bool,
        byte_rate: u32,
        /// WAV `data`: its offset and declared length (None: to the end).
        data: Option<(u64, Option<u64>)>,
        avih: Option<(f64, u32, u32)>,
    }

    fn padded(size: u64) -> u64 {
        size + (size & 1)
    }

    impl Riff {
        fn chunk(&mut self, id: [u8; 4], size: u64, end: u64) -> Next {
            match (&id, self.avi) {
                (b"fmt ", false) if size >= 16 => {
                    let n = size.min(40);
                    self.state = State::Fmt { rest: padded(size) - n };
                    Next::read(n as usize)
                }
                (b"data", false) => {
                    let len = (size != 0 && size != u64::from(u32::MAX)).then_some(size);
                    self.data = Some((end, len));
                    Next::DONE
                }
                (b"LIST", true) if size >= 4 => {
                    self.state = State::ListType { size };
                    Next::read(4)
                }
                (b"avih", true) if size >= 40 => {
                    self.state = State::Avih;
                    Next::read(40)
                }
                _ => {
                    self.state = State::Chunk;
                    Next::skip(padded(size), 8)
                }
            }
        }
    }

    impl Walk for Riff {
        fn start(&mut self) -> Next {
            Next::read(12)
        }

        fn step(&mut self, b: &[u8], end: u64) -> Next {
            let state = std::mem::replace(&mut self.state, State::Done);
            match state {
                State::Header => {
                    self.avi = match b.get(8..12) {
                        Some(b"WAVE") => false,
                        Some(b"AVI ") => true,
                        _ => return Next::DONE,
                    };
                    self.state = State::Chunk;
                    Next::read(8)
                }
                State::Chunk => match (array::<4>(b, 0), le_u32(b, 4)) {
                    (Some(id), Some(size)) => self.chunk(id, u64::from(size), end),
                    _ => Next::DONE,
                },
                State::Fmt { rest } => {
                    self.byte_rate = le_u32(b, 8).unwrap_or(0);
                    self.state = State::Chunk;
                    Next::skip(rest, 8)
                }
                State::ListType { size } => {
                    self.state = State::Chunk;
                    if b == b"hdrl" {
                        Next::read(8) // descend into the header list
                    } else {
                        Next::skip(padded(size) - 4, 8)
                    }
                }
                State::Avih => {
                    let field = |at| le_u32(b, at).unwrap_or(0);
                    let seconds = f64::from(field(0)) * f64::from(field(16)) / 1e6;
                    self.avih = Some((seconds, field(32), field(36)));
                    Next::DONE
                }
                State::Done => Next::DONE,
            }
        }

        fn finish(&mut self, _partial: &[u8], total: u64) -> Facts {
            if let Some((seconds, w, h)) = self.avih {
                let nonzero = |v: u32| (v > 0).then_some(v);
                return Facts {
                    duration: (seconds > 0.0).then_some(seconds),
                    width: nonzero(w),
                    height: nonzero(h),
                    ..Facts::default()
                };
            }
            let duration = match self.data {
                Some((start, declared)) if self.byte_rate > 0 => {
                    let available = total.saturating_sub(start);
                    let len = declared.map_or(available, |d| d.min(available));
                    Some(len as f64 / f64::from(self.byte_rate))
                }
                _ => None,
            };
            Facts { duration, ..Facts::default() }
        }
    }
}

/// MPEG audio (MP3, also layers I/II) and ADTS AAC, after an optional ID3v2 tag.
mod mpeg {
    use super::bytes::be_u32;
    use super::driver::{Next, Walk};
    use super::{Facts, Sniff};

    /// Bytes of a frame header we look at (ADTS needs 7).
    const HEADER: usize = 7;
    /// How far past the ID3 tag we search for the first frame.
    const RESYNC_BUDGET: u32 = 64 * 1024;

    /// An ID3v2 tag or a frame sync at the very start.
    pub fn looks_like(head: &[u8]) -> bool {
        head.starts_with(b"ID3") || matches!(head, [0xFF, b1, ..] if b1 & 0xE0 == 0xE0)
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Family {
        Mp3,
        Adts,
    }

    #[derive(Debug, Clone, Copy)]
    struct Frame {
        family: Family,
        len: usize,
        samples: u32,
        rate: u32,
        /// Offset of a Xing/Info header inside the frame (MP3 only).
        xing_at: usize,
    }

    const ADTS_RATES: [u32; 13] =
        [96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350];

    /// Kbit/s by [MPEG-1?][layer I, II, III][index].
    const BITRATES: [[[u16; 15]; 3]; 2] = [
        [
            [0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256],
            [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160],
            [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160],
        ],
        [
            [0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448],
            [0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384],
            [0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320],
        ],
    ];

    fn parse_frame(h: &[u8]) -> Option<Frame> {
        let Some(&[0xFF, b1, b2, b3, b4, b5, b6]) = h.get(..HEADER) else {
            return None;
        };
        if b1 & 0xF6 == 0xF0 {
            // ADTS: 12-bit sync, layer 0.
            let rate = *ADTS_RATES.get(usize::from((b2 >> 2) & 0x0F))?;
            let len = (usize::from(b3 & 0x03) << 11) | (usize::from(b4) << 3) | usize::from(b5 >> 5);
            let blocks = u32::from(b6 & 0x03) + 1;
            return (len >= HEADER).then_some(Frame {
                family: Family::Adts,
                len,
                samples: 1024 * blocks,
                rate,
                xing_at: 0,
            });
        }
        if b1 & 0xE0 != 0xE0 {
            return None;
        }
        let version = (b1 >> 3) & 0x03; // 0: 2.5, 1: reserved, 2: MPEG-2, 3: MPEG-1
        let layer = (b1 >> 1) & 0x03; // 1: III, 2: II, 3: I
        if version == 1 || layer == 0 {
            return None;
        }
        let mpeg1 = version == 3;
        let layer_index = usize::from(3 - layer); // 0: I, 1: II, 2: III
        let kbps = *BITRATES[usize::from(mpeg1)][layer_index].get(usize::from(b2 >> 4))?;
        let base_rate = [44100, 48000, 32000].get(usize::from((b2 >> 2) & 0x03))?;
        let rate = match version {
            3 => *base_rate,
            2 => base_rate / 2,
            _ => base_rate / 4,
        };
        if kbps == 0 {
            return None; // "free" bit rate: frame length unknown
        }
        let bits_per_second = u32::from(kbps) * 1000;
        let padding = u32::from((b2 >> 1) & 0x01);
        // Bits in a frame: samples × bit rate / sample rate (layer I counts 4-byte slots).
        let (samples, len) = match layer_index {
            0 => (384, (12 * bits_per_second / rate + padding) * 4),
            1 => (1152, 144 * bits_per_second / rate + padding),
            _ if mpeg1 => (1152, 144 * bits_per_second / rate + padding),
            _ => (576, 72 * bits_per_second / rate + padding),
        };
        let mono = b3 >> 6 == 3;
        let side_info = match (mpeg1, mono) {
            (true, true) => 17,
            (true, false) => 32,
            (false, true) => 9,
            (false, false) => 17,
        };
        let crc = if b1 & 0x01 == 0 { 2 } else { 0 };
        let len = usize::try_from(len).ok().filter(|l| *l >= HEADER)?;
        Some(Frame { family: Family::Mp3, len, samples, rate, xing_at: 4 + crc + side_info })
    }

    /// Frames counted by a Xing/Info or VBRI header in the first frame.
    fn header_frames(frame: &[u8], xing_at: usize) -> Option<u32> {
        let tag = frame.get(xing_at..xing_at + 4)?;
        if tag == b"Xing" || tag == b"Info" {
            let flags = be_u32(frame, xing_at + 4)?;
            return if flags & 1 == 1 { be_u32(frame, xing_at + 8) } else { None };
        }
        if frame.get(36..40)? == b"VBRI" {
            return be_u32(frame, 36 + 14);
        }
        None
    }

    #[derive(Debug, Default, Clone, Copy)]
    enum State {
        #[default]
        Start,
        Id3,
        Sync,
        /// Reading the rest of the first MP3 frame, which may hold Xing/VBRI.
        FirstFrame(Frame),
    }

    #[derive(Debug, Default)]
    pub struct Mpeg {
        state: State,
        window: Vec<u8>,
        family: Option<Family>,
        frames: u64,
        seconds: f64,
        resyncs: u32,
        from_header: Option<f64>,
    }

    impl Mpeg {
        fn count(&mut self, frame: &Frame) {
            self.frames += 1;
            self.seconds += f64::from(frame.samples) / f64::from(frame.rate);
        }

        fn sync(&mut self) -> Next {
            if self.window.len() < HEADER {
                return Next::read(HEADER - self.window.len());
            }
            let frame = parse_frame(&self.window).filter(|f| self.family.is_none_or(|family| family == f.family));
            let Some(frame) = frame else {
                if self.frames > 0 || self.resyncs >= RESYNC_BUDGET {
                    return Next::DONE; // trailing tags or junk
                }
                self.resyncs += 1;
                self.window.remove(0);
                return Next::read(1);
            };
            self.family = Some(frame.family);
            if self.frames == 0 && frame.family == Family::Mp3 {
                // Keep the header in `window`: Xing offsets count from the frame start.
                self.state = State::FirstFrame(frame);
                return Next::read(frame.len - HEADER);
            }
            self.window.clear();
            self.count(&frame);
            Next::skip((frame.len - HEADER) as u64, HEADER)
        }
    }

    impl Walk for Mpeg {
        fn start(&mut self) -> Next {
            Next::read(3)
        }

        fn step(&mut self, bytes: &[u8], _end: u64) -> Next {
            match self.state {
                State::Start => {
                    if bytes == b"ID3" {
                        self.state = State::Id3;
                        return Next::read(7);
                    }
                    self.window.extend_from_slice(bytes);
                    self.state = State::Sync;
                    self.sync()
                }
                State::Id3 => {
                    // version, revision, flags, 4 syncsafe size bytes
                    let &[major, _, flags, s0, s1, s2, s3] = bytes else {
                        return Next::DONE;
                    };
                    if !(2..=4).contains(&major) || (s0 | s1 | s2 | s3) & 0x80 != 0 {
                        return Next::DONE;
                    }
                    let size = (u64::from(s0) << 21) | (u64::from(s1) << 14) | (u64::from(s2) << 7) | u64::from(s3);
                    let footer = if flags & 0x10 != 0 { 10 } else { 0 };
                    self.state = State::Sync;
                    Next::skip(size + footer, HEADER)
                }
                State::Sync => {
                    self.window.extend_from_slice(bytes);
                    self.sync()
                }
                State::FirstFrame(frame) => {
                    self.window.extend_from_slice(bytes);
                    let counted = header_frames(&self.window, frame.xing_at);
                    self.window.clear();
                    self.count(&frame);
                    if let Some(n) = counted {
                        let seconds = f64::from(n) * f64::from(frame.samples) / f64::from(frame.rate);
                        self.from_header = Some(seconds);
                        return Next::DONE;
                    }
                    self.state = State::Sync;
                    Next::read(HEADER)
                }
            }
        }

        fn finish(&mut self, _partial: &[u8], _total: u64) -> Facts {
            let mime = match (self.frames, self.family) {
                (1.., Some(Family::Mp3)) => Sniff::Allowed("audio/mpeg"),
                (1.., Some(Family::Adts)) => Sniff::Allowed("audio/aac"),
                _ => return Facts::default(),
            };
            Facts { mime: Some(mime), duration: self.from_header.or(Some(self.seconds)), ..Facts::default() }
        }
    }
}

/// AMR-NB (`#!AMR\n`) and AMR-WB (`#!AMR-WB\n`) storage format: 20 ms a frame.
mod amr {
    use super::driver::{Next, Walk};
    use super::Facts;

    /// Payload bytes after the table-of-contents byte, by frame type (as ffmpeg).
    const NB_SIZES: [u8; 16] = [12, 13, 15, 17, 19, 20, 26, 31, 5, 0, 0, 0, 0, 0, 0, 0];
    const WB_SIZES: [u8; 16] = [17, 23, 32, 36, 40, 46, 50, 58, 60, 5, 0, 0, 0, 0, 0, 0];

    /// AMR-NB or AMR-WB storage-format magic.
    pub fn is_amr(head: &[u8]) -> bool {
        head.starts_with(b"#!AMR\n") || head.starts_with(b"#!AMR-WB\n")
    }

    #[derive(Debug, Default)]
    pub struct Amr {
        /// None until the magic was read.
        wide: Option<bool>,
        frames: u64,
    }

    impl Walk for Amr {
        fn start(&mut self) -> Next {
            Next::read(6)
        }

        fn step(&mut self, bytes: &[u8], _end: u64) -> Next {
            let Some(wide) = self.wide else {
                return match bytes {
                    b"#!AMR\n" => {
                        self.wide = Some(false);
                        Next::read(1)
                    }
                    b"#!AMR-" => {
                        self.wide = Some(true);
                        Next::skip(3, 1) // "WB\n", checked by the sniff
                    }
                    _ => Next::DONE,
                };
            };
            let table = if wide { &WB_SIZES } else { &NB_SIZES };
            let toc = bytes.first().copied().unwrap_or(0);
            let size = table[usize::from((toc >> 3) & 0x0F)];
            self.frames += 1;
            Next::skip(u64::from(size), 1)
        }

        fn finish(&mut self, _partial: &[u8], _total: u64) -> Facts {
            Facts { duration: Some(self.frames as f64 * 0.02), ..Facts::default() }
        }
    }
}

/// Ogg: pages walked; duration from the last granule of the first audio stream.
mod ogg {
    use super::bytes::{le_u16, le_u32, le_u64};
    use super::driver::{Next, Walk};
    use super::{Facts, Sniff};

    #[derive(Debug, Default, Clone, Copy)]
    enum State {
        #[default]
        Page,
        Segments {
            bos: bool,
            serial: u32,
            granule: u64,
        },
        IdHeader {
            serial: u32,
        },
    }

    /// The audio stream whose duration we report.
    #[derive(Debug, Clone, Copy)]
    struct Stream {
        serial: u32,
        rate: u32,
        pre_skip: u64,
        last_granule: Option<u64>,
    }

    #[derive(Debug, Default)]
    pub struct Ogg {
        state: State,
        audio: Option<Stream>,
        video: bool,
    }

    impl Ogg {
        /// Reads a stream's identification header (first packet of its first page).
        fn id_header(&mut self, serial: u32, p: &[u8]) {
            if p.starts_with(b"\x80theora") {
                self.video = true;
            }
            if self.audio.is_some() {
                return;
            }
            let (rate, pre_skip) = if p.starts_with(b"\x01vorbis") {
                (le_u32(p, 12).unwrap_or(0), 0)
            } else if p.starts_with(b"OpusHead") {
                (48_000, u64::from(le_u16(p, 10).unwrap_or(0)))
            } else if p.starts_with(b"Speex   ") {
                (le_u32(p, 36).unwrap_or(0), 0)
            } else {
                return;
            };
            if rate > 0 {
                self.audio = Some(Stream { serial, rate, pre_skip, last_granule: None });
            }
        }
    }

    impl Walk for Ogg {
        fn start(&mut self) -> Next {
            Next::read(27)
        }

        fn step(&mut self, b: &[u8], _end: u64) -> Next {
            match self.state {
                State::Page => {
                    if !b.starts_with(b"OggS") || b.get(4) != Some(&0) {
                        return Next::DONE;
                    }
                    let (Some(granule), Some(serial), Some(&count)) = (le_u64(b, 6), le_u32(b, 14), b.get(26)) else {
                        return Next::DONE;
                    };
                    let bos = b.get(5).is_some_and(|t| t & 0x02 != 0);
                    self.state = State::Segments { bos, serial, granule };
                    if count == 0 {
                        return self.step(&[], 0);
                    }
                    Next::read(usize::from(count))
                }
                State::Segments { bos, serial, granule } => {
                    let body: usize = b.iter().map(|&s| usize::from(s)).sum();
                    if let Some(stream) = &mut self.audio {
                        // granule -1: no packet ends on this page
                        if stream.serial == serial && granule != u64::MAX {
                            stream.last_granule = Some(granule);
                        }
                    }
                    if bos && body > 0 {
                        self.state = State::IdHeader { serial };
                        return Next::read(body);
                    }
                    self.state = State::Page;
                    Next::skip(body as u64, 27)
                }
                State::IdHeader { serial } => {
                    self.id_header(serial, b);
                    self.state = State::Page;
                    Next::read(27)
                }
            }
        }

        fn finish(&mut self, _partial: &[u8], _total: u64) -> Facts {
            let duration = self.audio.and_then(|s| {
                let samples = s.last_granule?.saturating_sub(s.pre_skip);
                Some(samples as f64 / f64::from(s.rate))
            });
            Facts { mime: self.video.then(|| Sniff::Other("video/ogg".to_owned())), duration, ..Facts::default() }
        }
    }
}

/// JPEG: segments walked by length to the frame header; EXIF orientation noted.
mod jpeg {
    use super::bytes::{be_u16, be_u32, le_u16, le_u32};
    use super::driver::{Next, Walk};
    use super::Facts;

    #[derive(Debug, Default, Clone, Copy)]
    enum State {
        #[default]
        Soi,
        Marker,
        Fill,
        Length(u8),
        Segment(u8),
    }

    #[derive(Debug, Default)]
    pub struct Jpeg {
        state: State,
        orientation: Option<u16>,
        size: Option<(u16, u16)>,
    }

    fn is_sof(marker: u8) -> bool {
        matches!(marker, 0xC0..=0xCF) && !matches!(marker, 0xC4 | 0xC8 | 0xCC)
    }

    impl Jpeg {
        fn marker(&mut self, m: u8) -> Next {
            match m {
                0xFF => {
                    self.state = State::Fill;
                    Next::read(1)
                }
                0x01 | 0xD0..=0xD8 => {
                    self.state = State::Marker;
                    Next::read(2)
                }
                0xD9 | 0xDA => Next::DONE, // end of image, or scan data without a frame header
                _ => {
                    self.state = State::Length(m);
                    Next::read(2)
                }
            }
        }
    }

    /// The EXIF orientation tag (0x0112) from an APP1 payload.
    fn exif_orientation(app1: &[u8]) -> Option<u16> {
        let tiff = app1.strip_prefix(b"Exif\0\0")?;
        let little = match tiff.get(..4)? {
            b"II*\0" => true,
            b"MM\0*" => false,
            _ => return None,
        };
        let u16_at = |at| {
            if little {
                le_u16(tiff, at)
            } else {
                be_u16(tiff, at)
            }
        };
        let u32_at = |at| {
            if little {
                le_u32(tiff, at)
            } else {
                be_u32(tiff, at)
            }
        };
        let ifd = usize::try_from(u32_at(4)?).ok()?;
        let count = u16_at(ifd)?;
        (0..usize::from(count)).find_map(|i| {
            let entry = ifd.checked_add(2 + i * 12)?;
            (u16_at(entry)? == 0x0112).then(|| u16_at(entry + 8))?
        })
    }

    impl Walk for Jpeg {
        fn start(&mut self) -> Next {
            Next::read(2)
        }

        fn step(&mut self, b: &[u8], _end: u64) -> Next {
            match self.state {
                State::Soi if b == [0xFF, 0xD8] => {
                    self.state = State::Marker;
                    Next::read(2)
                }
                State::Soi => Next::DONE,
                State::Marker => match b {
                    &[0xFF, m] => self.marker(m),
                    _ => Next::DONE,
                },
                State::Fill => self.marker(b.first().copied().unwrap_or(0)),
                State::Length(m) => {
                    let body = usize::from(be_u16(b, 0).unwrap_or(0)).saturating_sub(2);
                    let wanted = is_sof(m) || (m == 0xE1 && self.orientation.is_none());
                    if wanted && body > 0 {
                        self.state = State::Segment(m);
                        return Next::read(body);
                    }
                    self.state = State::Marker;
                    Next::skip(body as u64, 2)
                }
                State::Segment(m) if is_sof(m) => {
                    if let (Some(h), Some(w)) = (be_u16(b, 1), be_u16(b, 3)) {
                        self.size = Some((w, h));
                    }
                    Next::DONE
                }
                State::Segment(_) => {
                    self.orientation = exif_orientation(b);
                    self.state = State::Marker;
                    Next::read(2)
                }
            }
        }

        fn finish(&mut self, _partial: &[u8], _total: u64) -> Facts {
            let Some((w, h)) = self.size.filter(|(w, h)| *w > 0 && *h > 0) else {
                return Facts::default();
            };
            let rotated = matches!(self.orientation, Some(5..=8));
            let (w, h) = if rotated { (h, w) } else { (w, h) };
            Facts { width: Some(u32::from(w)), height: Some(u32::from(h)), ..Facts::default() }
        }
    }
}

/// OLE2 compound files (legacy Office): the first directory sector tells
/// Word from Excel (stream names, else the root CLSID).
mod cfb {
    use super::bytes::{array, le_u16, le_u32};
    use super::driver::{Next, Walk};
    use super::{Facts, Sniff};

    pub const SIGNATURE: [u8; 8] = [0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1];

    const WORD_CLSID: [u8; 4] = [0x06, 0x09, 0x02, 0x00];
    const EXCEL_CLSIDS: [[u8; 4]; 2] = [[0x20, 0x08, 0x02, 0x00], [0x10, 0x08, 0x02, 0x00]];
    /// The common tail of Microsoft's {000209xx-0000-0000-C000-000000000046} ids.
    const OFFICE_CLSID_TAIL: [u8; 12] = [0, 0, 0, 0, 0xC0, 0, 0, 0, 0, 0, 0, 0x46];
    const PPT_CLSID: [u8; 16] =
        [0x10, 0x8D, 0x81, 0x64, 0x9B, 0x4F, 0xCF, 0x11, 0x86, 0xEA, 0x00, 0xAA, 0x00, 0xB9, 0x29, 0xE8];

    #[derive(Debug, Default)]
    pub struct Cfb {
        header_read: bool,
        /// Set once the directory sector was read: the type it names, if any.
        verdict: Option<Option<&'static str>>,
    }

    /// UTF-16LE directory entry name.
    fn entry_name(entry: &[u8]) -> String {
        let len = usize::from(le_u16(entry, 0x40).unwrap_or(0)).min(64);
        let units: Vec<u16> = entry
            .get(..len)
            .unwrap_or_default()
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .take_while(|&u| u != 0)
            .collect();
        String::from_utf16_lossy(&units)
    }

    fn classify(sector: &[u8]) -> Option<&'static str> {
        for entry in sector.chunks_exact(128) {
            match entry_name(entry).as_str() {
                "WordDocument" => return Some("application/msword"),
                "Workbook" | "Book" => return Some("application/vnd.ms-excel"),
                "PowerPoint Document" => return Some("application/vnd.ms-powerpoint"),
                _ => {}
            }
        }
        let clsid = array::<16>(sector, 0x50)?;
        let office = clsid[4..] == OFFICE_CLSID_TAIL;
        if office && clsid[..4] == WORD_CLSID {
            Some("application/msword")
        } else if office && EXCEL_CLSIDS.iter().any(|c| clsid[..4] == *c) {
            Some("application/vnd.ms-excel")
        } else if clsid == PPT_CLSID {
            Some("application/vnd.ms-powerpoint")
        } else {
            None
        }
    }

    impl Walk for Cfb {
        fn start(&mut self) -> Next {
            Next::read(512)
        }

        fn step(&mut self, b: &[u8], _end: u64) -> Next {
            if self.header_read {
                self.verdict = Some(classify(b));
                return Next::DONE;
            }
            self.header_read = true;
            let (Some(shift), Some(first_dir)) = (le_u16(b, 0x1E), le_u32(b, 0x30)) else {
                return Next::DONE;
            };
            if !b.starts_with(&SIGNATURE) || !(shift == 9 || shift == 12) || first_dir >= 0xFFFF_FFFA {
                return Next::DONE;
            }
            let sector = 1u64 << shift;
            let offset = (u64::from(first_dir) + 1) * sector;
            Next::skip(offset.saturating_sub(512), sector as usize)
        }

        fn finish(&mut self, _partial: &[u8], _total: u64) -> Facts {
            // A stream that ends before its directory is not judged on its header alone
            // (so a head-only look says "unknown yet", not "not allowed").
            let mime = match self.verdict {
                Some(name) => Sniff::named(name.unwrap_or("application/x-ole-storage")),
                None => Sniff::Unknown,
            };
            Facts { mime: Some(mime), ..Facts::default() }
        }
    }
}

/// ZIP: local file headers walked for Office Open XML part names (`infer`
/// only looks at the first few entries, in one particular order).
mod zip {
    use super::bytes::{le_u16, le_u32};
    use super::driver::{Next, Walk};
    use super::{Facts, Sniff};

    pub const SIGNATURE: &[u8] = b"PK\x03\x04";
    const PPTX: &str = "application/vnd.openxmlformats-officedocument.presentationml.presentation";
    /// Part folders of the OOXML packages.
    const PACKAGES: [(&[u8], &str); 3] = [(b"word/", super::mime::DOCX), (b"xl/", super::mime::XLSX), (b"ppt/", PPTX)];

    #[derive(Debug, Default)]
    pub struct Zip {
        /// Skip after the current name: extra field and data; None if unknown.
        after_name: Option<u64>,
        content_types: bool,
        package: Option<&'static str>,
    }

    impl Zip {
        fn verdict(&self) -> Option<&'static str> {
            self.package.filter(|_| self.content_types)
        }
    }

    impl Walk for Zip {
        fn start(&mut self) -> Next {
            Next::read(30)
        }

        fn step(&mut self, b: &[u8], _end: u64) -> Next {
            if let Some(after) = self.after_name.take() {
                // `b` is an entry name.
                if b == b"[Content_Types].xml" {
                    self.content_types = true;
                } else if self.package.is_none() {
                    self.package = PACKAGES.iter().find(|(dir, _)| b.starts_with(dir)).map(|(_, mime)| *mime);
                }
                if self.verdict().is_some() || after == u64::MAX {
                    return Next::DONE;
                }
                return Next::skip(after, 30);
            }
            let (Some(flags), Some(size), Some(name), Some(extra)) =
                (le_u16(b, 6), le_u32(b, 18), le_u16(b, 26), le_u16(b, 28))
            else {
                return Next::DONE;
            };
            if !b.starts_with(SIGNATURE) || name == 0 {
                return Next::DONE; // the central directory, or junk
            }
            // Sizes unknown (data descriptor) or in a ZIP64 extra: stop after this name.
            let unknown = (flags & 0x08 != 0 && size == 0) || size == u32::MAX;
            self.after_name = Some(if unknown { u64::MAX } else { u64::from(extra) + u64::from(size) });
            Next::read(usize::from(name))
        }

        fn finish(&mut self, _partial: &[u8], _total: u64) -> Facts {
            Facts { mime: self.verdict().map(Sniff::named), ..Facts::default() }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANIFEST: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/media/manifest.json");
    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/media/");

    #[derive(Debug, serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Entry {
        file: String,
        mime_type: Option<String>,
        #[serde(rename = "type")]
        kind: Option<MediaKind>,
        width: Option<u32>,
        height: Option<u32>,
        duration_seconds: Option<f64>,
        size_bytes: u64,
        sha256: String,
    }

    fn manifest() -> Vec<(Entry, Vec<u8>)> {
        let text = std::fs::read_to_string(MANIFEST).expect("manifest.json");
        let entries: Vec<Entry> = serde_json::from_str(&text).expect("manifest parses");
        entries
            .into_iter()
            .map(|e| {
                let bytes = std::fs::read(format!("{FIXTURES}{}", e.file)).expect("fixture");
                (e, bytes)
            })
            .collect()
    }

    fn inspect_in(data: &[u8], chunk: usize) -> Inspection {
        let mut inspector = Inspector::new();
        for piece in data.chunks(chunk.max(1)) {
            inspector.update(piece);
            assert!(inspector.head.len() <= HEAD_LEN);
        }
        assert_eq!(inspector.bytes_seen(), data.len() as u64);
        inspector.finish()
    }

    fn inspect(data: &[u8]) -> Inspection {
        inspect_in(data, data.len())
    }

    /// Deterministic pseudo-random bytes (xorshift64*).
    fn noise(seed: u64, len: usize) -> Vec<u8> {
        let mut x = seed.max(1);
        (0..len)
            .map(|_| {
                x ^= x >> 12;
                x ^= x << 25;
                x ^= x >> 27;
                (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8
            })
            .collect()
    }

    #[test]
    fn fixtures_match_the_manifest_whatever_the_chunking() {
        let fixtures = manifest();
        assert!(fixtures.len() >= 20, "manifest has {} entries", fixtures.len());
        for (entry, bytes) in &fixtures {
            let whole = inspect(bytes);
            for chunk in [1, 7, 4096, 8 << 20] {
                assert_eq!(inspect_in(bytes, chunk), whole, "{} in {chunk}-byte chunks", entry.file);
            }
            let name = &entry.file;
            assert_eq!(whole.mime_type, entry.mime_type.as_deref(), "{name}: mime");
            assert_eq!(whole.kind, entry.kind, "{name}: kind");
            assert_eq!(whole.sha256, entry.sha256, "{name}: sha256");
            assert_eq!(whole.size_bytes, entry.size_bytes, "{name}: size");
            assert_eq!(bytes.len() as u64, entry.size_bytes, "{name}: file size");
            assert_eq!((whole.width, whole.height), (entry.width, entry.height), "{name}: size");
            match (whole.duration_seconds, entry.duration_seconds) {
                (Some(got), Some(want)) => {
                    assert!((got - want).abs() <= 0.1, "{name}: duration {got} vs {want}")
                }
                (got, want) => assert_eq!(got, want, "{name}: duration"),
            }
            if entry.mime_type.is_some() {
                assert_eq!(whole.rejection_reason(), None, "{name}");
                assert_eq!(whole.detected, None, "{name}");
            } else {
                assert!(whole.rejection_reason().is_some(), "{name}: reason");
            }
        }
    }

    #[test]
    fn inspector_can_cross_threads() {
        fn check<T: Send + 'static>() {}
        check::<Inspector>();
        check::<Inspection>();
    }

    #[test]
    fn rejected_files_say_why() {
        let zip = std::fs::read(format!("{FIXTURES}archive.zip")).expect("zip");
        let got = inspect(&zip);
        assert_eq!(got.detected.as_deref(), Some("application/zip"));
        assert_eq!(got.rejection_reason().as_deref(), Some("file type application/zip is not allowed"));
        let bin = std::fs::read(format!("{FIXTURES}binary.bin")).expect("bin");
        assert_eq!(inspect(&bin).rejection_reason().as_deref(), Some("unrecognised file type"));
        let empty = Inspector::new().finish();
        assert_eq!(empty.size_bytes, 0);
        assert_eq!(empty.sha256, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        assert_eq!(empty.rejection_reason().as_deref(), Some("empty file"));
    }

    #[test]
    fn text_is_utf8_checked_across_chunk_boundaries() {
        let text = "Grüße €5 🙏 done".as_bytes();
        for chunk in 1..=5 {
            assert_eq!(inspect_in(text, chunk).mime_type, Some("text/plain"));
        }
        // A 3-byte sequence broken by an ASCII byte, split across chunks.
        let broken = b"ok \xE2\x82A";
        for chunk in 1..=6 {
            assert_eq!(inspect_in(broken, chunk).mime_type, None, "chunk {chunk}");
        }
        // An open sequence at the end is not text.
        assert_eq!(inspect(b"abc\xF0\x9F\x99").mime_type, None);
        assert_eq!(inspect(b"nul\0inside").mime_type, None);
        assert_eq!(inspect(b"\xC0\xAF").mime_type, None); // overlong
        assert_eq!(inspect(b"x").mime_type, Some("text/plain"));
        assert_eq!(inspect(b"<html><body>hi</body></html>").mime_type, Some("text/plain"));
        assert_eq!(inspect(b"ID3 notes, not a tag").mime_type, Some("text/plain"));
        // Text that merely starts like a binary format stays text.
        for text in [&b"MZ's list"[..], b"BMW meeting", b"I'm free today", b"{\\rtf1 hi}"] {
            assert_eq!(inspect(text).mime_type, Some("text/plain"), "{text:?}");
        }
        let pdf = [&b"\x80junk\n"[..], b"%PDF-1.4\n%\xE2\xE3\n1 0 obj"].concat();
        assert_eq!(inspect(&pdf).mime_type, Some("application/pdf"));
    }

    #[test]
    fn vcard_is_recognised_after_bom_and_whitespace() {
        for card in [
            &b"BEGIN:VCARD\r\nVERSION:3.0\r\nFN:A\r\nEND:VCARD\r\n"[..],
            b"\xEF\xBB\xBF  \r\nbegin:vcard\nFN:A\nend:vcard\n",
        ] {
            let got = inspect(card);
            assert_eq!(got.mime_type, Some("text/vcard"));
            assert_eq!(got.kind, Some(MediaKind::Document));
        }
        assert_eq!(inspect(b"BEGIN:VCAL").mime_type, Some("text/plain"));
    }

    /// An ISO-BMFF box: size, type, payload.
    fn boxed(kind: &[u8; 4], payload: &[u8]) -> Vec<u8> {
        let mut out = ((payload.len() + 8) as u32).to_be_bytes().to_vec();
        out.extend_from_slice(kind);
        out.extend_from_slice(payload);
        out
    }

    /// A movie with one track: `handler`, a v1 mvhd and a v1 tkhd rotated 90°.
    fn synthetic_mp4(handler: &[u8; 4], mdat_len: u64, large_mdat: bool) -> Vec<u8> {
        let mut mvhd = vec![1, 0, 0, 0];
        mvhd.extend_from_slice(&[0; 16]); // creation, modification
        mvhd.extend_from_slice(&600u32.to_be_bytes());
        mvhd.extend_from_slice(&(600u64 * 90).to_be_bytes()); // 90 s
        mvhd.extend_from_slice(&[0; 80]);
        let mut tkhd = vec![1, 0, 0, 0];
        tkhd.extend_from_slice(&[0; 48]); // up to the matrix
        let matrix: [u32; 9] = [0, 0x10000, 0, 0xFFFF_0000, 0, 0, 0, 0, 0x4000_0000];
        matrix.iter().for_each(|v| tkhd.extend_from_slice(&v.to_be_bytes()));
        tkhd.extend_from_slice(&(1920u32 << 16).to_be_bytes());
        tkhd.extend_from_slice(&(1080u32 << 16).to_be_bytes());
        let mut hdlr = vec![0; 8];
        hdlr.extend_from_slice(handler);
        hdlr.extend_from_slice(&[0; 13]);
        let trak = boxed(b"trak", &[boxed(b"tkhd", &tkhd), boxed(b"mdia", &boxed(b"hdlr", &hdlr))].concat());
        let moov = boxed(b"moov", &[boxed(b"mvhd", &mvhd), trak].concat());
        let mut file = boxed(b"ftyp", b"isom\0\0\x02\0isomiso2mp41");
        if large_mdat {
            file.extend_from_slice(&1u32.to_be_bytes());
            file.extend_from_slice(b"mdat");
            file.extend_from_slice(&(mdat_len + 16).to_be_bytes());
        } else {
            file.extend_from_slice(&((mdat_len + 8) as u32).to_be_bytes());
            file.extend_from_slice(b"mdat");
        }
        file.extend(std::iter::repeat_n(0xAB, mdat_len as usize));
        file.extend_from_slice(&moov);
        file
    }

    #[test]
    fn bmff_moov_after_a_large_mdat_with_a_64_bit_size() {
        let file = synthetic_mp4(b"vide", 300_000, true);
        for chunk in [1000, 65_536, 1 << 20] {
            let got = inspect_in(&file, chunk);
            assert_eq!(got.mime_type, Some("video/mp4"));
            assert_eq!(got.duration_seconds, Some(90.0));
            assert_eq!((got.width, got.height), (Some(1080), Some(1920)), "rotated");
        }
        let audio = inspect(&synthetic_mp4(b"soun", 10, false));
        assert_eq!(audio.mime_type, Some("audio/mp4"));
        assert_eq!(audio.kind, Some(MediaKind::Audio));
        assert_eq!((audio.width, audio.height), (None, None));
        assert_eq!(audio.duration_seconds, Some(90.0));
    }

    #[test]
    fn bmff_moov_over_the_cap_gives_up_the_duration_only() {
        let mut file = boxed(b"ftyp", b"mp42\0\0\0\0mp42isom");
        file.extend_from_slice(&((MOOV_CAP + 9) as u32).to_be_bytes());
        file.extend_from_slice(b"moov");
        file.extend_from_slice(&[0; 4096]);
        let got = inspect(&file);
        assert_eq!(got.mime_type, Some("video/mp4"));
        assert_eq!(got.duration_seconds, None);
    }

    #[test]
    fn brands_decide_the_iso_type() {
        let ftyp = |major: &[u8; 4], compat: &[u8]| {
            let mut payload = major.to_vec();
            payload.extend_from_slice(&[0; 4]);
            payload.extend_from_slice(compat);
            let mut file = boxed(b"ftyp", &payload);
            file.extend_from_slice(&boxed(b"free", &[0; 16]));
            inspect(&file)
        };
        assert_eq!(ftyp(b"qt  ", b"qt  ").mime_type, Some("video/quicktime"));
        assert_eq!(ftyp(b"3gp5", b"3gp5isom").mime_type, Some("video/3gpp"));
        assert_eq!(ftyp(b"3g2a", b"3g2a").mime_type, Some("video/3gpp"));
        assert_eq!(ftyp(b"M4A ", b"M4A mp42").mime_type, Some("audio/mp4"));
        assert_eq!(ftyp(b"mif1", b"mif1heic").mime_type, Some("image/heic"));
        let avif = ftyp(b"avif", b"mif1avif");
        assert_eq!(avif.mime_type, None);
        assert_eq!(avif.detected.as_deref(), Some("image/avif"));
    }

    #[test]
    fn wav_with_a_data_size_past_the_end_uses_what_arrived() {
        let mut wav = b"RIFF\0\0\0\0WAVEfmt \x10\0\0\0\x01\0\x01\0\x40\x1f\0\0\x80\x3e\0\0\x02\0\x10\0".to_vec();
        wav.extend_from_slice(b"data\xff\xff\xff\x7f");
        wav.extend_from_slice(&[0; 8000]);
        let got = inspect(&wav);
        assert_eq!(got.mime_type, Some("audio/wav"));
        assert_eq!(got.duration_seconds, Some(0.5));
    }

    #[test]
    fn jpeg_exif_orientation_swaps_the_display_size() {
        let photo = std::fs::read(format!("{FIXTURES}photo.jpg")).expect("jpg");
        let mut tiff = b"MM\0*\0\0\0\x08\0\x01".to_vec();
        tiff.extend_from_slice(&[0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, 6, 0, 0]); // orientation 6
        tiff.extend_from_slice(&[0; 4]);
        let app1 = [&b"Exif\0\0"[..], &tiff].concat();
        let mut rotated = vec![0xFF, 0xD8, 0xFF, 0xE1];
        rotated.extend_from_slice(&((app1.len() + 2) as u16).to_be_bytes());
        rotated.extend_from_slice(&app1);
        rotated.extend_from_slice(&photo[2..]);
        let got = inspect_in(&rotated, 3);
        assert_eq!(got.mime_type, Some("image/jpeg"));
        assert_eq!((got.width, got.height), (Some(48), Some(64)));
    }

    #[test]
    fn headers_past_the_head_are_still_found() {
        // JPEG: two 60 KB APP2 segments push the frame header past HEAD_LEN.
        let photo = std::fs::read(format!("{FIXTURES}photo.jpg")).expect("jpg");
        let mut big = vec![0xFF, 0xD8];
        for _ in 0..2 {
            big.extend_from_slice(&[0xFF, 0xE2, 0xEA, 0x62]); // length 60002
            big.extend(std::iter::repeat_n(0x55, 60_000));
        }
        big.extend_from_slice(&photo[2..]);
        let got = inspect_in(&big, 4096);
        assert_eq!(got.mime_type, Some("image/jpeg"));
        assert_eq!((got.width, got.height), (Some(64), Some(48)));

        // OLE2: the directory sector at 100 KiB names a WordDocument stream.
        let mut cfb = vec![0; 512 + 199 * 512]; // sector n starts at (n + 1) × 512
        cfb[..8].copy_from_slice(&cfb::SIGNATURE);
        cfb[0x1E..0x20].copy_from_slice(&9u16.to_le_bytes());
        cfb[0x30..0x34].copy_from_slice(&199u32.to_le_bytes());
        let mut dir = vec![0; 512];
        for (entry, name) in ["Root Entry", "WordDocument"].iter().enumerate() {
            let utf16: Vec<u8> = name.encode_utf16().flat_map(u16::to_le_bytes).collect();
            let at = entry * 128;
            dir[at..at + utf16.len()].copy_from_slice(&utf16);
            dir[at + 0x40..at + 0x42].copy_from_slice(&((utf16.len() + 2) as u16).to_le_bytes());
        }
        cfb.extend_from_slice(&dir);
        assert_eq!(inspect_in(&cfb, 1000).mime_type, Some("application/msword"));
        let head_only = inspect(&cfb[..HEAD_LEN]);
        assert_eq!((head_only.mime_type, head_only.detected), (None, None));
        cfb.truncate(cfb.len() - 512);
        cfb.extend_from_slice(&[0; 512]); // a directory naming nothing we know
        let ole = inspect(&cfb);
        assert_eq!(ole.mime_type, None);
        assert_eq!(ole.detected.as_deref(), Some("application/x-ole-storage"));
    }

    #[test]
    fn truncated_fixtures_never_panic() {
        for (entry, bytes) in manifest() {
            let cuts = (0..bytes.len().min(200)).chain((200..bytes.len()).step_by(97));
            for cut in cuts {
                let prefix = &bytes[..cut];
                let got = inspect_in(prefix, 13);
                assert_eq!(got.size_bytes, cut as u64, "{}", entry.file);
            }
        }
    }

    #[test]
    fn corrupted_fixtures_never_panic() {
        for (i, (_, bytes)) in manifest().into_iter().enumerate() {
            for round in 0..40u64 {
                let mut damaged = bytes.clone();
                let flips = noise(round * 31 + i as u64, 16);
                for pair in flips.chunks_exact(2) {
                    let at =
                        (usize::from(pair[0]) * 257 + usize::from(pair[1]) * round as usize) % damaged.len().max(1);
                    if let Some(b) = damaged.get_mut(at) {
                        *b ^= pair[1] | 1;
                    }
                }
                let _ = inspect_in(&damaged, 1 + round as usize * 17);
            }
        }
    }

    #[test]
    fn random_data_behind_every_magic_never_panics() {
        let magics: [&[u8]; 16] = [
            b"\0\0\0\x18ftypmp42",
            b"\0\0\0\x01mdat",
            b"\0\0\0\0moov",
            b"#!AMR\n",
            b"#!AMR-WB\n",
            b"ID3\x04\0\0\0\0\0\x10",
            b"\xFF\xFB\x90\x64",
            b"\xFF\xF1\x50\x80",
            b"OggS\0\x02",
            b"RIFF\0\0\0\0WAVE",
            b"RIFF\0\0\0\0AVI LIST",
            b"\xFF\xD8\xFF\xE1",
            b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1",
            b"\x89PNG\r\n\x1a\n",
            b"PK\x03\x04",
            b"",
        ];
        for (m, magic) in magics.iter().enumerate() {
            for seed in 0..60u64 {
                let len = (seed as usize * 733) % 9000;
                let data = [magic.to_vec(), noise(seed + 1000 * m as u64, len)].concat();
                for chunk in [1, 5, 4096] {
                    let _ = inspect_in(&data, chunk);
                }
            }
        }
    }
}
