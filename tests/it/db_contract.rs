//! Every `db::` function, run on SQLite and on PostgreSQL: the shared SQL must mean the same on
//! both (the stand-in for compile-time checked queries).

use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use koinonia::clock;
use koinonia::config::DatabaseKind;
use koinonia::crypto::phone::HEADER_LEN;
use koinonia::db::{self, Db};
use koinonia::domain::*;
use secrecy::SecretString;
use sqlx::types::Json;
use tokio_util::sync::CancellationToken;

use crate::support::{fresh_postgres_database, test_database_url};

async fn story(db: Db) {
    db.migrate().await.expect("migrate twice is a no-op");
    db.ping().await.expect("ping");
    let now = clock::now();
    let mut tx = db.begin().await.expect("begin");
    let c = &mut tx.conn();

    let church = db::churches::ChurchRow {
        id: ChurchId::new(),
        name: "Grace".into(),
        phone_number: "+15551230000".into(),
        messaging_profile_id: Some("profile".into()),
        time_zone: "America/Chicago".into(),
        created_at: now,
    };
    db::churches::insert(c, &church).await.expect("church");
    tx.commit().await.expect("commit");

    let mut pooled = db.acquire().await.expect("acquire");
    let c = &mut pooled.conn();
    let dup = db::churches::insert(c, &db::churches::ChurchRow { id: ChurchId::new(), ..church.clone() }).await;
    assert!(matches!(dup, Err(sqlx::Error::Database(ref d)) if d.is_unique_violation()), "{dup:?}");
    let found = db::churches::find_by_number(c, "+15551230000").await.expect("find").expect("some");
    assert_eq!((found.id, found.created_at), (church.id, now), "uuid and time round-trip exactly");
    assert!(db::churches::get(c, church.id).await.expect("get").is_some());
    assert_eq!(db::churches::count(c).await.expect("count"), 1);
    assert_eq!(db::churches::time_zone(c, church.id).await.expect("zone").as_deref(), Some("America/Chicago"));
    assert!(db::churches::set_time_zone(c, church.id, "Asia/Kolkata").await.expect("set zone"));
    assert_eq!(db::churches::get(c, church.id).await.expect("get").expect("some").time_zone, "Asia/Kolkata");
    assert_eq!(db::churches::time_zone(c, ChurchId::new()).await.expect("zone"), None);

    let leader = db::leaders::LeaderRow {
        id: LeaderId::new(),
        church_id: church.id,
        email: "a@b.test".into(),
        password_hash: "$argon2id$x".into(),
        is_admin: true,
        token_version: 3,
        created_at: now,
        last_login_at: None,
    };
    db::leaders::insert(c, &leader).await.expect("leader");
    db::leaders::record_login(c, leader.id, now).await.expect("login");
    let l = db::leaders::find_by_email(c, "a@b.test").await.expect("find").into_iter().next().expect("some");
    assert_eq!((l.is_admin, l.token_version, l.last_login_at), (true, 3, Some(now)));
    assert!(db::leaders::get(c, ChurchId::new(), leader.id).await.expect("get").is_none(), "scoped by church");

    let member = db::members::MemberRow {
        id: MemberId::new(),
        church_id: church.id,
        phone_hash: vec![1; 32],
        phone_ciphertext: vec![2; 60],
        phone_last4: "0001".into(),
        first_name: None,
        last_name: None,
        opted_out: false,
        opted_out_at: None,
        unreachable: false,
        unreachable_reason: None,
        created_at: now,
        updated_at: now,
    };
    let m1 = db::members::find_or_create(c, &member).await.expect("member");
    let m2 = db::members::find_or_create(c, &db::members::MemberRow { id: MemberId::new(), ..member.clone() })
        .await
        .expect("again");
    assert_eq!(m1.id, m2.id, "found, not created twice");
    db::members::set_opted_out(c, church.id, m1.id, true, now).await.expect("opt out");
    let m = db::members::find_by_hash(c, church.id, &[1; 32]).await.expect("by hash").expect("some");
    assert!(m.opted_out && m.opted_out_at == Some(now));
    db::members::set_opted_out(c, church.id, m1.id, false, now).await.expect("opt in");
    let m = db::members::get(c, church.id, m1.id).await.expect("get").expect("some");
    assert!(!m.opted_out && m.opted_out_at.is_none());

    let conv = db::conversations::find_or_create(
        c,
        &db::conversations::ConversationRow {
            id: ConversationId::new(),
            church_id: church.id,
            member_id: m1.id,
            last_message_at: now,
            last_message_preview: String::new(),
            unread_count: 0,
            created_at: now,
            updated_at: now,
            group_key: None,
        },
    )
    .await
    .expect("conversation");
    let later = now + Duration::seconds(5);
    db::conversations::record_message(c, church.id, conv.id, later, "hello", 1).await.expect("record");
    db::conversations::record_message(c, church.id, conv.id, now, "older event", 1).await.expect("record");
    let row = db::conversations::get(c, church.id, conv.id).await.expect("get").expect("some");
    let many = db::conversations::get_many(c, church.id, &[conv.id, ConversationId::new()]).await.expect("get_many");
    assert_eq!(many.iter().map(|r| r.id).collect::<Vec<_>>(), vec![conv.id], "only what exists");
    assert_eq!((row.last_message_at, row.unread_count), (later, 2), "last_message_at never goes back");
    // Many at once (inbound batches): each its own preview and count; another church's id moves nothing.
    let moved = |church, messages| db::conversations::Moved { church, id: conv.id, preview: "batch".into(), messages };
    db::conversations::record_messages(c, later, &[moved(ChurchId::new(), 5)]).await.expect("another church");
    let row = db::conversations::get(c, church.id, conv.id).await.expect("get").expect("some");
    assert_eq!((row.unread_count, row.last_message_preview.as_str()), (2, "older event"), "another church's batch");
    db::conversations::record_messages(c, later, &[moved(church.id, 3)]).await.expect("batch");
    let row = db::conversations::get(c, church.id, conv.id).await.expect("get").expect("some");
    assert_eq!((row.unread_count, row.last_message_preview.as_str()), (5, "batch"), "the church's own batch");
    let filter = db::conversations::InboxFilter { last_digits: Some("01".into()), ..Default::default() };
    assert_eq!(db::conversations::list(c, church.id, None, &filter, 10).await.expect("list").len(), 1);
    let filter = db::conversations::InboxFilter { name_like: Some("zed".into()), ..Default::default() };
    assert!(db::conversations::list(c, church.id, None, &filter, 10).await.expect("list").is_empty());
    let cursor = db::conversations::InboxCursor { last_message_at: later, id: conv.id };
    assert!(db::conversations::list(c, church.id, Some(&cursor), &Default::default(), 10)
        .await
        .expect("list")
        .is_empty());
    assert!(db::conversations::mark_read(c, church.id, conv.id).await.expect("read"));
    assert!(!db::conversations::mark_read(c, ChurchId::new(), conv.id).await.expect("read"));

    let msg = db::messages::MessageRow {
        id: MessageId::new(),
        church_id: church.id,
        conversation_id: conv.id,
        member_id: m1.id,
        leader_id: None,
        direction: Direction::Inbound,
        content: "hello".into(),
        keyword: None,
        likely_opt_out: false,
        delivery_status: None,
        failure_reason: None,
        provider_message_id: None,
        cc_ciphertext: None,
        created_at: now,
        updated_at: now,
        send_state: None,
        send_started_at: None,
        provider_status: None,
        send_mode: None,
        send_preview: false,
    };
    db::messages::insert(c, &msg).await.expect("message");
    // Statuses are typed in Rust; the CHECK constraints still refuse what no enum spells, and a
    // value koinonia never wrote does not decode.
    const SIDEWAYS: &str = "UPDATE messages SET direction = 'sideways' WHERE id = $1";
    let bad = match &mut *c {
        db::Conn::Postgres(q) => sqlx::query(SIDEWAYS).bind(msg.id).execute(&mut **q).await.map(|_| ()),
        db::Conn::Sqlite(q) => sqlx::query(SIDEWAYS).bind(msg.id).execute(&mut **q).await.map(|_| ()),
    };
    assert!(bad.is_err(), "CHECK constraints hold");
    let unknown = match &mut *c {
        db::Conn::Postgres(q) => sqlx::query_scalar::<_, Direction>("SELECT 'sideways'").fetch_one(&mut **q).await,
        db::Conn::Sqlite(q) => sqlx::query_scalar::<_, Direction>("SELECT 'sideways'").fetch_one(&mut **q).await,
    };
    assert!(unknown.is_err(), "{unknown:?}");
    let known = match &mut *c {
        db::Conn::Postgres(q) => sqlx::query_scalar::<_, Direction>("SELECT 'outbound'").fetch_one(&mut **q).await,
        db::Conn::Sqlite(q) => sqlx::query_scalar::<_, Direction>("SELECT 'outbound'").fetch_one(&mut **q).await,
    };
    assert_eq!(known.expect("decodes"), Direction::Outbound);
    let page = db::messages::page(c, church.id, conv.id, None, 10).await.expect("page");
    assert_eq!(page.len(), 1);
    assert!(db::messages::page(c, church.id, conv.id, Some(msg.id), 10).await.expect("page").is_empty());
    assert!(db::messages::get(c, church.id, msg.id).await.expect("get").is_some());
    assert_eq!(db::messages::count_in_conversation(c, church.id, conv.id).await.expect("count"), 1);
    assert_eq!(db::messages::count_in_church(c, church.id, Direction::Inbound).await.expect("count"), 1);
    assert_eq!(db::messages::count_in_church(c, church.id, Direction::Outbound).await.expect("count"), 0);

    let att = db::attachments::AttachmentRow {
        id: AttachmentId::new(),
        church_id: church.id,
        conversation_id: conv.id,
        message_id: msg.id,
        position: 0,
        status: AttachmentStatus::Pending,
        source_url: Some("https://x/y.jpg".into()),
        declared_type: Some("image/jpeg".into()),
        declared_size: Some(10),
        declared_sha256: None,
        media_type: Some(MediaKind::Image),
        mime_type: None,
        name: "y.jpg".into(),
        storage_key: None,
        size_bytes: None,
        width: None,
        height: None,
        duration_seconds: None,
        sha256: None,
        failure_reason: None,
        keep: false,
        created_at: now,
        stored_at: None,
        deleted_at: None,
        link_token: Some("tok".into()),
        preview_small_key: None,
        preview_large_key: None,
        preview_large_bytes: None,
        preview_state: None,
        scan_state: None,
        scan_detail: None,
    };
    db::attachments::insert(c, &att).await.expect("attachment");
    db::attachments::note_problem(c, att.id, "HTTP 404").await.expect("note");
    let stored = db::attachments::Stored {
        storage_key: "k".into(),
        media_type: MediaKind::Image,
        mime_type: "image/jpeg".into(),
        name: "y.jpg".into(),
        size_bytes: 10,
        width: Some(4),
        height: Some(3),
        duration_seconds: Some(1.5),
        sha256: "ab".repeat(32),
        scan_state: "clean",
        scan_detail: None,
    };
    assert!(db::attachments::mark_stored(c, att.id, &stored, now).await.expect("stored"));
    assert!(!db::attachments::mark_stored(c, att.id, &stored, now).await.expect("twice"), "only from pending");
    assert!(!db::attachments::mark_failed(c, att.id, "late").await.expect("failed"), "stored stays stored");
    let a = db::attachments::get(c, church.id, att.id).await.expect("get").expect("some");
    assert_eq!((a.status.as_str(), a.duration_seconds, a.failure_reason), ("stored", Some(1.5), None));
    assert_eq!(a.scan_state.as_deref(), Some("clean"));
    assert!(db::attachments::get(c, ChurchId::new(), att.id).await.expect("get").is_none());
    assert!(db::attachments::get_for_job(c, att.id).await.expect("job").is_some());
    let many = db::attachments::get_many(c, church.id, &[att.id, AttachmentId::new()]).await.expect("many");
    assert_eq!(many.iter().map(|a| a.id).collect::<Vec<_>>(), vec![att.id], "the church's, and only those that exist");
    assert!(db::attachments::get_many(c, ChurchId::new(), &[att.id]).await.expect("many").is_empty());
    assert_eq!(db::attachments::for_messages(c, church.id, conv.id, msg.id, msg.id).await.expect("for").len(), 1);
    db::attachments::set_preview_state(c, att.id, PreviewState::Failed).await.expect("preview state");
    assert!(db::attachments::set_previews(c, att.id, "p/s.jpg", "p/l.jpg", 1234).await.expect("previews"));
    db::attachments::set_preview_state(c, att.id, PreviewState::Unavailable).await.expect("ready stays ready");
    let a = db::attachments::get(c, church.id, att.id).await.expect("get").expect("some");
    assert_eq!(
        (a.preview_small_key.as_deref(), a.preview_large_key.as_deref(), a.preview_large_bytes, a.preview_state),
        (Some("p/s.jpg"), Some("p/l.jpg"), Some(1234), Some(PreviewState::Ready))
    );
    let keys = db::attachments::keys_of_member(c, church.id, member.id).await.expect("keys");
    assert_eq!(keys, vec![(att.id, "k".to_owned())]);

    assert!(db::webhook_events::insert_if_new(c, "evt", "message.received", Some(church.id), now).await.expect("evt"));
    assert!(!db::webhook_events::insert_if_new(c, "evt", "message.received", Some(church.id), now).await.expect("evt"));

    let job = db::jobs::JobRow {
        id: JobId::new(),
        kind: "media.fetch".into(),
        payload: Json(serde_json::json!({"attachment_id": att.id})),
        church_id: Some(church.id),
        state: JobState::Queued,
        priority: 0,
        run_at: now,
        attempts: 0,
        max_attempts: 3,
        lease_until: None,
        leased_by: None,
        last_error: None,
        created_at: now,
        updated_at: now,
    };
    db::jobs::insert(c, &job).await.expect("job");
    assert_eq!(db::jobs::next_due(c).await.expect("due"), Some(now));
    let lease = now + Duration::seconds(30);
    assert!(db::jobs::claim(c, now - Duration::seconds(1), lease, "w1").await.expect("claim").is_none(), "not due yet");
    let claimed = db::jobs::claim(c, now, lease, "w1").await.expect("claim").expect("a job");
    assert_eq!((claimed.attempts, claimed.leased_by.as_deref()), (1, Some("w1")));
    assert_eq!(claimed.payload.0["attachment_id"], serde_json::json!(att.id));
    assert!(db::jobs::claim(c, now, lease, "w2").await.expect("claim").is_none(), "leased");
    assert!(db::jobs::extend_lease(c, job.id, "w1", lease + Duration::seconds(30)).await.expect("extend"));
    // An expired lease is taken over.
    let stolen =
        db::jobs::claim(c, lease + Duration::seconds(31), lease + Duration::seconds(90), "w2").await.expect("claim");
    assert_eq!(stolen.map(|j| (j.attempts, j.leased_by)), Some((2, Some("w2".to_owned()))));
    assert!(!db::jobs::complete(c, job.id, "w1").await.expect("complete"), "only the holder finishes");
    assert!(db::jobs::retry(c, job.id, "w2", now, "boom", now).await.expect("retry"));
    assert_eq!(db::jobs::count_by_state(c, JobState::Queued).await.expect("count"), 1);
    let again = db::jobs::claim(c, now, lease, "w3").await.expect("claim").expect("due again");
    assert_eq!(again.last_error.as_deref(), Some("boom"));
    assert!(db::jobs::fail(c, job.id, "w3", "dead", now).await.expect("fail"));
    assert_eq!(db::jobs::count_by_state(c, JobState::Failed).await.expect("count"), 1);
    assert!(
        db::jobs::claim(c, now + Duration::days(1), lease, "w4").await.expect("claim").is_none(),
        "dead jobs stay dead"
    );

    let audit = db::audit::AuditRow {
        id: uuid::Uuid::now_v7(),
        church_id: Some(church.id),
        actor_type: "leader".into(),
        actor_id: Some(leader.id.0),
        action: "media.view".into(),
        subject_type: Some("attachment".into()),
        subject_id: Some(att.id.0),
        client_addr: Some("127.0.0.1".into()),
        detail: Some(Json(serde_json::json!({"k": 1}))),
        created_at: now,
    };
    db::audit::insert(c, &audit).await.expect("audit");
    let rows = db::audit::page(c, church.id, None, 10).await.expect("audit page");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].detail.as_ref().map(|d| d.0.clone()), Some(serde_json::json!({"k": 1})));
    assert!(db::audit::page(c, church.id, Some(audit.id), 10).await.expect("older").is_empty());
}

