//! Previews: made by a background job after the original is stored, at the right sizes, from
//! JPEG, PNG (with transparency), HEIC and MP4; the original stays byte for byte; retention
//! removes previews with their original.

use std::io::Cursor;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::inbound_flow::{serve_fixture, settled_thread};
use crate::matrix;
use crate::support::{received_event, wait_for, Fixture, TestApp};

const CHURCH_NUMBER: &str = "+15550107000";
const MEMBER_NUMBER: &str = "+15550107001";

/// Whether a media tool the suite uses is installed. `scripts/test` installs them; in CI a
/// missing one fails the test instead of skipping.
pub fn have_tool(name: &str) -> bool {
    let found = Command::new(name).arg("-version").output().is_ok();
    if !found && std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{name} must be installed in CI (scripts/test installs it)");
    }
    if !found {
        eprintln!("{name} is not installed: skipping what needs it");
    }
    found
}

fn generated(file: &str, mime: &str, kind: &str, bytes: Vec<u8>, width: i64, height: i64) -> Fixture {
    Fixture {
        file: file.to_owned(),
        sha256: hex::encode(Sha256::digest(&bytes)),
        bytes,
        mime: Some(mime.to_owned()),
        kind: Some(kind.to_owned()),
        width: Some(width),
        height: Some(height),
        duration: None,
    }
}

/// A landscape photo with detail (so JPEG has something to compress).
pub fn jpeg(width: u32, height: u32, quality: u8) -> Vec<u8> {
    let img = image::RgbImage::from_fn(width, height, |x, y| {
        let n = (x.wrapping_mul(2_654_435_761) ^ y.wrapping_mul(40_503)) as u8;
        image::Rgb([(x / 8) as u8 ^ (n >> 5), (y / 8) as u8 ^ (n >> 4), n])
    });
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality).encode_image(&img).expect("jpeg");
    out
}

fn png_with_alpha(width: u32, height: u32) -> Vec<u8> {
    let img = image::RgbaImage::from_fn(width, height, |x, y| image::Rgba([(x % 256) as u8, (y % 256) as u8, 80, 128]));
    let mut out = Vec::new();
    image::DynamicImage::ImageRgba8(img).write_to(&mut Cursor::new(&mut out), image::ImageFormat::Png).expect("png");
    out
}

