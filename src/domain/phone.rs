//! Phone numbers, always E.164 inside koinonia.

use std::collections::HashMap;
use std::fmt;
use std::sync::{LazyLock, Mutex};

/// Numbers parsed lately, by their cleaned text: a church hears from the same numbers again and
/// again, and libphonenumber's patterns cost microseconds a number on every webhook. Bounded:
/// emptied when full, so no input can grow it.
static PARSED: LazyLock<Mutex<HashMap<String, Phone>>> = LazyLock::new(|| Mutex::new(HashMap::new()));
const PARSED_MAX: usize = 8192;

/// A phone number in E.164 form (`+15551230000`).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Phone(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PhoneError {
    #[error("phone number is empty")]
    Empty,
    #[error("not a valid phone number; use international form such as +15551230000")]
    Invalid,
}

impl Phone {
    /// Parses a number given by a person or a carrier. Without a leading `+` the number is read as
    /// North American (the carrier's home region).
    pub fn parse(raw: &str) -> Result<Self, PhoneError> {
        let cleaned = clean(raw)?;
        if let Some(known) = PARSED.lock().ok().and_then(|m| m.get(&cleaned).cloned()) {
            return Ok(known);
        }
        let phone = Self::parse_cleaned(&cleaned)?;
        if let Ok(mut m) = PARSED.lock() {
            if m.len() >= PARSED_MAX {
                m.clear();
            }
            m.insert(cleaned, phone.clone());
        }
        Ok(phone)
    }

    /// [`Phone::parse`] of a cleaned number, past the cache: libphonenumber's work, but for
    /// the North American numbers of [`north_american`].
    fn parse_cleaned(cleaned: &str) -> Result<Self, PhoneError> {
        if let Some(phone) = north_american(cleaned) {
            return Ok(phone);
        }
        let region = if cleaned.starts_with('+') { None } else { Some(phonenumber::country::Id::US) };
        let parsed = phonenumber::parse(region, cleaned).map_err(|_| PhoneError::Invalid)?;
        let e164 = parsed.format().mode(phonenumber::Mode::E164).to_string();
        // Length rules rather than libphonenumber's allocation tables: numbers that are not yet
        // (or never) allocated, such as the fictional 555 range, must still be storable.
        let digits = e164.len().saturating_sub(1);
        let plausible = if parsed.code().value() == 1 { digits == 11 } else { (8..=15).contains(&digits) };
        if !plausible {
            return Err(PhoneError::Invalid);
        }
        Ok(Self(e164))
    }

    /// Wraps a value read back from koinonia's own storage (already E.164).
    pub fn from_trusted(e164: String) -> Self {
        Self(e164)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The last four digits.
    pub fn last4(&self) -> &str {
        let n = self.0.len();
        &self.0[n.saturating_sub(4)..]
    }

    /// What leaders see in lists: `•••-•••-1234`.
    pub fn masked(&self) -> String {
        mask_last4(self.last4())
    }

    /// MMS exists only for US and Canadian numbers.
    pub fn is_us_or_canada(&self) -> bool {
        match phonenumber::parse(None, &self.0) {
            Ok(p) => {
                matches!(p.country().id(), Some(phonenumber::country::Id::US) | Some(phonenumber::country::Id::CA))
            }
            Err(_) => false,
        }
    }
}

/// A number as typed, without its spaces, dashes, dots and brackets; bounded in length.
fn clean(raw: &str) -> Result<String, PhoneError> {
    let cleaned: String = raw.trim().chars().filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')')).collect();
    if cleaned.is_empty() {
        return Err(PhoneError::Empty);
    }
    if cleaned.len() > 20 {
        return Err(PhoneError::Invalid);
    }
    Ok(cleaned)
}

/// Loads libphonenumber's metadata and compiles its patterns (about 150 ms on a small machine),
/// then tells the country of sample numbers: a number of the 555 range belongs to no region, so
/// telling its country compiles the patterns of every region sharing +1 (about 3 ms). Start-up
/// runs this once, beside the database's start-up.
pub fn warm_up() {
    for sample in ["+13125550100", "(312) 555-0100", "+15550100000", "+14165550100", "+447700900123"] {
        if let Ok(phone) = Phone::parse(sample) {
            let _ = phone.is_us_or_canada();
        }
    }
}

