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

/// Invisible formatting characters (Unicode category Cf) that can make a name read as something
/// it is not: bidirectional overrides and isolates (`invoice\u{202e}fdp.bat` shows as
/// "invoicetab.pdf"), marks, zero-width characters, the BOM, soft hyphens, tags.
pub fn is_format_char(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{061C}' | '\u{180E}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{206F}' | '\u{FEFF}' | '\u{FFF9}'..='\u{FFFB}'
        | '\u{110BD}' | '\u{1D173}'..='\u{1D17A}' | '\u{E0001}' | '\u{E0020}'..='\u{E007F}'
        | '\u{0600}'..='\u{0605}' | '\u{06DD}' | '\u{070F}' | '\u{08E2}')
}

/// A display name kept as given, minus control and invisible formatting characters and path
/// components, at most 255 chars. Applied where a name is stored, shown and downloaded.
pub fn display_name(original: &str) -> String {
    let last = original.rsplit(['/', '\\']).next().unwrap_or(original);
    let cleaned: String = last.chars().filter(|c| !c.is_control() && !is_format_char(*c)).take(255).collect();
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
    fn names_cannot_lie_about_their_extension() {
        assert_eq!(display_name("invoice\u{202e}fdp.bat"), "invoicefdp.bat");
        assert_eq!(display_name("photo\u{2067}gpj.exe\u{2069}"), "photogpj.exe");
        assert_eq!(display_name("a\u{200b}b\u{feff}c\u{00ad}.pdf"), "abc.pdf");
        assert_eq!(display_name("\u{202e}\u{202c}"), "file");
        assert_eq!(safe_name("invoice\u{202e}fdp.bat"), "invoice_fdp.bat");
        assert_eq!(display_name("عربى.pdf"), "عربى.pdf", "right-to-left text itself stays");
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
