//! SMS segment arithmetic: how many parts a text takes, so that a reply that
//! would exceed Telnyx's 10-part limit (error 40302) is caught before sending.
//!
//! A text is GSM-7 when every character is in the GSM 03.38 default alphabet
//! or its extension table (3GPP TS 23.038 §6.2.1); one character outside both
//! makes the whole text UCS-2. A single part carries 160 septets or 70 UTF-16
//! code units; once a text needs more, every part carries 153 septets or 67
//! code units (the rest of the 140 bytes holds the concatenation header).
//!
//! Counting never splits an extension character's escape sequence (2 septets)
//! or a UTF-16 surrogate pair (an emoji) across two parts, as phones and SMS
//! centres do not either; such a character that would straddle a boundary
//! moves whole to the next part. This may count one part more than a naive
//! `ceil(units / 153)`, never fewer, so a text accepted here is within the
//! limit.
//!
//! Telnyx's optional "smart encoding" may turn some Unicode characters (curly
//! quotes, …) into GSM-7 ones; that only ever makes the real message shorter
//! than counted here.

/// Character set a text is sent in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// GSM 03.38 7-bit default alphabet (with its extension table).
    Gsm7,
    /// UCS-2 (UTF-16 in practice): 16 bits per code unit.
    Ucs2,
}

/// Size of a text as an SMS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Segments {
    /// The encoding the whole text needs.
    pub encoding: Encoding,
    /// Septets for GSM-7 (an extension character counts 2), UTF-16 code
    /// units for UCS-2 (a character outside the BMP, such as an emoji, counts 2).
    pub units: usize,
    /// Number of SMS parts; 0 for an empty text.
    pub count: usize,
}

/// Most SMS parts Telnyx sends for one message (more: error 40302).
pub const MAX_SEGMENTS: usize = 10;

/// Septets in a single-part GSM-7 SMS.
pub const GSM7_SINGLE: usize = 160;
/// Septets per part of a multipart GSM-7 SMS.
pub const GSM7_MULTI: usize = 153;
/// UTF-16 code units in a single-part UCS-2 SMS.
pub const UCS2_SINGLE: usize = 70;
/// UTF-16 code units per part of a multipart UCS-2 SMS.
pub const UCS2_MULTI: usize = 67;

/// Encoding, size and number of parts of `text` sent as SMS.
pub fn segments(text: &str) -> Segments {
    if text.is_empty() {
        return Segments { encoding: Encoding::Gsm7, units: 0, count: 0 };
    }
    if text.chars().all(|c| gsm7_septets(c).is_some()) {
        let widths = text.chars().map(|c| gsm7_septets(c).unwrap_or(1));
        let units = widths.clone().sum();
        let count = parts(units, widths, GSM7_SINGLE, GSM7_MULTI);
        Segments { encoding: Encoding::Gsm7, units, count }
    } else {
        let widths = text.chars().map(char::len_utf16);
        let units = widths.clone().sum();
        let count = parts(units, widths, UCS2_SINGLE, UCS2_MULTI);
        Segments { encoding: Encoding::Ucs2, units, count }
    }
}

/// Whether `text` fits in [`MAX_SEGMENTS`] SMS parts.
pub fn fits_sms(text: &str) -> bool {
    segments(text).count <= MAX_SEGMENTS
}

/// Parts needed for characters of the given widths (each at most 2, so
/// always smaller than a part), packed greedily without splitting one.
fn parts(units: usize, widths: impl Iterator<Item = usize>, single: usize, multi: usize) -> usize {
    if units == 0 {
        return 0;
    }
    if units <= single {
        return 1;
    }
    let mut count = 1;
    let mut used = 0;
    for width in widths {
        if used + width > multi {
            count += 1;
            used = 0;
        }
        used += width;
    }
    count
}

/// Septets `c` takes in GSM-7: 1 in the default alphabet, 2 in the extension
/// table (escape + code), `None` when GSM-7 cannot carry it.
fn gsm7_septets(c: char) -> Option<usize> {
    if GSM7_BASIC.contains(c) {
        Some(1)
    } else if GSM7_EXTENSION.contains(c) {
        Some(2)
    } else {
        None
    }
}