/// Ciphertext headers (version 2, key id) of the "current" and of an "old" key.
const CUR: [u8; HEADER_LEN] = [2, 9, 9, 9, 9, 9, 9, 9, 9];
const OLD: [u8; HEADER_LEN] = [2, 7, 7, 7, 7, 7, 7, 7, 7];

fn sealed(header: &[u8], fill: u8) -> Vec<u8> {
    let mut v = header.to_vec();
    v.extend([fill; 40]);
    v
}

fn church_row(name: &str, number: &str, now: DateTime<Utc>) -> db::churches::ChurchRow {
    db::churches::ChurchRow {
        id: ChurchId::new(),
        name: name.into(),
        phone_number: number.into(),
        messaging_profile_id: None,
        time_zone: "UTC".into(),
        created_at: now,
    }
}

fn leader_row(church: ChurchId, email: &str, is_admin: bool, at: DateTime<Utc>) -> db::leaders::LeaderRow {
    db::leaders::LeaderRow {
        id: LeaderId::new(),
        church_id: church,
        email: email.into(),
        password_hash: "$argon2id$old".into(),
        is_admin,
        token_version: 0,
        created_at: at,
        last_login_at: None,
    }
}

fn member_row(church: ChurchId, hash: u8, ciphertext: Vec<u8>, now: DateTime<Utc>) -> db::members::MemberRow {
    db::members::MemberRow {
        id: MemberId::new(),
        church_id: church,
        phone_hash: vec![hash; 32],
        phone_ciphertext: ciphertext,
        phone_last4: format!("{:04}", hash),
        first_name: None,
        last_name: None,
        opted_out: false,
        opted_out_at: None,
        unreachable: false,
        unreachable_reason: None,
        created_at: now,
        updated_at: now,
    }
}

fn conversation_row(church: ChurchId, member: MemberId, now: DateTime<Utc>) -> db::conversations::ConversationRow {
    db::conversations::ConversationRow {
        id: ConversationId::new(),
        church_id: church,
        member_id: member,
        last_message_at: now,
        last_message_preview: String::new(),
        unread_count: 0,
        created_at: now,
        updated_at: now,
        group_key: None,
    }
}

fn message_row(
    conv: &db::conversations::ConversationRow,
    direction: Direction,
    now: DateTime<Utc>,
) -> db::messages::MessageRow {
    db::messages::MessageRow::new(conv.church_id, conv.id, conv.member_id, direction, "words".into(), now)
}

/// A pending attachment of `message`.
fn attachment_row(
    message: &db::messages::MessageRow,
    position: i32,
    kind: MediaKind,
    created_at: DateTime<Utc>,
) -> db::attachments::AttachmentRow {
    db::attachments::AttachmentRow {
        id: AttachmentId::new(),
        church_id: message.church_id,
        conversation_id: message.conversation_id,
        message_id: message.id,
        position,
        status: AttachmentStatus::Pending,
        source_url: Some("https://cdn.test/f".into()),
        declared_type: None,
        declared_size: None,
        declared_sha256: None,
        media_type: Some(kind),
        mime_type: None,
        name: format!("f{position}"),
        storage_key: None,
        size_bytes: None,
        width: None,
        height: None,
        duration_seconds: None,
        sha256: None,
        failure_reason: None,
        keep: false,
        created_at,
        stored_at: None,
        deleted_at: None,
        link_token: None,
        preview_small_key: None,
        preview_large_key: None,
        preview_large_bytes: None,
        preview_state: None,
        scan_state: None,
        scan_detail: None,
    }
}

/// The same attachment, stored under `key` at `at`.
fn stored_at(a: db::attachments::AttachmentRow, key: &str, at: DateTime<Utc>) -> db::attachments::AttachmentRow {
    db::attachments::AttachmentRow {
        status: AttachmentStatus::Stored,
        storage_key: Some(key.into()),
        stored_at: Some(at),
        ..a
    }
}

fn job_row(
    kind: &str,
    church: Option<ChurchId>,
    priority: i32,
    run_at: DateTime<Utc>,
    created_at: DateTime<Utc>,
) -> db::jobs::JobRow {
    db::jobs::JobRow {
        id: JobId::new(),
        kind: kind.into(),
        payload: Json(serde_json::json!({})),
        church_id: church,
        state: JobState::Queued,
        priority,
        run_at,
        attempts: 0,
        max_attempts: 5,
        lease_until: None,
        leased_by: None,
        last_error: None,
        created_at,
        updated_at: created_at,
    }
}

fn ids<T, I>(rows: &[T], id: impl Fn(&T) -> I) -> Vec<I> {
    rows.iter().map(id).collect()
}

