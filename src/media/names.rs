//! File names: what the member called a file is kept for display; what goes into an object key is
//! a safe version of it.

/// Longest safe name kept in a key.
const MAX_SAFE_LEN: usize = 100;

/// A name fit for an object key: the last path component only, no control characters, only
/// `[A-Za-z0-9._-]` (anything else becomes `_`), no leading dots, at most 100 characters with the
/// extension kept.
pub fn safe_name(original: &str) -> String {
    let last = original.rsplit(['/', '\\']).next().unwrap_or(original);
    let mut out = String::with_capacity(last.len());
    for ch in last.chars() {
        if ch.is_control() {
            continue;
        }
        let c = if ch.is_ascii_alphanumeric() || matches!(ch, '.' | '-' | '_') { ch } else { '_' };
        if c == '_' && out.ends_with('_') {
            continue;
        }
        out.push(c);
    }
    let trimmed = out.trim_start_matches(['.', '_']).trim_end_matches(['.', '_']);
    let mut name = if trimmed.is_empty() { "file".to_owned() } else { trimmed.to_owned() };
    if name.len() > MAX_SAFE_LEN {
        let ext = name.rsplit_once('.').map(|(_, e)| e.to_owned()).filter(|e| e.len() <= 10);
        name.truncate(MAX_SAFE_LEN - ext.as_ref().map_or(0, |e| e.len() + 1));
        if let Some(ext) = ext {
            name.push('.');
            name.push_str(&ext);
        }
    }
    name
}

/// A display name kept as given, minus control characters and path components, at most 255 chars.
pub fn display_name(original: &str) -> String {
    let last = original.rsplit(['/', '\\']).next().unwrap_or(original);
    let cleaned: String = last.chars().filter(|c| !c.is_control()).take(255).collect();
    let cleaned = cleaned.trim();
    if cleaned.is_empty() || cleaned == "." || cleaned == ".." {
        "file".to_owned()
    } else {
        cleaned.to_owned()
    }
}

/// The name of an inbound file: the last segment of its URL when it looks like a file name
/// (has an extension), otherwise `{kind}-{n}.{ext}` from the declared type.
pub fn inbound_name(url: &str, declared_type: Option<&str>, position: usize) -> String {
    let from_url = url::Url::parse(url).ok().and_then(|u| {
        let seg = u.path_segments()?.next_back()?.to_owned();
        let decoded = percent_encoding::percent_decode_str(&seg).decode_utf8().ok()?.into_owned();
        let (stem, ext) = decoded.rsplit_once('.')?;
        (!stem.is_empty() && (1..=5).contains(&ext.len()) && ext.chars().all(|c| c.is_ascii_alphanumeric()))
            .then_some(decoded)
    });
    if let Some(name) = from_url {
        return display_name(&name);
    }
    let mime = declared_type.map(|t| t.split(';').next().unwrap_or(t).trim().to_ascii_lowercase());
    let kind = mime.as_deref().and_then(crate::media::mime::kind_of).map_or("file", |k| k.as_str());
    match mime.as_deref().filter(|m| crate::media::mime::kind_of(m).is_some()) {
        Some(m) => format!("{kind}-{}.{}", position + 1, crate::media::mime::extension_for(m)),
        None => format!("{kind}-{}", position + 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_names() {
        assert_eq!(safe_name("../../etc/passwd"), "passwd");
        assert_eq!(safe_name("C:\\Users\\me\\Photo 1.JPG"), "Photo_1.JPG");
        assert_eq!(safe_name("Über Café.pdf"), "ber_Caf_.pdf");
        assert_eq!(safe_name("..."), "file");
        assert_eq!(safe_name("a\u{0}b\nc.txt"), "abc.txt");
        let long = format!("{}.jpeg", "x".repeat(300));
        let s = safe_name(&long);
        assert_eq!(s.len(), 100);
        assert!(s.ends_with(".jpeg"));
    }

    #[test]
    fn display_names_keep_unicode() {
        assert_eq!(display_name("Über Café.pdf"), "Über Café.pdf");
        assert_eq!(display_name("../x/../..\u{7}"), "file");
        assert_eq!(display_name("dir/Report.docx"), "Report.docx");
    }

    #[test]
    fn inbound_names() {
        assert_eq!(inbound_name("https://cdn.example/media/IMG_0001.jpg?sig=1", Some("image/jpeg"), 0), "IMG_0001.jpg");
        assert_eq!(inbound_name("https://cdn.example/media/abc123", Some("image/jpeg"), 1), "image-2.jpg");
        assert_eq!(inbound_name("https://cdn.example/media/abc123", None, 0), "file-1");
        assert_eq!(
            inbound_name("https://cdn.example/m/Hello%20World.pdf", Some("application/pdf"), 0),
            "Hello World.pdf"
        );
    }
}
