//! ISO base media files: MP4, QuickTime, 3GP, M4A, HEIC.

use super::bytes::{array, be_u16, be_u32, be_u64};
use super::driver::{Next, Walk};
use super::{Facts, Sniff, MOOV_CAP};

/// Largest `moof` (fragmented MP4) read for sample durations.
const MOOF_CAP: u64 = 1024 * 1024;

/// The type from the `ftyp` brands (or a bare QuickTime atom), if ISO-BMFF.
pub fn sniff(head: &[u8]) -> Option<Sniff> {
    let kind = array::<4>(head, 4)?;
    let size = be_u32(head, 0)?;
    if &kind == b"ftyp" && size >= 16 {
        let major = array::<4>(head, 8)?;
        let end = usize::try_from(size).unwrap_or(usize::MAX).min(head.len());
        let compatible: Vec<[u8; 4]> =
            head.get(16..end).unwrap_or_default().chunks_exact(4).filter_map(|c| c.try_into().ok()).collect();
        return Some(brand_type(&major, &compatible));
    }
    // Old QuickTime files start straight with an atom (a small one, or a
    // 64-bit size: so "I'm free" is not a movie).
    let qt_atoms: [&[u8; 4]; 6] = [b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot"];
    (qt_atoms.contains(&&kind) && (size == 1 || (8..1 << 24).contains(&size)))
        .then_some(Sniff::Allowed("video/quicktime"))
}

fn brand_type(major: &[u8; 4], compatible: &[[u8; 4]]) -> Sniff {
    const HEIC: [&[u8; 4]; 6] = [b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx"];
    let has = |brand: &[u8; 4]| compatible.iter().any(|c| c == brand);
    let image_container = major == b"mif1" || major == b"msf1";
    if HEIC.contains(&major) || (image_container && HEIC.iter().any(|b| has(b))) {
        Sniff::Allowed("image/heic")
    } else if major == b"avif" || major == b"avis" || has(b"avif") || has(b"avis") {
        Sniff::Other("image/avif".to_owned())
    } else if image_container {
        Sniff::Other("image/heif".to_owned())
    } else if major == b"crx " {
        Sniff::Other("image/x-canon-cr3".to_owned())
    } else if major == b"qt  " {
        Sniff::Allowed("video/quicktime")
    } else if major.starts_with(b"3g") {
        Sniff::Allowed("video/3gpp") // 3gp*, and 3g2* from CDMA phones
    } else if major == b"M4A " || major == b"M4B " || major == b"M4P " {
        Sniff::Allowed("audio/mp4")
    } else {
        Sniff::Allowed("video/mp4")
    }
}

/// Display size of a HEIF's primary item: its `ispe`, turned by its `irot`.
/// (`imagesize` takes the largest `ispe`, which for a grid is a tile's.)
pub fn heif_size(head: &[u8]) -> Option<(u32, u32)> {
    let meta = children(head).find(|(k, _)| k == b"meta")?.1.get(4..)?;
    let pitm = child(meta, b"pitm")?;
    let primary = if pitm.first() == Some(&0) { u32::from(be_u16(pitm, 4)?) } else { be_u32(pitm, 4)? };
    let iprp = child(meta, b"iprp")?;
    let properties: Vec<([u8; 4], &[u8])> = children(child(iprp, b"ipco")?).collect();
    let (mut size, mut turns) = (None, 0);
    for index in item_properties(child(iprp, b"ipma")?, primary)? {
        let Some((kind, p)) = index.checked_sub(1).and_then(|i| properties.get(i)) else {
            continue;
        };
        match kind {
            b"ispe" => size = Some((be_u32(p, 4)?, be_u32(p, 8)?)),
            b"irot" => turns = p.first()? & 0x03,
            _ => {}
        }
    }
    let (w, h) = size.filter(|(w, h)| *w > 0 && *h > 0)?;
    Some(if turns % 2 == 1 { (h, w) } else { (w, h) })
}

/// The 1-based property indices `ipma` associates with `item`.
fn item_properties(ipma: &[u8], item: u32) -> Option<Vec<usize>> {
    let version = *ipma.first()?;
    let wide_index = ipma.get(3)? & 1 == 1;
    let count = be_u32(ipma, 4)?;
    let mut at = 8;
    for _ in 0..count {
        let id = if version < 1 {
            at += 2;
            u32::from(be_u16(ipma, at - 2)?)
        } else {
            at += 4;
            be_u32(ipma, at - 4)?
        };
        let n = usize::from(*ipma.get(at)?);
        at += 1;
        let mut indices = Vec::with_capacity(n);
        for _ in 0..n {
            let index = if wide_index {
                at += 2;
                usize::from(be_u16(ipma, at - 2)? & 0x7FFF)
            } else {
                at += 1;
                usize::from(ipma.get(at - 1)? & 0x7F)
            };
            indices.push(index);
        }
        if id == item {
            return Some(indices);
        }
    }
    None
}

#[derive(Debug, Default)]
enum State {
    #[default]
    Header,
    LargeSize([u8; 4]),
    Moov,
    /// A `moov` with size 0 (to the end of the file): parsed at `finish`.
    MoovToEnd,
    Moof,
    Done,
}

/// Walks top-level boxes, skipping everything but `moov` (and the `moof`s
/// of a fragmented file, whose `mvhd` has no duration).
#[derive(Debug, Default)]
pub struct Bmff {
    state: State,
    movie: Option<Movie>,
    /// Fragmented files: summed sample durations by track id.
    fragments: Vec<(u32, u64)>,
}

impl Bmff {
    fn on_box(&mut self, kind: [u8; 4], payload: u64) -> Next {
        let wanted = match &kind {
            b"moov" => Some(State::Moov),
            b"moof" if payload <= MOOF_CAP && self.movie.is_some() => Some(State::Moof),
            _ => None,
        };
        match wanted {
            Some(State::Moov) if payload == 0 || payload > MOOV_CAP => {
                self.state = State::Done;
                Next::DONE
            }
            Some(state) if payload > 0 => {
                self.state = state;
                Next::read(payload as usize)
            }
            _ => {
                self.state = State::Header;
                Next::skip(payload, 8)
            }
        }
    }

    /// Adds a `moof`'s sample durations (`traf/tfhd` defaults, `trun` entries).
    fn add_fragment(&mut self, moof: &[u8]) {
        let Some(movie) = &self.movie else { return };
        for (_, traf) in children(moof).filter(|(k, _)| k == b"traf") {
            let Some((track, tfhd_default)) = child(traf, b"tfhd").and_then(tfhd) else {
                continue;
            };
            let default = tfhd_default.or_else(|| movie.trex_duration(track));
            let total: u64 = children(traf)
                .filter(|(k, _)| k == b"trun")
                .map(|(_, trun)| trun_duration(trun, default.unwrap_or(0)))
                .sum();
            match self.fragments.iter_mut().find(|(id, _)| *id == track) {
                Some((_, sum)) => *sum = sum.saturating_add(total),
                None => self.fragments.push((track, total)),
            }
        }
    }
}

/// Track id and default sample duration from a `tfhd`.
fn tfhd(p: &[u8]) -> Option<(u32, Option<u32>)> {
    let flags = be_u32(p, 0)? & 0x00FF_FFFF;
    let track = be_u32(p, 4)?;
    if flags & 0x08 == 0 {
        return Some((track, None));
    }
    let mut at = 8;
    if flags & 0x01 != 0 {
        at += 8; // base data offset
    }
    if flags & 0x02 != 0 {
        at += 4; // sample description index
    }
    Some((track, be_u32(p, at)))
}

/// Sum of a `trun`'s sample durations (`default` for samples without one).
fn trun_duration(p: &[u8], default: u32) -> u64 {
    let flags = be_u32(p, 0).unwrap_or(0) & 0x00FF_FFFF;
    let count = u64::from(be_u32(p, 4).unwrap_or(0));
    if flags & 0x100 == 0 {
        return count * u64::from(default);
    }
    let mut at = 8 + 4 * usize::from(flags & 0x01 != 0) + 4 * usize::from(flags & 0x04 != 0);
    let stride = [0x100, 0x200, 0x400, 0x800].iter().filter(|bit| flags & **bit != 0).count() * 4;
    let mut total = 0u64;
    for _ in 0..count {
        let Some(duration) = be_u32(p, at) else { break };
        total += u64::from(duration);
        at += stride;
    }
    total
}

impl Walk for Bmff {
    fn start(&mut self) -> Next {
        Next::read(8)
    }

    fn step(&mut self, bytes: &[u8], _end: u64) -> Next {
        match std::mem::take(&mut self.state) {
            State::Header => {
                let (Some(size), Some(kind)) = (be_u32(bytes, 0), array::<4>(bytes, 4)) else {
                    return Next::DONE;
                };
                match size {
                    1 => {
                        self.state = State::LargeSize(kind);
                        Next::read(8)
                    }
                    0 if &kind == b"moov" => {
                        self.state = State::MoovToEnd;
                        Next::read(MOOV_CAP as usize)
                    }
                    2..=7 | 0 => Next::DONE,
                    _ => self.on_box(kind, u64::from(size) - 8),
                }
            }
            State::LargeSize(kind) => match be_u64(bytes, 0) {
                Some(size) if size >= 16 => self.on_box(kind, size - 16),
                _ => Next::DONE,
            },
            State::Moov | State::MoovToEnd => {
                let movie = Movie::parse(bytes);
                let fragmented = movie.fragmented;
                self.movie = Some(movie);
                if fragmented {
                    self.state = State::Header;
                    return Next::read(8);
                }
                Next::DONE
            }
            State::Moof => {
                self.add_fragment(bytes);
                self.state = State::Header;
                Next::read(8)
            }
            State::Done => Next::DONE,
        }
    }

    fn finish(&mut self, partial: &[u8], _total: u64) -> Facts {
        if matches!(self.state, State::MoovToEnd) {
            self.movie = Some(Movie::parse(partial));
        }
        let Some(movie) = &self.movie else {
            return Facts::default();
        };
        let video = movie.tracks.iter().find(|t| &t.handler == b"vide");
        let audio = movie.tracks.iter().any(|t| &t.handler == b"soun");
        let (width, height) = video
            .map(|t| (t.width, t.height))
            .filter(|(w, h)| *w > 0 && *h > 0)
            .map_or((None, None), |(w, h)| (Some(w), Some(h)));
        Facts {
            duration: movie.duration().or_else(|| movie.fragments_duration(&self.fragments)),
            width,
            height,
            tracks: Some((video.is_some(), audio)),
            ..Facts::default()
        }
    }
}

/// Child boxes of a payload held in memory: (type, payload).
fn children(mut rest: &[u8]) -> impl Iterator<Item = ([u8; 4], &[u8])> {
    std::iter::from_fn(move || {
        let size = be_u32(rest, 0)?;
        let kind = array::<4>(rest, 4)?;
        let (header, size) = match size {
            1 => (16, usize::try_from(be_u64(rest, 8)?).ok()?),
            0 => (8, rest.len()),
            n => (8, usize::try_from(n).ok()?),
        };
        let payload = rest.get(header..size)?;
        rest = rest.get(size..)?;
        Some((kind, payload))
    })
}

fn child<'a>(payload: &'a [u8], kind: &[u8; 4]) -> Option<&'a [u8]> {
    children(payload).find(|(k, _)| k == kind).map(|(_, p)| p)
}

