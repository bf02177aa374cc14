//! Previews: small derived JPEGs of stored images and videos, so a thread of forty 12 MB
//! photos opens fast on a phone and an iPhone's HEIC photo shows in any browser.
//!
//! A `media.preview` job runs after an image or video is stored. It never touches the original:
//! it reads it, makes two JPEGs (longest side at most [`SMALL`] and [`LARGE`] pixels, never
//! enlarged, EXIF orientation applied, transparency flattened on white) and stores them beside
//! it under `…/previews/`. The large one is also what a large photo reply sends by MMS, so it is
//! made to fit `MMS_MAX_ATTACHMENT_BYTES`.
//!
//! JPEG, PNG, GIF (first frame) and WebP are decoded in-process by the pure-Rust `image` crate.
//! HEIC/HEIF goes through libheif's `heif-convert` and video poster frames through `ffmpeg`:
//! those decoders are C code fed untrusted files, so they run as child processes (a crash or
//! exploit cannot take the server with it), with a timeout. When a tool is not installed the
//! file simply has no preview (the dashboard shows an icon) — that is not an error.

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use futures::StreamExt;
use image::{DynamicImage, ImageDecoder, ImageReader, Limits, RgbImage};
use tokio::io::AsyncWriteExt;
use tokio::sync::Semaphore;

use crate::media::store::{MediaStore, ObjectInfo};

/// Longest side of the small preview (lists, the library grid).
pub const SMALL: u32 = 320;
/// Longest side of the large preview (message bubbles, the MMS preview of a large photo).
pub const LARGE: u32 = 1280;
/// The largest original decoded in-process: a 100-megapixel photo needs ~300 MB as RGB.
const MAX_PIXELS: u64 = 100_000_000;
/// Memory the decoder may allocate for one image.
const MAX_DECODE_ALLOC: u64 = 512 * 1024 * 1024;
/// The largest HEIC or downloaded-for-decoding original (photos are a few MB).
const MAX_DECODE_INPUT: u64 = 200 * 1024 * 1024;
/// How long a converter may run.
const TOOL_TIMEOUT: Duration = Duration::from_secs(120);
/// Largest output read back from a converter (one decoded frame as JPEG).
const MAX_TOOL_OUTPUT: u64 = 128 * 1024 * 1024;

/// One decode at a time per process: previews are background work and a decoded photo is large.
static DECODES: Semaphore = Semaphore::const_new(1);

/// The two sizes, as named in URLs (`/api/media/:id/preview/:size`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Size {
    Small,
    Large,
}

impl Size {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "small" => Some(Self::Small),
            "large" => Some(Self::Large),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Small => "small",
            Self::Large => "large",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PreviewError {
    /// This file cannot have a preview here (a tool is missing, or the type has none).
    #[error("{0}")]
    Unavailable(String),
    /// The file could not be decoded; trying again will not help.
    #[error("{0}")]
    Undecodable(String),
    /// The store or the database failed; worth another attempt.
    #[error("{0}")]
    Transient(String),
}

impl From<crate::media::store::StoreError> for PreviewError {
    fn from(e: crate::media::store::StoreError) -> Self {
        Self::Transient(format!("media store: {e}"))
    }
}

/// Two encoded JPEGs with their sizes in pixels.
#[derive(Debug)]
pub struct Made {
    pub small: Encoded,
    pub large: Encoded,
}

#[derive(Debug)]
pub struct Encoded {
    pub jpeg: Vec<u8>,
    pub width: u32,
    pub height: u32,
}

/// The previews of a stored original, made and stored beside it.
pub struct Stored {
    pub small_key: String,
    pub large_key: String,
    pub large_bytes: u64,
}

/// What is needed to make the previews of one stored original.
pub struct Original<'a> {
    pub id: crate::domain::AttachmentId,
    pub conversation_id: crate::domain::ConversationId,
    pub key: &'a str,
    pub mime: &'a str,
    pub size: Option<i64>,
}

