//! A church's time zone (an IANA name such as `America/Chicago`): the zone of the times koinonia
//! writes on the server — member exports, ZIP folder names, the library's day filter. Pages show
//! each reader's own zone in their browser; this is the default for text made without one.

use chrono::{DateTime, NaiveDate, TimeZone as _, Utc};
use chrono_tz::Tz;

/// A valid IANA time zone; `UTC` by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ChurchTimeZone(Tz);

impl ChurchTimeZone {
    /// Parses an IANA zone name (`America/Chicago`, `UTC`); a clear sentence otherwise.
    pub fn parse(name: &str) -> Result<Self, String> {
        let name = name.trim();
        name.parse::<Tz>()
            .map(Self)
            .map_err(|_| format!("{name:?} is not a time zone name (an IANA name such as America/Chicago)"))
    }

    /// The zone named in a stored row; UTC when the name is not known (an older zone database).
    pub fn stored(name: &str) -> Self {
        Self::parse(name).unwrap_or_default()
    }

    pub fn name(&self) -> &'static str {
        self.0.name()
    }

    /// `t` on this zone's clock.
    pub fn local(&self, t: DateTime<Utc>) -> DateTime<Tz> {
        t.with_timezone(&self.0)
    }

    /// The instant `day` begins here: local midnight, or the first moment after a gap where a
    /// daylight-saving change skips midnight.
    pub fn day_start(&self, day: NaiveDate) -> DateTime<Utc> {
        let midnight = day.and_hms_opt(0, 0, 0).unwrap_or_default();
        (0..=3)
            .find_map(|hours| self.0.from_local_datetime(&(midnight + chrono::Duration::hours(hours))).earliest())
            .map_or_else(|| midnight.and_utc(), |t| t.with_timezone(&Utc))
    }

    /// Every zone name, in the database's order (for a choice of zone).
    pub fn names() -> impl Iterator<Item = &'static str> {
        chrono_tz::TZ_VARIANTS.iter().map(|z| z.name())
    }
}

impl std::fmt::Display for ChurchTimeZone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_iana_names_and_refuses_others() {
        assert_eq!(ChurchTimeZone::parse(" America/Chicago ").map(|z| z.name()), Ok("America/Chicago"));
        assert_eq!(ChurchTimeZone::parse("UTC").map(|z| z.name()), Ok("UTC"));
        let e = ChurchTimeZone::parse("Mars/Olympus").unwrap_err();
        assert!(e.contains("Mars/Olympus") && e.contains("IANA"), "{e}");
        assert_eq!(ChurchTimeZone::stored("Nowhere/Gone").name(), "UTC");
        assert_eq!(ChurchTimeZone::default().name(), "UTC");
        assert!(ChurchTimeZone::names().any(|n| n == "Asia/Kolkata"));
    }

    #[test]
    fn days_begin_at_local_midnight_daylight_saving_included() {
        let chicago = ChurchTimeZone::parse("America/Chicago").unwrap();
        let day = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        // Winter: UTC-6; summer: UTC-5.
        assert_eq!(chicago.day_start(day("2026-11-30")).to_rfc3339(), "2026-11-30T06:00:00+00:00");
        assert_eq!(chicago.day_start(day("2026-07-04")).to_rfc3339(), "2026-07-04T05:00:00+00:00");
        // Havana's clocks jump from 00:00 to 01:00 in March: that day begins at 01:00 local.
        let havana = ChurchTimeZone::parse("America/Havana").unwrap();
        assert_eq!(havana.day_start(day("2026-03-08")).to_rfc3339(), "2026-03-08T05:00:00+00:00");
        let t = DateTime::parse_from_rfc3339("2026-11-30T03:47:00Z").unwrap().with_timezone(&Utc);
        assert_eq!(chicago.local(t).format("%Y-%m-%d %H:%M").to_string(), "2026-11-29 21:47");
    }
}
