use super::*;

const MANIFEST: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/media/manifest.json");
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/media/");

#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Entry {
    file: String,
    mime_type: Option<String>,
    #[serde(rename = "type")]
    kind: Option<MediaKind>,
    width: Option<u32>,
    height: Option<u32>,
    duration_seconds: Option<f64>,
    size_bytes: u64,
    sha256: String,
}

fn manifest() -> Vec<(Entry, Vec<u8>)> {
    let text = std::fs::read_to_string(MANIFEST).expect("manifest.json");
    let entries: Vec<Entry> = serde_json::from_str(&text).expect("manifest parses");
    entries
        .into_iter()
        .map(|e| {
            let bytes = std::fs::read(format!("{FIXTURES}{}", e.file)).expect("fixture");
            (e, bytes)
        })
        .collect()
}

fn inspect_in(data: &[u8], chunk: usize) -> Inspection {
    let mut inspector = Inspector::new();
    for piece in data.chunks(chunk.max(1)) {
        inspector.update(piece);
        assert!(inspector.head.len() <= HEAD_LEN);
    }
    assert_eq!(inspector.bytes_seen(), data.len() as u64);
    inspector.finish()
}

fn inspect(data: &[u8]) -> Inspection {
    inspect_in(data, data.len())
}

/// Deterministic pseudo-random bytes (xorshift64*).
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.max(1);
    (0..len)
        .map(|_| {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8
        })
        .collect()
}

#[test]
fn fixtures_match_the_manifest_whatever_the_chunking() {
    let fixtures = manifest();
    assert!(fixtures.len() >= 20, "manifest has {} entries", fixtures.len());
    for (entry, bytes) in &fixtures {
        let whole = inspect(bytes);
        for chunk in [1, 7, 4096, 8 << 20] {
            assert_eq!(inspect_in(bytes, chunk), whole, "{} in {chunk}-byte chunks", entry.file);
        }
        let name = &entry.file;
        assert_eq!(whole.mime_type, entry.mime_type.as_deref(), "{name}: mime");
        assert_eq!(whole.kind, entry.kind, "{name}: kind");
        assert_eq!(whole.sha256, entry.sha256, "{name}: sha256");
        assert_eq!(whole.size_bytes, entry.size_bytes, "{name}: size");
        assert_eq!(bytes.len() as u64, entry.size_bytes, "{name}: file size");
        assert_eq!((whole.width, whole.height), (entry.width, entry.height), "{name}: size");
        match (whole.duration_seconds, entry.duration_seconds) {
            (Some(got), Some(want)) => {
                assert!((got - want).abs() <= 0.1, "{name}: duration {got} vs {want}")
            }
            (got, want) => assert_eq!(got, want, "{name}: duration"),
        }
        if entry.mime_type.is_some() {
            assert_eq!(whole.rejection_reason(), None, "{name}");
            assert_eq!(whole.detected, None, "{name}");
        } else {
            assert!(whole.rejection_reason().is_some(), "{name}: reason");
        }
    }
}

#[test]
fn inspector_can_cross_threads() {
    fn check<T: Send + 'static>() {}
    check::<Inspector>();
    check::<Inspection>();
}

