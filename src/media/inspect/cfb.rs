//! OLE2 compound files (legacy Office): the first directory sector tells
//! Word from Excel (stream names, else the root CLSID).

use super::bytes::{array, le_u16, le_u32};
use super::driver::{Next, Walk};
use super::{Facts, Sniff};

pub const SIGNATURE: [u8; 8] = [0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1];

const WORD_CLSID: [u8; 4] = [0x06, 0x09, 0x02, 0x00];
const EXCEL_CLSIDS: [[u8; 4]; 2] = [[0x20, 0x08, 0x02, 0x00], [0x10, 0x08, 0x02, 0x00]];
/// The common tail of Microsoft's {000209xx-0000-0000-C000-000000000046} ids.
const OFFICE_CLSID_TAIL: [u8; 12] = [0, 0, 0, 0, 0xC0, 0, 0, 0, 0, 0, 0, 0x46];
const PPT_CLSID: [u8; 16] =
    [0x10, 0x8D, 0x81, 0x64, 0x9B, 0x4F, 0xCF, 0x11, 0x86, 0xEA, 0x00, 0xAA, 0x00, 0xB9, 0x29, 0xE8];

#[derive(Debug, Default)]
pub struct Cfb {
    header_read: bool,
    /// Set once the directory sector was read: the type it names, if any.
    verdict: Option<Option<&'static str>>,
}

/// UTF-16LE directory entry name.
fn entry_name(entry: &[u8]) -> String {
    let len = usize::from(le_u16(entry, 0x40).unwrap_or(0)).min(64);
    let units: Vec<u16> = entry
        .get(..len)
        .unwrap_or_default()
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .take_while(|&u| u != 0)
        .collect();
    String::from_utf16_lossy(&units)
}

fn classify(sector: &[u8]) -> Option<&'static str> {
    for entry in sector.chunks_exact(128) {
        match entry_name(entry).as_str() {
            "WordDocument" => return Some("application/msword"),
            "Workbook" | "Book" => return Some("application/vnd.ms-excel"),
            "PowerPoint Document" => return Some("application/vnd.ms-powerpoint"),
            _ => {}
        }
    }
    let clsid = array::<16>(sector, 0x50)?;
    let office = clsid[4..] == OFFICE_CLSID_TAIL;
    if office && clsid[..4] == WORD_CLSID {
        Some("application/msword")
    } else if office && EXCEL_CLSIDS.iter().any(|c| clsid[..4] == *c) {
        Some("application/vnd.ms-excel")
    } else if clsid == PPT_CLSID {
        Some("application/vnd.ms-powerpoint")
    } else {
        None
    }
}

impl Walk for Cfb {
    fn start(&mut self) -> Next {
        Next::read(512)
    }

    fn step(&mut self, b: &[u8], _end: u64) -> Next {
        if self.header_read {
            self.verdict = Some(classify(b));
            return Next::DONE;
        }
        self.header_read = true;
        let (Some(shift), Some(first_dir)) = (le_u16(b, 0x1E), le_u32(b, 0x30)) else {
            return Next::DONE;
        };
        if !b.starts_with(&SIGNATURE) || !(shift == 9 || shift == 12) || first_dir >= 0xFFFF_FFFA {
            return Next::DONE;
        }
        let sector = 1u64 << shift;
        let offset = (u64::from(first_dir) + 1) * sector;
        Next::skip(offset.saturating_sub(512), sector as usize)
    }

    fn finish(&mut self, _partial: &[u8], _total: u64) -> Facts {
        // A stream that ends before its directory is not judged on its header alone
        // (so a head-only look says "unknown yet", not "not allowed").
        let mime = match self.verdict {
            Some(name) => Sniff::named(name.unwrap_or("application/x-ole-storage")),
            None => Sniff::Unknown,
        };
        Facts { mime: Some(mime), ..Facts::default() }
    }
}
