//! Incremental UTF-8 validation and the text/vCard decision.

/// Tracks whether the whole stream is UTF-8 without NUL bytes.
#[derive(Debug, Default)]
pub struct TextCheck {
    failed: bool,
    /// An incomplete multi-byte sequence carried over from the last chunk.
    pending: [u8; 4],
    pending_len: usize,
}

impl TextCheck {
    pub fn update(&mut self, mut chunk: &[u8]) {
        if self.failed {
            return;
        }
        if chunk.contains(&0) {
            self.failed = true; // NUL: binary, not text
            return;
        }
        if self.pending_len > 0 {
            let need = sequence_len(self.pending[0]);
            let take = (need - self.pending_len).min(chunk.len());
            self.pending[self.pending_len..self.pending_len + take].copy_from_slice(&chunk[..take]);
            self.pending_len += take;
            chunk = &chunk[take..];
            if self.pending_len < need {
                // Still short, but what we have must be a valid prefix.
                if let Err(e) = std::str::from_utf8(&self.pending[..self.pending_len]) {
                    self.failed = e.error_len().is_some();
                }
                return;
            }
            self.pending_len = 0;
            if std::str::from_utf8(&self.pending[..need]).is_err() {
                self.failed = true;
                return;
            }
        }
        if let Err(e) = std::str::from_utf8(chunk) {
            if e.error_len().is_some() {
                self.failed = true;
            } else {
                let tail = &chunk[e.valid_up_to()..];
                self.pending[..tail.len()].copy_from_slice(tail);
                self.pending_len = tail.len();
            }
        }
    }

    /// True when every byte seen is valid UTF-8 with no sequence left open.
    pub fn is_text(&self) -> bool {
        !self.failed && self.pending_len == 0
    }
}

/// The length of a sequence from its (already validated) lead byte.
fn sequence_len(lead: u8) -> usize {
    match lead {
        0xF0..=0xF7 => 4,
        0xE0..=0xEF => 3,
        _ => 2,
    }
}

/// `text/vcard` when the text begins with `BEGIN:VCARD`, else `text/plain`.
pub fn text_type(head: &[u8]) -> &'static str {
    let body = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(head);
    let start = body.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(body.len());
    match body.get(start..start + 11) {
        Some(tag) if tag.eq_ignore_ascii_case(b"BEGIN:VCARD") => "text/vcard",
        _ => "text/plain",
    }
}