#[derive(Debug, Default)]
struct Movie {
    timescale: u32,
    duration: Option<u64>,
    tracks: Vec<Track>,
    /// Has `mvex`: samples are described by `moof`s after the `moov`.
    fragmented: bool,
    /// `mvex/trex`: (track id, default sample duration).
    trex: Vec<(u32, u32)>,
}

#[derive(Debug)]
struct Track {
    id: u32,
    /// `mdhd` timescale, for fragment durations.
    timescale: u32,
    handler: [u8; 4],
    width: u32,
    height: u32,
}

impl Movie {
    fn parse(moov: &[u8]) -> Movie {
        let mut movie = Movie::default();
        for (kind, payload) in children(moov) {
            match &kind {
                b"mvhd" => movie.read_mvhd(payload),
                b"trak" => movie.tracks.extend(Track::parse(payload)),
                b"mvex" => {
                    movie.fragmented = true;
                    let trex = children(payload).filter(|(k, _)| k == b"trex");
                    movie.trex.extend(trex.filter_map(|(_, p)| Some((be_u32(p, 4)?, be_u32(p, 12)?))));
                }
                _ => {}
            }
        }
        movie
    }

    fn trex_duration(&self, track: u32) -> Option<u32> {
        self.trex.iter().find(|(id, _)| *id == track).map(|(_, d)| *d)
    }