/// GSM 03.38 default alphabet (3GPP TS 23.038 §6.2.1), in code order, less
/// 0x1B (the escape to the extension table, not a character): 127 characters.
/// 0x09 is the capital `Ç`; the lowercase `ç` is not in the alphabet.
const GSM7_BASIC: &str = concat!(
    "@£$¥èéùìòÇ\nØø\rÅå",
    "Δ_ΦΓΛΩΠΨΣΘΞÆæßÉ",
    " !\"#¤%&'()*+,-./",
    "0123456789:;<=>?",
    "¡ABCDEFGHIJKLMNO",
    "PQRSTUVWXYZÄÖÑÜ§",
    "¿abcdefghijklmno",
    "pqrstuvwxyzäöñüà",
);

/// GSM 03.38 extension table (escape 0x1B + code): form feed, `^ { } \ [ ~ ] | €`.
const GSM7_EXTENSION: &str = "\u{0C}^{}\\[~]|€";

#[cfg(test)]
mod tests {
    use super::*;

    fn repeat(c: char, n: usize) -> String {
        std::iter::repeat_n(c, n).collect()
    }

    #[track_caller]
    fn check(text: &str, encoding: Encoding, units: usize, count: usize) {
        let s = segments(text);
        assert_eq!(s, Segments { encoding, units, count }, "{} chars", text.chars().count());
        assert_eq!(fits_sms(text), count <= MAX_SEGMENTS);
    }

    #[test]
    fn empty_text_is_zero_segments() {
        check("", Encoding::Gsm7, 0, 0);
        assert!(fits_sms(""));
    }

    #[test]
    fn gsm7_single_part_boundary() {
        check("a", Encoding::Gsm7, 1, 1);
        check(&repeat('a', 160), Encoding::Gsm7, 160, 1);
        check(&repeat('a', 161), Encoding::Gsm7, 161, 2);
    }

    #[test]
    fn gsm7_multipart_boundaries() {
        check(&repeat('a', 306), Encoding::Gsm7, 306, 2);
        check(&repeat('a', 307), Encoding::Gsm7, 307, 3);
        check(&repeat('a', 1530), Encoding::Gsm7, 1530, 10);
        check(&repeat('a', 1531), Encoding::Gsm7, 1531, 11);
        assert!(fits_sms(&repeat('a', 1530)));
        assert!(!fits_sms(&repeat('a', 1531)));
    }

    #[test]
    fn ucs2_boundaries() {
        // "ê" is not GSM-7, so each of these texts is UCS-2 throughout.
        let t = |n: usize| format!("ê{}", repeat('a', n - 1));
        check(&t(70), Encoding::Ucs2, 70, 1);
        check(&t(71), Encoding::Ucs2, 71, 2);
        check(&t(134), Encoding::Ucs2, 134, 2);
        check(&t(135), Encoding::Ucs2, 135, 3);
        check(&t(670), Encoding::Ucs2, 670, 10);
        check(&t(671), Encoding::Ucs2, 671, 11);
        assert!(fits_sms(&t(670)));
        assert!(!fits_sms(&t(671)));
    }

    #[test]
    fn extension_characters_count_two_at_the_boundary() {
        for c in ['^', '{', '}', '\\', '[', ']', '~', '|', '€', '\u{0C}'] {
            let s = segments(&c.to_string());
            assert_eq!(s, Segments { encoding: Encoding::Gsm7, units: 2, count: 1 }, "{c:?}");
            let text = format!("{}{c}", repeat('a', 158));
            check(&text, Encoding::Gsm7, 160, 1);
            let text = format!("{}{c}", repeat('a', 159));
            check(&text, Encoding::Gsm7, 161, 2);
        }
        check(&repeat('€', 80), Encoding::Gsm7, 160, 1);
        check(&repeat('€', 81), Encoding::Gsm7, 162, 2);
        // 1528 + 2 = 1530 septets: the € ends the tenth part exactly.
        check(&format!("{}€", repeat('a', 1528)), Encoding::Gsm7, 1530, 10);
        check(&format!("{}€", repeat('a', 1529)), Encoding::Gsm7, 1531, 11);
    }

