//! A church's time zone: chosen at setup, changed by an admin on /system (CSRF, audited), and the
//! zone of what the server writes itself — the library's day filter, the folders of a library
//! ZIP, a member export's transcript and file names. The zone is picked so that its day differs
//! from UTC's at the moment the test runs: each check fails if the server used UTC.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde_json::json;

use crate::inbound_flow::{serve_fixture, settled_thread, CHURCH_NUMBER, MEMBER_NUMBER};
use crate::member_export::read_zip;
use crate::operations::zip_contents;
use crate::support::{fixture, received_event, TestApp};

const EMAIL: &str = "pastor@grace.test";
const PASSWORD: &str = "correct horse battery";

/// A zone whose calendar day is not UTC's right now: UTC+14 after 10:00 UTC, else UTC-11.
fn zone_off_utc_day() -> Tz {
    use chrono::Timelike;
    if Utc::now().hour() >= 10 {
        chrono_tz::Pacific::Kiritimati
    } else {
        chrono_tz::Pacific::Pago_Pago
    }
}

async fn church_time_zone(app: TestApp) {
    let zone = zone_off_utc_day();
    let setup = |tz: &'static str| {
        app.http.post(app.url("/setup")).form(&[
            ("church_name", "Grace Church"),
            ("church_number", CHURCH_NUMBER),
            ("email", EMAIL),
            ("password", PASSWORD),
            ("password_confirm", PASSWORD),
            ("time_zone", tz),
        ])
    };
    // The setup page offers every zone; a name that is none of them is refused, nothing created.
    let html = app.http.get(app.url("/setup")).send().await.expect("setup").text().await.expect("html");
    assert!(html.contains("<option>America/Chicago</option>") && html.contains("<option selected>UTC</option>"));
    let res = setup("Mars/Olympus").send().await.expect("setup");
    assert_eq!(res.status(), 400);
    assert!(res.text().await.expect("html").contains("is not a time zone name"));
    assert_eq!(app.count("churches").await, 0);
    let res = setup(zone.name()).send().await.expect("setup");
    assert_eq!(res.status(), 303);
    assert_eq!(app.count(&format!("churches WHERE time_zone = '{}'", zone.name())).await, 1);
    let token = app.login(EMAIL, PASSWORD).await;

    // A member's photo, stored now: today in the church's zone, another day in UTC.
    let photo = fixture("photo.jpg");
    let media = vec![serve_fixture(&app, &photo).await];
    let event = received_event("tz-1", MEMBER_NUMBER, CHURCH_NUMBER, "Sunday's picture", media);
    assert_eq!(app.post_webhook("/api/webhooks/telnyx/mms", &event).await.status(), 200);
    let list = app.get_json(&token, "/api/conversations").await;
    let conversation = list["data"]["conversations"][0]["id"].as_str().expect("conversation").to_owned();
    let member = list["data"]["conversations"][0]["member"]["id"].as_str().expect("member").to_owned();
    let thread = settled_thread(&app, &token, &conversation).await;
    let message = &thread["data"]["messages"][0];
    let created: DateTime<Utc> = message["createdAt"].as_str().expect("createdAt").parse().expect("time");
    let local_day = created.with_timezone(&zone).format("%Y-%m-%d").to_string();
    let utc_day = created.format("%Y-%m-%d").to_string();
    assert_ne!(local_day, utc_day, "the test's zone is chosen so that the days differ");

    // The library's day filter reads days on the church's clock.
    let count = |v: serde_json::Value| v["data"]["media"].as_array().map(Vec::len).unwrap_or(0);
    let on = |day: &str| format!("/api/media?from={day}&to={day}");
    assert_eq!(count(app.get_json(&token, &on(&local_day)).await), 1, "the church's today holds the photo");
    assert_eq!(count(app.get_json(&token, &on(&utc_day)).await), 0, "UTC's day is another day here");
    let file = message["media"][0]["id"].as_str().expect("attachment").to_owned();

    // A library ZIP names its folders by the church's day.
    let res = app
        .http
        .post(app.url("/api/media/export"))
        .bearer_auth(&token)
        .json(&json!({ "ids": [file] }))
        .send()
        .await
        .expect("export");
    assert_eq!(res.status(), 200);
    let disposition = res.headers()["content-disposition"].to_str().expect("cd").to_owned();
    let today_here = Utc::now().with_timezone(&zone).format("%Y-%m-%d").to_string();
    assert!(disposition.contains(&format!("koinonia-media-{today_here}.zip")), "{disposition}");
    let entries = zip_contents(&res.bytes().await.expect("zip"));
    assert_eq!(entries, vec![(format!("{local_day} member 0001/photo.jpg"), photo.sha256.clone())]);

    // A member export's transcript and file names are on the church's clock, and say so.
    let res = app.get(&token, &format!("/api/members/{member}/export")).await;
    assert_eq!(res.status(), 200);
    let zip = read_zip(&res.bytes().await.expect("zip"));
    let line = format!("{}  Member:", created.with_timezone(&zone).format("%Y-%m-%d %H:%M"));
    assert!(zip.transcript.contains(&line), "{line:?} in\n{}", zip.transcript);
    let said = format!("Times are the church's local time ({}).", zone.name());
    assert!(zip.transcript.contains(&said), "{}", zip.transcript);
    assert!(zip.names.contains(&format!("media/{local_day} photo.jpg")), "{:?}", zip.names);

    // An admin changes the zone on /system with the page's CSRF token; it is audited.
    let (cookie, csrf) = page_session(&app, EMAIL).await;
    let html = system_page(&app, &cookie).await;
    assert!(html.contains(&format!("<option selected>{}</option>", zone.name())), "the current zone is chosen");
    let set = |cookie: &str, zone: &str, csrf: &str| {
        app.http
            .post(app.url("/system/time-zone"))
            .header("cookie", cookie.to_owned())
            .form(&[("csrf", csrf.to_owned()), ("time_zone", zone.to_owned())])
            .send()
    };
    let status = |res: reqwest::Result<reqwest::Response>| res.expect("post").status().as_u16();
    assert_eq!(status(set(&cookie, "America/Chicago", &"0".repeat(64)).await), 403, "CSRF");
    assert_eq!(status(set(&cookie, "Mars/Olympus", &csrf).await), 400);
    let res = set(&cookie, "America/Chicago", &csrf).await.expect("post");
    assert_eq!((res.status().as_u16(), res.headers()["location"].to_str().ok()), (303, Some("/system")));
    assert!(system_page(&app, &cookie).await.contains("<option selected>America/Chicago</option>"));
    let audit = app.get_json(&token, "/api/audit?limit=5").await;
    let entry = audit["data"]["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .find(|e| e["action"] == "church.time_zone")
        .cloned()
        .expect("audited");
    assert_eq!(entry["detail"], json!({ "from": zone.name(), "to": "America/Chicago" }));

    // Leaders who are not admins cannot change it.
    app.leader(the_church(&app).await, "helper@grace.test").await;
    let (helper, helper_csrf) = page_session(&app, "helper@grace.test").await;
    assert_eq!(status(set(&helper, "UTC", &helper_csrf).await), 403);
    assert_eq!(app.count("churches WHERE time_zone = 'America/Chicago'").await, 1);
}

