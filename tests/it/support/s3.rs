//! A real S3-protocol server inside the test process (s3s + s3s-fs), checking SigV4 signatures,
//! recording each request's method, path and headers for assertions.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

pub const ACCESS_KEY: &str = "koinonia-test-access";
pub const SECRET_KEY: &str = "koinonia-test-secret-0123456789";
pub const BUCKET: &str = "koinonia-media";

#[derive(Debug, Clone)]
pub struct SeenRequest {
    pub method: String,
    pub path: String,
    pub query: String,
    pub headers: Vec<(String, String)>,
}

impl SeenRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

pub struct S3Server {
    pub endpoint: String,
    pub root: PathBuf,
    pub requests: Arc<Mutex<Vec<SeenRequest>>>,
    _dir: tempfile::TempDir,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl S3Server {
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().expect("s3 tempdir");
        let root = dir.path().to_path_buf();
        std::fs::create_dir_all(root.join(BUCKET)).expect("bucket dir");
        let fs = s3s_fs::FileSystem::new(&root).expect("s3s-fs");
        let mut builder = s3s::service::S3ServiceBuilder::new(ShortKeys(fs, Default::default()));
        builder.set_auth(s3s::auth::SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
        let service = builder.build();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind s3");
        let addr: SocketAddr = listener.local_addr().expect("addr");
        let requests: Arc<Mutex<Vec<SeenRequest>>> = Arc::default();
        let log = requests.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((socket, _)) = listener.accept().await else { return };
                let svc = service.clone();
                let log = log.clone();
                tokio::spawn(async move {
                    let logging = hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let seen = SeenRequest {
                            method: req.method().to_string(),
                            path: req.uri().path().to_owned(),
                            query: req.uri().query().unwrap_or_default().to_owned(),
                            headers: req
                                .headers()
                                .iter()
                                .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_owned()))
                                .collect(),
                        };
                        log.lock().expect("log lock").push(seen);
                        let svc = svc.clone();
                        async move { hyper::service::Service::call(&svc, req).await }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(socket), logging)
                        .await;
                });
            }
        });
        Self { endpoint: format!("http://{addr}"), root, requests, _dir: dir, task }
    }

    /// Object files under the bucket (s3s-fs keeps metadata and uploads elsewhere).
    pub fn object_files(&self) -> Vec<PathBuf> {
        super::files_under(&self.root.join(BUCKET))
    }

    pub fn seen(&self) -> Vec<SeenRequest> {
        self.requests.lock().expect("log lock").clone()
    }
}

/// s3s-fs names its metadata files after the base64 of the whole key; koinonia's keys
/// (`folder/church/conversation/attachment_name`, three UUIDs) overflow Linux's 255-byte file
/// name limit there. This wrapper stores each object under the SHA-256 of its key instead; the
/// protocol (paths, signatures, headers) the client sees is untouched.
/// Keys are remembered (short → original) so that listings can answer with the originals.
struct ShortKeys(s3s_fs::FileSystem, std::sync::Mutex<std::collections::HashMap<String, String>>);

impl ShortKeys {
    fn shorten(&self, key: &mut String) {
        let short = short_key(key);
        let original = std::mem::replace(key, short.clone());
        if let Ok(mut map) = self.1.lock() {
            map.insert(short, original);
        }
    }
}

fn short_key(key: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(key.as_bytes()))
}

macro_rules! delegate_with_short_key {
    ($($op:ident: $input:ident => $output:ident),* $(,)?; $($extra:item)*) => {
        #[async_trait::async_trait]
        impl s3s::S3 for ShortKeys {
            $($extra)*
            $(
                async fn $op(
                    &self,
                    mut req: s3s::S3Request<s3s::dto::$input>,
                ) -> s3s::S3Result<s3s::S3Response<s3s::dto::$output>> {
                    self.shorten(&mut req.input.key);
                    self.0.$op(req).await
                }
            )*
        }
    };
}

delegate_with_short_key!(
    put_object: PutObjectInput => PutObjectOutput,
    get_object: GetObjectInput => GetObjectOutput,
    head_object: HeadObjectInput => HeadObjectOutput,
    delete_object: DeleteObjectInput => DeleteObjectOutput,
    create_multipart_upload: CreateMultipartUploadInput => CreateMultipartUploadOutput,
    upload_part: UploadPartInput => UploadPartOutput,
    complete_multipart_upload: CompleteMultipartUploadInput => CompleteMultipartUploadOutput,
    abort_multipart_upload: AbortMultipartUploadInput => AbortMultipartUploadOutput;

    /// Lists every stored object, answering with the original keys under the asked prefix (one
    /// page: test buckets are small).
    async fn list_objects_v2(
        &self,
        mut req: s3s::S3Request<s3s::dto::ListObjectsV2Input>,
    ) -> s3s::S3Result<s3s::S3Response<s3s::dto::ListObjectsV2Output>> {
        let prefix = req.input.prefix.take().unwrap_or_default();
        req.input.max_keys = Some(1000);
        let mut res = self.0.list_objects_v2(req).await?;
        let map = self.1.lock().map(|m| m.clone()).unwrap_or_default();
        let contents: Vec<s3s::dto::Object> = res
            .output
            .contents
            .take()
            .unwrap_or_default()
            .into_iter()
            .filter_map(|mut o| {
                let original = map.get(o.key.as_deref()?)?.clone();
                original.starts_with(&prefix).then(|| {
                    o.key = Some(original);
                    o
                })
            })
            .collect();
        res.output.key_count = Some(i32::try_from(contents.len()).unwrap_or(i32::MAX));
        res.output.contents = Some(contents);
        res.output.prefix = Some(prefix);
        res.output.is_truncated = Some(false);
        res.output.next_continuation_token = None;
        Ok(res)
    }

    /// object_store deletes through the bulk API; keys in the answer are mapped back.
    async fn delete_objects(
        &self,
        mut req: s3s::S3Request<s3s::dto::DeleteObjectsInput>,
    ) -> s3s::S3Result<s3s::S3Response<s3s::dto::DeleteObjectsOutput>> {
        let mut originals = std::collections::HashMap::new();
        for o in &mut req.input.delete.objects {
            self.shorten(&mut o.key);
            if let Some(original) = self.1.lock().ok().and_then(|m| m.get(&o.key).cloned()) {
                originals.insert(o.key.clone(), original);
            }
        }
        let mut res = self.0.delete_objects(req).await?;
        let restore = |k: &mut Option<String>| {
            if let Some(orig) = k.as_ref().and_then(|k| originals.get(k)) {
                *k = Some(orig.clone());
            }
        };
        res.output.deleted.iter_mut().flatten().for_each(|d| restore(&mut d.key));
        res.output.errors.iter_mut().flatten().for_each(|e| restore(&mut e.key));
        Ok(res)
    }
);
