//! RIFF: WAV (`fmt ` byte rate, `data` size) and AVI (`avih`).

use super::bytes::{array, le_u32};
use super::driver::{Next, Walk};
use super::Facts;

#[derive(Debug, Default, Clone, Copy, PartialEq)]
enum State {
    #[default]
    Header,
    Chunk,
    Fmt {
        rest: u64,
    },
    ListType {
        size: u64,
    },
    Avih,
    Done,
}

#[derive(Debug, Default)]
pub struct Riff {
    state: State,
    avi: bool,
    byte_rate: u32,
    /// WAV `data`: its offset and declared length (None: to the end).
    data: Option<(u64, Option<u64>)>,
    avih: Option<(f64, u32, u32)>,
}

fn padded(size: u64) -> u64 {
    size + (size & 1)
}

impl Riff {
    fn chunk(&mut self, id: [u8; 4], size: u64, end: u64) -> Next {
        match (&id, self.avi) {
            (b"fmt ", false) if size >= 16 => {
                let n = size.min(40);
                self.state = State::Fmt { rest: padded(size) - n };
                Next::read(n as usize)
            }
            (b"data", false) => {
                let len = (size != 0 && size != u64::from(u32::MAX)).then_some(size);
                self.data = Some((end, len));
                Next::DONE
            }
            (b"LIST", true) if size >= 4 => {
                self.state = State::ListType { size };
                Next::read(4)
            }
            (b"avih", true) if size >= 40 => {
                self.state = State::Avih;
                Next::read(40)
            }
            _ => {
                self.state = State::Chunk;
                Next::skip(padded(size), 8)
            }
        }
    }
}

impl Walk for Riff {
    fn start(&mut self) -> Next {
        Next::read(12)
    }

    fn step(&mut self, b: &[u8], end: u64) -> Next {
        let state = std::mem::replace(&mut self.state, State::Done);
        match state {
            State::Header => {
                self.avi = match b.get(8..12) {
                    Some(b"WAVE") => false,
                    Some(b"AVI ") => true,
                    _ => return Next::DONE,
                };
                self.state = State::Chunk;
                Next::read(8)
            }
            State::Chunk => match (array::<4>(b, 0), le_u32(b, 4)) {
                (Some(id), Some(size)) => self.chunk(id, u64::from(size), end),
                _ => Next::DONE,
            },
            State::Fmt { rest } => {
                self.byte_rate = le_u32(b, 8).unwrap_or(0);
                self.state = State::Chunk;
                Next::skip(rest, 8)
            }
            State::ListType { size } => {
                self.state = State::Chunk;
                if b == b"hdrl" {
                    Next::read(8) // descend into the header list
                } else {
                    Next::skip(padded(size) - 4, 8)
                }
            }
            State::Avih => {
                let field = |at| le_u32(b, at).unwrap_or(0);
                let seconds = f64::from(field(0)) * f64::from(field(16)) / 1e6;
                self.avih = Some((seconds, field(32), field(36)));
                Next::DONE
            }
            State::Done => Next::DONE,
        }
    }

    fn finish(&mut self, _partial: &[u8], total: u64) -> Facts {
        if let Some((seconds, w, h)) = self.avih {
            let nonzero = |v: u32| (v > 0).then_some(v);
            return Facts {
                duration: (seconds > 0.0).then_some(seconds),
                width: nonzero(w),
                height: nonzero(h),
                ..Facts::default()
            };
        }
        let duration = match self.data {
            Some((start, declared)) if self.byte_rate > 0 => {
                let available = total.saturating_sub(start);
                let len = declared.map_or(available, |d| d.min(available));
                Some(len as f64 / f64::from(self.byte_rate))
            }
            _ => None,
        };
        Facts { duration, ..Facts::default() }
    }
}