/// Makes both previews of an original (one decode at a time in this process) and stores them
/// beside it; the large one fits `large_max_bytes`.
pub async fn render_and_store(
    store: &MediaStore,
    original: &Original<'_>,
    large_max_bytes: u64,
) -> Result<Stored, PreviewError> {
    let made = {
        let _permit = DECODES.acquire().await.map_err(|_| PreviewError::Transient("shutting down".into()))?;
        make(store, original.key, original.mime, original.size, large_max_bytes).await?
    };
    let small_key = key_for(original.key, original.id, Size::Small);
    let large_key = key_for(original.key, original.id, Size::Large);
    for (key, enc) in [(&small_key, &made.small), (&large_key, &made.large)] {
        let info = ObjectInfo {
            content_type: "image/jpeg",
            original_filename: &format!("preview-{}.jpg", original.id),
            conversation_id: original.conversation_id,
            uploaded_at: crate::clock::now(),
        };
        put(store, key, &info, &enc.jpeg).await?;
    }
    Ok(Stored { small_key, large_key, large_bytes: made.large.jpeg.len() as u64 })
}

/// The keys to delete with a stored original: its previews first, then itself. Derived from the
/// original's key, so previews made a moment ago (not yet in the database) are not missed.
pub fn keys_with_previews(original: &str, id: crate::domain::AttachmentId) -> [String; 3] {
    [key_for(original, id, Size::Small), key_for(original, id, Size::Large), original.to_owned()]
}

/// `…/{conversation}/previews/{attachment}-{size}.jpg`, beside the original.
pub fn key_for(original: &str, id: crate::domain::AttachmentId, size: Size) -> String {
    let folder = original.rsplit_once('/').map_or("", |(dir, _)| dir);
    format!("{folder}/previews/{id}-{}.jpg", size.as_str())
}

async fn put(store: &MediaStore, key: &str, info: &ObjectInfo<'_>, bytes: &[u8]) -> Result<(), PreviewError> {
    let mut w = store.writer(key, info).await?;
    if let Err(e) = w.write(bytes).await {
        w.abort().await;
        return Err(e.into());
    }
    w.finish().await?;
    Ok(())
}

/// Decodes the original (by the route its type needs) and encodes both previews.
pub async fn make(
    store: &MediaStore,
    key: &str,
    mime: &str,
    size: Option<i64>,
    large_max_bytes: u64,
) -> Result<Made, PreviewError> {
    let decodable = match mime {
        "image/jpeg" | "image/png" | "image/gif" | "image/webp" => {
            refuse_huge(size)?;
            read_all(store, key).await?
        }
        "image/heic" => {
            refuse_huge(size)?;
            let input = LocalInput::new(store, key).await?;
            heif_to_jpeg(input.path()).await?
        }
        m if m.starts_with("video/") => {
            let input = match store.local_path(key) {
                Some(path) => ToolInput::Path(path),
                None => ToolInput::Url(
                    store
                        .presign(key, http::Method::GET, Duration::from_secs(600))
                        .await
                        .map_err(|e| PreviewError::Transient(format!("presigning for ffmpeg: {e}")))?,
                ),
            };
            poster_frame(&input).await?
        }
        other => return Err(PreviewError::Unavailable(format!("{other} files have no preview"))),
    };
    tokio::task::spawn_blocking(move || encode_both(&decodable, large_max_bytes))
        .await
        .map_err(|e| PreviewError::Transient(format!("preview task: {e}")))?
}

fn refuse_huge(size: Option<i64>) -> Result<(), PreviewError> {
    match size.and_then(|s| u64::try_from(s).ok()) {
        Some(s) if s > MAX_DECODE_INPUT => {
            Err(PreviewError::Unavailable(format!("too large to preview ({})", crate::media::ingest::format_size(s))))
        }
        _ => Ok(()),
    }
}

