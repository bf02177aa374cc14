//! Every `db::` function, run on SQLite and on PostgreSQL: the shared SQL must mean the same on
//! both (the stand-in for compile-time checked queries).

use chrono::Duration;
use koinonia::clock;
use koinonia::config::DatabaseKind;
use koinonia::db::{self, Db};
use koinonia::domain::*;
use secrecy::SecretString;
use sqlx::types::Json;

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
        },
    )
    .await
    .expect("conversation");
    let later = now + Duration::seconds(5);
    db::conversations::record_message(c, church.id, conv.id, later, "hello", 1).await.expect("record");
    db::conversations::record_message(c, church.id, conv.id, now, "older event", 1).await.expect("record");
    let row = db::conversations::get(c, church.id, conv.id).await.expect("get").expect("some");
    assert_eq!((row.last_message_at, row.unread_count), (later, 2), "last_message_at never goes back");
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
    };
    db::attachments::insert(c, &att).await.expect("attachment");
    db::attachments::note_problem(c, att.id, "HTTP 404").await.expect("note");
    let stored = db::attachments::Stored {
        storage_key: "k".into(),
        media_type: "image".into(),
        mime_type: "image/jpeg".into(),
        name: "y.jpg".into(),
        size_bytes: 10,
        width: Some(4),
        height: Some(3),
        duration_seconds: Some(1.5),
        sha256: "ab".repeat(32),
    };
    assert!(db::attachments::mark_stored(c, att.id, &stored, now).await.expect("stored"));
    assert!(!db::attachments::mark_stored(c, att.id, &stored, now).await.expect("twice"), "only from pending");
    assert!(!db::attachments::mark_failed(c, att.id, "late").await.expect("failed"), "stored stays stored");
    let a = db::attachments::get(c, church.id, att.id).await.expect("get").expect("some");
    assert_eq!((a.status.as_str(), a.duration_seconds, a.failure_reason), ("stored", Some(1.5), None));
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

#[tokio::test]
async fn contract_on_sqlite() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::connect(&DatabaseKind::Sqlite { path: dir.path().join("c.db") }).await.expect("connect");
    db.migrate().await.expect("migrate");
    story(db).await;
}

#[tokio::test]
async fn contract_on_postgres() {
    let Some(admin) = test_database_url() else { return };
    let url = fresh_postgres_database(&admin).await;
    let db = Db::connect(&DatabaseKind::Postgres { url: SecretString::from(url) }).await.expect("connect");
    db.migrate().await.expect("migrate");
    story(db).await;
}
