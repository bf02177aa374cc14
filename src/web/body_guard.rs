//! Request bodies must keep moving: a client that sends a body at a trickle holds a connection,
//! a task and often a half-written upload for as long as it likes. Every body is read through a
//! guard that fails the read when no byte arrived for `idle`, or when, after a `grace` period, the
//! average rate fell below `min_rate`. A flat deadline would either cut off a real 500 MB video
//! from a phone on a slow link or let a trickle live for an hour; a minimum rate does neither.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use http_body::{Body as HttpBody, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

pub use crate::config::BodyPace;

/// Middleware: the request's body, guarded.
pub async fn guard(pace: BodyPace, req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let guarded = Body::new(Guarded::new(body, pace));
    next.run(Request::from_parts(parts, guarded)).await
}

/// Why a body was cut off.
#[derive(Debug, thiserror::Error)]
pub enum TooSlow {
    #[error("request body too slow: nothing received for {0} s")]
    Idle(u64),
    #[error("request body too slow: under {0} bytes per second")]
    Rate(u64),
}

struct Guarded {
    inner: Body,
    pace: BodyPace,
    started: Instant,
    received: u64,
    /// Fires when the next byte is overdue (idle or rate).
    deadline: Pin<Box<Sleep>>,
}

impl Guarded {
    fn new(inner: Body, pace: BodyPace) -> Self {
        let started = Instant::now();
        let mut g = Self { inner, pace, started, received: 0, deadline: Box::pin(tokio::time::sleep(pace.idle)) };
        g.rearm(started);
        g
    }

    /// When the next byte must have arrived: within `idle` of now, and soon enough that the
    /// average stays at `min_rate` after the grace period.
    fn next_deadline(&self, now: Instant) -> Instant {
        let idle = now + self.pace.idle;
        if self.pace.min_rate == 0 {
            return idle;
        }
        let secs = (self.received + 1) as f64 / self.pace.min_rate as f64;
        let by_rate = self.started + self.pace.grace + Duration::from_secs_f64(secs.min(1e9));
        idle.min(by_rate.max(now))
    }

    fn rearm(&mut self, now: Instant) {
        let at = self.next_deadline(now);
        self.deadline.as_mut().reset(at);
    }

    fn overdue(&self, now: Instant) -> TooSlow {
        let elapsed = now.duration_since(self.started);
        if elapsed > self.pace.grace
            && (self.received as f64) < self.pace.min_rate as f64 * (elapsed - self.pace.grace).as_secs_f64()
        {
            TooSlow::Rate(self.pace.min_rate)
        } else {
            TooSlow::Idle(self.pace.idle.as_secs())
        }
    }
}

impl HttpBody for Guarded {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.received += data.len() as u64;
                }
                let now = Instant::now();
                this.rearm(now);
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Pending => match this.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    let why = this.overdue(Instant::now());
                    metrics::counter!("koinonia_slow_bodies_total").increment(1);
                    tracing::info!(received = this.received, "{why}");
                    Poll::Ready(Some(Err(axum::Error::new(why))))
                }
                Poll::Pending => Poll::Pending,
            },
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    fn trickle(every: Duration, chunks: usize, chunk: usize) -> Body {
        let s = futures::stream::iter(0..chunks).then(move |_| async move {
            tokio::time::sleep(every).await;
            Ok::<_, std::io::Error>(Bytes::from(vec![b'x'; chunk]))
        });
        Body::from_stream(s)
    }

    async fn read_all(body: Body) -> Result<usize, axum::Error> {
        let mut n = 0;
        let mut s = body.into_data_stream();
        while let Some(c) = s.next().await {
            n += c?.len();
        }
        Ok(n)
    }

    #[tokio::test]
    async fn a_trickle_is_cut_off_after_the_grace_period() {
        let pace = BodyPace { idle: Duration::from_secs(30), grace: Duration::from_millis(200), min_rate: 1024 };
        // One byte every 20 ms: 50 bytes a second, well under 1 KiB/s.
        let body = Body::new(Guarded::new(trickle(Duration::from_millis(20), 3600, 1), pace));
        let started = Instant::now();
        let err = read_all(body).await.expect_err("cut off");
        assert!(err.to_string().contains("under 1024 bytes per second"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    }

    #[tokio::test]
    async fn a_silent_body_is_cut_off_when_idle() {
        let pace = BodyPace { idle: Duration::from_millis(200), grace: Duration::from_secs(60), min_rate: 1024 };
        let body = Body::new(Guarded::new(trickle(Duration::from_secs(3600), 1, 1), pace));
        let started = Instant::now();
        let err = read_all(body).await.expect_err("cut off");
        assert!(err.to_string().contains("nothing received for 0 s"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn a_slow_but_steady_upload_goes_through() {
        // 2 KiB every 10 ms for a second against a 1 KiB/s minimum, after a slow start.
        let pace = BodyPace { idle: Duration::from_secs(30), grace: Duration::from_millis(100), min_rate: 1024 };
        let body = Body::new(Guarded::new(trickle(Duration::from_millis(10), 100, 2048), pace));
        assert_eq!(read_all(body).await.expect("complete"), 100 * 2048);
    }
}