async fn read_all(store: &MediaStore, key: &str) -> Result<Vec<u8>, PreviewError> {
    let (size, mut stream) = store.read(key).await?;
    if size > MAX_DECODE_INPUT {
        return Err(PreviewError::Unavailable("too large to preview".into()));
    }
    let mut buf = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    while let Some(chunk) = stream.next().await {
        buf.extend_from_slice(&chunk?);
    }
    Ok(buf)
}

/// Decodes an image file's bytes, upright.
pub fn decode(bytes: &[u8]) -> Result<DynamicImage, PreviewError> {
    let bad = |e: image::ImageError| PreviewError::Undecodable(format!("cannot decode the image: {e}"));
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| PreviewError::Undecodable(format!("cannot read the image: {e}")))?;
    let mut limits = Limits::default();
    limits.max_alloc = Some(MAX_DECODE_ALLOC);
    reader.limits(limits);
    let mut decoder = reader.into_decoder().map_err(bad)?;
    let (w, h) = decoder.dimensions();
    if u64::from(w) * u64::from(h) > MAX_PIXELS {
        return Err(PreviewError::Unavailable(format!("{w}×{h} is too many pixels to preview")));
    }
    let orientation = decoder.orientation().unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut img = DynamicImage::from_decoder(decoder).map_err(bad)?;
    img.apply_orientation(orientation);
    Ok(img)
}

/// Both previews of decodable bytes; the large one shrinks (quality first, then size) until it
/// fits `large_max_bytes`.
pub fn encode_both(bytes: &[u8], large_max_bytes: u64) -> Result<Made, PreviewError> {
    let img = flatten(decode(bytes)?);
    let small = encode(&img, SMALL, 78)?;
    let mut large = None;
    'fit: for bound in [LARGE, 1024, 800, 640, SMALL] {
        for quality in [82u8, 72, 62] {
            let e = encode(&img, bound, quality)?;
            let fits = e.jpeg.len() as u64 <= large_max_bytes;
            large = Some(e);
            if fits {
                break 'fit;
            }
        }
    }
    let large = large.ok_or_else(|| PreviewError::Undecodable("no preview size fits".into()))?;
    Ok(Made { small, large })
}

/// RGB on white: JPEG has no transparency.
fn flatten(img: DynamicImage) -> RgbImage {
    if !img.color().has_alpha() {
        return img.into_rgb8();
    }
    let rgba = img.into_rgba8();
    let (w, h) = rgba.dimensions();
    RgbImage::from_fn(w, h, |x, y| {
        let p = rgba.get_pixel(x, y).0;
        let a = u16::from(p[3]);
        let blend = |c: u8| ((u16::from(c) * a + 255 * (255 - a) + 127) / 255) as u8;
        image::Rgb([blend(p[0]), blend(p[1]), blend(p[2])])
    })
}

/// Fits `(w, h)` within `bound` on its longest side, never enlarging.
pub fn fit_within(w: u32, h: u32, bound: u32) -> (u32, u32) {
    let longest = w.max(h);
    if longest <= bound || longest == 0 {
        return (w, h);
    }
    let scale = f64::from(bound) / f64::from(longest);
    let sw = ((f64::from(w) * scale).round() as u32).clamp(1, bound);
    let sh = ((f64::from(h) * scale).round() as u32).clamp(1, bound);
    (sw, sh)
}

fn encode(img: &RgbImage, bound: u32, quality: u8) -> Result<Encoded, PreviewError> {
    let (w, h) = fit_within(img.width(), img.height(), bound);
    let scaled;
    let source = if (w, h) == img.dimensions() {
        img
    } else {
        scaled = image::imageops::thumbnail(img, w, h);
        &scaled
    };
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, quality)
        .encode_image(source)
        .map_err(|e| PreviewError::Undecodable(format!("cannot encode the preview: {e}")))?;
    Ok(Encoded { jpeg, width: w, height: h })
}

