//! The media store: a local folder or an S3 bucket, behind one interface (`object_store`).
//!
//! Writes stream through `WriteMultipart` with bounded buffering (S3 multipart upload, or a
//! staging file renamed into place on the local disk), so an object becomes visible complete or
//! not at all. Reads for people go through short-lived URLs: SigV4-presigned on S3, or an
//! HMAC-signed koinonia URL (`/media/local/…`) for the local folder.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use futures::stream::BoxStream;
use futures::StreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey};
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::signer::Signer;
use object_store::{
    Attribute, AttributeValue, Attributes, ObjectStore, ObjectStoreExt, PutMultipartOptions, WriteMultipart,
};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use secrecy::ExposeSecret;

use crate::config::Config;
use crate::crypto::signed_url::UrlSigner;
use crate::domain::{AttachmentId, ChurchId, ConversationId};

/// Characters escaped in URL components and metadata: all but RFC 3986's unreserved ones.
pub const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// Part size of streamed uploads. S3 needs at least 5 MiB per part but the last.
const S3_PART_SIZE: usize = 8 << 20;
const LOCAL_PART_SIZE: usize = 4 << 20;
/// Parts buffered or in flight at once; with the part size this bounds a writer's memory.
const MAX_PARTS_IN_FLIGHT: usize = 2;

/// An object's bytes as they are read.
pub type ByteStream = BoxStream<'static, Result<Bytes, StoreError>>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("MEDIA_DIR {0}: {1}")]
    LocalFolder(String, String),
    #[error("S3 configuration: {0}")]
    S3Config(String),
    #[error("object store: {0}")]
    Store(#[from] object_store::Error),
    #[error("invalid object key {0:?}")]
    BadKey(String),
}

#[derive(Clone)]
enum Backend {
    Local { root: PathBuf, signer: UrlSigner, base_url: String },
    S3 { s3: Arc<AmazonS3> },
}

/// Where media lives.
#[derive(Clone)]
pub struct MediaStore {
    inner: Arc<dyn ObjectStore>,
    backend: Backend,
    folder: String,
}

/// Objects written for a request that has not committed their row yet. Dropped before
/// [`Uncommitted::keep`] — an early return, an error, a client that went away mid-request, a
/// cancelled handler — it deletes them, so no object is left in the store that no row points to.
pub struct Uncommitted {
    store: MediaStore,
    keys: Vec<String>,
}

impl Uncommitted {
    pub fn new(store: &MediaStore) -> Self {
        Self { store: store.clone(), keys: Vec::new() }
    }

    /// One more object to delete unless kept.
    pub fn add(&mut self, key: &str) {
        self.keys.push(key.to_owned());
    }

    pub fn keys(&self) -> &[String] {
        &self.keys
    }

    /// Their rows are committed: the objects stay.
    pub fn keep(mut self) {
        self.keys.clear();
    }
}

impl Drop for Uncommitted {
    fn drop(&mut self) {
        if self.keys.is_empty() {
            return;
        }
        let (store, keys) = (self.store.clone(), std::mem::take(&mut self.keys));
        let delete = async move {
            for key in keys {
                if let Err(e) = store.delete(&key).await {
                    tracing::warn!(error = %e, "could not remove an object of a refused request; the orphan sweep will");
                }
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(delete);
            }
            Err(_) => tracing::warn!("no runtime to remove objects of a refused request; the orphan sweep will"),
        }
    }
}

/// What is recorded with an object on S3 (the local folder keeps it only in the database).
#[derive(Debug, Clone)]
pub struct ObjectInfo<'a> {
    pub content_type: &'a str,
    pub original_filename: &'a str,
    pub conversation_id: ConversationId,
    pub uploaded_at: DateTime<Utc>,
}

impl MediaStore {
    /// Opens the store the configuration names. The local folder must be writable: it is
    /// created if missing and probed with a write and a delete, so a bad folder stops start-up.
    pub async fn from_config(config: &Config) -> Result<Self, StoreError> {
        match &config.s3 {
            Some(s3) => {
                crate::crypto::tls::install();
                let mut b = AmazonS3Builder::new()
                    .with_bucket_name(&s3.bucket)
                    .with_region(&s3.region)
                    .with_config(sse_key()?, "AES256");
                if let Some(id) = &s3.access_key_id {
                    b = b.with_access_key_id(id);
                }
                if let Some(secret) = &s3.secret_access_key {
                    b = b.with_secret_access_key(secret.expose_secret());
                }
                if let Some(endpoint) = &s3.endpoint {
                    b = b
                        .with_endpoint(endpoint.as_str().trim_end_matches('/'))
                        .with_virtual_hosted_style_request(false)
                        .with_allow_http(endpoint.scheme() == "http");
                }
                let s3 = Arc::new(b.build().map_err(|e| StoreError::S3Config(e.to_string()))?);
                Ok(Self { inner: s3.clone(), backend: Backend::S3 { s3 }, folder: config.s3_folder.clone() })
            }
            None => {
                let root = config.media_dir.clone();
                let shown = root.display().to_string();
                std::fs::create_dir_all(&root).map_err(|e| StoreError::LocalFolder(shown.clone(), e.to_string()))?;
                let root = root.canonicalize().map_err(|e| StoreError::LocalFolder(shown.clone(), e.to_string()))?;
                probe_writable(&root)
                    .map_err(|e| StoreError::LocalFolder(shown.clone(), format!("not writable: {e}")))?;
                let local = LocalFileSystem::new_with_prefix(&root)
                    .map_err(|e| StoreError::LocalFolder(shown, e.to_string()))?;
                Ok(Self {
                    inner: Arc::new(local),
                    backend: Backend::Local {
                        root,
                        signer: UrlSigner::new(config.secrets.derived_key("local-media-url"))
                            .with_previous(config.secrets.derived_key_previous("local-media-url")),
                        base_url: config.public_url(""),
                    },
                    folder: config.s3_folder.clone(),
                })
            }
        }
    }