fn run(cmd: &mut Command) {
    let out = cmd.output().expect("tool runs");
    assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A real HEIC photo, encoded by libheif's `heif-enc` from a PNG.
fn heic(dir: &Path, width: u32, height: u32) -> Vec<u8> {
    let png = dir.join("heic-source.png");
    std::fs::write(&png, png_with_alpha(width, height)).expect("write png");
    let out = dir.join("photo.heic");
    run(Command::new("heif-enc").arg("-q").arg("60").arg("-o").arg(&out).arg(&png));
    std::fs::read(out).expect("heic")
}

/// A real H.264 MP4 from ffmpeg's test source.
pub fn mp4(dir: &Path, width: u32, height: u32, seconds: u32) -> Vec<u8> {
    let out = dir.join("clip.mp4");
    run(Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg(format!("testsrc2=size={width}x{height}:rate=10"))
        .args(["-t", &seconds.to_string(), "-pix_fmt", "yuv420p", "-c:v", "libx264", "-preset", "ultrafast"])
        .arg(&out));
    std::fs::read(out).expect("mp4")
}

async fn fetch_bytes(app: &TestApp, token: &str, path: &str) -> (u16, Option<String>, Vec<u8>) {
    let res = app.get(token, path).await;
    let status = res.status().as_u16();
    let ctype = res.headers().get("content-type").and_then(|v| v.to_str().ok()).map(str::to_owned);
    (status, ctype, res.bytes().await.expect("body").to_vec())
}

/// The original behind `/api/media/:id`, following its redirect.
async fn original_bytes(app: &TestApp, token: &str, id: &str) -> Vec<u8> {
    let res = app.get(token, &format!("/api/media/{id}")).await;
    assert_eq!(res.status(), 302);
    let location = res.headers()["location"].to_str().expect("location").to_owned();
    let url = if location.starts_with('/') { app.url(&location) } else { location };
    let got = app.http.get(url).send().await.expect("original");
    assert_eq!(got.status(), 200);
    got.bytes().await.expect("bytes").to_vec()
}

fn dims(jpeg: &[u8]) -> (u32, u32) {
    let img = image::load_from_memory_with_format(jpeg, image::ImageFormat::Jpeg).expect("a JPEG preview");
    (img.width(), img.height())
}

async fn previews_of_every_kind(app: TestApp) {
    let tools = have_tool("ffmpeg") && have_tool("heif-enc");
    let church = app.church("Grace", CHURCH_NUMBER).await;
    let token = app.leader(church, "pastor@grace.test").await;
    let dir = tempfile::tempdir().expect("tempdir");

    // (file, expected small, expected large)
    let mut files = vec![
        (generated("baptism.jpg", "image/jpeg", "image", jpeg(2400, 1800, 90), 2400, 1800), (320, 240), (1280, 960)),
        (
            generated("banner.png", "image/png", "image", png_with_alpha(1000, 2000), 1000, 2000),
            (160, 320),
            (640, 1280),
        ),
        (crate::support::fixture("photo.webp"), (48, 32), (48, 32)),
    ];
    if tools {
        files.push((
            generated("IMG_0001.heic", "image/heic", "image", heic(dir.path(), 1600, 1200), 1600, 1200),
            (320, 240),
            (1280, 960),
        ));
        files.push((
            generated("choir.mp4", "video/mp4", "video", mp4(dir.path(), 1280, 720, 2), 1280, 720),
            (320, 180),
            (1280, 720),
        ));
    }
    let mut media = Vec::new();
    for (f, _, _) in &files {
        media.push(serve_fixture(&app, f).await);
    }
    let event = received_event("evt-previews", MEMBER_NUMBER, CHURCH_NUMBER, "From Sunday", media);
    assert_eq!(app.post_webhook("/api/webhooks/telnyx/mms", &event).await.status(), 200);
    let list = app.get_json(&token, "/api/conversations").await;
    let conversation = list["data"]["conversations"][0]["id"].as_str().expect("conversation").to_owned();
    settled_thread(&app, &token, &conversation).await;

    // The previews come a moment after the originals are stored.
    let attachments: Vec<Value> = wait_for("previews", Duration::from_secs(60), || async {
        let t = app.get_json(&token, &format!("/api/conversations/{conversation}")).await;
        let media = t["data"]["messages"][0]["media"].as_array()?.clone();
        media.iter().all(|a| a["previews"].is_object()).then_some(media)
    })
    .await;
    assert_eq!(attachments.len(), files.len());

    for (a, (f, small, large)) in attachments.iter().zip(&files) {
        let id = a["id"].as_str().expect("id");
        assert_eq!(a["status"], "stored", "{}", f.file);
        assert_eq!(a["mimeType"].as_str(), f.mime.as_deref(), "{}", f.file);
        for (size, want) in [("small", small), ("large", large)] {
            let url = a["previews"][size].as_str().expect("preview url");
            assert_eq!(url, format!("/api/media/{id}/preview/{size}"));
            let (status, ctype, bytes) = fetch_bytes(&app, &token, url).await;
            assert_eq!(status, 200, "{} {size}", f.file);
            assert_eq!(ctype.as_deref(), Some("image/jpeg"));
            assert_eq!(dims(&bytes), *want, "{} {size} preview", f.file);
        }
        // The original is untouched: what download returns is what the member sent.
        let original = original_bytes(&app, &token, id).await;
        assert_eq!(hex::encode(Sha256::digest(&original)), f.sha256, "{} original", f.file);
        assert_eq!(a["sha256"].as_str(), Some(f.sha256.as_str()));
    }

    // Previews are the church's: another church's leader gets 404, and so does nobody.
    let other = app.church("Other", "+15550107999").await;
    let stranger = app.leader(other, "someone@other.test").await;
    let first = attachments[0]["previews"]["small"].as_str().expect("url");
    assert_eq!(app.get(&stranger, first).await.status(), 404);
    assert_eq!(app.http.get(app.url(first)).send().await.expect("anonymous").status(), 401);
    let bad_size = format!("/api/media/{}/preview/huge", attachments[0]["id"].as_str().expect("id"));
    assert_eq!(app.get(&token, &bad_size).await.status(), 400);

    // Two previews per file beside each original.
    assert_eq!(app.stored_files().len(), files.len() * 3, "original + small + large each");

    // Retention takes the previews with their originals.
    let now = chrono::Utc::now();
    app.exec_at("UPDATE attachments SET stored_at = $1", now - chrono::Duration::days(400)).await;
    let report = koinonia::flows::retention::sweep(&app.state.retention(), 365, now).await.expect("sweep");
    assert_eq!(report.deleted as usize, files.len());
    assert!(app.stored_files().is_empty(), "nothing left in the store: {:?}", app.stored_files());
    let t = app.get_json(&token, &format!("/api/conversations/{conversation}")).await;
    for a in t["data"]["messages"][0]["media"].as_array().expect("media") {
        assert_eq!(a["status"], "deleted");
        assert_eq!(a["previews"], Value::Null);
    }
    assert_eq!(app.get(&token, first).await.status(), 404);
}

matrix!(previews_of_every_kind, all, previews_of_every_kind);

/// A file whose type has no preview, and an image that cannot be decoded, end without one
/// (and without retrying forever); the message and the original are unaffected.
async fn files_without_previews(app: TestApp) {
    let church = app.church("Grace", CHURCH_NUMBER).await;
    let token = app.leader(church, "pastor@grace.test").await;
    // A JPEG header followed by garbage: sniffed as JPEG, stored, but not decodable.
    let mut broken = jpeg(64, 48, 80);
    broken.truncate(300);
    broken.extend(std::iter::repeat_n(0x55u8, 4000));
    let files = [generated("broken.jpg", "image/jpeg", "image", broken, 64, 48), crate::support::fixture("voice.mp3")];
    let mut media = Vec::new();
    for f in &files {
        media.push(serve_fixture(&app, f).await);
    }
    let event = received_event("evt-no-previews", MEMBER_NUMBER, CHURCH_NUMBER, "", media);
    assert_eq!(app.post_webhook("/api/webhooks/telnyx/mms", &event).await.status(), 200);
    let list = app.get_json(&token, "/api/conversations").await;
    let conversation = list["data"]["conversations"][0]["id"].as_str().expect("conversation").to_owned();
    let thread = settled_thread(&app, &token, &conversation).await;
    let media = thread["data"]["messages"][0]["media"].as_array().expect("media").clone();
    assert_eq!(media.iter().map(|a| a["status"].as_str()).collect::<Vec<_>>(), [Some("stored"), Some("stored")]);
    // The broken photo's preview job gives up: no job left queued or running for it.
    wait_for("the preview job to end", Duration::from_secs(30), || async {
        (app.count("jobs WHERE kind = 'media.preview' AND state IN ('queued', 'running')").await == 0).then_some(())
    })
    .await;
    let t = app.get_json(&token, &format!("/api/conversations/{conversation}")).await;
    for a in t["data"]["messages"][0]["media"].as_array().expect("media") {
        assert_eq!(a["previews"], Value::Null, "{}", a["name"]);
    }
    assert_eq!(app.count("attachments WHERE media_type = 'image' AND preview_state = 'failed'").await, 1);
    assert_eq!(app.count("attachments WHERE media_type = 'audio' AND preview_state IS NULL").await, 1, "never tried");
}

matrix!(files_without_previews, databases, files_without_previews);