/// The rest of the `db::` functions, on data of their own (churches "Hope" and "Zion"), after
/// [`story`] on the same database. What is global (first run, jobs, refusals, revoked sessions,
/// ciphertexts, retention) is asserted by names of its own or by difference.
async fn story_more(db: Db) {
    let t0 = clock::now();
    let ago = |secs: i64| t0 - Duration::seconds(secs);
    let days = Duration::days;

    // churches: the first-run claim belongs to the transaction that makes it.
    let hope = church_row("Hope", "+15551231111", ago(30));
    let zion = db::churches::ChurchRow {
        messaging_profile_id: Some("zion-profile".into()),
        ..church_row("Zion", "+15551232222", ago(20))
    };
    {
        let mut tx = db.begin().await.expect("begin");
        let c = &mut tx.conn();
        db::churches::insert(c, &zion).await.expect("church");
        assert!(db::churches::claim_first_run(c, zion.id, t0).await.expect("claim"));
        // Dropped: rolled back, the church and its claim alike.
    }
    let mut tx = db.begin().await.expect("begin");
    let c = &mut tx.conn();
    db::churches::insert(c, &hope).await.expect("church");
    assert!(db::churches::claim_first_run(c, hope.id, t0).await.expect("claim"), "a rolled-back claim leaves it free");
    db::churches::insert(c, &zion).await.expect("church");
    tx.commit().await.expect("commit");

    let mut pooled = db.acquire().await.expect("acquire");
    let c = &mut pooled.conn();
    assert!(!db::churches::claim_first_run(c, zion.id, t0).await.expect("claim"), "first run is claimed once");
    assert!(!db::churches::claim_first_run(c, hope.id, t0).await.expect("claim"), "even by its winner");
    let all = db::churches::all(c).await.expect("all");
    let names = ids(&all, |r| r.name.clone());
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "by name");
    assert_eq!(i64::try_from(all.len()).expect("len"), db::churches::count(c).await.expect("count"));
    let z = all.iter().find(|r| r.id == zion.id).expect("Zion is listed");
    assert_eq!(
        (z.name.as_str(), z.phone_number.as_str(), z.messaging_profile_id.as_deref(), z.created_at),
        ("Zion", "+15551232222", Some("zion-profile"), ago(20))
    );
    assert!(all.iter().any(|r| r.id == hope.id));

    // leaders: listed per church oldest first, admins counted, passwords end sessions.
    let admin1 = leader_row(hope.id, "one@hope.test", true, ago(3));
    let admin2 = leader_row(hope.id, "two@hope.test", true, ago(2));
    let plain = leader_row(hope.id, "three@hope.test", false, ago(1));
    let zion_admin = leader_row(zion.id, "one@hope.test", true, t0);
    for l in [&plain, &admin2, &admin1, &zion_admin] {
        db::leaders::insert(c, l).await.expect("leader");
    }
    let list = db::leaders::list(c, hope.id).await.expect("list");
    assert_eq!(ids(&list, |l| l.id), vec![admin1.id, admin2.id, plain.id], "oldest first");
    assert_eq!(ids(&db::leaders::list(c, zion.id).await.expect("list"), |l| l.id), vec![zion_admin.id]);
    assert!(db::leaders::list(c, ChurchId::new()).await.expect("list").is_empty());
    assert_eq!(db::leaders::count_admins(c, hope.id).await.expect("admins"), 2);
    assert_eq!(db::leaders::count_admins(c, zion.id).await.expect("admins"), 1);
    assert_eq!(db::leaders::count_admins(c, ChurchId::new()).await.expect("admins"), 0);
    assert_eq!(db::leaders::set_password(c, hope.id, plain.id, "$argon2id$new").await.expect("password"), Some(1));
    assert_eq!(db::leaders::set_password(c, hope.id, plain.id, "$argon2id$newer").await.expect("password"), Some(2));
    assert_eq!(db::leaders::set_password(c, zion.id, plain.id, "$argon2id$evil").await.expect("password"), None);
    let p = db::leaders::get(c, hope.id, plain.id).await.expect("get").expect("some");
    assert_eq!((p.password_hash.as_str(), p.token_version), ("$argon2id$newer", 2), "the other church changed nothing");
    assert!(!db::leaders::delete(c, zion.id, admin2.id).await.expect("delete"), "not Zion's");
    assert!(db::leaders::delete(c, hope.id, admin2.id).await.expect("delete"));
    assert!(!db::leaders::delete(c, hope.id, admin2.id).await.expect("delete"), "gone already");
    assert!(db::leaders::get(c, hope.id, admin2.id).await.expect("get").is_none());
    assert_eq!(db::leaders::count_admins(c, hope.id).await.expect("admins"), 1);
    assert_eq!(db::leaders::list(c, hope.id).await.expect("list").len(), 2);

    // Revoked sessions: purged only once expired (strictly before now).
    let (gone, edge, live) = (uuid::Uuid::now_v7(), uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
    db::leaders::revoke_session(c, gone, ago(60)).await.expect("revoke");
    db::leaders::revoke_session(c, edge, t0).await.expect("revoke");
    db::leaders::revoke_session(c, live, t0 + Duration::hours(1)).await.expect("revoke");
    db::leaders::revoke_session(c, live, t0 + Duration::hours(1)).await.expect("revoking twice is fine");
    for jti in [gone, edge, live] {
        assert!(db::leaders::is_revoked(c, jti).await.expect("revoked"));
    }
    assert!(!db::leaders::is_revoked(c, uuid::Uuid::now_v7()).await.expect("revoked"));
    assert_eq!(db::leaders::purge_revoked(c, t0).await.expect("purge"), 1);
    assert_eq!(db::leaders::purge_revoked(c, t0).await.expect("purge"), 0);
    assert!(!db::leaders::is_revoked(c, gone).await.expect("revoked"));
    assert!(db::leaders::is_revoked(c, edge).await.expect("revoked"), "expiring right now is not yet expired");
    assert!(db::leaders::is_revoked(c, live).await.expect("revoked"));

    // members: names, reachability, and the conversation of a member.
    let anna =
        db::members::find_or_create(c, &member_row(hope.id, 11, sealed(&CUR, 11), ago(900))).await.expect("member");
    let bob =
        db::members::find_or_create(c, &member_row(hope.id, 12, sealed(&CUR, 12), ago(900))).await.expect("member");
    let zed =
        db::members::find_or_create(c, &member_row(zion.id, 11, sealed(&CUR, 13), ago(900))).await.expect("member");
    assert_ne!(anna.id, zed.id, "the same number is another member in another church");
    assert!(db::members::set_name(c, hope.id, anna.id, Some("Anna"), Some("Lind"), ago(800)).await.expect("name"));
    assert!(!db::members::set_name(c, zion.id, anna.id, Some("Eve"), None, ago(800)).await.expect("name"));
    let a = db::members::get(c, hope.id, anna.id).await.expect("get").expect("some");
    assert_eq!((a.first_name.as_deref(), a.last_name.as_deref(), a.updated_at), (Some("Anna"), Some("Lind"), ago(800)));
    assert!(db::members::set_name(c, hope.id, bob.id, Some("Bob"), None, ago(800)).await.expect("name"));
    let b = db::members::get(c, hope.id, bob.id).await.expect("get").expect("some");
    assert_eq!((b.first_name.as_deref(), b.last_name), (Some("Bob"), None));

    db::members::set_unreachable(c, zion.id, anna.id, "wrong church", ago(700)).await.expect("unreachable");
    let a = db::members::get(c, hope.id, anna.id).await.expect("get").expect("some");
    assert!(!a.unreachable && a.unreachable_reason.is_none(), "another church cannot mark her");
    db::members::set_unreachable(c, hope.id, anna.id, "landline", ago(700)).await.expect("unreachable");
    let a = db::members::get(c, hope.id, anna.id).await.expect("get").expect("some");
    assert_eq!((a.unreachable, a.unreachable_reason.as_deref(), a.updated_at), (true, Some("landline"), ago(700)));
    db::members::clear_unreachable(c, zion.id, anna.id, ago(690)).await.expect("clear");
    assert!(db::members::get(c, hope.id, anna.id).await.expect("get").expect("some").unreachable, "not Zion's");

    let conv = db::conversations::find_or_create(c, &conversation_row(hope.id, anna.id, ago(600)))
        .await
        .expect("conversation");
    let conv_b =
        db::conversations::find_or_create(c, &conversation_row(hope.id, bob.id, ago(600))).await.expect("conversation");
    let conv_z =
        db::conversations::find_or_create(c, &conversation_row(zion.id, zed.id, ago(600))).await.expect("conversation");
    let quiet =
        db::members::find_or_create(c, &member_row(hope.id, 14, sealed(&CUR, 14), ago(900))).await.expect("member");
    assert_eq!(db::conversations::find_for_member(c, hope.id, anna.id).await.expect("find"), Some(conv.id));
    assert_eq!(db::conversations::find_for_member(c, hope.id, bob.id).await.expect("find"), Some(conv_b.id));
    assert_eq!(db::conversations::find_for_member(c, zion.id, anna.id).await.expect("find"), None, "tenancy");
    assert_eq!(db::conversations::find_for_member(c, hope.id, quiet.id).await.expect("find"), None, "never wrote");
    let filter = db::conversations::InboxFilter { name_like: Some("lind".into()), ..Default::default() };
    let found = db::conversations::list(c, hope.id, None, &filter, 10).await.expect("list");
    assert_eq!(ids(&found, |r| r.id), vec![conv.id], "found by the name set above");
    assert!(found[0].unreachable);

    // messages: the exactly-once send states and delivery reports that never go back.
    let m_in = message_row(&conv, Direction::Inbound, ago(590));
    db::messages::insert(c, &m_in).await.expect("message");
    let outbound = |state: SendState, status: Option<DeliveryStatus>| db::messages::MessageRow {
        leader_id: Some(plain.id),
        send_state: Some(state),
        delivery_status: status,
        send_mode: Some("sms".into()),
        ..message_row(&conv, Direction::Outbound, ago(500))
    };
    let o1 = outbound(SendState::Pending, Some(DeliveryStatus::Queued));
    let o2 = outbound(SendState::Pending, Some(DeliveryStatus::Queued));
    let o3 = db::messages::MessageRow {
        send_started_at: Some(ago(500)),
        ..outbound(SendState::InFlight, Some(DeliveryStatus::Queued))
    };
    let o4 = outbound(SendState::Pending, Some(DeliveryStatus::Queued));
    let o5 = outbound(SendState::InFlight, Some(DeliveryStatus::LinkSent));
    let o6 = outbound(SendState::Pending, Some(DeliveryStatus::Sending));
    for m in [&o1, &o2, &o3, &o4, &o5, &o6] {
        db::messages::insert(c, m).await.expect("message");
    }
    assert!(db::messages::get_for_job(c, MessageId::new()).await.expect("get").is_none());
    let m = db::messages::get_for_job(c, o1.id).await.expect("get").expect("some");
    assert_eq!((m.church_id, m.leader_id, m.send_state), (hope.id, Some(plain.id), Some(SendState::Pending)));
    // The send job's one read: the message and where it goes.
    let (sent, ctx) = db::messages::for_send(c, o1.id).await.expect("for send").expect("some");
    assert_eq!((sent.id, sent.content.as_str()), (o1.id, o1.content.as_str()));
    let ctx = ctx.expect("its church and member exist");
    assert_eq!(ctx.church_number, hope.phone_number);
    assert!(!ctx.phone_ciphertext.is_empty() && !ctx.opted_out);
    assert!(db::messages::for_send(c, MessageId::new()).await.expect("for send").is_none());
    // Who sent what: the member, or a leader with their email; another church's ids are absent.
    let mut who = db::messages::senders(c, hope.id, &[m_in.id, o1.id, MessageId::new()]).await.expect("senders");
    who.sort_by_key(|(id, _, _)| *id);
    let mut expected =
        vec![(m_in.id, Direction::Inbound, None), (o1.id, Direction::Outbound, Some(plain.email.clone()))];
    expected.sort_by_key(|(id, _, _)| *id);
    assert_eq!(who, expected);
    assert!(db::messages::senders(c, zion.id, &[m_in.id, o1.id]).await.expect("senders").is_empty());

    assert!(db::messages::mark_in_flight(c, o1.id, ago(490)).await.expect("in flight"));
    assert!(!db::messages::mark_in_flight(c, o1.id, ago(489)).await.expect("in flight"), "only from pending");
    let m = db::messages::get_for_job(c, o1.id).await.expect("get").expect("some");
    assert_eq!((m.send_state, m.send_started_at, m.updated_at), (Some(SendState::InFlight), Some(ago(490)), ago(490)));
    assert!(db::messages::back_to_pending(c, o1.id, "connect timeout", ago(480)).await.expect("back"));
    assert!(!db::messages::back_to_pending(c, o1.id, "again", ago(479)).await.expect("back"), "only from in_flight");
    let m = db::messages::get_for_job(c, o1.id).await.expect("get").expect("some");
    assert_eq!((m.send_state, m.failure_reason.as_deref()), (Some(SendState::Pending), Some("connect timeout")));
    assert!(db::messages::mark_in_flight(c, o1.id, ago(470)).await.expect("in flight"));
    assert!(db::messages::mark_accepted(c, o1.id, "more-prov-1", Some(DeliveryStatus::Sent), ago(460))
        .await
        .expect("accepted"));
    let m = db::messages::get_for_job(c, o1.id).await.expect("get").expect("some");
    assert_eq!(
        (m.send_state, m.provider_message_id.as_deref(), m.delivery_status, m.failure_reason),
        (Some(SendState::Accepted), Some("more-prov-1"), Some(DeliveryStatus::Sent), None)
    );
    assert!(
        !db::messages::mark_accepted(c, o1.id, "more-prov-x", Some(DeliveryStatus::Delivered), ago(459))
            .await
            .expect("accepted"),
        "only from pending or in_flight"
    );
    assert!(!db::messages::mark_send_failed(c, o1.id, "late", ago(459)).await.expect("failed"), "accepted stays");
    assert!(!db::messages::mark_in_flight(c, o1.id, ago(459)).await.expect("in flight"));
    assert!(!db::messages::back_to_pending(c, o1.id, "late", ago(459)).await.expect("back"));
    let m = db::messages::get_for_job(c, o1.id).await.expect("get").expect("some");
    assert_eq!((m.send_state, m.delivery_status), (Some(SendState::Accepted), Some(DeliveryStatus::Sent)));

    // Delivery reports: the raw word is always kept; the status only moves up; the first id stays.
    let report = async |c: &mut db::Conn<'_>,
                        id: MessageId,
                        provider_id: &str,
                        word: &str,
                        status: Option<DeliveryStatus>,
                        reason: Option<&str>| {
        db::messages::apply_delivery_report(c, id, provider_id, word, status, reason, t0).await.expect("report")
    };
    assert!(report(c, o1.id, "more-prov-other", "sending", Some(DeliveryStatus::Sending), None).await);
    let m = db::messages::get_for_job(c, o1.id).await.expect("get").expect("some");
    assert_eq!(
        (m.delivery_status, m.provider_status.as_deref(), m.provider_message_id.as_deref(), m.updated_at),
        (Some(DeliveryStatus::Sent), Some("sending"), Some("more-prov-1"), t0),
        "sent does not go back to sending"
    );
    assert!(report(c, o1.id, "more-prov-1", "delivered", Some(DeliveryStatus::Delivered), None).await);
    assert!(report(c, o1.id, "more-prov-1", "delivery_failed", Some(DeliveryStatus::Failed), Some("no")).await);
    let m = db::messages::get_for_job(c, o1.id).await.expect("get").expect("some");
    assert_eq!(
        (m.delivery_status, m.provider_status.as_deref(), m.failure_reason),
        (Some(DeliveryStatus::Delivered), Some("delivery_failed"), None),
        "delivered and failed are both final: the first one stays"
    );
    assert!(report(c, o1.id, "more-prov-1", "some_future_word", None, None).await);
    let m = db::messages::get_for_job(c, o1.id).await.expect("get").expect("some");
    assert_eq!(
        (m.delivery_status, m.provider_status.as_deref()),
        (Some(DeliveryStatus::Delivered), Some("some_future_word"))
    );
    assert_eq!(db::messages::find_by_provider_id(c, "more-prov-1").await.expect("find").map(|m| m.id), Some(o1.id));
    assert!(db::messages::find_by_provider_id(c, "more-prov-x").await.expect("find").is_none());
    assert!(db::messages::find_by_provider_id(c, "more-prov-other").await.expect("find").is_none());

    // Accepted without a status keeps the queued one; a failure report then records its reason.
    assert!(db::messages::mark_accepted(c, o2.id, "more-prov-2", None, ago(450)).await.expect("accepted"));
    let m = db::messages::get_for_job(c, o2.id).await.expect("get").expect("some");
    assert_eq!((m.send_state, m.delivery_status), (Some(SendState::Accepted), Some(DeliveryStatus::Queued)));
    assert!(report(c, o2.id, "more-prov-2", "sent", Some(DeliveryStatus::Sent), None).await);
    assert!(report(c, o2.id, "more-prov-2", "delivery_failed", Some(DeliveryStatus::Failed), Some("blocked")).await);
    let m = db::messages::get_for_job(c, o2.id).await.expect("get").expect("some");
    assert_eq!(
        (m.send_state, m.delivery_status, m.failure_reason.as_deref()),
        (Some(SendState::Accepted), Some(DeliveryStatus::Failed), Some("blocked"))
    );
    assert!(report(c, o2.id, "more-prov-2", "delivered", Some(DeliveryStatus::Delivered), None).await);
    let m = db::messages::get_for_job(c, o2.id).await.expect("get").expect("some");
    assert_eq!((m.delivery_status, m.failure_reason.as_deref()), (Some(DeliveryStatus::Failed), Some("blocked")));

    // An interrupted send (still in flight) is reconciled by its report; the problem of an
    // earlier attempt ("will retry") goes once the message moves on.
    assert!(db::messages::back_to_pending(c, o3.id, "connect timeout; will retry", ago(445)).await.expect("back"));
    assert!(db::messages::mark_in_flight(c, o3.id, ago(444)).await.expect("in flight again"));
    assert!(report(c, o3.id, "more-prov-3", "delivered", Some(DeliveryStatus::Delivered), None).await);
    let m = db::messages::find_by_provider_id(c, "more-prov-3").await.expect("find").expect("reconciled");
    assert_eq!(
        (m.id, m.send_state, m.delivery_status, m.failure_reason),
        (o3.id, Some(SendState::Accepted), Some(DeliveryStatus::Delivered), None)
    );

    // A send that fails: from pending or in flight, once, and then nothing else moves it.
    assert!(db::messages::mark_send_failed(c, o4.id, "member opted out", ago(440)).await.expect("failed"));
    assert!(!db::messages::mark_send_failed(c, o4.id, "again", ago(439)).await.expect("failed"));
    assert!(!db::messages::mark_accepted(c, o4.id, "more-prov-4", None, ago(439)).await.expect("accepted"));
    assert!(!db::messages::mark_in_flight(c, o4.id, ago(439)).await.expect("in flight"));
    let m = db::messages::get_for_job(c, o4.id).await.expect("get").expect("some");
    assert_eq!(
        (m.send_state, m.delivery_status, m.failure_reason.as_deref(), m.provider_message_id),
        (Some(SendState::Failed), Some(DeliveryStatus::Failed), Some("member opted out"), None)
    );
    assert!(db::messages::mark_send_failed(c, o5.id, "rejected", ago(440)).await.expect("failed from in flight"));
    let m = db::messages::get_for_job(c, o5.id).await.expect("get").expect("some");
    assert_eq!((m.send_state, m.delivery_status), (Some(SendState::Failed), Some(DeliveryStatus::Failed)));
    // Accepted with a lower status than the message has: the status stays.
    assert!(db::messages::mark_accepted(c, o6.id, "more-prov-6", Some(DeliveryStatus::Queued), ago(440))
        .await
        .expect("accepted"));
    let m = db::messages::get_for_job(c, o6.id).await.expect("get").expect("some");
    assert_eq!((m.send_state, m.delivery_status), (Some(SendState::Accepted), Some(DeliveryStatus::Sending)));
    // Inbound messages have no send to mark nor deliveries to report; unknown ids change nothing.
    assert!(!db::messages::mark_accepted(c, m_in.id, "more-prov-in", None, t0).await.expect("accepted"));
    assert!(!db::messages::mark_in_flight(c, m_in.id, t0).await.expect("in flight"));
    assert!(!report(c, m_in.id, "more-prov-in", "delivered", Some(DeliveryStatus::Delivered), None).await);
    assert!(!report(c, MessageId::new(), "more-prov-in", "delivered", Some(DeliveryStatus::Delivered), None).await);
    let m = db::messages::get_for_job(c, m_in.id).await.expect("get").expect("some");
    assert_eq!((m.send_state, m.delivery_status, m.provider_message_id), (None, None, None));

    let all = db::messages::of_conversation(c, hope.id, conv.id).await.expect("messages");
    assert_eq!(ids(&all, |m| m.id), vec![m_in.id, o1.id, o2.id, o3.id, o4.id, o5.id, o6.id], "oldest first");
    assert!(db::messages::of_conversation(c, zion.id, conv.id).await.expect("messages").is_empty(), "tenancy");
    assert!(db::messages::of_conversation(c, hope.id, conv_b.id).await.expect("messages").is_empty());

    let ctx = db::messages::for_send(c, o1.id).await.expect("context").expect("some").1.expect("context");
    assert_eq!(
        (ctx.church_number.as_str(), ctx.phone_ciphertext.clone(), ctx.opted_out, ctx.unreachable),
        ("+15551231111", sealed(&CUR, 11), false, true)
    );
    db::members::clear_unreachable(c, hope.id, anna.id, ago(400)).await.expect("clear");
    let a = db::members::get(c, hope.id, anna.id).await.expect("get").expect("some");
    assert_eq!((a.unreachable, a.unreachable_reason, a.updated_at), (false, None, ago(400)));
    db::members::clear_unreachable(c, hope.id, anna.id, ago(300)).await.expect("clear");
    let a = db::members::get(c, hope.id, anna.id).await.expect("get").expect("some");
    assert_eq!(a.updated_at, ago(400), "clearing a reachable member changes nothing");
    db::members::set_opted_out(c, hope.id, anna.id, true, ago(300)).await.expect("opt out");
    let ctx = db::messages::for_send(c, o1.id).await.expect("context").expect("some").1.expect("context");
    assert_eq!((ctx.opted_out, ctx.unreachable), (true, false));
    db::members::set_opted_out(c, hope.id, anna.id, false, ago(300)).await.expect("opt in");

    // A deleted leader's messages stay, without their author.
    assert!(db::leaders::delete(c, hope.id, plain.id).await.expect("delete"));
    let m = db::messages::get_for_job(c, o1.id).await.expect("get").expect("still there");
    assert_eq!(m.leader_id, None);
    let who = db::messages::senders(c, hope.id, &[o1.id]).await.expect("senders");
    assert_eq!(who, vec![(o1.id, Direction::Outbound, None)], "a removed leader's reply: sent, by nobody named");

    // attachments: a message's files in order, the link token, retention, the library.
    let a0 = stored_at(attachment_row(&m_in, 0, MediaKind::Image, ago(400)), "more/a0", t0 - days(30));
    let a1 = stored_at(attachment_row(&m_in, 1, MediaKind::Video, ago(300)), "more/a1", t0 - days(20));
    let a2 = stored_at(attachment_row(&m_in, 2, MediaKind::Image, ago(200)), "more/a2", t0 - days(20));
    let a3 = stored_at(attachment_row(&m_in, 3, MediaKind::Image, ago(100)), "more/a3", ago(60));
    let a4 = attachment_row(&m_in, 4, MediaKind::Document, ago(90));
    let link = db::attachments::AttachmentRow {
        link_token: Some("more-link-token".into()),
        ..attachment_row(&o1, 0, MediaKind::Video, ago(80))
    };
    let m_b = message_row(&conv_b, Direction::Inbound, ago(70));
    let b0 = stored_at(attachment_row(&m_b, 0, MediaKind::Image, ago(50)), "more/b0", t0 - days(1));
    let m_z = message_row(&conv_z, Direction::Inbound, ago(70));
    let z0 = stored_at(attachment_row(&m_z, 0, MediaKind::Image, ago(700)), "more/z0", t0 - days(25));
    db::messages::insert(c, &m_b).await.expect("message");
    db::messages::insert(c, &m_z).await.expect("message");
    for a in [&link, &a4, &a3, &a2, &a1, &a0, &b0, &z0] {
        db::attachments::insert(c, a).await.expect("attachment");
    }
    let of = db::attachments::of_message(c, m_in.id).await.expect("of message");
    assert_eq!(ids(&of, |a| (a.id, a.position)), vec![(a0.id, 0), (a1.id, 1), (a2.id, 2), (a3.id, 3), (a4.id, 4)]);
    assert!(db::attachments::of_message(c, MessageId::new()).await.expect("of message").is_empty());
    let by_token = db::attachments::find_by_link_token(c, "more-link-token").await.expect("token").expect("some");
    assert_eq!((by_token.id, by_token.message_id, by_token.church_id), (link.id, o1.id, hope.id));
    assert!(db::attachments::find_by_link_token(c, "more-link-tokeN").await.expect("token").is_none());
    let thread = db::attachments::of_conversation(c, hope.id, conv.id).await.expect("thread");
    assert_eq!(
        ids(&thread, |a| a.id),
        vec![a0.id, a1.id, a2.id, a3.id, a4.id, link.id],
        "every status, in message order"
    );
    assert!(db::attachments::of_conversation(c, zion.id, conv.id).await.expect("thread").is_empty(), "tenancy");

    // Retention: stored, not kept, before the cutoff, oldest first, with keyset paging (ties by id).
    let cutoff = t0 - days(10);
    let expired = db::attachments::expired(c, cutoff, None, 10).await.expect("expired");
    assert_eq!(ids(&expired, |a| a.id), vec![a0.id, z0.id, a1.id, a2.id], "of every church");
    let first = db::attachments::expired(c, cutoff, None, 3).await.expect("expired");
    assert_eq!(ids(&first, |a| a.id), vec![a0.id, z0.id, a1.id]);
    let after = first.last().map(|a| (a.stored_at.expect("stored"), a.id));
    let rest = db::attachments::expired(c, cutoff, after, 3).await.expect("expired");
    assert_eq!(ids(&rest, |a| a.id), vec![a2.id], "the same stored_at, a later id");
    assert!(db::attachments::expired(c, cutoff, Some((t0 - days(20), a2.id)), 3).await.expect("expired").is_empty());
    assert!(db::attachments::set_keep(c, hope.id, a1.id, true).await.expect("keep"));
    assert!(!db::attachments::set_keep(c, zion.id, a2.id, true).await.expect("keep"), "not Zion's");
    assert!(!db::attachments::set_keep(c, hope.id, AttachmentId::new(), true).await.expect("keep"));
    let expired = db::attachments::expired(c, cutoff, None, 10).await.expect("expired");
    assert_eq!(ids(&expired, |a| a.id), vec![a0.id, z0.id, a2.id], "kept files are not expired");
    assert!(!db::attachments::mark_deleted(c, a1.id, "retention", t0).await.expect("delete"), "kept");
    assert!(db::attachments::set_previews(c, a0.id, "more/a0-s", "more/a0-l", 10).await.expect("previews"));
    assert!(db::attachments::mark_deleted(c, a0.id, "retention", t0).await.expect("delete"));
    assert!(!db::attachments::mark_deleted(c, a0.id, "retention", t0).await.expect("delete"), "once");
    assert!(!db::attachments::mark_deleted(c, a4.id, "retention", t0).await.expect("delete"), "only stored files");
    let d = db::attachments::get(c, hope.id, a0.id).await.expect("get").expect("some");
    assert_eq!(
        (
            d.status,
            d.deleted_at,
            d.failure_reason.as_deref(),
            d.preview_small_key,
            d.preview_large_key,
            d.preview_large_bytes
        ),
        (AttachmentStatus::Deleted, Some(t0), Some("retention"), None, None, None)
    );
    let k = db::attachments::get(c, hope.id, a1.id).await.expect("get").expect("some");
    assert_eq!((k.status, k.keep), (AttachmentStatus::Stored, true));
    let expired = db::attachments::expired(c, cutoff, None, 10).await.expect("expired");
    assert_eq!(ids(&expired, |a| a.id), vec![z0.id, a2.id]);

    // The library: a church's stored files, newest first, filtered, by keyset.
    let library = async |c: &mut db::Conn<'_>,
                         church: ChurchId,
                         f: db::attachments::LibraryFilter,
                         before: Option<AttachmentId>,
                         limit: i64| {
        let rows = db::attachments::library(c, church, &f, before, limit).await.expect("library");
        ids(&rows, |a| a.id)
    };
    let all_of = db::attachments::LibraryFilter::default;
    assert_eq!(library(c, hope.id, all_of(), None, 10).await, vec![b0.id, a3.id, a2.id, a1.id], "stored only");
    assert_eq!(library(c, zion.id, all_of(), None, 10).await, vec![z0.id]);
    assert!(library(c, ChurchId::new(), all_of(), None, 10).await.is_empty());
    let kind = |k: &str| db::attachments::LibraryFilter { media_type: MediaKind::parse(k), ..all_of() };
    assert_eq!(library(c, hope.id, kind("video"), None, 10).await, vec![a1.id]);
    assert_eq!(library(c, hope.id, kind("image"), None, 10).await, vec![b0.id, a3.id, a2.id]);
    assert!(library(c, hope.id, kind("document"), None, 10).await.is_empty(), "a4 is pending");
    let from = |t| db::attachments::LibraryFilter { from: Some(t), ..all_of() };
    assert_eq!(library(c, hope.id, from(ago(200)), None, 10).await, vec![b0.id, a3.id, a2.id], "from is inclusive");
    let until = |t| db::attachments::LibraryFilter { until: Some(t), ..all_of() };
    assert_eq!(library(c, hope.id, until(ago(200)), None, 10).await, vec![a1.id], "until is exclusive");
    let between = db::attachments::LibraryFilter { from: Some(ago(250)), until: Some(ago(100)), ..all_of() };
    assert_eq!(library(c, hope.id, between, None, 10).await, vec![a2.id]);
    let of_conv = |id| db::attachments::LibraryFilter { conversation: Some(id), ..all_of() };
    assert_eq!(library(c, hope.id, of_conv(conv.id), None, 10).await, vec![a3.id, a2.id, a1.id]);
    assert!(library(c, hope.id, of_conv(conv_z.id), None, 10).await.is_empty(), "Zion's conversation");
    let of_member = |id| db::attachments::LibraryFilter { member: Some(id), ..all_of() };
    assert_eq!(library(c, hope.id, of_member(bob.id), None, 10).await, vec![b0.id]);
    assert!(library(c, hope.id, of_member(zed.id), None, 10).await.is_empty(), "Zion's member");
    let images_of_anna =
        db::attachments::LibraryFilter { media_type: Some(MediaKind::Image), member: Some(anna.id), ..all_of() };
    assert_eq!(library(c, hope.id, images_of_anna, None, 10).await, vec![a3.id, a2.id]);
    assert_eq!(library(c, hope.id, all_of(), None, 2).await, vec![b0.id, a3.id]);
    assert_eq!(library(c, hope.id, all_of(), Some(a3.id), 2).await, vec![a2.id, a1.id]);
    assert!(library(c, hope.id, all_of(), Some(a1.id), 2).await.is_empty());

    // The object keys rows point to: the original and both previews, for ids that exist.
    assert!(db::attachments::set_previews(c, a3.id, "more/a3-s", "more/a3-l", 20).await.expect("previews"));
    let mut keys = db::attachments::object_keys(c, &[a3.id, a2.id, AttachmentId::new()]).await.expect("keys");
    keys.sort();
    assert_eq!(keys, vec!["more/a2", "more/a3", "more/a3-l", "more/a3-s"]);
    assert_eq!(db::attachments::object_keys(c, &[a0.id]).await.expect("keys"), vec!["more/a0"], "previews went");
    assert!(db::attachments::object_keys(c, &[a4.id, link.id]).await.expect("keys").is_empty(), "nothing stored");
    assert!(db::attachments::object_keys(c, &[]).await.expect("keys").is_empty());

    // audit: with the acting leader's email, when the actor is a leader that still exists.
    let entry = |church: ChurchId, actor_type: &str, actor_id: Option<uuid::Uuid>| db::audit::AuditRow {
        id: uuid::Uuid::now_v7(),
        church_id: Some(church),
        actor_type: actor_type.into(),
        actor_id,
        action: "member.rename".into(),
        subject_type: Some("member".into()),
        subject_id: Some(anna.id.0),
        client_addr: None,
        detail: None,
        created_at: t0,
    };
    let e0 = entry(hope.id, "leader", Some(admin2.id.0));
    let e1 = entry(hope.id, "leader", Some(admin1.id.0));
    let e2 = entry(hope.id, "system", None);
    let e3 = entry(hope.id, "member", Some(admin1.id.0));
    let ez = entry(zion.id, "leader", Some(zion_admin.id.0));
    for e in [&e0, &e1, &e2, &e3, &ez] {
        db::audit::insert(c, e).await.expect("audit");
    }
    let page = db::audit::page_with_actor(c, hope.id, None, 10).await.expect("audit");
    assert_eq!(
        ids(&page, |(e, email)| (e.id, email.clone())),
        vec![(e3.id, None), (e2.id, None), (e1.id, Some("one@hope.test".to_owned())), (e0.id, None)],
        "newest first; a member actor is not a leader; a deleted leader has no email"
    );
    assert_eq!(page[2].0.actor_type, "leader");
    assert_eq!(page[2].0.subject_id, Some(anna.id.0));
    let plain_page = db::audit::page(c, hope.id, None, 10).await.expect("audit");
    assert_eq!(ids(&plain_page, |e| e.id), ids(&page, |(e, _)| e.id), "the same rows as page");
    let older = db::audit::page_with_actor(c, hope.id, Some(e2.id), 10).await.expect("audit");
    assert_eq!(ids(&older, |(e, _)| e.id), vec![e1.id, e0.id]);
    let newest = db::audit::page_with_actor(c, hope.id, None, 1).await.expect("audit");
    assert_eq!(ids(&newest, |(e, _)| e.id), vec![e3.id]);
    let z = db::audit::page_with_actor(c, zion.id, None, 10).await.expect("audit");
    assert_eq!(ids(&z, |(e, email)| (e.id, email.clone())), vec![(ez.id, Some("one@hope.test".to_owned()))]);
    assert!(db::audit::page_with_actor(c, ChurchId::new(), None, 10).await.expect("audit").is_empty());

    // webhook_rejections: recent ones newest first; a week later they are forgotten.
    db::webhook_rejections::record(c, "/webhooks/telnyx", "bad signature", Some("203.0.113.9"), t0 - days(8))
        .await
        .expect("record");
    let r = db::webhook_rejections::recent(c, t0 - days(30), 10).await.expect("recent");
    assert_eq!(
        ids(&r, |r| (r.route.clone(), r.reason.clone(), r.client_addr.clone(), r.received_at)),
        vec![("/webhooks/telnyx".to_owned(), "bad signature".to_owned(), Some("203.0.113.9".to_owned()), t0 - days(8))]
    );
    db::webhook_rejections::record(c, "/webhooks/telnyx", "stale timestamp", None, ago(3600)).await.expect("record");
    db::webhook_rejections::record(c, "/webhooks/telnyx/status", "bad signature", Some("203.0.113.10"), t0)
        .await
        .expect("record");
    let r = db::webhook_rejections::recent(c, t0 - days(30), 10).await.expect("recent");
    assert_eq!(
        ids(&r, |r| (r.reason.clone(), r.client_addr.clone(), r.received_at)),
        vec![
            ("bad signature".to_owned(), Some("203.0.113.10".to_owned()), t0),
            ("stale timestamp".to_owned(), None, ago(3600))
        ],
        "newest first, the week-old one forgotten"
    );
    assert_eq!(db::webhook_rejections::recent(c, t0 - days(30), 1).await.expect("recent").len(), 1);
    let r = db::webhook_rejections::recent(c, ago(60), 10).await.expect("recent");
    assert_eq!(ids(&r, |r| r.route.clone()), vec!["/webhooks/telnyx/status".to_owned()], "since is a bound");

    // phone_ciphertexts: found by header, paged by id, replaced only if unchanged.
    use db::phone_ciphertexts::Column;
    let base = db::phone_ciphertexts::count_not_under(c, Column::MemberPhone, &CUR).await.expect("count");
    let base_cc = db::phone_ciphertexts::count_not_under(c, Column::MessageCc, &CUR).await.expect("count");
    let mut v1 = vec![1u8];
    v1.extend([33; 48]);
    let p_cur = db::members::find_or_create(c, &member_row(hope.id, 31, sealed(&CUR, 31), t0)).await.expect("member");
    let p_old = db::members::find_or_create(c, &member_row(hope.id, 32, sealed(&OLD, 32), t0)).await.expect("member");
    let p_v1 = db::members::find_or_create(c, &member_row(hope.id, 33, v1.clone(), t0)).await.expect("member");
    assert_eq!(db::phone_ciphertexts::count_not_under(c, Column::MemberPhone, &CUR).await.expect("count"), base + 2);
    let old = db::phone_ciphertexts::not_under(c, Column::MemberPhone, &CUR, None, 1000).await.expect("not under");
    let old_ids = ids(&old, |r| r.id);
    let mut sorted = old_ids.clone();
    sorted.sort();
    assert_eq!(old_ids, sorted, "by id");
    assert_eq!(i64::try_from(old.len()).expect("len"), base + 2);
    assert!(old_ids.contains(&p_old.id.0) && old_ids.contains(&p_v1.id.0) && !old_ids.contains(&p_cur.id.0));
    let row = old.iter().find(|r| r.id == p_old.id.0).expect("p_old");
    assert_eq!(row.ciphertext, sealed(&OLD, 32));
    let mut paged = Vec::new();
    let mut after = None;
    loop {
        let page = db::phone_ciphertexts::not_under(c, Column::MemberPhone, &CUR, after, 1).await.expect("not under");
        let Some(row) = page.first() else { break };
        assert_eq!(page.len(), 1);
        after = Some(row.id);
        paged.push(row.id);
    }
    assert_eq!(paged, old_ids, "one at a time, the same rows");
    let under_old =
        db::phone_ciphertexts::not_under(c, Column::MemberPhone, &OLD, None, 1000).await.expect("not under");
    assert!(under_old.iter().any(|r| r.id == p_cur.id.0) && !under_old.iter().any(|r| r.id == p_old.id.0));
    let fresh = sealed(&CUR, 34);
    assert!(!db::phone_ciphertexts::replace(c, Column::MemberPhone, p_v1.id.0, &sealed(&OLD, 33), &fresh)
        .await
        .expect("replace"));
    assert!(db::phone_ciphertexts::replace(c, Column::MemberPhone, p_old.id.0, &sealed(&OLD, 32), &fresh)
        .await
        .expect("replace"));
    assert!(
        !db::phone_ciphertexts::replace(c, Column::MemberPhone, p_old.id.0, &sealed(&OLD, 32), &sealed(&CUR, 35))
            .await
            .expect("replace"),
        "changed meanwhile"
    );
    let m = db::members::get(c, hope.id, p_old.id).await.expect("get").expect("some");
    assert_eq!(m.phone_ciphertext, fresh);
    assert_eq!(db::phone_ciphertexts::count_not_under(c, Column::MemberPhone, &CUR).await.expect("count"), base + 1);
    let conv_p =
        db::conversations::find_or_create(c, &conversation_row(hope.id, p_cur.id, t0)).await.expect("conversation");
    let cc_old = db::messages::MessageRow {
        cc_ciphertext: Some(sealed(&OLD, 36)),
        ..message_row(&conv_p, Direction::Inbound, t0)
    };
    let cc_cur = db::messages::MessageRow {
        cc_ciphertext: Some(sealed(&CUR, 37)),
        ..message_row(&conv_p, Direction::Inbound, t0)
    };
    let cc_none = message_row(&conv_p, Direction::Inbound, t0);
    for m in [&cc_old, &cc_cur, &cc_none] {
        db::messages::insert(c, m).await.expect("message");
    }
    assert_eq!(db::phone_ciphertexts::count_not_under(c, Column::MessageCc, &CUR).await.expect("count"), base_cc + 1);
    let old_cc = db::phone_ciphertexts::not_under(c, Column::MessageCc, &CUR, None, 1000).await.expect("not under");
    let mine: Vec<_> = old_cc.iter().filter(|r| [cc_old.id.0, cc_cur.id.0, cc_none.id.0].contains(&r.id)).collect();
    assert_eq!(
        mine.iter().map(|r| (r.id, r.ciphertext.clone())).collect::<Vec<_>>(),
        vec![(cc_old.id.0, sealed(&OLD, 36))]
    );
    assert!(db::phone_ciphertexts::replace(c, Column::MessageCc, cc_old.id.0, &sealed(&OLD, 36), &sealed(&CUR, 36))
        .await
        .expect("replace"));
    assert_eq!(db::phone_ciphertexts::count_not_under(c, Column::MessageCc, &CUR).await.expect("count"), base_cc);
    let m = db::messages::get(c, hope.id, cc_old.id).await.expect("get").expect("some");
    assert_eq!(m.cc_ciphertext, Some(sealed(&CUR, 36)));

    // jobs: claims by kind and church, lease holders, dead workers' leases, deferrals.
    let j1 = job_row("more.send", Some(hope.id), 0, ago(10), ago(3600));
    let j2 = job_row("more.send", Some(zion.id), 5, ago(5), ago(60));
    let j3 = job_row("more.fetch", None, 0, ago(20), ago(60));
    let j4 = job_row("more.send", Some(hope.id), 0, t0 + Duration::hours(1), ago(7200));
    let j5 = job_row("more.fetch", Some(hope.id), 0, ago(20), ago(60));
    for j in [&j1, &j2, &j3, &j4, &j5] {
        db::jobs::insert(c, j).await.expect("job");
    }
    assert_eq!(db::jobs::oldest_queued(c).await.expect("oldest"), Some(ago(7200)), "due or not");
    assert_eq!(db::jobs::next_due_of(c, "more.send").await.expect("due"), Some(ago(10)));
    assert_eq!(db::jobs::next_due_of(c, "more.fetch").await.expect("due"), Some(ago(20)));
    assert_eq!(db::jobs::next_due_of(c, "more.nothing").await.expect("due"), None);
    let lease = t0 + Duration::seconds(60);
    let claim = async |c: &mut db::Conn<'_>, now, worker: &str, kind: Option<&str>, skip: &[ChurchId]| {
        let filter = db::jobs::ClaimFilter { kind, skip_churches: skip };
        db::jobs::claim_many_where(c, now, lease, worker, &filter, 1).await.expect("claim").into_iter().next()
    };
    let got = claim(c, t0, "more-w1", Some("more.send"), &[zion.id]).await.expect("Hope's send");
    assert_eq!(
        (got.id, got.state, got.attempts, got.leased_by.as_deref(), got.lease_until),
        (j1.id, JobState::Running, 1, Some("more-w1"), Some(lease)),
        "Zion's higher-priority job is skipped"
    );
    let got = claim(c, t0, "more-w2", Some("more.send"), &[]).await.expect("Zion's send");
    assert_eq!(got.id, j2.id);
    assert!(claim(c, t0, "more-w2", Some("more.send"), &[]).await.is_none(), "j4 is not due");
    let got = claim(c, t0, "more-w1", Some("more.fetch"), &[hope.id, zion.id]).await.expect("a job of no church");
    assert_eq!(got.id, j3.id, "a job of no church is never skipped");
    assert!(claim(c, t0, "more-w9", None, &[hope.id]).await.is_none(), "j5 is Hope's");
    let got = claim(c, t0, "other-w", None, &[zion.id]).await.expect("any kind");
    assert_eq!(got.id, j5.id);
    let mut holders = db::jobs::lease_holders(c, "more-w").await.expect("holders");
    holders.sort();
    assert_eq!(holders, vec!["more-w1", "more-w2"]);
    assert_eq!(db::jobs::lease_holders(c, "other").await.expect("holders"), vec!["other-w"]);
    assert!(db::jobs::lease_holders(c, "more-w9").await.expect("holders").is_empty());
    assert_eq!(db::jobs::expire_leases(c, "more-w1", t0).await.expect("expire"), 2);
    assert_eq!(db::jobs::expire_leases(c, "more-w1", t0).await.expect("expire"), 0, "already expired");
    assert!(claim(c, t0, "more-w3", Some("more.send"), &[hope.id]).await.is_none(), "j1 is Hope's, j2 leased");
    let got = claim(c, t0, "more-w3", Some("more.fetch"), &[hope.id]).await.expect("expired lease");
    assert_eq!((got.id, got.attempts, got.leased_by.as_deref()), (j3.id, 2, Some("more-w3")));
    let got = claim(c, t0, "more-w3", Some("more.send"), &[]).await.expect("expired lease");
    assert_eq!((got.id, got.attempts), (j1.id, 2));
    let mut holders = db::jobs::lease_holders(c, "more-w").await.expect("holders");
    holders.sort();
    assert_eq!(holders, vec!["more-w2", "more-w3"], "w1 holds nothing now");
    let later = t0 + Duration::minutes(10);
    assert!(!db::jobs::defer(c, j2.id, "more-w1", later, t0).await.expect("defer"), "only the holder");
    assert!(db::jobs::defer(c, j2.id, "more-w2", later, t0).await.expect("defer"));
    assert!(!db::jobs::defer(c, j2.id, "more-w2", later, t0).await.expect("defer"), "no longer running");
    assert_eq!(db::jobs::next_due_of(c, "more.send").await.expect("due"), Some(later));
    assert!(claim(c, t0, "more-w4", Some("more.send"), &[]).await.is_none(), "deferred");
    let got = claim(c, later, "more-w4", Some("more.send"), &[]).await.expect("due again");
    assert_eq!((got.id, got.attempts, got.last_error), (j2.id, 1, None), "a deferral is not an attempt");
    assert_eq!(db::jobs::oldest_queued(c).await.expect("oldest"), Some(ago(7200)));

    // Several jobs in one claim, in the order single claims would take them; done together.
    let batch: Vec<db::jobs::JobRow> = [(0, 30), (9, 10), (0, 40), (0, 20)]
        .into_iter()
        .map(|(priority, age)| job_row("more.batch", Some(zion.id), priority, ago(age), ago(age)))
        .collect();
    for j in &batch {
        db::jobs::insert(c, j).await.expect("job");
    }
    let filter = db::jobs::ClaimFilter { kind: Some("more.batch"), skip_churches: &[] };
    let got = db::jobs::claim_many_where(c, t0, lease, "more-w5", &filter, 3).await.expect("claim many");
    assert_eq!(
        got.iter().map(|j| (j.id, j.attempts, j.leased_by.as_deref())).collect::<Vec<_>>(),
        vec![(batch[1].id, 1, Some("more-w5")), (batch[2].id, 1, Some("more-w5")), (batch[0].id, 1, Some("more-w5"))],
        "the highest priority first, then the oldest; no more than asked"
    );
    let rest = db::jobs::claim_many_where(c, t0, lease, "more-w6", &filter, 16).await.expect("claim many");
    assert_eq!(rest.iter().map(|j| j.id).collect::<Vec<_>>(), vec![batch[3].id], "what is left, once");
    let skip = [zion.id];
    let none = db::jobs::ClaimFilter { kind: Some("more.batch"), skip_churches: &skip };
    let refused = db::jobs::claim_many_where(c, t0 + Duration::hours(1), lease, "more-w7", &none, 16).await;
    assert!(refused.expect("claim many").is_empty(), "Zion skipped");
    let ids: Vec<JobId> = batch.iter().map(|j| j.id).collect();
    assert_eq!(db::jobs::complete_many(c, &ids, "more-w5").await.expect("complete"), 3, "only w5's");
    assert_eq!(db::jobs::complete_many(c, &ids, "more-w5").await.expect("complete"), 0, "once");
    assert!(db::jobs::complete(c, batch[3].id, "more-w6").await.expect("complete"));
    assert_eq!(db::jobs::next_due_of(c, "more.batch").await.expect("due"), None, "all done");

    // members::delete erases the member's conversation, messages and files.
    assert!(!db::members::delete(c, zion.id, anna.id).await.expect("delete"), "not Zion's");
    assert!(db::members::delete(c, hope.id, anna.id).await.expect("delete"));
    assert!(!db::members::delete(c, hope.id, anna.id).await.expect("delete"), "once");
    assert!(db::members::get(c, hope.id, anna.id).await.expect("get").is_none());
    assert_eq!(db::conversations::find_for_member(c, hope.id, anna.id).await.expect("find"), None);
    assert!(db::conversations::get(c, hope.id, conv.id).await.expect("get").is_none());
    assert!(db::conversations::get_many(c, hope.id, &[conv.id]).await.expect("get_many").is_empty(), "tenancy");
    assert!(db::messages::get_for_job(c, o1.id).await.expect("get").is_none());
    assert!(db::messages::find_by_provider_id(c, "more-prov-1").await.expect("find").is_none());
    assert!(db::attachments::of_message(c, m_in.id).await.expect("of message").is_empty());
    assert!(db::attachments::find_by_link_token(c, "more-link-token").await.expect("token").is_none());
    assert_eq!(library(c, hope.id, all_of(), None, 10).await, vec![b0.id], "Bob's file stays");
    assert!(db::members::get(c, hope.id, bob.id).await.expect("get").is_some());
    drop(pooled);

    notify_story(&db).await;
}