    pub fn is_s3(&self) -> bool {
        matches!(self.backend, Backend::S3 { .. })
    }

    /// `{folder}/{church}/{conversation}/{attachment}_{safe name}`: one key per attachment, so a
    /// download repeated after a crash overwrites instead of duplicating.
    pub fn key_for(
        &self,
        church: ChurchId,
        conversation: ConversationId,
        attachment: AttachmentId,
        safe_name: &str,
    ) -> String {
        format!("{}/{church}/{conversation}/{attachment}_{safe_name}", self.folder)
    }

    /// Starts a streamed upload to `key`.
    pub async fn writer(&self, key: &str, info: &ObjectInfo<'_>) -> Result<MediaWriter, StoreError> {
        let path = object_path(key)?;
        let (opts, part_size) = match self.backend {
            Backend::S3 { .. } => {
                let mut attrs = Attributes::new();
                attrs.insert(Attribute::ContentType, AttributeValue::from(info.content_type.to_owned()));
                attrs.insert(
                    Attribute::Metadata("original-filename".into()),
                    AttributeValue::from(metadata_value(info.original_filename)),
                );
                attrs.insert(
                    Attribute::Metadata("conversation-id".into()),
                    AttributeValue::from(info.conversation_id.to_string()),
                );
                attrs.insert(
                    Attribute::Metadata("upload-date".into()),
                    AttributeValue::from(info.uploaded_at.to_rfc3339_opts(SecondsFormat::Secs, true)),
                );
                (PutMultipartOptions { attributes: attrs, ..Default::default() }, S3_PART_SIZE)
            }
            // The local file system refuses attributes; the database holds them.
            Backend::Local { .. } => (PutMultipartOptions::default(), LOCAL_PART_SIZE),
        };
        let upload = self.inner.put_multipart_opts(&path, opts).await?;
        Ok(MediaWriter { inner: WriteMultipart::new_with_chunk_size(upload, part_size), written: 0 })
    }

