//! The read queries a leader waits for — the thread, the inbox, its search and the library — are
//! planned on the intended indexes on both databases, so their cost follows the page, not the
//! church. Each query's own SQL is explained with real parameters over two seeded churches
//! (`ANALYZE`d; on PostgreSQL with table scans priced as they are at a church's real size); on
//! PostgreSQL the thread's statements
//! also run under `EXPLAIN ANALYZE`, which must show no row of another conversation read and
//! thrown away.

use chrono::Utc;
use sha2::{Digest, Sha256};

use super::{attachments, conversations, messages, Conn, Db};
use crate::config::DatabaseKind;
use crate::domain::{AttachmentStatus, ChurchId, ConversationId, Direction, MediaKind, MemberId, MessageId};

/// Conversations of the big church (reading all of it costs more than a page) and of the small
/// one next to it (a page of its files must not be found by walking the big one's).
const BIG: usize = 2000;
const SMALL: usize = 100;
/// Messages of the conversation whose thread is read (the others have two).
const THREAD_MESSAGES: usize = 40;

struct Seeded {
    /// The small church, with the thread that is read.
    church: ChurchId,
    big: ChurchId,
    conversation: ConversationId,
    first: MessageId,
    last: MessageId,
}

async fn seed(db: &Db) -> Seeded {
    let now = Utc::now();
    let mut tx = db.begin().await.expect("tx");
    let c = &mut tx.conn();
    let mut result = None;
    let mut big = None;
    for (n, number) in ["+15550100001", "+15550100002"].into_iter().enumerate() {
        let church = super::churches::ChurchRow {
            id: ChurchId::new(),
            name: format!("Church {n}"),
            phone_number: number.into(),
            messaging_profile_id: None,
            time_zone: "UTC".into(),
            created_at: now,
        };
        super::churches::insert(c, &church).await.expect("church");
        let conversations = if n == 0 { SMALL } else { BIG };
        if n == 1 {
            big = Some(church.id);
        }
        for i in 0..conversations {
            let member = super::members::find_or_create(
                c,
                &super::members::MemberRow {
                    id: MemberId::new(),
                    church_id: church.id,
                    phone_hash: format!("hash-{n}-{i}").into_bytes(),
                    phone_ciphertext: vec![0; 40],
                    phone_last4: format!("{:04}", i),
                    first_name: Some(format!("Member{i}")),
                    last_name: None,
                    opted_out: false,
                    opted_out_at: None,
                    unreachable: false,
                    unreachable_reason: None,
                    created_at: now,
                    updated_at: now,
                },
            )
            .await
            .expect("member");
            let conv = conversations::find_or_create(
                c,
                &conversations::ConversationRow {
                    id: ConversationId::new(),
                    church_id: church.id,
                    member_id: member.id,
                    last_message_at: now - chrono::Duration::seconds(i as i64),
                    last_message_preview: String::new(),
                    unread_count: 0,
                    created_at: now,
                    updated_at: now,
                    group_key: None,
                },
            )
            .await
            .expect("conversation");
            let target = n == 0 && i == SMALL / 2;
            let count = if target { THREAD_MESSAGES } else { 2 };
            let rows: Vec<messages::MessageRow> = (0..count)
                .map(|m| {
                    messages::MessageRow::new(church.id, conv.id, member.id, Direction::Inbound, format!("m{m}"), now)
                })
                .collect();
            messages::insert_many(c, &rows).await.expect("messages");
            for (k, m) in rows.iter().enumerate().filter(|(k, _)| k % 2 == 0) {
                let row = attachments::AttachmentRow {
                    status: AttachmentStatus::Stored,
                    media_type: Some(MediaKind::Image),
                    ..attachments::AttachmentRow::new(church.id, conv.id, m.id, 0, format!("p{k}.jpg"), now)
                };
                attachments::insert(c, &row).await.expect("attachment");
            }
            if target {
                let first = rows.first().map(|m| m.id).expect("rows");
                let last = rows.last().map(|m| m.id).expect("rows");
                result = Some((church.id, conv.id, first, last));
            }
        }
    }
    tx.commit().await.expect("commit");
    let mut pooled = db.acquire().await.expect("conn");
    super::run!(&mut pooled.conn(), |q| sqlx::query("ANALYZE").execute(&mut **q).await.map(|_| ())).expect("analyze");
    let (church, conversation, first, last) = result.expect("seeded");
    Seeded { church, big: big.expect("seeded"), conversation, first, last }
}