/// NOTIFY is delivered on commit (PostgreSQL; a no-op on SQLite), and `listen` hands payloads
/// over until cancelled.
async fn notify_story(db: &Db) {
    const CHANNEL: &str = "koinonia_contract";
    assert_eq!(db::notify::shared(db), db.is_postgres());
    let mut listener = match db {
        Db::Postgres(pool) => {
            let mut l = sqlx::postgres::PgListener::connect_with(pool).await.expect("listener");
            l.listen(CHANNEL).await.expect("listen");
            Some(l)
        }
        Db::Sqlite(_) => None,
    };
    {
        let mut tx = db.begin().await.expect("begin");
        db::notify::notify(&mut tx.conn(), CHANNEL, "rolled back").await.expect("notify");
    }
    let mut tx = db.begin().await.expect("begin");
    db::notify::notify(&mut tx.conn(), CHANNEL, "committed").await.expect("notify");
    if let Some(l) = listener.as_mut() {
        let early = tokio::time::timeout(StdDuration::from_millis(300), l.recv()).await;
        assert!(early.is_err(), "nothing before the commit: {early:?}");
    }
    tx.commit().await.expect("commit");
    if let Some(l) = listener.as_mut() {
        let n = tokio::time::timeout(StdDuration::from_secs(10), l.recv())
            .await
            .expect("delivered on commit")
            .expect("notification");
        assert_eq!((n.channel(), n.payload()), (CHANNEL, "committed"), "the rolled-back one never comes");
    }

    const LISTENED: &str = "koinonia_contract_listen";
    let shutdown = CancellationToken::new();
    let (sender, mut received) = tokio::sync::mpsc::unbounded_channel::<String>();
    let task = tokio::spawn({
        let (db, shutdown) = (db.clone(), shutdown.clone());
        async move {
            db::notify::listen(&db, LISTENED, shutdown, move |p| {
                let _ = sender.send(p.to_owned());
            })
            .await;
        }
    });
    if db.is_postgres() {
        // LISTEN starts in the background: notify until it hears.
        let mut heard = None;
        for _ in 0..50 {
            let mut pooled = db.acquire().await.expect("acquire");
            db::notify::notify(&mut pooled.conn(), LISTENED, "ping").await.expect("notify");
            drop(pooled);
            if let Ok(p) = tokio::time::timeout(StdDuration::from_millis(200), received.recv()).await {
                heard = p;
                break;
            }
        }
        assert_eq!(heard.as_deref(), Some("ping"));
        shutdown.cancel();
    }
    // On SQLite, listen returns at once (the token was never cancelled).
    tokio::time::timeout(StdDuration::from_secs(10), task).await.expect("listen returns").expect("no panic");
    while let Some(p) = received.recv().await {
        assert_eq!(p, "ping");
    }
}