/// An original as a file a converter can open: the local store's own file, or a temporary copy.
struct LocalInput {
    path: PathBuf,
    _temp: Option<tempfile::TempDir>,
}

impl LocalInput {
    async fn new(store: &MediaStore, key: &str) -> Result<Self, PreviewError> {
        if let Some(path) = store.local_path(key) {
            return Ok(Self { path, _temp: None });
        }
        let dir = tempfile::tempdir().map_err(|e| PreviewError::Transient(format!("temporary folder: {e}")))?;
        let path = dir.path().join("original");
        let (size, mut stream) = store.read(key).await?;
        if size > MAX_DECODE_INPUT {
            return Err(PreviewError::Unavailable("too large to preview".into()));
        }
        let mut file = tokio::fs::File::create(&path)
            .await
            .map_err(|e| PreviewError::Transient(format!("temporary file: {e}")))?;
        while let Some(chunk) = stream.next().await {
            file.write_all(&chunk?).await.map_err(|e| PreviewError::Transient(format!("temporary file: {e}")))?;
        }
        file.flush().await.map_err(|e| PreviewError::Transient(format!("temporary file: {e}")))?;
        Ok(Self { path, _temp: Some(dir) })
    }
    fn path(&self) -> &Path {
        &self.path
    }
}

enum ToolInput {
    Path(PathBuf),
    Url(String),
}

/// HEIC/HEIF → a full-size JPEG, by libheif's `heif-convert` (primary image, transformations
/// applied).
async fn heif_to_jpeg(input: &Path) -> Result<Vec<u8>, PreviewError> {
    let out_dir = tempfile::tempdir().map_err(|e| PreviewError::Transient(format!("temporary folder: {e}")))?;
    let out = out_dir.path().join("out.jpg");
    let mut cmd = tokio::process::Command::new(HEIF_CONVERT);
    cmd.arg("-q").arg("92").arg(input).arg(&out);
    let output = run_tool(cmd, HEIF_CONVERT, "HEIC photos").await?;
    if !output.status.success() {
        return Err(PreviewError::Undecodable(format!("{HEIF_CONVERT} could not read the photo")));
    }
    // A file holding several images is written as out-1.jpg, out-2.jpg…: the first is the primary.
    for candidate in [out.clone(), out_dir.path().join("out-1.jpg")] {
        if let Ok(bytes) = tokio::fs::read(&candidate).await {
            return Ok(bytes);
        }
    }
    Err(PreviewError::Undecodable(format!("{HEIF_CONVERT} wrote no image")))
}

/// One frame of a video, a second in (or the first frame of a shorter one), as JPEG.
async fn poster_frame(input: &ToolInput) -> Result<Vec<u8>, PreviewError> {
    let mut last = None;
    for seek in ["1", "0"] {
        let mut cmd = tokio::process::Command::new(FFMPEG);
        cmd.args(["-nostdin", "-hide_banner", "-loglevel", "error", "-ss", seek, "-i"]);
        match input {
            ToolInput::Path(p) => cmd.arg(p),
            ToolInput::Url(u) => cmd.arg(u),
        };
        cmd.args(["-frames:v", "1", "-an", "-f", "image2pipe", "-c:v", "mjpeg", "-q:v", "2", "pipe:1"]);
        let output = run_tool(cmd, FFMPEG, "video posters").await?;
        if output.status.success() && !output.stdout.is_empty() {
            return Ok(output.stdout);
        }
        last = Some(output);
    }
    let detail = last.map(|o| String::from_utf8_lossy(&o.stderr).lines().next().unwrap_or_default().to_owned());
    tracing::debug!(detail = detail.as_deref().unwrap_or_default(), "ffmpeg made no frame");
    Err(PreviewError::Undecodable("no frame could be read from the video".into()))
}

const FFMPEG: &str = "ffmpeg";
const HEIF_CONVERT: &str = "heif-convert";

