//! The HTTP server loop: HTTP/1.1 connections bounded in number (overall and per client address)
//! and in time (headers must arrive within a deadline, idle keep-alive connections close), so
//! slow or idle clients cannot take the file descriptors and memory the others need.
//!
//! `axum::serve` has none of these bounds, so connections are accepted here and each is served by
//! hyper with a header-read timeout. A connection over a cap is closed as soon as it is accepted,
//! before any byte is read: refusing costs one `accept` and one `close`. Request bodies are bounded
//! by [`super::body_guard`] (a minimum transfer rate), handlers by the router's timeout.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// Bounds on connections.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Open connections at once; more are closed on arrival.
    pub max_connections: usize,
    /// Open connections from one client address (an IPv6 client is its /64); 0 = no cap. Behind
    /// a proxy (`TRUST_PROXY_HEADERS`) every connection comes from the proxy, so this is off.
    pub max_per_address: usize,
    /// Time a client has to send a request's headers, and the longest idle keep-alive wait.
    pub header_read_timeout: Duration,
}

impl ConnectionLimits {
    /// Defaults for a process allowed `open_files` descriptors: room is kept for the database,
    /// the media store and the job workers' downloads.
    pub fn for_open_files(open_files: u64) -> Self {
        let room = usize::try_from(open_files.saturating_sub(512)).unwrap_or(usize::MAX).max(64);
        Self { max_connections: room.min(50_000), max_per_address: 512, header_read_timeout: Duration::from_secs(10) }
    }
}

/// Who holds how many connections.
#[derive(Default)]
struct Counts {
    total: usize,
    by_address: HashMap<IpAddr, usize>,
}

/// A held connection slot, given back when the connection ends.
struct Slot {
    counts: Arc<Mutex<Counts>>,
    address: Option<IpAddr>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Ok(mut c) = self.counts.lock() {
            c.total = c.total.saturating_sub(1);
            if let Some(a) = self.address {
                if let Some(n) = c.by_address.get_mut(&a) {
                    *n -= 1;
                    if *n == 0 {
                        c.by_address.remove(&a);
                    }
                }
            }
        }
    }
}

fn take_slot(counts: &Arc<Mutex<Counts>>, limits: &ConnectionLimits, peer: IpAddr) -> Option<Slot> {
    let mut c = counts.lock().ok()?;
    if c.total >= limits.max_connections {
        return None;
    }
    let address = (limits.max_per_address > 0).then(|| crate::net::client_key(peer));
    if let Some(a) = address {
        let n = c.by_address.entry(a).or_insert(0);
        if *n >= limits.max_per_address {
            return None;
        }
        *n += 1;
    }
    c.total += 1;
    Some(Slot { counts: Arc::clone(counts), address })
}

/// Serves `router` on `listener` until `shutdown`; then stops accepting and lets open requests
/// finish within `drain`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: CancellationToken,
    drain: Duration,
) -> std::io::Result<()> {
    let counts = Arc::new(Mutex::new(Counts::default()));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout).keep_alive(true);
    loop {
        let (stream, peer) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors (EMFILE/ENFILE) or a connection reset before accept:
                    // back off a little instead of spinning, and keep serving what is open.
                    tracing::warn!(error = %e, "accept failed");
                    metrics::counter!("koinonia_connections_refused_total", "why" => "accept_error").increment(1);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Some(slot) = take_slot(&counts, &limits, peer.ip()) else {
            metrics::counter!("koinonia_connections_refused_total", "why" => "limit").increment(1);
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let conn = builder.serve_connection(TokioIo::new(stream), service(router.clone(), peer));
        let watched = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = watched.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    if tokio::time::timeout(drain, graceful.shutdown()).await.is_err() {
        tracing::warn!("open connections did not finish within {} s", drain.as_secs());
    }
    Ok(())
}

/// The router as a hyper service of one connection, with the peer's address available to the
/// `ConnectInfo` extractor as `axum::serve` provides it.
fn service(
    router: Router,
    peer: SocketAddr,
) -> impl hyper::service::Service<
    hyper::Request<Incoming>,
    Response = axum::response::Response,
    Error = Infallible,
    Future = impl Send,
> + Clone {
    hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(ConnectInfo(peer));
        router.clone().oneshot(req.map(axum::body::Body::new))
    })
}

/// Raises this process's soft limit of open files to its hard limit (the default soft limit, 1024
/// on many systems, is a handful of slow clients away from refusing everyone); returns the limit
/// now in force.
pub fn raise_open_files_limit() -> u64 {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed by pointer.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 1024;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit { rlim_cur: lim.rlim_max, rlim_max: lim.rlim_max };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim.rlim_cur = lim.rlim_max;
            }
        }
    }
    if lim.rlim_cur == libc::RLIM_INFINITY {
        return 1 << 20;
    }
    lim.rlim_cur
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_count_per_address_and_in_total_and_free_on_drop() {
        let limits =
            ConnectionLimits { max_connections: 3, max_per_address: 2, header_read_timeout: Duration::from_secs(1) };
        let counts = Arc::new(Mutex::new(Counts::default()));
        let a: IpAddr = "192.0.2.1".parse().expect("ip");
        let b: IpAddr = "192.0.2.2".parse().expect("ip");
        let a1 = take_slot(&counts, &limits, a).expect("first");
        let _a2 = take_slot(&counts, &limits, a).expect("second");
        assert!(take_slot(&counts, &limits, a).is_none(), "a third from one address");
        let _b1 = take_slot(&counts, &limits, b).expect("another address");
        let c: IpAddr = "192.0.2.3".parse().expect("ip");
        assert!(take_slot(&counts, &limits, c).is_none(), "over the total");
        drop(a1);
        assert!(take_slot(&counts, &limits, c).is_some(), "a slot came back");
        let v6a: IpAddr = "2001:db8:1:2:aaaa::1".parse().expect("ip");
        let v6b: IpAddr = "2001:db8:1:2:bbbb::9".parse().expect("ip");
        assert_eq!(crate::net::client_key(v6a), crate::net::client_key(v6b), "one /64 is one client");
    }

    #[test]
    fn the_open_files_limit_is_raised_to_the_hard_limit() {
        let now = raise_open_files_limit();
        let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        // SAFETY: as above.
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
        assert_eq!(lim.rlim_cur, lim.rlim_max);
        assert!(now >= 1024);
    }
}