/// Group conversations and the recipients of a reply to one: the same group in any order is one
/// conversation; a member's own conversation stays apart; deliveries move forward only; a member
/// leaving hands the group on.
async fn group_story(db: &Db) {
    let now = clock::now();
    let mut pooled = db.acquire().await.expect("acquire");
    let c = &mut pooled.conn();
    let church = church_row("Groups", "+15551239100", now);
    db::churches::insert(c, &church).await.expect("church");
    let mut people = Vec::new();
    for hash in 91..=93u8 {
        people.push(
            db::members::find_or_create(c, &member_row(church.id, hash, sealed(&[], hash), now))
                .await
                .expect("member")
                .id,
        );
    }
    let (ann, ben, cat) = (people[0], people[1], people[2]);
    let own = db::conversations::find_or_create(c, &conversation_row(church.id, ann, now)).await.expect("own");
    let group = db::conversations::find_or_create_group(c, church.id, &[ann, ben, cat], now).await.expect("group");
    assert_ne!(group, own.id, "a group is not a member's own conversation");
    assert_eq!(
        db::conversations::find_or_create_group(c, church.id, &[cat, ann, ben], now).await.expect("again"),
        group
    );
    assert_eq!(db::conversations::find_group(c, church.id, &[ben, cat, ann]).await.expect("find"), Some(group));
    assert_eq!(db::conversations::find_group(c, church.id, &[ann, ben]).await.expect("find"), None, "another set");
    assert_eq!(db::conversations::find_for_member(c, church.id, ann).await.expect("own"), Some(own.id));
    let again = db::conversations::find_or_create(c, &conversation_row(church.id, ann, now)).await.expect("own again");
    assert_eq!(again.id, own.id, "the group does not take the member's own conversation's place");
    let row = db::conversations::get(c, church.id, group).await.expect("get").expect("some");
    assert!(row.is_group);
    assert_eq!(row.member_id, ann, "the group shows its first member");
    assert_eq!(row.participants.iter().map(|p| p.member_id).collect::<Vec<_>>(), [ann, ben, cat]);
    assert_eq!(db::conversations::groups_of(c, church.id, ben).await.expect("groups"), [group]);
    assert!(db::conversations::groups_of(c, ChurchId::new(), ben).await.expect("groups").is_empty(), "tenancy");

    let conv = db::conversations::ConversationRow { id: group, ..own.clone() }; // the group, for message_row
    let reply = db::messages::MessageRow { member_id: ann, ..message_row(&conv, Direction::Outbound, now) };
    db::messages::insert(c, &reply).await.expect("reply");
    let said = db::messages::MessageRow { member_id: ann, ..message_row(&conv, Direction::Inbound, now) };
    db::messages::insert(c, &said).await.expect("ann's message");
    assert_eq!(ids(&db::messages::own_in_groups(c, church.id, ann).await.expect("own"), |m| m.id), [said.id]);
    db::recipients::insert_many(c, church.id, reply.id, &[ann, ben], now).await.expect("recipients");
    assert_eq!(db::recipients::for_send(c, reply.id).await.expect("for send").len(), 2);
    let delivered = Some(DeliveryStatus::Delivered);
    assert_eq!(
        db::recipients::apply(c, reply.id, Some(ann), Some("delivered"), delivered, None, now).await.expect("apply"),
        1
    );
    let sent = Some(DeliveryStatus::Sent);
    db::recipients::apply(c, reply.id, Some(ann), Some("sent"), sent, None, now).await.expect("late report");
    let failed = Some(DeliveryStatus::Failed);
    db::recipients::apply(c, reply.id, Some(ben), Some("delivery_failed"), failed, Some("Undeliverable (40008)"), now)
        .await
        .expect("failed");
    let mut statuses = db::recipients::statuses(c, reply.id).await.expect("statuses");
    statuses.sort_by_key(|s| s.as_str());
    assert_eq!(statuses, [DeliveryStatus::Delivered, DeliveryStatus::Failed], "never moved back");
    let rows = db::recipients::of_messages(c, church.id, &[reply.id]).await.expect("rows");
    assert_eq!(
        rows.iter().find(|r| r.member_id == ben).and_then(|r| r.failure_reason.as_deref()),
        Some("Undeliverable (40008)")
    );
    assert!(db::recipients::of_messages(c, ChurchId::new(), &[reply.id]).await.expect("rows").is_empty(), "tenancy");

    // Ann leaves: the group passes to Ben with the leaders' replies; her own message goes with her.
    assert_eq!(db::conversations::leave_groups(c, church.id, ann).await.expect("leave"), [group]);
    assert!(db::members::delete(c, church.id, ann).await.expect("erase"));
    let row = db::conversations::get(c, church.id, group).await.expect("get").expect("the group stays");
    assert_eq!((row.member_id, row.participants.len()), (ben, 2));
    assert!(db::messages::get(c, church.id, reply.id).await.expect("get").is_some(), "the reply stays");
    assert!(db::messages::get(c, church.id, said.id).await.expect("get").is_none(), "hers went");
    assert_eq!(db::recipients::statuses(c, reply.id).await.expect("statuses"), [DeliveryStatus::Failed], "Ben's");
}

