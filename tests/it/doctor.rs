//! `koinonia doctor`: each check in its failing and its passing state.

use koinonia::ops::doctor::{self, Check, Level};
use serde_json::json;
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, ResponseTemplate};

use crate::inbound_flow::CHURCH_NUMBER;
use crate::support::{Backend, Options, Store, TestApp};

fn find<'a>(checks: &'a [Check], name: &str) -> &'a Check {
    checks.iter().find(|c| c.name == name).unwrap_or_else(|| panic!("no {name} check in {checks:#?}"))
}

#[tokio::test]
async fn a_healthy_embedded_deployment_passes() {
    let Some(app) = TestApp::spawn(Backend::Sqlite, Store::Local).await else { return };
    let checks = doctor::run(&app.state.config).await;
    assert!(checks.iter().all(|c| c.level == Level::Ok), "{checks:#?}");
    for name in ["secrets", "database", "media store", "backend url", "telnyx", "webhooks"] {
        find(&checks, name);
    }
}

#[tokio::test]
async fn s3_store_checks_round_trip_and_privacy() {
    let Some(app) = TestApp::spawn(Backend::Sqlite, Store::S3).await else { return };
    let checks = doctor::run(&app.state.config).await;
    assert_eq!(find(&checks, "media store").level, Level::Ok, "{checks:#?}");
    assert_eq!(find(&checks, "bucket privacy").level, Level::Ok, "unsigned reads are refused by the S3 server");
    assert!(matches!(find(&checks, "encryption").level, Level::Ok | Level::Warn));
    assert!(app.stored_files().is_empty(), "the probe object was deleted");
}

#[tokio::test]
async fn refused_webhooks_show_up_with_their_reason() {
    let Some(app) = TestApp::spawn(Backend::Sqlite, Store::Local).await else { return };
    let res = app
        .http
        .post(app.url("/api/webhooks/telnyx/mms"))
        .header("telnyx-signature-ed25519", "AAAA")
        .header("telnyx-timestamp", chrono::Utc::now().timestamp().to_string())
        .body("{}")
        .send()
        .await
        .expect("forged");
    assert_eq!(res.status(), 401);
    let checks = doctor::run(&app.state.config).await;
    let w = find(&checks, "webhooks");
    assert_eq!(w.level, Level::Warn);
    assert!(w.sentence.contains("signature is not 64 bytes") && w.sentence.contains("TELNYX_PUBLIC_KEY"), "{w}");
}

async fn telnyx_app() -> Option<TestApp> {
    let options = Options::default().telnyx().var("BACKEND_URL", "https://inbox.grace.example");
    let app = TestApp::try_spawn(Backend::Sqlite, Store::Local, options).await?;
    app.church("Grace", CHURCH_NUMBER).await;
    Some(app)
}

async fn profile_points_at(app: &TestApp, webhook: &str) {
    Mock::given(method("GET"))
        .and(path("/v2/messaging_profiles"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"data": []})))
        .mount(&app.telnyx)
        .await;
    Mock::given(method("GET"))
        .and(path("/v2/phone_numbers"))
        .and(query_param("filter[phone_number]", CHURCH_NUMBER))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"data": [{"phone_number": CHURCH_NUMBER, "messaging_profile_id": "prof-1"}]})),
        )
        .mount(&app.telnyx)
        .await;
    Mock::given(method("GET"))
        .and(path("/v2/messaging_profiles/prof-1"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"data": {"id": "prof-1", "webhook_url": webhook}})),
        )
        .mount(&app.telnyx)
        .await;
}

#[tokio::test]
async fn telnyx_profile_pointing_here_passes() {
    let Some(app) = telnyx_app().await else { return };
    profile_points_at(&app, "https://inbox.grace.example/api/webhooks/telnyx/mms").await;
    let checks = doctor::run(&app.state.config).await;
    assert_eq!(find(&checks, "telnyx key").level, Level::Ok, "{checks:#?}");
    assert_eq!(find(&checks, "backend url").level, Level::Ok);
    assert_eq!(find(&checks, &format!("number {CHURCH_NUMBER}")).level, Level::Ok, "{checks:#?}");
}