    /// A URL that fetches the object with a plain GET for `ttl`, with the right type.
    pub async fn presign_get(
        &self,
        key: &str,
        ttl: Duration,
        content_type: &str,
        filename: &str,
    ) -> Result<String, StoreError> {
        let path = object_path(key)?;
        // Names stored before bidi controls were stripped are cleaned on the way out too.
        let filename = &crate::media::names::display_name(filename);
        match &self.backend {
            Backend::S3 { s3 } => Ok(s3.signed_url(http::Method::GET, &path, ttl).await?.to_string()),
            Backend::Local { signer, base_url, .. } => {
                let exp =
                    (Utc::now() + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::minutes(5))).timestamp();
                let exp = exp.to_string();
                let sig = signer.sign(&[key, &exp, content_type, filename]);
                let enc = |s: &str| utf8_percent_encode(s, COMPONENT).to_string();
                let key_path: Vec<String> = key.split('/').map(enc).collect();
                Ok(format!(
                    "{base_url}/media/local/{}?exp={exp}&ct={}&name={}&sig={sig}",
                    key_path.join("/"),
                    enc(content_type),
                    enc(filename)
                ))
            }
        }
    }

    /// A presigned URL for any method (S3 only; the doctor's HEAD probe).
    pub async fn presign(&self, key: &str, method: http::Method, ttl: Duration) -> Result<String, StoreError> {
        match &self.backend {
            Backend::S3 { s3 } => Ok(s3.signed_url(method, &object_path(key)?, ttl).await?.to_string()),
            Backend::Local { .. } => {
                Err(StoreError::LocalFolder("(local)".into(), "no presigned URLs for other methods".into()))
            }
        }
    }

    /// Checks a local signed URL's fields; false on S3 (which never issues them) or a bad signature.
    pub fn verify_local_url(
        &self,
        key: &str,
        exp: &str,
        content_type: &str,
        filename: &str,
        sig: &str,
        now: i64,
    ) -> bool {
        match &self.backend {
            Backend::Local { signer, .. } => {
                let fresh = exp.parse::<i64>().is_ok_and(|e| e >= now);
                fresh && signer.verify(&[key, exp, content_type, filename], sig)
            }
            Backend::S3 { .. } => false,
        }
    }

    /// The object's bytes as a stream, with its size.
    pub async fn read(&self, key: &str) -> Result<(u64, ByteStream), StoreError> {
        let path = object_path(key)?;
        let got = self.inner.get(&path).await?;
        let size = got.meta.size;
        Ok((size, got.into_stream().map(|r| r.map_err(StoreError::from)).boxed()))
    }

    /// Size of a stored object, or `None` when it does not exist.
    pub async fn size_of(&self, key: &str) -> Result<Option<u64>, StoreError> {
        match self.inner.head(&object_path(key)?).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Every object under `prefix` (a folder such as `conversations` or `sandbox`), as
    /// `(key, last modified)`, streamed page by page.
    pub fn list(
        &self,
        prefix: &str,
    ) -> futures::stream::BoxStream<'static, Result<(String, DateTime<Utc>), StoreError>> {
        use futures::StreamExt;
        let prefix = object_store::path::Path::from(prefix);
        self.inner
            .list(Some(&prefix))
            .map(|r| r.map(|meta| (meta.location.to_string(), meta.last_modified)).map_err(StoreError::from))
            .boxed()
    }

    /// The key prefix of every church's objects (`AWS_S3_FOLDER`).
    pub fn folder(&self) -> &str {
        &self.folder
    }

    /// Deletes an object; deleting a missing object is not an error.
    pub async fn delete(&self, key: &str) -> Result<(), StoreError> {
        match self.inner.delete(&object_path(key)?).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// The file of an object in the local folder (for converters that need a path).
    pub fn local_path(&self, key: &str) -> Option<std::path::PathBuf> {
        let root = self.local_root()?;
        let path = object_path(key).ok()?;
        Some(path.parts().fold(root.to_path_buf(), |p, part| p.join(part.as_ref())))
    }

    /// The local folder, when this store is one.
    pub fn local_root(&self) -> Option<&std::path::Path> {
        match &self.backend {
            Backend::Local { root, .. } => Some(root),
            Backend::S3 { .. } => None,
        }
    }
}

/// A streamed upload in progress. Dropped without [`MediaWriter::finish`], nothing is visible;
/// call [`MediaWriter::abort`] to clean up parts at once.
pub struct MediaWriter {
    inner: WriteMultipart,
    written: u64,
}

impl MediaWriter {
    pub async fn write(&mut self, chunk: &[u8]) -> Result<(), StoreError> {
        self.inner.wait_for_capacity(MAX_PARTS_IN_FLIGHT).await?;
        self.inner.write(chunk);
        self.written += chunk.len() as u64;
        Ok(())
    }

    /// [`Self::write`] for bytes the caller owns: kept by reference, not copied into the part.
    pub async fn put(&mut self, chunk: bytes::Bytes) -> Result<(), StoreError> {
        self.inner.wait_for_capacity(MAX_PARTS_IN_FLIGHT).await?;
        self.written += chunk.len() as u64;
        self.inner.put(chunk);
        Ok(())
    }

    pub fn written(&self) -> u64 {
        self.written
    }

    /// Completes the upload: the object appears whole.
    pub async fn finish(self) -> Result<u64, StoreError> {
        self.inner.finish().await?;
        Ok(self.written)
    }

    /// Abandons the upload and removes what was sent of it.
    pub async fn abort(self) {
        if let Err(e) = self.inner.abort().await {
            tracing::warn!(error = %e, "could not abort an upload; the store's lifecycle rule will clean it up");
        }
    }
}

fn object_path(key: &str) -> Result<ObjectPath, StoreError> {
    ObjectPath::parse(key).map_err(|_| StoreError::BadKey(key.to_owned()))
}

/// S3 metadata must be ASCII: names that are not are percent-encoded.
fn metadata_value(name: &str) -> String {
    if name.is_ascii() && !name.chars().any(|c| c.is_ascii_control()) {
        name.to_owned()
    } else {
        utf8_percent_encode(name, COMPONENT).to_string()
    }
}

/// The SSE-S3 config key (its enum is not exported by object_store 0.14, the string key is).
fn sse_key() -> Result<AmazonS3ConfigKey, StoreError> {
    "aws_server_side_encryption".parse::<AmazonS3ConfigKey>().map_err(|e| StoreError::S3Config(e.to_string()))
}

fn probe_writable(root: &std::path::Path) -> std::io::Result<()> {
    let probe = root.join(format!(".koinonia-write-probe-{}", uuid::Uuid::new_v4().simple()));
    std::fs::write(&probe, b"ok")?;
    std::fs::remove_file(&probe)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_values_are_ascii() {
        assert_eq!(metadata_value("Report (final).pdf"), "Report (final).pdf");
        assert_eq!(metadata_value("Café.jpg"), "Caf%C3%A9.jpg");
    }
}
