//! Small helpers shared by koinonia's HTTP clients (media downloads, the Telnyx API): how URLs
//! and errors are shown in logs and messages without leaking tokens.

use std::error::Error as StdError;

use url::Url;

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