    /// The longest track's summed fragment durations, in seconds.
    fn fragments_duration(&self, fragments: &[(u32, u64)]) -> Option<f64> {
        fragments
            .iter()
            .filter_map(|(id, total)| {
                let track = self.tracks.iter().find(|t| t.id == *id)?;
                (track.timescale > 0).then(|| *total as f64 / f64::from(track.timescale))
            })
            .filter(|d| *d > 0.0)
            .reduce(f64::max)
    }

    fn read_mvhd(&mut self, p: &[u8]) {
        let (timescale, duration) = if p.first() == Some(&1) {
            (be_u32(p, 20), be_u64(p, 24).filter(|d| *d != u64::MAX))
        } else {
            let d = be_u32(p, 16).filter(|d| *d != u32::MAX);
            (be_u32(p, 12), d.map(u64::from))
        };
        self.timescale = timescale.unwrap_or(0);
        self.duration = duration;
    }

    fn duration(&self) -> Option<f64> {
        let d = self.duration.filter(|d| *d > 0)?;
        (self.timescale > 0).then(|| d as f64 / f64::from(self.timescale))
    }
}

impl Track {
    fn parse(trak: &[u8]) -> Option<Track> {
        let mdia = child(trak, b"mdia")?;
        let handler = array::<4>(child(mdia, b"hdlr")?, 8)?;
        let tkhd = child(trak, b"tkhd").unwrap_or_default();
        let v1 = tkhd.first() == Some(&1);
        let id = be_u32(tkhd, if v1 { 20 } else { 12 }).unwrap_or(0);
        let mdhd = child(mdia, b"mdhd").unwrap_or_default();
        let timescale = be_u32(mdhd, if mdhd.first() == Some(&1) { 20 } else { 12 });
        let (mut width, mut height) = tkhd_size(tkhd);
        if &handler == b"vide" && (width == 0 || height == 0) {
            (width, height) = stsd_size(mdia).unwrap_or((0, 0));
        }
        Some(Track { id, timescale: timescale.unwrap_or(0), handler, width, height })
    }
}

/// Presentation size from `tkhd` (16.16 fixed point), swapped for a 90° matrix.
fn tkhd_size(p: &[u8]) -> (u32, u32) {
    let (matrix, size) = if p.first() == Some(&1) { (52, 88) } else { (40, 76) };
    let w = be_u32(p, size).unwrap_or(0) >> 16;
    let h = be_u32(p, size + 4).unwrap_or(0) >> 16;
    let a = be_u32(p, matrix).unwrap_or(0);
    let d = be_u32(p, matrix + 16).unwrap_or(0);
    if a == 0 && d == 0 {
        (h, w)
    } else {
        (w, h)
    }
}

/// Coded size from the first visual sample entry (`mdia/minf/stbl/stsd`).
fn stsd_size(mdia: &[u8]) -> Option<(u32, u32)> {
    let stbl = child(child(mdia, b"minf")?, b"stbl")?;
    let stsd = child(stbl, b"stsd")?;
    let (_, entry) = children(stsd.get(8..)?).next()?;
    Some((u32::from(be_u16(entry, 24)?), u32::from(be_u16(entry, 26)?)))
}
