//! The benchmark's media file: a PCM WAV of noise, generated in memory and either written to
//! disk (the baseline's source) or streamed from memory (the stand-in media host, which stands
//! for a remote host: its disk should cost this machine nothing). Both give the same bytes.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use bytes::Bytes;

/// Bytes per piece streamed.
const PIECE: usize = 256 << 10;

/// A 44-byte header and `data_len` bytes of noise: one random MiB, repeated.
#[derive(Clone)]
pub struct Wav {
    header: Bytes,
    block: Bytes,
    data_len: u64,
}

impl Wav {
    pub fn new(data_len: u64) -> anyhow::Result<Self> {
        let data32 = u32::try_from(data_len).context("WAV data is limited to 4 GiB")?;
        let mut header = Vec::with_capacity(44);
        header.extend_from_slice(b"RIFF");
        header.extend_from_slice(&(data32.saturating_add(36)).to_le_bytes());
        header.extend_from_slice(b"WAVEfmt ");
        header.extend_from_slice(&16u32.to_le_bytes());
        header.extend_from_slice(&1u16.to_le_bytes()); // PCM
        header.extend_from_slice(&2u16.to_le_bytes()); // stereo
        header.extend_from_slice(&48_000u32.to_le_bytes());
        header.extend_from_slice(&(48_000u32 * 4).to_le_bytes());
        header.extend_from_slice(&4u16.to_le_bytes());
        header.extend_from_slice(&16u16.to_le_bytes());
        header.extend_from_slice(b"data");
        header.extend_from_slice(&data32.to_le_bytes());
        let block: Vec<u8> = (0..1 << 20).map(|_| rand::random::<u8>()).collect();
        Ok(Self { header: Bytes::from(header), block: Bytes::from(block), data_len })
    }

    /// The whole file's length.
    pub fn len(&self) -> u64 {
        self.header.len() as u64 + self.data_len
    }

    /// The file's bytes in order, in pieces of at most 256 KiB that share the block (no copy).
    pub fn pieces(&self) -> impl Iterator<Item = Bytes> + Send + 'static {
        // The block's length is a multiple of PIECE, so no piece crosses the block's end.
        let (block, data_len) = (self.block.clone(), self.data_len);
        let data = (0..data_len).step_by(PIECE).map(move |at| {
            let start = (at % block.len() as u64) as usize;
            let n = (data_len - at).min(PIECE as u64) as usize;
            block.slice(start..start + n)
        });
        std::iter::once(self.header.clone()).chain(data)
    }

    /// Writes the file to `path` and syncs it.
    pub fn write_to(&self, path: &Path) -> anyhow::Result<()> {
        let mut f = std::fs::File::create(path)?;
        for piece in self.pieces() {
            f.write_all(&piece)?;
        }
        f.sync_all()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_make_the_whole_file() {
        let wav = Wav::new((3 << 20) + 123).expect("wav");
        let pieces: Vec<Bytes> = wav.pieces().collect();
        assert!(pieces.iter().all(|p| p.len() <= PIECE));
        let total: u64 = pieces.iter().map(|p| p.len() as u64).sum();
        assert_eq!(total, wav.len());
        assert_eq!(&pieces[0][..4], b"RIFF");
        // The data repeats the one random MiB.
        let data: Vec<u8> = pieces[1..].iter().flat_map(|p| p.iter().copied()).collect();
        assert_eq!(data[..1 << 20], data[1 << 20..2 << 20]);
        assert_eq!(data.len() as u64, (3 << 20) + 123);
    }
}