#[tokio::test]
async fn telnyx_profile_pointing_elsewhere_is_an_error_with_the_fix() {
    let Some(app) = telnyx_app().await else { return };
    profile_points_at(&app, "https://old-host.example/hooks").await;
    let checks = doctor::run(&app.state.config).await;
    let c = find(&checks, &format!("number {CHURCH_NUMBER}"));
    assert_eq!(c.level, Level::Error);
    assert!(
        c.sentence.contains("https://old-host.example/hooks")
            && c.sentence.contains("https://inbox.grace.example/api/webhooks/telnyx/mms"),
        "{c}"
    );
}

#[tokio::test]
async fn a_refused_key_and_an_unreachable_backend_url_are_errors() {
    let options = Options::default().telnyx();
    let Some(app) = TestApp::try_spawn(Backend::Sqlite, Store::Local, options).await else { return };
    Mock::given(method("GET"))
        .and(path("/v2/messaging_profiles"))
        .respond_with(
            ResponseTemplate::new(401)
                .set_body_json(json!({"errors": [{"code": "10009", "title": "Authentication failed"}]})),
        )
        .mount(&app.telnyx)
        .await;
    let checks = doctor::run(&app.state.config).await;
    assert_eq!(find(&checks, "telnyx key").level, Level::Error);
    let b = find(&checks, "backend url");
    assert_eq!(b.level, Level::Error, "127.0.0.1 cannot be reached by Telnyx: {b}");
}

#[test]
fn the_command_prints_one_line_per_check_and_fails_on_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let blocker = dir.path().join("file");
    std::fs::write(&blocker, b"x").expect("file");
    let run = |media: Option<&std::path::Path>| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_koinonia"));
        cmd.current_dir(dir.path()).env_clear().env("PATH", std::env::var("PATH").unwrap_or_default()).arg("doctor");
        if let Some(m) = media {
            cmd.env("MEDIA_DIR", m);
        }
        cmd.output().expect("doctor")
    };
    let good = run(None);
    assert!(good.status.success(), "{}", String::from_utf8_lossy(&good.stdout));
    let bad = run(Some(&blocker.join("media")));
    assert_eq!(bad.status.code(), Some(1));
    let text = String::from_utf8_lossy(&bad.stdout);
    for line in text.lines() {
        let (level, rest) = line.split_once(' ').expect("level");
        assert!(matches!(level, "ok" | "warn" | "error"), "{line}");
        assert!(
            rest.split_once(": ").is_some_and(|(name, sentence)| !name.is_empty() && !sentence.is_empty()),
            "{line}"
        );
    }
    assert!(text.lines().any(|l| l.starts_with("error media store:")), "{text}");
}

/// The preview converters: ok when installed, a warning naming the package when not (koinonia
/// still works; those files get an icon).
#[test]
fn missing_preview_tools_are_a_warning_with_the_package_to_install() {
    if !crate::previews::have_tool("ffmpeg") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let run = |path: &str| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_koinonia"))
            .current_dir(dir.path())
            .env_clear()
            .env("PATH", path)
            .arg("doctor")
            .output()
            .expect("doctor");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let with_tools = run(&std::env::var("PATH").unwrap_or_default());
    assert!(with_tools.lines().any(|l| l.starts_with("ok previews:")), "{with_tools}");
    let empty = tempfile::tempdir().expect("empty PATH folder");
    let without = run(&empty.path().display().to_string());
    let line = without.lines().find(|l| l.starts_with("warn previews:")).unwrap_or_else(|| panic!("{without}"));
    assert!(line.contains("ffmpeg and heif-convert are not installed"), "{line}");
    assert!(line.contains("apt-get install ffmpeg libheif-examples"), "{line}");
}
