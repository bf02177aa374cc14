//! ZIP: local file headers walked for Office Open XML part names (`infer`
//! only looks at the first few entries, in one particular order).

use super::bytes::{le_u16, le_u32};
use super::driver::{Next, Walk};
use super::{Facts, Sniff};

pub const SIGNATURE: &[u8] = b"PK\x03\x04";
const PPTX: &str = "application/vnd.openxmlformats-officedocument.presentationml.presentation";
/// Part folders of the OOXML packages.
const PACKAGES: [(&[u8], &str); 3] = [(b"word/", super::mime::DOCX), (b"xl/", super::mime::XLSX), (b"ppt/", PPTX)];

#[derive(Debug, Default)]
pub struct Zip {
    /// Skip after the current name: extra field and data; None if unknown.
    after_name: Option<u64>,
    content_types: bool,
    package: Option<&'static str>,
}

impl Zip {
    fn verdict(&self) -> Option<&'static str> {
        self.package.filter(|_| self.content_types)
    }
}

impl Walk for Zip {
    fn start(&mut self) -> Next {
        Next::read(30)
    }

    fn step(&mut self, b: &[u8], _end: u64) -> Next {
        if let Some(after) = self.after_name.take() {
            // `b` is an entry name.
            if b == b"[Content_Types].xml" {
                self.content_types = true;
            } else if self.package.is_none() {
                self.package = PACKAGES.iter().find(|(dir, _)| b.starts_with(dir)).map(|(_, mime)| *mime);
            }
            if self.verdict().is_some() || after == u64::MAX {
                return Next::DONE;
            }
            return Next::skip(after, 30);
        }
        let (Some(flags), Some(size), Some(name), Some(extra)) =
            (le_u16(b, 6), le_u32(b, 18), le_u16(b, 26), le_u16(b, 28))
        else {
            return Next::DONE;
        };
        if !b.starts_with(SIGNATURE) || name == 0 {
            return Next::DONE; // the central directory, or junk
        }
        // Sizes unknown (data descriptor) or in a ZIP64 extra: stop after this name.
        let unknown = (flags & 0x08 != 0 && size == 0) || size == u32::MAX;
        self.after_name = Some(if unknown { u64::MAX } else { u64::from(extra) + u64::from(size) });
        Next::read(usize::from(name))
    }

    fn finish(&mut self, _partial: &[u8], _total: u64) -> Facts {
        Facts { mime: self.verdict().map(Sniff::named), ..Facts::default() }
    }
}