/// Push subscriptions and the notification choices: one row per browser, a leader's newest kept,
/// the job written only where someone chose push, the e-mail recipients, the waiting sweep.
async fn notification_story(db: &Db) {
    use db::push_subscriptions as subs;
    let now = clock::now();
    let mut pooled = db.acquire().await.expect("acquire");
    let c = &mut pooled.conn();
    let church = church_row("Notified", "+15551239200", now);
    db::churches::insert(c, &church).await.expect("church");
    let pastor = leader_row(church.id, "pastor@notified.test", true, now);
    let helper = leader_row(church.id, "helper@notified.test", false, now);
    db::leaders::insert(c, &pastor).await.expect("pastor");
    db::leaders::insert(c, &helper).await.expect("helper");
    let sub = |leader: LeaderId, n: i64| subs::SubscriptionRow {
        id: uuid::Uuid::now_v7(),
        church_id: church.id,
        leader_id: leader,
        endpoint: format!("https://push.example.org/{n}"),
        p256dh: "key".into(),
        auth: "auth".into(),
        created_at: now + Duration::seconds(n),
        last_used_at: None,
    };
    let job = |n: i64| db::jobs::JobRow {
        church_id: Some(church.id),
        ..job_row("push.notify", None, 0, now, now + Duration::seconds(n))
    };
    assert!(!subs::insert_job_if_subscribed(c, &job(0)).await.expect("job"), "nobody subscribed: no job");
    for n in 1..=3 {
        subs::upsert(c, &sub(pastor.id, n)).await.expect("subscribe");
    }
    assert!(!subs::insert_job_if_subscribed(c, &job(1)).await.expect("job"), "subscribed, but push not chosen");
    assert!(db::leaders::set_notify_choice(c, church.id, pastor.id, Some(true), Some(true)).await.expect("choose"));
    assert!(subs::insert_job_if_subscribed(c, &job(2)).await.expect("job"));
    assert_eq!(subs::of_push_leaders(c, church.id).await.expect("subs").len(), 3);
    // The same browser signed in by another leader moves to them.
    subs::upsert(c, &sub(helper.id, 3)).await.expect("moved");
    assert_eq!(subs::count_for_leader(c, church.id, pastor.id).await.expect("count"), 2);
    assert_eq!(subs::of_push_leaders(c, church.id).await.expect("subs").len(), 2, "the helper did not choose push");
    assert_eq!(subs::keep_newest(c, pastor.id, 1).await.expect("keep"), 1);
    let left = subs::of_push_leaders(c, church.id).await.expect("subs");
    assert_eq!(left.iter().map(|s| s.endpoint.as_str()).collect::<Vec<_>>(), ["https://push.example.org/2"]);
    subs::touch(c, &[left[0].id], now).await.expect("touch");
    assert!(subs::of_push_leaders(c, church.id).await.expect("subs")[0].last_used_at.is_some());
    assert!(!subs::delete_by_endpoint(c, ChurchId::new(), pastor.id, "https://push.example.org/2")
        .await
        .expect("other church"));
    assert!(subs::delete_by_endpoint(c, church.id, pastor.id, "https://push.example.org/2").await.expect("delete"));
    assert!(subs::delete(c, sub(helper.id, 3).id).await.is_ok());
    assert_eq!(db::leaders::email_recipients(c, church.id).await.expect("emails"), ["pastor@notified.test"]);
    assert!(db::churches::set_push_include_text(c, church.id, true).await.expect("set"));
    assert_eq!(db::churches::push_include_text(c, church.id).await.expect("get"), Some(true));

    // The e-mail sweep's read and claim.
    let member =
        db::members::find_or_create(c, &member_row(church.id, 201, sealed(&[], 201), now)).await.expect("member");
    let conv = db::conversations::find_or_create(c, &conversation_row(church.id, member.id, now)).await.expect("conv");
    let moved = db::conversations::Moved { church: church.id, id: conv.id, preview: "Hi".into(), messages: 1 };
    db::conversations::record_messages(c, now, &[moved]).await.expect("unread");
    let later = now + Duration::minutes(20);
    assert!(waiting(c, now).await.is_empty(), "not waited long enough");
    let due = waiting(c, later).await;
    assert_eq!(due.iter().map(|w| w.id).collect::<Vec<_>>(), [conv.id]);
    assert!(db::conversations::claim_email(c, &due[0], later - Duration::hours(1), later).await.expect("claim"));
    assert!(
        !db::conversations::claim_email(c, &due[0], later - Duration::hours(1), later).await.expect("again"),
        "once"
    );
    assert!(waiting(c, later).await.is_empty(), "told of");
    db::conversations::release_email(c, conv.id, later).await.expect("release");
    assert_eq!(waiting(c, later).await.len(), 1, "given back");
    assert!(db::conversations::mark_read(c, church.id, conv.id).await.expect("read"));
    assert!(waiting(c, later).await.is_empty(), "read: nothing waits");
}