#[test]
fn rejected_files_say_why() {
    let zip = std::fs::read(format!("{FIXTURES}archive.zip")).expect("zip");
    let got = inspect(&zip);
    assert_eq!(got.detected.as_deref(), Some("application/zip"));
    assert_eq!(got.rejection_reason().as_deref(), Some("file type application/zip is not allowed"));
    let bin = std::fs::read(format!("{FIXTURES}binary.bin")).expect("bin");
    assert_eq!(inspect(&bin).rejection_reason().as_deref(), Some("unrecognised file type"));
    let empty = Inspector::new().finish();
    assert_eq!(empty.size_bytes, 0);
    assert_eq!(empty.sha256, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    assert_eq!(empty.rejection_reason().as_deref(), Some("empty file"));
}

#[test]
fn text_is_utf8_checked_across_chunk_boundaries() {
    let text = "Grüße €5 🙏 done".as_bytes();
    for chunk in 1..=5 {
        assert_eq!(inspect_in(text, chunk).mime_type, Some("text/plain"));
    }
    // A 3-byte sequence broken by an ASCII byte, split across chunks.
    let broken = b"ok \xE2\x82A";
    for chunk in 1..=6 {
        assert_eq!(inspect_in(broken, chunk).mime_type, None, "chunk {chunk}");
    }
    // An open sequence at the end is not text.
    assert_eq!(inspect(b"abc\xF0\x9F\x99").mime_type, None);
    assert_eq!(inspect(b"nul\0inside").mime_type, None);
    assert_eq!(inspect(b"\xC0\xAF").mime_type, None); // overlong
    assert_eq!(inspect(b"x").mime_type, Some("text/plain"));
    assert_eq!(inspect(b"<html><body>hi</body></html>").mime_type, Some("text/plain"));
    assert_eq!(inspect(b"ID3 notes, not a tag").mime_type, Some("text/plain"));
    // Text that merely starts like a binary format stays text.
    for text in [&b"MZ's list"[..], b"BMW meeting", b"I'm free today", b"{\\rtf1 hi}"] {
        assert_eq!(inspect(text).mime_type, Some("text/plain"), "{text:?}");
    }
    let pdf = [&b"\x80junk\n"[..], b"%PDF-1.4\n%\xE2\xE3\n1 0 obj"].concat();
    assert_eq!(inspect(&pdf).mime_type, Some("application/pdf"));
}

#[test]
fn vcard_is_recognised_after_bom_and_whitespace() {
    for card in [
        &b"BEGIN:VCARD\r\nVERSION:3.0\r\nFN:A\r\nEND:VCARD\r\n"[..],
        b"\xEF\xBB\xBF  \r\nbegin:vcard\nFN:A\nend:vcard\n",
    ] {
        let got = inspect(card);
        assert_eq!(got.mime_type, Some("text/vcard"));
        assert_eq!(got.kind, Some(MediaKind::Document));
    }
    assert_eq!(inspect(b"BEGIN:VCAL").mime_type, Some("text/plain"));
}

/// An ISO-BMFF box: size, type, payload.
fn boxed(kind: &[u8; 4], payload: &[u8]) -> Vec<u8> {
    let mut out = ((payload.len() + 8) as u32).to_be_bytes().to_vec();
    out.extend_from_slice(kind);
    out.extend_from_slice(payload);
    out
}

/// A movie with one track: `handler`, a v1 mvhd and a v1 tkhd rotated 90°.
fn synthetic_mp4(handler: &[u8; 4], mdat_len: u64, large_mdat: bool) -> Vec<u8> {
    let mut mvhd = vec![1, 0, 0, 0];
    mvhd.extend_from_slice(&[0; 16]); // creation, modification
    mvhd.extend_from_slice(&600u32.to_be_bytes());
    mvhd.extend_from_slice(&(600u64 * 90).to_be_bytes()); // 90 s
    mvhd.extend_from_slice(&[0; 80]);
    let mut tkhd = vec![1, 0, 0, 0];
    tkhd.extend_from_slice(&[0; 48]); // up to the matrix
    let matrix: [u32; 9] = [0, 0x10000, 0, 0xFFFF_0000, 0, 0, 0, 0, 0x4000_0000];
    matrix.iter().for_each(|v| tkhd.extend_from_slice(&v.to_be_bytes()));
    tkhd.extend_from_slice(&(1920u32 << 16).to_be_bytes());
    tkhd.extend_from_slice(&(1080u32 << 16).to_be_bytes());
    let mut hdlr = vec![0; 8];
    hdlr.extend_from_slice(handler);
    hdlr.extend_from_slice(&[0; 13]);
    let trak = boxed(b"trak", &[boxed(b"tkhd", &tkhd), boxed(b"mdia", &boxed(b"hdlr", &hdlr))].concat());
    let moov = boxed(b"moov", &[boxed(b"mvhd", &mvhd), trak].concat());
    let mut file = boxed(b"ftyp", b"isom\0\0\x02\0isomiso2mp41");
    if large_mdat {
        file.extend_from_slice(&1u32.to_be_bytes());
        file.extend_from_slice(b"mdat");
        file.extend_from_slice(&(mdat_len + 16).to_be_bytes());
    } else {
        file.extend_from_slice(&((mdat_len + 8) as u32).to_be_bytes());
        file.extend_from_slice(b"mdat");
    }
    file.extend(std::iter::repeat_n(0xAB, mdat_len as usize));
    file.extend_from_slice(&moov);
    file
}

#[test]
fn bmff_moov_after_a_large_mdat_with_a_64_bit_size() {
    let file = synthetic_mp4(b"vide", 300_000, true);
    for chunk in [1000, 65_536, 1 << 20] {
        let got = inspect_in(&file, chunk);
        assert_eq!(got.mime_type, Some("video/mp4"));
        assert_eq!(got.duration_seconds, Some(90.0));
        assert_eq!((got.width, got.height), (Some(1080), Some(1920)), "rotated");
    }
    let audio = inspect(&synthetic_mp4(b"soun", 10, false));
    assert_eq!(audio.mime_type, Some("audio/mp4"));
    assert_eq!(audio.kind, Some(MediaKind::Audio));
    assert_eq!((audio.width, audio.height), (None, None));
    assert_eq!(audio.duration_seconds, Some(90.0));
}

#[test]
fn bmff_moov_over_the_cap_gives_up_the_duration_only() {
    let mut file = boxed(b"ftyp", b"mp42\0\0\0\0mp42isom");
    file.extend_from_slice(&((MOOV_CAP + 9) as u32).to_be_bytes());
    file.extend_from_slice(b"moov");
    file.extend_from_slice(&[0; 4096]);
    let got = inspect(&file);
    assert_eq!(got.mime_type, Some("video/mp4"));
    assert_eq!(got.duration_seconds, None);
}

#[test]
fn brands_decide_the_iso_type() {
    let ftyp = |major: &[u8; 4], compat: &[u8]| {
        let mut payload = major.to_vec();
        payload.extend_from_slice(&[0; 4]);
        payload.extend_from_slice(compat);
        let mut file = boxed(b"ftyp", &payload);
        file.extend_from_slice(&boxed(b"free", &[0; 16]));
        inspect(&file)
    };
    assert_eq!(ftyp(b"qt  ", b"qt  ").mime_type, Some("video/quicktime"));
    assert_eq!(ftyp(b"3gp5", b"3gp5isom").mime_type, Some("video/3gpp"));
    assert_eq!(ftyp(b"3g2a", b"3g2a").mime_type, Some("video/3gpp"));
    assert_eq!(ftyp(b"M4A ", b"M4A mp42").mime_type, Some("audio/mp4"));
    assert_eq!(ftyp(b"mif1", b"mif1heic").mime_type, Some("image/heic"));
    let avif = ftyp(b"avif", b"mif1avif");
    assert_eq!(avif.mime_type, None);
    assert_eq!(avif.detected.as_deref(), Some("image/avif"));
}

#[test]
fn wav_with_a_data_size_past_the_end_uses_what_arrived() {
    let mut wav = b"RIFF\0\0\0\0WAVEfmt \x10\0\0\0\x01\0\x01\0\x40\x1f\0\0\x80\x3e\0\0\x02\0\x10\0".to_vec();
    wav.extend_from_slice(b"data\xff\xff\xff\x7f");
    wav.extend_from_slice(&[0; 8000]);
    let got = inspect(&wav);
    assert_eq!(got.mime_type, Some("audio/wav"));
    assert_eq!(got.duration_seconds, Some(0.5));
}

#[test]
fn jpeg_exif_orientation_swaps_the_display_size() {
    let photo = std::fs::read(format!("{FIXTURES}photo.jpg")).expect("jpg");
    let mut tiff = b"MM\0*\0\0\0\x08\0\x01".to_vec();
    tiff.extend_from_slice(&[0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, 6, 0, 0]); // orientation 6
    tiff.extend_from_slice(&[0; 4]);
    let app1 = [&b"Exif\0\0"[..], &tiff].concat();
    let mut rotated = vec![0xFF, 0xD8, 0xFF, 0xE1];
    rotated.extend_from_slice(&((app1.len() + 2) as u16).to_be_bytes());
    rotated.extend_from_slice(&app1);
    rotated.extend_from_slice(&photo[2..]);
    let got = inspect_in(&rotated, 3);
    assert_eq!(got.mime_type, Some("image/jpeg"));
    assert_eq!((got.width, got.height), (Some(48), Some(64)));
}

#[test]
fn headers_past_the_head_are_still_found() {
    // JPEG: two 60 KB APP2 segments push the frame header past HEAD_LEN.
    let photo = std::fs::read(format!("{FIXTURES}photo.jpg")).expect("jpg");
    let mut big = vec![0xFF, 0xD8];
    for _ in 0..2 {
        big.extend_from_slice(&[0xFF, 0xE2, 0xEA, 0x62]); // length 60002
        big.extend(std::iter::repeat_n(0x55, 60_000));
    }
    big.extend_from_slice(&photo[2..]);
    let got = inspect_in(&big, 4096);
    assert_eq!(got.mime_type, Some("image/jpeg"));
    assert_eq!((got.width, got.height), (Some(64), Some(48)));

    // OLE2: the directory sector at 100 KiB names a WordDocument stream.
    let mut cfb = vec![0; 512 + 199 * 512]; // sector n starts at (n + 1) × 512
    cfb[..8].copy_from_slice(&cfb::SIGNATURE);
    cfb[0x1E..0x20].copy_from_slice(&9u16.to_le_bytes());
    cfb[0x30..0x34].copy_from_slice(&199u32.to_le_bytes());
    let mut dir = vec![0; 512];
    for (entry, name) in ["Root Entry", "WordDocument"].iter().enumerate() {
        let utf16: Vec<u8> = name.encode_utf16().flat_map(u16::to_le_bytes).collect();
        let at = entry * 128;
        dir[at..at + utf16.len()].copy_from_slice(&utf16);
        dir[at + 0x40..at + 0x42].copy_from_slice(&((utf16.len() + 2) as u16).to_le_bytes());
    }
    cfb.extend_from_slice(&dir);
    assert_eq!(inspect_in(&cfb, 1000).mime_type, Some("application/msword"));
    let head_only = inspect(&cfb[..HEAD_LEN]);
    assert_eq!((head_only.mime_type, head_only.detected), (None, None));
    cfb.truncate(cfb.len() - 512);
    cfb.extend_from_slice(&[0; 512]); // a directory naming nothing we know
    let ole = inspect(&cfb);
    assert_eq!(ole.mime_type, None);
    assert_eq!(ole.detected.as_deref(), Some("application/x-ole-storage"));
}

#[test]
fn truncated_fixtures_never_panic() {
    for (entry, bytes) in manifest() {
        let cuts = (0..bytes.len().min(200)).chain((200..bytes.len()).step_by(97));
        for cut in cuts {
            let prefix = &bytes[..cut];
            let got = inspect_in(prefix, 13);
            assert_eq!(got.size_bytes, cut as u64, "{}", entry.file);
        }
    }
}

#[test]
fn corrupted_fixtures_never_panic() {
    for (i, (_, bytes)) in manifest().into_iter().enumerate() {
        for round in 0..40u64 {
            let mut damaged = bytes.clone();
            let flips = noise(round * 31 + i as u64, 16);
            for pair in flips.chunks_exact(2) {
                let at = (usize::from(pair[0]) * 257 + usize::from(pair[1]) * round as usize) % damaged.len().max(1);
                if let Some(b) = damaged.get_mut(at) {
                    *b ^= pair[1] | 1;
                }
            }
            let _ = inspect_in(&damaged, 1 + round as usize * 17);
        }
    }
}

#[test]
fn random_data_behind_every_magic_never_panics() {
    let magics: [&[u8]; 16] = [
        b"\0\0\0\x18ftypmp42",
        b"\0\0\0\x01mdat",
        b"\0\0\0\0moov",
        b"#!AMR\n",
        b"#!AMR-WB\n",
        b"ID3\x04\0\0\0\0\0\x10",
        b"\xFF\xFB\x90\x64",
        b"\xFF\xF1\x50\x80",
        b"OggS\0\x02",
        b"RIFF\0\0\0\0WAVE",
        b"RIFF\0\0\0\0AVI LIST",
        b"\xFF\xD8\xFF\xE1",
        b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1",
        b"\x89PNG\r\n\x1a\n",
        b"PK\x03\x04",
        b"",
    ];
    for (m, magic) in magics.iter().enumerate() {
        for seed in 0..60u64 {
            let len = (seed as usize * 733) % 9000;
            let data = [magic.to_vec(), noise(seed + 1000 * m as u64, len)].concat();
            for chunk in [1, 5, 4096] {
                let _ = inspect_in(&data, chunk);
            }
        }
    }
}
