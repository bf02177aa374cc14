//! Feeds a stream to a walker in the pieces it asks for.

use super::{amr, bmff, cfb, jpeg, mpeg, ogg, riff, zip, Facts, HEAD_LEN};

/// What a walker asks of the stream next: drop `skip` bytes, then hand
/// over exactly `read` bytes. `read == 0` means it is done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Next {
    pub skip: u64,
    pub read: usize,
}

impl Next {
    pub const DONE: Next = Next { skip: 0, read: 0 };

    pub fn read(read: usize) -> Self {
        Next { skip: 0, read }
    }

    pub fn skip(skip: u64, then_read: usize) -> Self {
        Next { skip, read: then_read }
    }
}

/// A container parser driven by [`Driver`].
pub trait Walk: Send {
    /// The first request.
    fn start(&mut self) -> Next;
    /// `bytes` are exactly what was asked for; `end` is the stream offset just past them.
    fn step(&mut self, bytes: &[u8], end: u64) -> Next;
    /// End of stream: `partial` holds a read cut short, `total` is the stream length.
    fn finish(&mut self, partial: &[u8], total: u64) -> Facts;
}

pub struct Driver {
    walker: Box<dyn Walk>,
    next: Next,
    buf: Vec<u8>,
    pos: u64,
}

impl Driver {
    /// The walker for a stream beginning with `head`, if any applies.
    pub fn for_head(head: &[u8]) -> Option<Self> {
        let walker: Box<dyn Walk> = if bmff::sniff(head).is_some() {
            Box::new(bmff::Bmff::default())
        } else if amr::is_amr(head) {
            Box::new(amr::Amr::default())
        } else if mpeg::looks_like(head) {
            Box::new(mpeg::Mpeg::default())
        } else if head.starts_with(&cfb::SIGNATURE) {
            Box::new(cfb::Cfb::default())
        } else if head.starts_with(b"OggS") {
            Box::new(ogg::Ogg::default())
        } else if head.starts_with(b"RIFF") {
            Box::new(riff::Riff::default())
        } else if head.starts_with(&[0xFF, 0xD8]) {
            Box::new(jpeg::Jpeg::default())
        } else if head.starts_with(zip::SIGNATURE) {
            Box::new(zip::Zip::default())
        } else {
            return None;
        };
        Some(Self::new(walker))
    }

    fn new(mut walker: Box<dyn Walk>) -> Self {
        let next = walker.start();
        Driver { walker, next, buf: Vec::new(), pos: 0 }
    }

    pub fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() && self.next.read > 0 {
            if self.next.skip > 0 {
                let n = usize::try_from(self.next.skip).unwrap_or(usize::MAX).min(data.len());
                data = &data[n..];
                self.next.skip -= n as u64;
                self.pos += n as u64;
                continue;
            }
            let n = (self.next.read - self.buf.len()).min(data.len());
            self.buf.extend_from_slice(&data[..n]);
            data = &data[n..];
            self.pos += n as u64;
            if self.buf.len() == self.next.read {
                self.next = self.walker.step(&self.buf, self.pos);
                self.buf.clear();
                if self.buf.capacity() > HEAD_LEN {
                    self.buf = Vec::new(); // release a captured moov
                }
            }
        }
    }

    pub fn finish(mut self, total: u64) -> Facts {
        self.walker.finish(&self.buf, total)
    }
}