async fn system_page(app: &TestApp, cookie: &str) -> String {
    let res = app.http.get(app.url("/system")).header("cookie", cookie).send().await.expect("system");
    res.text().await.expect("html")
}

/// Signs `email` in through the login form: its session cookie and a page's CSRF token.
pub(crate) async fn page_session(app: &TestApp, email: &str) -> (String, String) {
    let res =
        app.http.post(app.url("/login")).form(&[("email", email), ("password", PASSWORD)]).send().await.expect("login");
    assert_eq!(res.status(), 303, "signed in");
    let cookie = res.headers()["set-cookie"].to_str().expect("cookie").split(';').next().expect("pair").to_owned();
    let inbox = app.http.get(app.url("/inbox")).header("cookie", &cookie).send().await.expect("inbox");
    let html = inbox.text().await.expect("html");
    let csrf = html
        .split("name=\"csrf-token\" content=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("a CSRF token in the page")
        .to_owned();
    (cookie, csrf)
}

/// The only church's id.
async fn the_church(app: &TestApp) -> koinonia::domain::ChurchId {
    let mut pooled = app.state.db.acquire().await.expect("acquire");
    let rows = koinonia::db::churches::all(&mut pooled.conn()).await.expect("churches");
    rows.first().expect("a church").id
}

crate::matrix!(time_zones, databases, church_time_zone);
