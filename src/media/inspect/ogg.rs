//! Ogg: pages walked; duration from the last granule of the first audio stream.

use super::bytes::{le_u16, le_u32, le_u64};
use super::driver::{Next, Walk};
use super::{Facts, Sniff};

#[derive(Debug, Default, Clone, Copy)]
enum State {
    #[default]
    Page,
    Segments {
        bos: bool,
        serial: u32,
        granule: u64,
    },
    IdHeader {
        serial: u32,
    },
}

/// The audio stream whose duration we report.
#[derive(Debug, Clone, Copy)]
struct Stream {
    serial: u32,
    rate: u32,
    pre_skip: u64,
    last_granule: Option<u64>,
}

#[derive(Debug, Default)]
pub struct Ogg {
    state: State,
    audio: Option<Stream>,
    video: bool,
}

impl Ogg {
    /// Reads a stream's identification header (first packet of its first page).
    fn id_header(&mut self, serial: u32, p: &[u8]) {
        if p.starts_with(b"\x80theora") {
            self.video = true;
        }
        if self.audio.is_some() {
            return;
        }
        let (rate, pre_skip) = if p.starts_with(b"\x01vorbis") {
            (le_u32(p, 12).unwrap_or(0), 0)
        } else if p.starts_with(b"OpusHead") {
            (48_000, u64::from(le_u16(p, 10).unwrap_or(0)))
        } else if p.starts_with(b"Speex   ") {
            (le_u32(p, 36).unwrap_or(0), 0)
        } else {
            return;
        };
        if rate > 0 {
            self.audio = Some(Stream { serial, rate, pre_skip, last_granule: None });
        }
    }
}

impl Walk for Ogg {
    fn start(&mut self) -> Next {
        Next::read(27)
    }

    fn step(&mut self, b: &[u8], _end: u64) -> Next {
        match self.state {
            State::Page => {
                if !b.starts_with(b"OggS") || b.get(4) != Some(&0) {
                    return Next::DONE;
                }
                let (Some(granule), Some(serial), Some(&count)) = (le_u64(b, 6), le_u32(b, 14), b.get(26)) else {
                    return Next::DONE;
                };
                let bos = b.get(5).is_some_and(|t| t & 0x02 != 0);
                self.state = State::Segments { bos, serial, granule };
                if count == 0 {
                    return self.step(&[], 0);
                }
                Next::read(usize::from(count))
            }
            State::Segments { bos, serial, granule } => {
                let body: usize = b.iter().map(|&s| usize::from(s)).sum();
                if let Some(stream) = &mut self.audio {
                    // granule -1: no packet ends on this page
                    if stream.serial == serial && granule != u64::MAX {
                        stream.last_granule = Some(granule);
                    }
                }
                if bos && body > 0 {
                    self.state = State::IdHeader { serial };
                    return Next::read(body);
                }
                self.state = State::Page;
                Next::skip(body as u64, 27)
            }
            State::IdHeader { serial } => {
                self.id_header(serial, b);
                self.state = State::Page;
                Next::read(27)
            }
        }
    }

    fn finish(&mut self, _partial: &[u8], _total: u64) -> Facts {
        let duration = self.audio.and_then(|s| {
            let samples = s.last_granule?.saturating_sub(s.pre_skip);
            Some(samples as f64 / f64::from(s.rate))
        });
        Facts { mime: self.video.then(|| Sniff::Other("video/ogg".to_owned())), duration, ..Facts::default() }
    }
}
