//! JPEG: segments walked by length to the frame header; EXIF orientation noted.

use super::bytes::{be_u16, be_u32, le_u16, le_u32};
use super::driver::{Next, Walk};
use super::Facts;

#[derive(Debug, Default, Clone, Copy)]
enum State {
    #[default]
    Soi,
    Marker,
    Fill,
    Length(u8),
    Segment(u8),
}

#[derive(Debug, Default)]
pub struct Jpeg {
    state: State,
    orientation: Option<u16>,
    size: Option<(u16, u16)>,
}

fn is_sof(marker: u8) -> bool {
    matches!(marker, 0xC0..=0xCF) && !matches!(marker, 0xC4 | 0xC8 | 0xCC)
}

impl Jpeg {
    fn marker(&mut self, m: u8) -> Next {
        match m {
            0xFF => {
                self.state = State::Fill;
                Next::read(1)
            }
            0x01 | 0xD0..=0xD8 => {
                self.state = State::Marker;
                Next::read(2)
            }
            0xD9 | 0xDA => Next::DONE, // end of image, or scan data without a frame header
            _ => {
                self.state = State::Length(m);
                Next::read(2)
            }
        }
    }
}

/// The EXIF orientation tag (0x0112) from an APP1 payload.
fn exif_orientation(app1: &[u8]) -> Option<u16> {
    let tiff = app1.strip_prefix(b"Exif\0\0")?;
    let little = match tiff.get(..4)? {
        b"II*\0" => true,
        b"MM\0*" => false,
        _ => return None,
    };
    let u16_at = |at| {
        if little {
            le_u16(tiff, at)
        } else {
            be_u16(tiff, at)
        }
    };
    let u32_at = |at| {
        if little {
            le_u32(tiff, at)
        } else {
            be_u32(tiff, at)
        }
    };
    let ifd = usize::try_from(u32_at(4)?).ok()?;
    let count = u16_at(ifd)?;
    (0..usize::from(count)).find_map(|i| {
        let entry = ifd.checked_add(2 + i * 12)?;
        (u16_at(entry)? == 0x0112).then(|| u16_at(entry + 8))?
    })
}

impl Walk for Jpeg {
    fn start(&mut self) -> Next {
        Next::read(2)
    }

    fn step(&mut self, b: &[u8], _end: u64) -> Next {
        match self.state {
            State::Soi if b == [0xFF, 0xD8] => {
                self.state = State::Marker;
                Next::read(2)
            }
            State::Soi => Next::DONE,
            State::Marker => match b {
                &[0xFF, m] => self.marker(m),
                _ => Next::DONE,
            },
            State::Fill => self.marker(b.first().copied().unwrap_or(0)),
            State::Length(m) => {
                let body = usize::from(be_u16(b, 0).unwrap_or(0)).saturating_sub(2);
                let wanted = is_sof(m) || (m == 0xE1 && self.orientation.is_none());
                if wanted && body > 0 {
                    self.state = State::Segment(m);
                    return Next::read(body);
                }
                self.state = State::Marker;
                Next::skip(body as u64, 2)
            }
            State::Segment(m) if is_sof(m) => {
                if let (Some(h), Some(w)) = (be_u16(b, 1), be_u16(b, 3)) {
                    self.size = Some((w, h));
                }
                Next::DONE
            }
            State::Segment(_) => {
                self.orientation = exif_orientation(b);
                self.state = State::Marker;
                Next::read(2)
            }
        }
    }

    fn finish(&mut self, _partial: &[u8], _total: u64) -> Facts {
        let Some((w, h)) = self.size.filter(|(w, h)| *w > 0 && *h > 0) else {
            return Facts::default();
        };
        let rotated = matches!(self.orientation, Some(5..=8));
        let (w, h) = if rotated { (h, w) } else { (w, h) };
        Facts { width: Some(u32::from(w)), height: Some(u32::from(h)), ..Facts::default() }
    }
}
