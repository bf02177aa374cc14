//! Small network helpers: how URLs and errors are shown in logs and messages without leaking
//! tokens (media downloads, the Telnyx API), and which addresses count as one client.

use std::error::Error as StdError;
use std::net::IpAddr;

use url::Url;

/// The address that counts as one client (connection caps, rate limits): IPv4 as is, IPv6 by its
/// /64 (one subscriber's block).
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// `host[:port]` of a URL.
pub fn host_display(url: &Url) -> String {
    let host = url.host_str().unwrap_or("");
    match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    }
}

/// `scheme://host[:port]/path`: no userinfo, query or fragment (signed URLs carry tokens there).
pub fn redact(url: &Url) -> String {
    format!("{}://{}{}", url.scheme(), host_display(url), url.path())
}

/// Display of an error and its sources, joined with ": ". Callers pass errors stripped of
/// their URL.
pub fn error_chain(err: &(dyn StdError + 'static)) -> String {
    let mut out = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        let s = e.to_string();
        if !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        cur = e.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_keeps_host_and_path_only() {
        let u = Url::parse("https://user:pw@cdn.example:8443/media/a.jpg?sig=secret#x").expect("url");
        assert_eq!(redact(&u), "https://cdn.example:8443/media/a.jpg");
    }
}
