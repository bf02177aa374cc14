//! Loopback HTTP stand-ins for the benchmarks: the carrier's media host and Telnyx's
//! `POST /messages`. Plain hyper, one HTTP/1.1 connection per task; they live as long as the
//! benchmark process and answer only on 127.0.0.1.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http_body::{Body as _, Frame};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;

/// A response body: a few bytes, or a generated file's pieces.
enum Body {
    Bytes(Option<Bytes>),
    Pieces(Box<dyn Iterator<Item = Bytes> + Send>),
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        match self.get_mut() {
            Body::Bytes(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            Body::Pieces(p) => Poll::Ready(p.next().map(|b| Ok(Frame::data(b)))),
        }
    }
}

/// Serves `handler` on a fresh loopback port; returns the port's base URL.
async fn serve<F, Fut>(handler: F) -> anyhow::Result<String>
where
    F: Fn(hyper::Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = hyper::Response<Body>> + Send + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let handler = handler.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let handler = handler.clone();
                    async move { Ok::<_, Infallible>(handler(req).await) }
                });
                let _ =
                    hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
            });
        }
    });
    Ok(format!("http://{addr}"))
}

/// Serves a generated WAV from memory (a stand-in for the carrier's media host); returns its URL.
pub async fn media_host(wav: super::wav::Wav) -> anyhow::Result<String> {
    let base = serve(move |_req| {
        let wav = wav.clone();
        async move {
            hyper::Response::builder()
                .header("content-type", "audio/wav")
                .header("content-length", wav.len())
                .body(Body::Pieces(Box::new(wav.pieces())))
                .unwrap_or_else(|_| hyper::Response::new(Body::Bytes(None)))
        }
    })
    .await?;
    Ok(format!("{base}/media/source.wav"))
}

/// When each koinonia message reached the stand-in Telnyx, by koinonia's message id.
pub type Arrivals = std::sync::Arc<std::sync::Mutex<Vec<(String, Instant)>>>;

/// A stand-in for Telnyx's `POST /messages` that takes every message, recording when it came;
/// returns the API's base URL.
pub async fn telnyx(arrivals: Arrivals) -> anyhow::Result<String> {
    let base = serve(move |req: hyper::Request<Incoming>| {
        let arrivals = arrivals.clone();
        async move {
            let now = Instant::now();
            let body = read_body(req.into_body()).await;
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            let m = v["webhook_url"].as_str().and_then(|u| u.rsplit_once("m=")).map(|(_, m)| m.to_owned());
            if let (Some(m), Ok(mut a)) = (m, arrivals.lock()) {
                a.push((m, now));
            }
            let answer =
                serde_json::json!({"data": {"id": uuid::Uuid::new_v4().to_string(), "to": [{"status": "queued"}]}});
            hyper::Response::builder()
                .header("content-type", "application/json")
                .body(Body::Bytes(Some(Bytes::from(answer.to_string()))))
                .unwrap_or_else(|_| hyper::Response::new(Body::Bytes(None)))
        }
    })
    .await?;
    Ok(format!("{base}/v2"))
}

/// A request body, whole (the stand-in reads only small JSON bodies).
async fn read_body(mut body: Incoming) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(Ok(frame)) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
        if let Ok(data) = frame.into_data() {
            out.extend_from_slice(&data);
        }
    }
    out
}