    #[test]
    fn escape_sequence_is_not_split_across_parts() {
        // 152 + 2 + 152 = 306 septets, but the € cannot straddle the end of
        // part one (152 used, 1 left), so it opens part two: 152 | 2+151 | 1.
        let text = format!("{}€{}", repeat('a', 152), repeat('a', 152));
        check(&text, Encoding::Gsm7, 306, 3);
        // Shifted by one the € fits exactly at the end of part one.
        let text = format!("{}€{}", repeat('a', 151), repeat('a', 153));
        check(&text, Encoding::Gsm7, 306, 2);
    }

    #[test]
    fn emoji_switches_to_ucs2_and_counts_two_units() {
        check("Praying for you 🙏", Encoding::Ucs2, 18, 1);
        check("🙏", Encoding::Ucs2, 2, 1);
        // 68 + 2 = 70 units still fit one part.
        check(&format!("{}🙏", repeat('a', 68)), Encoding::Ucs2, 70, 1);
        check(&format!("{}🙏", repeat('a', 69)), Encoding::Ucs2, 71, 2);
        // The 160 a's that fit one GSM-7 part need three UCS-2 parts with an emoji.
        check(&format!("{}🙏", repeat('a', 160)), Encoding::Ucs2, 162, 3);
    }

    #[test]
    fn surrogate_pair_is_not_split_across_parts() {
        // 66 + 2 + 66 = 134 units = 2 × 67, but the emoji cannot straddle the
        // end of part one (66 used, 1 left): 66 | 2+65 | 1.
        let text = format!("{}😀{}", repeat('a', 66), repeat('a', 66));
        check(&text, Encoding::Ucs2, 134, 3);
        let text = format!("{}😀{}", repeat('a', 65), repeat('a', 67));
        check(&text, Encoding::Ucs2, 134, 2);
        // A part holds 33 emoji (66 of its 67 units), so ten parts hold 330
        // emoji and a 331st needs an eleventh part at only 662 units.
        check(&repeat('😀', 330), Encoding::Ucs2, 660, 10);
        check(&repeat('😀', 331), Encoding::Ucs2, 662, 11);
    }

    #[test]
    fn accented_letters_follow_the_real_gsm_table() {
        for c in [
            'é', 'è', 'É', 'ù', 'ì', 'ò', 'à', 'Ç', 'ñ', 'Ñ', 'ü', 'Ü', 'ä', 'Ä', 'ö', 'Ö', 'å', 'Å', 'ø', 'Ø', 'æ',
            'Æ', 'ß',
        ] {
            assert_eq!(segments(&c.to_string()).encoding, Encoding::Gsm7, "{c}");
        }
        for c in ['ê', 'á', 'í', 'ó', 'ú', 'ç', 'â', 'ô', 'Ê', 'È', 'ã', 'õ'] {
            assert_eq!(segments(&c.to_string()).encoding, Encoding::Ucs2, "{c}");
        }
        check("café", Encoding::Gsm7, 4, 1);
        check("fête", Encoding::Ucs2, 4, 1);
    }

    #[test]
    fn whole_default_alphabet_is_one_septet_each() {
        let basic = GSM7_BASIC;
        assert_eq!(basic.chars().count(), 127);
        check(basic, Encoding::Gsm7, 127, 1);
        for c in
            ['£', '¥', '¤', '§', '¿', '¡', 'Δ', 'Φ', 'Γ', 'Λ', 'Ω', 'Π', 'Ψ', 'Σ', 'Θ', 'Ξ', '@', '$', '_', '\n', '\r']
        {
            assert_eq!(segments(&c.to_string()).units, 1, "{c:?}");
        }
    }

    #[test]
    fn common_non_gsm_characters_are_ucs2() {
        // Curly quotes, the backtick, a tab, the escape itself, NBSP, Cyrillic, CJK.
        for c in ['\u{2019}', '\u{201C}', '`', '\t', '\u{1B}', '\u{A0}', 'Ж', '中', 'ω'] {
            assert_eq!(segments(&c.to_string()).encoding, Encoding::Ucs2, "{c:?}");
        }
        check("It’s Sunday", Encoding::Ucs2, 11, 1);
    }
}