#[tokio::test]
async fn contract_on_sqlite() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::connect(&DatabaseKind::Sqlite { path: dir.path().join("c.db") }).await.expect("connect");
    db.migrate().await.expect("migrate");
    story(db.clone()).await;
    group_story(&db).await;
    story_more(db.clone()).await;
    // Last: it leaves a queued job the job claims of story_more would meet.
    notification_story(&db).await;
}

#[tokio::test]
async fn contract_on_postgres() {
    let Some(admin) = test_database_url() else { return };
    let url = fresh_postgres_database(&admin).await;
    let db = Db::connect(&DatabaseKind::Postgres { url: SecretString::from(url) }).await.expect("connect");
    db.migrate().await.expect("migrate");
    story(db.clone()).await;
    group_story(&db).await;
    story_more(db.clone()).await;
    // Last: it leaves a queued job the job claims of story_more would meet.
    notification_story(&db).await;
}

/// The e-mail sweep's read at `at`: 15 minutes' wait, a day's activity, an hour between e-mails.
async fn waiting(c: &mut db::Conn<'_>, at: DateTime<Utc>) -> Vec<db::conversations::Waiting> {
    let (before, active, told) = (at - Duration::minutes(15), at - Duration::days(1), at - Duration::hours(1));
    db::conversations::waiting(c, before, active, told, 10).await.expect("waiting")
}

