//! The institution's time zone: the one every time printed for people is shown in (the PDFs,
//! the web client's dates), whatever the reader's machine or the server's own clock say.
//!
//! Named by IANA (`Asia/Shanghai`), looked up in the time-zone database bundled into the binary
//! (jiff's copy), so a server without `/usr/share/zoneinfo` shows the same times. Stored
//! instants stay what they are: Unix time, and FHIR's instants with an offset.

use jiff::Timestamp;
use jiff::tz::TimeZone;

/// A time zone known by name, or the server's own when none was configured.
#[derive(Debug, Clone)]
pub struct DisplayZone {
    tz: TimeZone,
    /// The IANA name, when there is one (a zone given as a bare TZif file may have none).
    name: Option<String>,
}

/// Why a configured time-zone name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown time zone {0:?}: give an IANA name such as \"Asia/Shanghai\" or \"UTC\"")]
pub struct UnknownTimeZone(pub String);

/// Longest time-zone name accepted (the longest IANA names are about 30 characters).
const MAX_NAME: usize = 64;

impl DisplayZone {
    /// `name` from the configuration: an IANA name, or empty for the server's own zone (`TZ`,
    /// else `/etc/localtime`, else UTC).
    pub fn configured(name: &str) -> Result<Self, UnknownTimeZone> {
        let name = name.trim();
        if name.is_empty() {
            return Ok(Self::system());
        }
        let unknown = || UnknownTimeZone(name.chars().take(MAX_NAME).collect());
        if name.len() > MAX_NAME {
            return Err(unknown());
        }
        let tz = TimeZone::get(name).map_err(|_| unknown())?;
        Ok(Self {
            name: tz.iana_name().map(str::to_owned).or(Some(name.to_owned())),
            tz,
        })
    }

    /// The server's own zone, UTC when it has none that can be read.
    pub fn system() -> Self {
        match TimeZone::try_system() {
            Ok(tz) => Self {
                name: tz.iana_name().map(str::to_owned),
                tz,
            },
            Err(_) => Self::utc(),
        }
    }

    pub fn utc() -> Self {
        Self {
            tz: TimeZone::UTC,
            name: Some("UTC".into()),
        }
    }

    /// The IANA name, for the web client's `Intl.DateTimeFormat` (`None`: a zone without one).
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The offset from UTC in force at `ms` (Unix milliseconds), as `+08:00`.
    pub fn offset_at(&self, ms: i64) -> String {
        let seconds = self.tz.to_offset(timestamp(ms)).seconds();
        let sign = if seconds < 0 { '-' } else { '+' };
        let abs = seconds.unsigned_abs();
        format!("{sign}{:02}:{:02}", abs / 3600, abs % 3600 / 60)
    }

    /// `2026-12-03 17:30 +08:00`: a local date and time to the minute, with its offset.
    pub fn date_time(&self, ms: i64) -> String {
        self.format(ms, "%Y-%m-%d %H:%M %:z")
    }

    /// `2026-12-03 17:30:05 +08:00`: to the second, for the steps of a record.
    pub fn precise(&self, ms: i64) -> String {
        self.format(ms, "%Y-%m-%d %H:%M:%S %:z")
    }

    /// `2026-12-03`: the local calendar day.
    pub fn date(&self, ms: i64) -> String {
        self.format(ms, "%Y-%m-%d")
    }

    /// How the zone is named on a document: `Asia/Shanghai (UTC+08:00)`.
    pub fn describe(&self, ms: i64) -> String {
        let offset = format!("UTC{}", self.offset_at(ms));
        match &self.name {
            Some(n) if n != "UTC" => format!("{n} ({offset})"),
            _ => offset,
        }
    }

    fn format(&self, ms: i64, pattern: &str) -> String {
        timestamp(ms)
            .to_zoned_datetime(self.tz.clone())
            .strftime(pattern)
            .to_string()
    }
}

/// Unix milliseconds as a timestamp; out of jiff's range (beyond the years -9999 to 9999),
/// the nearest end of it.
fn timestamp(ms: i64) -> Timestamp {
    Timestamp::from_millisecond(ms).unwrap_or(if ms < 0 {
        Timestamp::MIN
    } else {
        Timestamp::MAX
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2026-12-03T09:30:05Z
    const AT: i64 = 1_796_290_205_000;

    #[test]
    fn shanghai_is_eight_hours_ahead_all_year() {
        let z = DisplayZone::configured("Asia/Shanghai").unwrap();
        assert_eq!(z.name(), Some("Asia/Shanghai"));
        assert_eq!(z.date_time(AT), "2026-12-03 17:30 +08:00");
        assert_eq!(z.precise(AT), "2026-12-03 17:30:05 +08:00");
        assert_eq!(z.describe(AT), "Asia/Shanghai (UTC+08:00)");
        assert_eq!(z.offset_at(AT - 180 * 86_400_000), "+08:00");
    }

    #[test]
    fn a_zone_with_summer_time_changes_offset() {
        let z = DisplayZone::configured("Europe/Berlin").unwrap();
        assert_eq!(z.offset_at(AT), "+01:00");
        assert_eq!(z.offset_at(AT - 150 * 86_400_000), "+02:00");
        let ny = DisplayZone::configured("America/New_York").unwrap();
        assert_eq!(ny.date_time(AT), "2026-12-03 04:30 -05:00");
    }

    #[test]
    fn unknown_names_are_refused_with_the_name() {
        for bad in [
            "Asia/Shanghal",
            "Mars/Olympus",
            "+08:00x",
            "../../etc/passwd",
        ] {
            let e = DisplayZone::configured(bad).unwrap_err();
            assert_eq!(e.0, bad);
        }
        let long = "A".repeat(500);
        assert_eq!(
            DisplayZone::configured(&long).unwrap_err().0.len(),
            MAX_NAME
        );
    }

    #[test]
    fn utc_and_the_ends_of_time() {
        let z = DisplayZone::configured("UTC").unwrap();
        assert_eq!(z.date_time(AT), "2026-12-03 09:30 +00:00");
        assert_eq!(z.describe(AT), "UTC+00:00");
        // Far outside the calendar: the nearest end, not a panic.
        assert!(z.date(i64::MAX).starts_with("9999-"));
        assert!(z.date(i64::MIN).starts_with("-009999") || z.date(i64::MIN).starts_with("-9999"));
    }
}
