//! MPEG audio (MP3, also layers I/II) and ADTS AAC, after an optional ID3v2 tag.

use super::bytes::be_u32;
use super::driver::{Next, Walk};
use super::{Facts, Sniff};

/// Bytes of a frame header we look at (ADTS needs 7).
const HEADER: usize = 7;
/// How far past the ID3 tag we search for the first frame.
const RESYNC_BUDGET: u32 = 64 * 1024;

/// An ID3v2 tag or a frame sync at the very start.
pub fn looks_like(head: &[u8]) -> bool {
    head.starts_with(b"ID3") || matches!(head, [0xFF, b1, ..] if b1 & 0xE0 == 0xE0)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Mp3,
    Adts,
}

#[derive(Debug, Clone, Copy)]
struct Frame {
    family: Family,
    len: usize,
    samples: u32,
    rate: u32,
    /// Offset of a Xing/Info header inside the frame (MP3 only).
    xing_at: usize,
}

const ADTS_RATES: [u32; 13] = [96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350];

/// Kbit/s by [MPEG-1?][layer I, II, III][index].
const BITRATES: [[[u16; 15]; 3]; 2] = [
    [
        [0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256],
        [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160],
        [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160],
    ],
    [
        [0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448],
        [0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384],
        [0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320],
    ],
];

fn parse_frame(h: &[u8]) -> Option<Frame> {
    let Some(&[0xFF, b1, b2, b3, b4, b5, b6]) = h.get(..HEADER) else {
        return None;
    };
    if b1 & 0xF6 == 0xF0 {
        // ADTS: 12-bit sync, layer 0.
        let rate = *ADTS_RATES.get(usize::from((b2 >> 2) & 0x0F))?;
        let len = (usize::from(b3 & 0x03) << 11) | (usize::from(b4) << 3) | usize::from(b5 >> 5);
        let blocks = u32::from(b6 & 0x03) + 1;
        return (len >= HEADER).then_some(Frame {
            family: Family::Adts,
            len,
            samples: 1024 * blocks,
            rate,
            xing_at: 0,
        });
    }
    if b1 & 0xE0 != 0xE0 {
        return None;
    }
    let version = (b1 >> 3) & 0x03; // 0: 2.5, 1: reserved, 2: MPEG-2, 3: MPEG-1
    let layer = (b1 >> 1) & 0x03; // 1: III, 2: II, 3: I
    if version == 1 || layer == 0 {
        return None;
    }
    let mpeg1 = version == 3;
    let layer_index = usize::from(3 - layer); // 0: I, 1: II, 2: III
    let kbps = *BITRATES[usize::from(mpeg1)][layer_index].get(usize::from(b2 >> 4))?;
    let base_rate = [44100, 48000, 32000].get(usize::from((b2 >> 2) & 0x03))?;
    let rate = match version {
        3 => *base_rate,
        2 => base_rate / 2,
        _ => base_rate / 4,
    };
    if kbps == 0 {
        return None; // "free" bit rate: frame length unknown
    }
    let bits_per_second = u32::from(kbps) * 1000;
    let padding = u32::from((b2 >> 1) & 0x01);
    // Bits in a frame: samples × bit rate / sample rate (layer I counts 4-byte slots).
    let (samples, len) = match layer_index {
        0 => (384, (12 * bits_per_second / rate + padding) * 4),
        1 => (1152, 144 * bits_per_second / rate + padding),
        _ if mpeg1 => (1152, 144 * bits_per_second / rate + padding),
        _ => (576, 72 * bits_per_second / rate + padding),
    };
    let mono = b3 >> 6 == 3;
    let side_info = match (mpeg1, mono) {
        (true, true) => 17,
        (true, false) => 32,
        (false, true) => 9,
        (false, false) => 17,
    };
    let crc = if b1 & 0x01 == 0 { 2 } else { 0 };
    let len = usize::try_from(len).ok().filter(|l| *l >= HEADER)?;
    Some(Frame { family: Family::Mp3, len, samples, rate, xing_at: 4 + crc + side_info })
}