/// Runs a converter with a timeout, reading at most [`MAX_TOOL_OUTPUT`] of its output. A tool
/// that is not installed makes the preview unavailable, not failed.
async fn run_tool(
    mut cmd: tokio::process::Command,
    name: &str,
    what: &str,
) -> Result<std::process::Output, PreviewError> {
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
    let child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(PreviewError::Unavailable(format!("{name} is not installed: {what} have no preview")));
        }
        Err(e) => return Err(PreviewError::Transient(format!("cannot start {name}: {e}"))),
    };
    match tokio::time::timeout(TOOL_TIMEOUT, child.wait_with_output()).await {
        Err(_) => Err(PreviewError::Undecodable(format!("{name} took too long"))),
        Ok(Err(e)) => Err(PreviewError::Transient(format!("{name}: {e}"))),
        Ok(Ok(out)) if out.stdout.len() as u64 > MAX_TOOL_OUTPUT => {
            Err(PreviewError::Undecodable(format!("{name} produced too much output")))
        }
        Ok(Ok(out)) => Ok(out),
    }
}

/// Whether a converter is installed (for `doctor`).
pub async fn tool_available(name: &str) -> bool {
    let arg = if name == FFMPEG { "-version" } else { "--version" };
    tokio::process::Command::new(name)
        .arg(arg)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .status()
        .await
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fits_the_longest_side_and_never_enlarges() {
        assert_eq!(fit_within(4032, 3024, 320), (320, 240));
        assert_eq!(fit_within(3024, 4032, 1280), (960, 1280));
        assert_eq!(fit_within(200, 100, 320), (200, 100));
        assert_eq!(fit_within(10000, 10, 320), (320, 1));
    }

    #[test]
    fn preview_keys_sit_beside_the_original() {
        let id = crate::domain::AttachmentId::new();
        let k = key_for("conversations/c/v/abc_photo.heic", id, Size::Small);
        assert_eq!(k, format!("conversations/c/v/previews/{id}-small.jpg"));
    }

    #[test]
    fn transparency_is_flattened_on_white() {
        let img = DynamicImage::ImageRgba8(image::RgbaImage::from_pixel(4, 4, image::Rgba([0, 0, 0, 0])));
        let rgb = flatten(img);
        assert_eq!(rgb.get_pixel(0, 0).0, [255, 255, 255]);
    }

    #[test]
    fn both_sizes_of_a_png() {
        let img = image::RgbImage::from_fn(2000, 1000, |x, y| image::Rgb([(x % 256) as u8, (y % 256) as u8, 99]));
        let mut png = Vec::new();
        DynamicImage::ImageRgb8(img)
            .write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap_or_else(|e| panic!("encode png: {e}"));
        let made = encode_both(&png, 614_400).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((made.small.width, made.small.height), (320, 160));
        assert_eq!((made.large.width, made.large.height), (1280, 640));
        assert!(made.large.jpeg.len() <= 614_400);
        let back = image::load_from_memory(&made.small.jpeg).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((back.width(), back.height()), (320, 160));
    }

    #[test]
    fn the_large_preview_shrinks_to_fit_the_mms_limit() {
        // Noise compresses badly: the first attempts are too large for 60 KB.
        let img = image::RgbImage::from_fn(1600, 1200, |x, y| {
            let v = (x.wrapping_mul(2_654_435_761) ^ y.wrapping_mul(40503)) as u8;
            image::Rgb([v, v.rotate_left(3), v.rotate_left(5)])
        });
        let mut png = Vec::new();
        DynamicImage::ImageRgb8(img)
            .write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap_or_else(|e| panic!("encode png: {e}"));
        let made = encode_both(&png, 60_000).unwrap_or_else(|e| panic!("{e}"));
        assert!(made.large.jpeg.len() <= 60_000, "{} bytes", made.large.jpeg.len());
        assert!(made.large.width < 1280);
    }
}
