//! AMR-NB (`#!AMR\n`) and AMR-WB (`#!AMR-WB\n`) storage format: 20 ms a frame.

use super::driver::{Next, Walk};
use super::Facts;

/// Payload bytes after the table-of-contents byte, by frame type (as ffmpeg).
const NB_SIZES: [u8; 16] = [12, 13, 15, 17, 19, 20, 26, 31, 5, 0, 0, 0, 0, 0, 0, 0];
const WB_SIZES: [u8; 16] = [17, 23, 32, 36, 40, 46, 50, 58, 60, 5, 0, 0, 0, 0, 0, 0];

/// AMR-NB or AMR-WB storage-format magic.
pub fn is_amr(head: &[u8]) -> bool {
    head.starts_with(b"#!AMR\n") || head.starts_with(b"#!AMR-WB\n")
}

#[derive(Debug, Default)]
pub struct Amr {
    /// None until the magic was read.
    wide: Option<bool>,
    frames: u64,
}

impl Walk for Amr {
    fn start(&mut self) -> Next {
        Next::read(6)
    }

    fn step(&mut self, bytes: &[u8], _end: u64) -> Next {
        let Some(wide) = self.wide else {
            return match bytes {
                b"#!AMR\n" => {
                    self.wide = Some(false);
                    Next::read(1)
                }
                b"#!AMR-" => {
                    self.wide = Some(true);
                    Next::skip(3, 1) // "WB\n", checked by the sniff
                }
                _ => Next::DONE,
            };
        };
        let table = if wide { &WB_SIZES } else { &NB_SIZES };
        let toc = bytes.first().copied().unwrap_or(0);
        let size = table[usize::from((toc >> 3) & 0x0F)];
        self.frames += 1;
        Next::skip(u64::from(size), 1)
    }

    fn finish(&mut self, _partial: &[u8], _total: u64) -> Facts {
        Facts { duration: Some(self.frames as f64 * 0.02), ..Facts::default() }
    }
}
