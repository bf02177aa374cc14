//! The media store on both backends: streamed write, presigned read, tampering, delete.

use std::time::Duration;

use koinonia::domain::{AttachmentId, ChurchId, ConversationId};
use koinonia::media::store::ObjectInfo;

use crate::support::TestApp;

async fn write_read_delete(app: TestApp) {
    let store = &app.state.store;
    let key = store.key_for(ChurchId::new(), ConversationId::new(), AttachmentId::new(), "Café menu.pdf");
    let info = ObjectInfo {
        content_type: "application/pdf",
        original_filename: "Café menu.pdf",
        conversation_id: ConversationId::new(),
        uploaded_at: koinonia::clock::now(),
    };
    // 9 MiB in uneven chunks: more than one part on both backends.
    let data: Vec<u8> = (0..9 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    let mut writer = store.writer(&key, &info).await.expect("writer");
    for chunk in data.chunks(777_777) {
        writer.write(chunk).await.expect("write");
    }
    assert_eq!(writer.finish().await.expect("finish"), data.len() as u64);
    assert_eq!(store.size_of(&key).await.expect("head"), Some(data.len() as u64));

    let url =
        store.presign_get(&key, Duration::from_secs(60), "application/pdf", "Café menu.pdf").await.expect("presign");
    let res = crate::support::http_get(&url).await.expect("GET");
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/pdf");
    assert_eq!(res.bytes().await.expect("bytes").as_ref(), data.as_slice());

    // A changed signature is refused.
    let (base, sig) = url.rsplit_once(if app.s3.is_some() { "X-Amz-Signature=" } else { "sig=" }).expect("signed url");
    let flipped = match sig.strip_prefix('0') {
        Some(rest) => format!("1{rest}"),
        None => format!("0{}", sig.get(1..).unwrap_or_default()),
    };
    let tampered = format!("{base}{}{flipped}", if app.s3.is_some() { "X-Amz-Signature=" } else { "sig=" });
    assert_eq!(crate::support::http_get(&tampered).await.expect("GET").status(), 403);

    // An aborted upload leaves nothing behind.
    let aborted_key = store.key_for(ChurchId::new(), ConversationId::new(), AttachmentId::new(), "half.bin");
    let mut writer = store.writer(&aborted_key, &info).await.expect("writer");
    writer.write(&data[..6 * 1024 * 1024]).await.expect("write");
    writer.abort().await;
    assert_eq!(store.size_of(&aborted_key).await.expect("head"), None);

    store.delete(&key).await.expect("delete");
    assert_eq!(store.size_of(&key).await.expect("head"), None);
    store.delete(&key).await.expect("deleting twice is fine");
    assert!(app.stored_files().is_empty(), "{:?}", app.stored_files());
}

crate::matrix!(store_round_trip, [local => (Sqlite, Local), s3 => (Sqlite, S3)], write_read_delete);

#[tokio::test]
async fn expired_local_links_are_refused() {
    let Some(app) = TestApp::spawn(crate::support::Backend::Sqlite, crate::support::Store::Local).await else { return };
    let store = &app.state.store;
    let key = store.key_for(ChurchId::new(), ConversationId::new(), AttachmentId::new(), "a.txt");
    let info = ObjectInfo {
        content_type: "text/plain",
        original_filename: "a.txt",
        conversation_id: ConversationId::new(),
        uploaded_at: koinonia::clock::now(),
    };
    let mut writer = store.writer(&key, &info).await.expect("writer");
    writer.write(b"hello").await.expect("write");
    writer.finish().await.expect("finish");
    let url = store.presign_get(&key, Duration::from_secs(1), "text/plain", "a.txt").await.expect("presign");
    assert_eq!(crate::support::http_get(&url).await.expect("GET").status(), 200);
    // Changing the type or the name breaks the signature too.
    let other_type = url.replace("ct=text%2Fplain", "ct=text%2Fhtml");
    assert_eq!(crate::support::http_get(&other_type).await.expect("GET").status(), 403);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(crate::support::http_get(&url).await.expect("GET").status(), 403, "expired");
}