/// A North American number in its usual shapes, `+1` and ten digits or the ten digits alone,
/// the area code not starting with 0 or 1: its E.164 form is `+1` and the ten digits, as
/// libphonenumber parses it (a test compares the two). Nearly every webhook carries such numbers,
/// and libphonenumber's patterns keep matching state per thread: each thread that parsed with
/// them held about 2 MB more, and its first parse took about a millisecond longer.
fn north_american(cleaned: &str) -> Option<Phone> {
    let ten = cleaned.strip_prefix("+1").unwrap_or(cleaned);
    let digits = ten.as_bytes();
    let usual = digits.len() == 10 && digits.iter().all(u8::is_ascii_digit) && digits[0] >= b'2';
    usual.then(|| Phone(format!("+1{ten}")))
}

/// `•••-•••-1234` from the last four digits.
pub fn mask_last4(last4: &str) -> String {
    format!("•••-•••-{last4}")
}

impl fmt::Debug for Phone {
    /// Never prints the number: Debug output ends up in logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Phone({})", self.masked())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsed_numbers_are_remembered_within_a_bound() {
        let first = Phone::parse("(312) 555-0199").expect("parses");
        assert_eq!(Phone::parse("(312) 555-0199"), Ok(first.clone()), "the remembered answer is the same");
        assert_eq!(Phone::parse("312.555.0199"), Ok(first));
        for i in 0..PARSED_MAX + 100 {
            let _ = Phone::parse(&format!("+1312{:07}", i));
        }
        let held = PARSED.lock().map(|m| m.len()).unwrap_or(usize::MAX);
        assert!(held <= PARSED_MAX, "{held} numbers held");
        assert_eq!(Phone::parse("+1312"), Err(PhoneError::Invalid), "refusals are not remembered as numbers");
    }

    /// The short way for North American numbers gives what libphonenumber gives, for every area
    /// code and exchange (unassigned and reserved ones included: numbers are stored, not judged).
    #[test]
    fn north_american_numbers_parse_as_libphonenumber_parses_them() {
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for i in 0..3000u64 {
            let n = next();
            let ten = format!("{}{:09}", 2 + n % 8, (n >> 8) % 1_000_000_000);
            let typed = if i % 2 == 0 { format!("+1{ten}") } else { ten.clone() };
            let fast = north_american(&typed).expect("a usual North American number");
            let region = if typed.starts_with('+') { None } else { Some(phonenumber::country::Id::US) };
            let slow = phonenumber::parse(region, &typed).expect("libphonenumber parses it");
            assert_eq!(fast.as_str(), slow.format().mode(phonenumber::Mode::E164).to_string(), "{typed}");
        }
        for other in ["+442079460958", "13125550100", "+1312555010", "+10125550100", "+1112555010x", "0312555010"] {
            assert_eq!(north_american(other), None, "{other} is left to libphonenumber");
        }
    }

    #[test]
    fn parses_to_e164() {
        // Fictional 555 numbers are what churches test with: they must parse.
        assert_eq!(Phone::parse("+1 (555) 123-0000").expect("valid").as_str(), "+15551230000");
        assert_eq!(Phone::parse("+1 312 555 0001").expect("valid").as_str(), "+13125550001");
        assert_eq!(Phone::parse("(312) 555-0001").expect("valid").as_str(), "+13125550001");
        assert_eq!(Phone::parse("+44 20 7946 0958").expect("valid").as_str(), "+442079460958");
        assert_eq!(Phone::parse(""), Err(PhoneError::Empty));
        assert_eq!(Phone::parse("hello"), Err(PhoneError::Invalid));
    }

    #[test]
    fn masks_and_regions() {
        let p = Phone::parse("+13125550001").expect("valid");
        assert_eq!(p.masked(), "•••-•••-0001");
        assert_eq!(format!("{p:?}"), "Phone(•••-•••-0001)");
        assert!(p.is_us_or_canada());
        assert!(!Phone::parse("+442079460958").expect("valid").is_us_or_canada());
    }
}