/// The plan of `sql` with its parameters, one line per step.
macro_rules! explain {
    ($c:expr, $analyze:expr, $sql:expr $(, $bind:expr)*) => {{
        let prefix = match ($c, $analyze) {
            (Conn::Sqlite(_), _) => "EXPLAIN QUERY PLAN ",
            (Conn::Postgres(_), false) => "EXPLAIN (COSTS OFF) ",
            (Conn::Postgres(_), true) => "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) ",
        };
        let sql = format!("{prefix}{}", $sql);
        let lines: Vec<String> = match $c {
            Conn::Sqlite(q) => {
                let rows: Vec<(i64, i64, i64, String)> =
                    sqlx::query_as(&sql)$(.bind($bind))*.fetch_all(&mut **q).await.expect("explain");
                rows.into_iter().map(|r| r.3).collect()
            }
            Conn::Postgres(q) => sqlx::query_scalar(&sql)$(.bind($bind))*.fetch_all(&mut **q).await.expect("explain"),
        };
        lines.join("\n")
    }};
}

/// [`explain!`] of a statement only PostgreSQL runs (an array of hashes), on PostgreSQL.
async fn explain_postgres(
    q: &mut sqlx::PgConnection,
    analyze: bool,
    sql: &str,
    church: ChurchId,
    hashes: &[Vec<u8>],
) -> String {
    let prefix =
        if analyze { "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) " } else { "EXPLAIN (COSTS OFF) " };
    let sql = format!("{prefix}{sql}");
    let lines: Vec<String> =
        sqlx::query_scalar(&sql).bind(church).bind(hashes).fetch_all(&mut *q).await.expect("explain");
    lines.join("\n")
}

fn assert_uses(plan: &str, index: &str, what: &str) {
    assert!(plan.contains(index), "{what} should use {index}; plan:\n{plan}");
    for table in ["messages", "attachments", "conversations"] {
        assert!(!plan.contains(&format!("Seq Scan on {table}")), "{what} scans {table}; plan:\n{plan}");
        // SQLite: "SCAN t" without an index reads the whole table.
        let full = plan.lines().any(|l| l.trim_start().starts_with(&format!("SCAN {table}")) && !l.contains("INDEX"));
        assert!(!full, "{what} scans {table}; plan:\n{plan}");
    }
}