/// A PostgreSQL connection the server closed while it sat idle in the pool (a restart, a
/// firewall's idle timeout) is found dead and replaced before it is handed out: the next query
/// succeeds. (Connections handed back a moment ago are not pinged again; see `Db::connect`.)
#[tokio::test]
async fn a_connection_dropped_while_idle_is_replaced() {
    let Some(admin) = test_database_url() else { return };
    let url = fresh_postgres_database(&admin).await;
    let db = Db::connect(&DatabaseKind::Postgres { url: SecretString::from(url) }).await.expect("connect");
    let Db::Postgres(pool) = &db else { unreachable!("connected to PostgreSQL") };
    let pids = || async {
        let mut pids: Vec<i32> =
            sqlx::query_scalar("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
                .fetch_all(&mut *pool.acquire().await.expect("acquire"))
                .await
                .expect("backends");
        pids.sort_unstable();
        pids
    };
    let before = pids().await;
    assert_eq!(before.len(), 1, "one connection in the pool: {before:?}");

    let mut killer = <sqlx::PgConnection as sqlx::Connection>::connect(&admin).await.expect("admin connection");
    let killed: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
        .bind(before[0])
        .fetch_one(&mut killer)
        .await
        .expect("kill");
    assert!(killed, "the pool's connection was terminated");
    tokio::time::sleep(db::PING_WHEN_IDLE_FOR + StdDuration::from_millis(300)).await;

    db.ping().await.expect("the dead connection was replaced, not handed out");
    let after = pids().await;
    assert!(!after.contains(&before[0]), "a new backend serves the pool: {before:?} → {after:?}");
    db.close().await;
}
