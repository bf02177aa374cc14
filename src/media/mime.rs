//! The media types koinonia accepts (docs/api.md, "Allowed media types"), spelled exactly as
//! that table lists them, with the kind each belongs to and its file extension.

pub use crate::domain::MediaKind;

pub const DOCX: &str = "application/vnd.openxmlformats-officedocument.wordprocessingml.document";
pub const XLSX: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

/// Every allowed `mimeType`, in the documented order, with its kind.
pub const ALLOWED: &[(&str, MediaKind)] = &[
    ("image/jpeg", MediaKind::Image),
    ("image/png", MediaKind::Image),
    ("image/gif", MediaKind::Image),
    ("image/webp", MediaKind::Image),
    ("image/heic", MediaKind::Image),
    ("video/mp4", MediaKind::Video),
    ("video/quicktime", MediaKind::Video),
    ("video/3gpp", MediaKind::Video),
    ("video/x-msvideo", MediaKind::Video),
    ("audio/mpeg", MediaKind::Audio),
    ("audio/wav", MediaKind::Audio),
    ("audio/aac", MediaKind::Audio),
    ("audio/amr", MediaKind::Audio),
    ("audio/mp4", MediaKind::Audio),
    ("audio/ogg", MediaKind::Audio),
    ("application/pdf", MediaKind::Document),
    ("application/msword", MediaKind::Document),
    (DOCX, MediaKind::Document),
    ("application/vnd.ms-excel", MediaKind::Document),
    (XLSX, MediaKind::Document),
    ("text/plain", MediaKind::Document),
    ("text/vcard", MediaKind::Document),
];

/// The kind of an allowed type, or `None` when the type is not allowed.
/// Matching is exact (the documented spelling) apart from ASCII case and any `; param`.
pub fn kind_of(mime: &str) -> Option<MediaKind> {
    canonical(mime).map(|(_, kind)| kind)
}

/// The documented spelling of an allowed type (`"Image/JPEG; q=1"` → `"image/jpeg"`).
pub fn canonical(mime: &str) -> Option<(&'static str, MediaKind)> {
    let essence = mime.split(';').next().unwrap_or_default().trim();
    ALLOWED.iter().find(|(allowed, _)| allowed.eq_ignore_ascii_case(essence)).copied()
}

/// The file extension (without a dot) for an allowed type; `"bin"` otherwise.
pub fn extension_for(mime: &str) -> &'static str {
    let Some((mime, _)) = canonical(mime) else {
        return "bin";
    };
    match mime {
        "image/jpeg" => "jpg",
        "image/png" => "png",
        "image/gif" => "gif",
        "image/webp" => "webp",
        "image/heic" => "heic",
        "video/mp4" => "mp4",
        "video/quicktime" => "mov",
        "video/3gpp" => "3gp",
        "video/x-msvideo" => "avi",
        "audio/mpeg" => "mp3",
        "audio/wav" => "wav",
        "audio/aac" => "aac",
        "audio/amr" => "amr",
        "audio/mp4" => "m4a",
        "audio/ogg" => "ogg",
        "application/pdf" => "pdf",
        "application/msword" => "doc",
        DOCX => "docx",
        "application/vnd.ms-excel" => "xls",
        XLSX => "xlsx",
        "text/plain" => "txt",
        "text/vcard" => "vcf",
        _ => "bin",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_allowed_type_has_a_kind_and_an_extension() {
        for (mime, kind) in ALLOWED {
            assert_eq!(kind_of(mime), Some(*kind));
            assert_ne!(extension_for(mime), "bin", "{mime}");
        }
        assert_eq!(ALLOWED.len(), 22);
    }

    #[test]
    fn kind_of_is_exact_apart_from_case_and_parameters() {
        assert_eq!(kind_of("IMAGE/JPEG"), Some(MediaKind::Image));
        assert_eq!(kind_of("text/plain; charset=utf-8"), Some(MediaKind::Document));
        assert_eq!(kind_of("image/jpg"), None);
        assert_eq!(kind_of("audio/x-wav"), None);
        assert_eq!(kind_of("application/zip"), None);
        assert_eq!(kind_of(""), None);
        assert_eq!(extension_for("application/zip"), "bin");
        assert_eq!(extension_for("audio/mp4"), "m4a");
    }

    #[test]
    fn kind_names_round_trip() {
        for kind in [MediaKind::Image, MediaKind::Video, MediaKind::Audio, MediaKind::Document] {
            assert_eq!(MediaKind::parse(kind.as_str()), Some(kind));
            let json = serde_json::to_string(&kind).unwrap_or_default();
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
        }
        assert_eq!(MediaKind::parse("Image"), None);
    }
}