async fn check(db: &Db) {
    let s = seed(db).await;
    let mut pooled = db.acquire().await.expect("conn");
    let c = &mut pooled.conn();
    let none_id: Option<MessageId> = None;
    let none_at: Option<chrono::DateTime<Utc>> = None;
    let none_conv: Option<ConversationId> = None;
    let none_text: Option<String> = None;
    let none_bytes: Option<Vec<u8>> = None;
    let none_kind: Option<MediaKind> = None;
    let none_member: Option<MemberId> = None;
    let none_att: Option<crate::domain::AttachmentId> = None;
    let postgres = matches!(c, Conn::Postgres(_));
    if let Conn::Postgres(q) = &mut *c {
        // A few hundred rows fit in a page or two, where reading the table beats any index; at a
        // church's real size it does not. Scans are priced out so the plan shows which index
        // serves the query (a query no index serves still shows its Seq Scan).
        sqlx::query("SET enable_seqscan = off").execute(&mut **q).await.expect("set");
    }

    // The thread: header, a page of messages, their files.
    let header = explain!(&mut *c, false, conversations::get_sql(), s.church, s.conversation);
    assert!(!header.contains("Seq Scan on conversations") && !header.contains("SCAN c\n"), "header: {header}");
    let page = explain!(&mut *c, postgres, messages::page_sql(), s.church, s.conversation, none_id, 50_i64);
    assert_uses(&page, "messages_thread", "a page of the thread");
    let files = explain!(&mut *c, postgres, attachments::for_messages_sql(), s.church, s.conversation, s.first, s.last);
    assert_uses(&files, "attachments_thread", "the files of a page");
    if postgres {
        // Nothing of another conversation (or church) is read and thrown away.
        for plan in [&page, &files] {
            assert!(!plan.contains("Rows Removed by Filter"), "the thread read filters out rows:\n{plan}");
        }
    }

    // A webhook batch's known members: by their numbers' blind index, then their own
    // conversations — never the church's conversations one by one (the group index must not
    // serve `group_key IS NULL`).
    let hashes = vec![b"hash-1-1".to_vec(), b"hash-1-2".to_vec()];
    let known = if let Conn::Postgres(q) = &mut *c {
        explain_postgres(q, false, &super::members::known_contacts_sql(true, 2), s.big, &hashes).await
    } else {
        explain!(&mut *c, false, super::members::known_contacts_sql(false, 2), s.big, &hashes[0], &hashes[1])
    };
    assert_uses(&known, "conversations_church_member", "the known members of a batch");
    assert!(!known.contains("conversations_church_group") && !known.contains("conversations_inbox"), "{known}");
    assert_conversation_by_member(&known);

    // What one member wrote to groups (their export): through the groups' threads.
    let own = explain!(&mut *c, false, messages::own_in_groups_sql(), s.church, MemberId::new());
    assert_uses(&own, "messages_thread", "a member's messages in groups");

    // The inbox, newest first, and its search by name.
    let inbox = explain!(
        &mut *c,
        false,
        conversations::list_sql(),
        s.big,
        none_at,
        none_conv,
        none_text.clone(),
        none_text.clone(),
        none_bytes.clone(),
        51_i64
    );
    assert_uses(&inbox, "conversations_inbox", "the inbox");
    let search = explain!(
        &mut *c,
        false,
        conversations::list_sql(),
        s.church,
        none_at,
        none_conv,
        Some("%member1%".to_owned()),
        none_text.clone(),
        none_bytes.clone(),
        51_i64
    );
    // A name cannot be looked up by index: the small church's search walks its own conversations
    // in inbox order, or its own members — never the big church's too.
    let bounded = ["conversations_inbox", "members_church_phone", "members_last4"].iter().any(|i| search.contains(i));
    assert!(bounded && !search.contains("members_pkey on members"), "the search reads beyond the church:\n{search}");
    assert_uses(&search, "", "the inbox search");
    // A search by number starts from the church's members by index: four last digits, or the
    // whole number's blind index.
    let four: Option<&str> = Some("0042");
    let digits = explain!(
        &mut *c,
        false,
        conversations::number_search_sql(true),
        s.big,
        none_at,
        none_conv,
        four,
        Some(b"hash-1-42".to_vec()),
        51_i64
    );
    assert!(!digits.contains("conversations_inbox"), "the number search walks the inbox:\n{digits}");
    assert_uses(&digits, "members_last4", "the number search");
    let by_hash = digits.contains("members_church_phone") || digits.contains("phone_hash=?");
    assert!(by_hash, "the whole number is found by its blind index:\n{digits}");

    // The library, and the library of one kind of file.
    for kind in [none_kind, Some(MediaKind::Image)] {
        let library = explain!(
            &mut *c,
            false,
            attachments::library_sql(),
            s.church,
            kind,
            none_at,
            none_at,
            none_conv,
            none_member,
            none_att,
            51_i64
        );
        assert_uses(&library, "attachments_church", "the library");
    }
}

/// SQLite without statistics (a deployment never runs ANALYZE): a batch's known members are
/// still found by their numbers, not by walking the church's conversations through the groups'
/// index (`group_key IS NULL` is an equality SQLite would serve from it, were it not partial).
#[tokio::test]
async fn known_members_are_found_by_number_without_statistics() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::connect(&DatabaseKind::Sqlite { path: dir.path().join("plans.db") }).await.expect("sqlite");
    db.migrate().await.expect("migrate");
    let mut pooled = db.acquire().await.expect("conn");
    let c = &mut pooled.conn();
    let known =
        explain!(&mut *c, false, super::members::known_contacts_sql(false, 2), ChurchId::new(), vec![1u8], vec![2u8]);
    assert_uses(&known, "conversations_church_member", "the known members of a batch");
    assert!(!known.contains("conversations_church_group"), "{known}");
    assert_conversation_by_member(&known);
}