/// Frames counted by a Xing/Info or VBRI header in the first frame.
fn header_frames(frame: &[u8], xing_at: usize) -> Option<u32> {
    let tag = frame.get(xing_at..xing_at + 4)?;
    if tag == b"Xing" || tag == b"Info" {
        let flags = be_u32(frame, xing_at + 4)?;
        return if flags & 1 == 1 { be_u32(frame, xing_at + 8) } else { None };
    }
    if frame.get(36..40)? == b"VBRI" {
        return be_u32(frame, 36 + 14);
    }
    None
}

#[derive(Debug, Default, Clone, Copy)]
enum State {
    #[default]
    Start,
    Id3,
    Sync,
    /// Reading the rest of the first MP3 frame, which may hold Xing/VBRI.
    FirstFrame(Frame),
}

#[derive(Debug, Default)]
pub struct Mpeg {
    state: State,
    window: Vec<u8>,
    family: Option<Family>,
    frames: u64,
    seconds: f64,
    resyncs: u32,
    from_header: Option<f64>,
}

impl Mpeg {
    fn count(&mut self, frame: &Frame) {
        self.frames += 1;
        self.seconds += f64::from(frame.samples) / f64::from(frame.rate);
    }

    fn sync(&mut self) -> Next {
        if self.window.len() < HEADER {
            return Next::read(HEADER - self.window.len());
        }
        let frame = parse_frame(&self.window).filter(|f| self.family.is_none_or(|family| family == f.family));
        let Some(frame) = frame else {
            if self.frames > 0 || self.resyncs >= RESYNC_BUDGET {
                return Next::DONE; // trailing tags or junk
            }
            self.resyncs += 1;
            self.window.remove(0);
            return Next::read(1);
        };
        self.family = Some(frame.family);
        if self.frames == 0 && frame.family == Family::Mp3 {
            // Keep the header in `window`: Xing offsets count from the frame start.
            self.state = State::FirstFrame(frame);
            return Next::read(frame.len - HEADER);
        }
        self.window.clear();
        self.count(&frame);
        Next::skip((frame.len - HEADER) as u64, HEADER)
    }
}

impl Walk for Mpeg {
    fn start(&mut self) -> Next {
        Next::read(3)
    }

    fn step(&mut self, bytes: &[u8], _end: u64) -> Next {
        match self.state {
            State::Start => {
                if bytes == b"ID3" {
                    self.state = State::Id3;
                    return Next::read(7);
                }
                self.window.extend_from_slice(bytes);
                self.state = State::Sync;
                self.sync()
            }
            State::Id3 => {
                // version, revision, flags, 4 syncsafe size bytes
                let &[major, _, flags, s0, s1, s2, s3] = bytes else {
                    return Next::DONE;
                };
                if !(2..=4).contains(&major) || (s0 | s1 | s2 | s3) & 0x80 != 0 {
                    return Next::DONE;
                }
                let size = (u64::from(s0) << 21) | (u64::from(s1) << 14) | (u64::from(s2) << 7) | u64::from(s3);
                let footer = if flags & 0x10 != 0 { 10 } else { 0 };
                self.state = State::Sync;
                Next::skip(size + footer, HEADER)
            }
            State::Sync => {
                self.window.extend_from_slice(bytes);
                self.sync()
            }
            State::FirstFrame(frame) => {
                self.window.extend_from_slice(bytes);
                let counted = header_frames(&self.window, frame.xing_at);
                self.window.clear();
                self.count(&frame);
                if let Some(n) = counted {
                    let seconds = f64::from(n) * f64::from(frame.samples) / f64::from(frame.rate);
                    self.from_header = Some(seconds);
                    return Next::DONE;
                }
                self.state = State::Sync;
                Next::read(HEADER)
            }
        }
    }

    fn finish(&mut self, _partial: &[u8], _total: u64) -> Facts {
        let mime = match (self.frames, self.family) {
            (1.., Some(Family::Mp3)) => Sniff::Allowed("audio/mpeg"),
            (1.., Some(Family::Adts)) => Sniff::Allowed("audio/aac"),
            _ => return Facts::default(),
        };
        Facts { mime: Some(mime), duration: self.from_header.or(Some(self.seconds)), ..Facts::default() }
    }
}
