//! ZIP exports of originals, streamed as they are built: each file's bytes flow from the store
//! into the archive and out to the client in small chunks, with no temporary copy, so memory
//! stays flat whatever the total size. Entries are stored, not compressed (media is compressed
//! already), and named `{date} {member}/{file name}`.

use async_zip::tokio::write::ZipFileWriter;
use async_zip::{Compression, ZipEntryBuilder};
use bytes::Bytes;
use futures::{AsyncWriteExt, Stream, StreamExt};
use tokio_util::io::ReaderStream;

use super::store::MediaStore;

/// Bytes buffered between the archive writer and the response.
const PIPE: usize = 256 * 1024;

/// A file to put in the archive, under `path`.
#[derive(Debug, Clone)]
pub struct Entry {
    pub key: String,
    pub path: String,
}

/// A small file made in memory (a JSON document, a transcript), put in the archive as is.
#[derive(Debug, Clone)]
pub struct Inline {
    pub path: String,
    pub bytes: Bytes,
}

/// The archive as a byte stream; it is written while it is read.
pub fn stream(store: MediaStore, entries: Vec<Entry>) -> impl Stream<Item = std::io::Result<Bytes>> {
    stream_with(store, Vec::new(), entries)
}

/// Like [`stream`], with in-memory files first.
pub fn stream_with(
    store: MediaStore,
    inline: Vec<Inline>,
    entries: Vec<Entry>,
) -> impl Stream<Item = std::io::Result<Bytes>> {
    let (reader, writer) = tokio::io::duplex(PIPE);
    tokio::spawn(async move {
        if let Err(e) = write(&store, inline, entries, writer).await {
            // The response has started: the client sees a truncated archive, and the log why.
            tracing::warn!(error = %e, "media export stopped");
        }
    });
    ReaderStream::with_capacity(reader, 64 * 1024)
}

async fn write(
    store: &MediaStore,
    inline: Vec<Inline>,
    entries: Vec<Entry>,
    out: tokio::io::DuplexStream,
) -> anyhow::Result<()> {
    let mut zip = ZipFileWriter::with_tokio(out);
    for f in inline {
        zip.write_entry_whole(ZipEntryBuilder::new(f.path.into(), Compression::Stored), &f.bytes).await?;
    }
    for e in entries {
        let (_, mut body) = store.read(&e.key).await?;
        let mut entry =
            zip.write_entry_stream(ZipEntryBuilder::new(e.path.clone().into(), Compression::Stored)).await?;
        while let Some(chunk) = body.next().await {
            entry.write_all(&chunk?).await?;
        }
        entry.close().await?;
    }
    zip.close().await?;
    Ok(())
}