/// Each member's own conversation is looked up by church and member, never by church alone (a
/// walk of the church's conversations per member).
fn assert_conversation_by_member(plan: &str) {
    let lines: Vec<&str> = plan.lines().collect();
    for (i, line) in lines.iter().enumerate().filter(|(_, l)| l.contains("conversations_church_member")) {
        // SQLite names the columns on the same line; PostgreSQL on the "Index Cond" line after.
        let cond = if line.contains("SEARCH") { *line } else { lines.get(i + 1).copied().unwrap_or_default() };
        assert!(cond.contains("member_id"), "conversations looked up by church alone:\n{plan}");
    }
}

#[tokio::test]
async fn read_queries_use_their_indexes_on_sqlite() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::connect(&DatabaseKind::Sqlite { path: dir.path().join("plans.db") }).await.expect("sqlite");
    db.migrate().await.expect("migrate");
    check(&db).await;
}

#[tokio::test]
async fn read_queries_use_their_indexes_on_postgres() {
    let Some(scratch) = Scratch::create().await else { return };
    check(&scratch.db).await;
    scratch.drop_database().await;
}

/// PostgreSQL on a young database (no `ANALYZE` yet: a new deployment's first minute, before
/// autovacuum looks, when its statistics put a handful of members in any church): a batch's
/// known members are still looked up one by one in the unique index of their numbers, not found
/// by reading every member of the church (which a join of the hashes did, through the index by
/// last digits).
#[tokio::test]
async fn known_members_are_found_by_number_on_a_young_postgres_database() {
    let Some(scratch) = Scratch::create().await else { return };
    let church = ChurchId::new();
    let mut pooled = scratch.db.acquire().await.expect("conn");
    let c = &mut pooled.conn();
    let Conn::Postgres(q) = c else { panic!("postgres") };
    sqlx::query(
        "INSERT INTO churches (id, name, phone_number, time_zone, created_at) VALUES ($1, 'Young', '+15550100009', 'UTC', now())",
    )
    .bind(church)
    .execute(&mut **q)
    .await
    .expect("church");
    sqlx::query(
        "INSERT INTO members (id, church_id, phone_hash, phone_ciphertext, phone_last4, created_at, updated_at)
         SELECT gen_random_uuid(), $1, sha256(i::text::bytea), '\\x00', lpad(i::text, 4, '0'), now(), now()
         FROM generate_series(1, 2000) AS i",
    )
    .bind(church)
    .execute(&mut **q)
    .await
    .expect("members");
    let hashes: Vec<Vec<u8>> = (1..=20).map(|i: u32| Sha256::digest(i.to_string().as_bytes()).to_vec()).collect();
    let known =
        explain_postgres(q, true, &super::members::known_contacts_sql(true, hashes.len()), church, &hashes).await;
    assert!(known.contains("members_church_phone"), "members not found by their numbers:\n{known}");
    assert!(!known.contains("members_last4"), "the church's members read through their last digits:\n{known}");
    assert!(!known.contains("Rows Removed by Filter"), "members read and thrown away:\n{known}");
    drop(pooled);
    scratch.drop_database().await;
}

/// A database of its own on the PostgreSQL server of `TEST_DATABASE_URL`, migrated; `None`
/// (the test skipped) without one, outside CI.
struct Scratch {
    db: Db,
    admin: sqlx::PgConnection,
    name: String,
}

impl Scratch {
    async fn create() -> Option<Self> {
        let Ok(admin) = std::env::var("TEST_DATABASE_URL") else {
            assert!(std::env::var("CI").as_deref() != Ok("true"), "TEST_DATABASE_URL is required in CI");
            eprintln!("skipped: TEST_DATABASE_URL is not set");
            return None;
        };
        use sqlx::Connection;
        let name = format!("koinonia_plans_{}", uuid::Uuid::new_v4().simple());
        let mut conn = sqlx::PgConnection::connect(&admin).await.expect("postgres");
        sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut conn).await.expect("create database");
        let mut url = url::Url::parse(&admin).expect("url");
        url.set_path(&format!("/{name}"));
        let kind = DatabaseKind::Postgres { url: secrecy::SecretString::from(url.to_string()) };
        let db = Db::connect(&kind).await.expect("connect");
        db.migrate().await.expect("migrate");
        Some(Self { db, admin: conn, name })
    }

    async fn drop_database(mut self) {
        self.db.close().await;
        let _ = sqlx::query(&format!("DROP DATABASE {} WITH (FORCE)", self.name)).execute(&mut self.admin).await;
    }
}
