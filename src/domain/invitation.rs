//! Invitations handed to patients and observers (docs/protocol.md, "Invitations"): the short
//! code read out over the phone, the window an invitation is valid in, how many times it may be
//! used, and the state a clinician sees it in. Pure rules, no clock: `now` is passed in.

use rand::Rng;

use super::role::Role;
use super::text::{NameError, display_name};

/// Digits in a short code: 10^9 codes, read out as three groups of three.
pub const CODE_DIGITS: usize = 9;
/// The most uses a clinician may give one invitation.
pub const MAX_USES_LIMIT: i64 = 20;
/// The most link invitations one consultation holds, in any state (revoked and expired ones
/// stay listed with who used them): enough for a family, an interpreter and a class of
/// trainees many times over, and a bound on every list of them and on the live codes a guesser
/// could hit.
pub const MAX_LINK_INVITES_PER_ROOM: i64 = 200;
/// A label's length ("patient", "guardian", "interpreter", "女儿"...).
pub const MAX_LABEL_CHARS: usize = 40;

/// A short code: nine ASCII digits. A secret while its invitation lives, so it is never
/// printed by `Debug` and stored only as a keyed hash.
#[derive(Clone, PartialEq, Eq)]
pub struct InviteCode(String);

impl std::fmt::Debug for InviteCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InviteCode(…)")
    }
}

/// Why typed digits are not a code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CodeError {
    #[error("type the 9 digits of the invitation code")]
    Empty,
    #[error("an invitation code has 9 digits; {0} were typed")]
    WrongLength(usize),
    #[error("an invitation code has digits only (spaces and dashes may separate them)")]
    NotADigit,
}

impl InviteCode {
    /// A fresh random code (leading zeros included).
    pub fn generate() -> Self {
        let mut rng = rand::rng();
        Self(
            (0..CODE_DIGITS)
                .map(|_| char::from(b'0' + rng.random_range(0..10u8)))
                .collect(),
        )
    }

    /// Reads a code as a person types it: with or without spaces and dashes between the
    /// digits, full-width digits and spaces (a Chinese input method's) included.
    pub fn parse(raw: &str) -> Result<Self, CodeError> {
        let mut digits = String::with_capacity(CODE_DIGITS);
        let mut count = 0usize;
        for c in raw.chars() {
            let digit = match c {
                '0'..='9' => Some(c),
                // Full-width digits.
                '\u{ff10}'..='\u{ff19}' => char::from_u32(c as u32 - 0xff10 + u32::from(b'0')),
                _ => None,
            };
            match digit {
                Some(d) => {
                    count += 1;
                    if count <= CODE_DIGITS {
                        digits.push(d);
                    }
                }
                None if is_separator(c) => {}
                None => return Err(CodeError::NotADigit),
            }
        }
        match count {
            0 => Err(CodeError::Empty),
            CODE_DIGITS => Ok(Self(digits)),
            n => Err(CodeError::WrongLength(n)),
        }
    }

    /// The nine digits, as hashed and compared.
    pub fn digits(&self) -> &str {
        &self.0
    }

    /// As a person reads it: `123 456 789`.
    pub fn display(&self) -> String {
        let d = &self.0;
        format!("{} {} {}", &d[0..3], &d[3..6], &d[6..9])
    }
}

/// What may stand between a code's digits.
fn is_separator(c: char) -> bool {
    c.is_whitespace()
        || matches!(
            c,
            '-' | '‐' | '‑' | '‒' | '–' | '—' | '―' | '－' | '_' | '.' | '·' | '\u{3000}'
        )
}

/// Where an invitation stands, as its list shows it. The first that applies wins: a revoked
/// invitation is `Revoked` whatever else, a used one `UsedUp` even after its window closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InviteState {
    /// May be used now.
    Active,
    /// Its window has not opened yet.
    NotYet,
    /// Used as many times as it allows.
    UsedUp,
    /// Its window has closed.
    Expired,
    Revoked,
}

impl InviteState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::NotYet => "not_yet",
            Self::UsedUp => "used_up",
            Self::Expired => "expired",
            Self::Revoked => "revoked",
        }
    }

    /// Still usable, now or later: its token and QR code are worth handing out.
    pub fn is_live(self) -> bool {
        matches!(self, Self::Active | Self::NotYet)
    }
}

/// The facts an invitation's state is decided from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    pub revoked: bool,
    /// Unix seconds; `None`: valid from its creation.
    pub not_before: Option<i64>,
    /// Unix seconds: valid until just before.
    pub expires_at: i64,
    /// `None`: unlimited.
    pub max_uses: Option<i64>,
    pub uses: i64,
}

impl Validity {
    pub fn state(&self, now: i64) -> InviteState {
        if self.revoked {
            InviteState::Revoked
        } else if self.max_uses.is_some_and(|m| self.uses >= m) {
            InviteState::UsedUp
        } else if now >= self.expires_at {
            InviteState::Expired
        } else if self.not_before.is_some_and(|nb| now < nb) {
            InviteState::NotYet
        } else {
            InviteState::Active
        }
    }
}

/// The window of an invitation to a consultation with a time slot: from `open_before_minutes`
/// before the slot starts until `close_after_minutes` after it ends. `(not_before, expires_at)`.
pub fn slot_window(
    slot_start: i64,
    slot_minutes: i64,
    open_before_minutes: u64,
    close_after_minutes: u64,
) -> (i64, i64) {
    let open = slot_start.saturating_sub(minutes(open_before_minutes));
    let close = slot_start
        .saturating_add(slot_minutes.saturating_mul(60))
        .saturating_add(minutes(close_after_minutes));
    (open, close)
}

fn minutes(m: u64) -> i64 {
    i64::try_from(m).unwrap_or(i64::MAX / 60).saturating_mul(60)
}

/// How many times a new invitation of `role` may be used when the clinician does not say:
/// once for a patient or a guest (one person, one link), without limit for an observer (a
/// class may watch a lecture on one link).
pub fn default_max_uses(role: Role) -> Option<i64> {
    match role {
        Role::Patient | Role::Guest => Some(1),
        _ => None,
    }
}

/// Checks a clinician's `max_uses`: 1 to [`MAX_USES_LIMIT`].
pub fn check_max_uses(n: i64) -> Result<i64, String> {
    if (1..=MAX_USES_LIMIT).contains(&n) {
        Ok(n)
    } else {
        Err(format!("max_uses must be 1 to {MAX_USES_LIMIT}"))
    }
}

/// A label as shown beside the invitation: trimmed, checked like a name; empty is none.
pub fn label(raw: Option<&str>) -> Result<Option<String>, NameError> {
    match raw.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => display_name(s, MAX_LABEL_CHARS).map(Some),
    }
}

/// A time as people read it: `2026-12-05 14:30 UTC+08:00` for `offset_minutes` 480 (east of
/// UTC), `… UTC` for 0.
pub fn clock_text(unix: i64, offset_minutes: i32) -> String {
    let local = unix.saturating_add(i64::from(offset_minutes) * 60);
    let days = local.div_euclid(86_400);
    let secs = local.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let zone = if offset_minutes == 0 {
        "UTC".to_owned()
    } else {
        let sign = if offset_minutes < 0 { '-' } else { '+' };
        let abs = offset_minutes.unsigned_abs();
        format!("UTC{sign}{:02}:{:02}", abs / 60, abs % 60)
    };
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} {zone}",
        secs / 3600,
        secs % 3600 / 60
    )
}

/// The proleptic Gregorian date of a count of days since 1970-01-01 (Howard Hinnant's
/// algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_nine_digits_shown_in_threes() {
        for _ in 0..200 {
            let code = InviteCode::generate();
            assert_eq!(code.digits().len(), CODE_DIGITS);
            assert!(code.digits().bytes().all(|b| b.is_ascii_digit()));
            let shown = code.display();
            assert_eq!(shown.len(), 11);
            assert_eq!(InviteCode::parse(&shown), Ok(code));
        }
        let code = InviteCode::parse("012345678").unwrap();
        assert_eq!(code.display(), "012 345 678");
        assert_eq!(format!("{code:?}"), "InviteCode(…)", "never printed");
    }

    #[test]
    fn codes_are_read_the_way_people_type_them() {
        for typed in [
            "123456789",
            "123 456 789",
            " 123-456-789 ",
            "123 - 456 - 789",
            "12 34 56 789",
            "１２３ ４５６ ７８９",
            "123\u{3000}456\u{3000}789",
            "123–456—789",
            "123.456.789",
        ] {
            assert_eq!(
                InviteCode::parse(typed).map(|c| c.digits().to_owned()),
                Ok("123456789".to_owned()),
                "{typed:?}"
            );
        }
        assert_eq!(InviteCode::parse(""), Err(CodeError::Empty));
        assert_eq!(InviteCode::parse(" - "), Err(CodeError::Empty));
        assert_eq!(
            InviteCode::parse("12345678"),
            Err(CodeError::WrongLength(8))
        );
        assert_eq!(
            InviteCode::parse("1234567890"),
            Err(CodeError::WrongLength(10))
        );
        assert_eq!(
            InviteCode::parse(&"9".repeat(10_000)),
            Err(CodeError::WrongLength(10_000))
        );
        for bad in [
            "12345678a",
            "123 456 78O",
            "123/456/789",
            "١٢٣٤٥٦٧٨٩",
            "123456789\u{202e}",
        ] {
            assert_eq!(InviteCode::parse(bad), Err(CodeError::NotADigit), "{bad:?}");
        }
    }

    #[test]
    fn states_in_their_order() {
        let v = Validity {
            revoked: false,
            not_before: Some(100),
            expires_at: 200,
            max_uses: Some(2),
            uses: 0,
        };
        assert_eq!(v.state(50), InviteState::NotYet);
        assert_eq!(v.state(100), InviteState::Active);
        assert_eq!(v.state(199), InviteState::Active);
        assert_eq!(v.state(200), InviteState::Expired);
        let used = Validity { uses: 2, ..v };
        assert_eq!(used.state(150), InviteState::UsedUp);
        assert_eq!(used.state(500), InviteState::UsedUp, "used, then closed");
        let revoked = Validity {
            revoked: true,
            ..used
        };
        assert_eq!(revoked.state(150), InviteState::Revoked);
        // Invitations from before windows and limits: no start, no limit.
        let old = Validity {
            revoked: false,
            not_before: None,
            expires_at: 200,
            max_uses: None,
            uses: 40,
        };
        assert_eq!(old.state(0), InviteState::Active);
        assert!(InviteState::NotYet.is_live() && !InviteState::UsedUp.is_live());
    }

    #[test]
    fn a_slot_opens_before_and_closes_after() {
        // 10:00 for 30 minutes, opening 30 before and closing 60 after: 09:30 to 11:30.
        let start = 1_800_000_000;
        assert_eq!(
            slot_window(start, 30, 30, 60),
            (start - 30 * 60, start + 90 * 60)
        );
        assert_eq!(slot_window(start, 30, 0, 0), (start, start + 30 * 60));
        let (open, close) = slot_window(i64::MAX - 10, 240, u64::MAX, u64::MAX);
        assert!(open < close, "no overflow");
    }

    #[test]
    fn uses_and_labels() {
        assert_eq!(default_max_uses(Role::Patient), Some(1));
        assert_eq!(default_max_uses(Role::Guest), Some(1));
        assert_eq!(default_max_uses(Role::Observer), None);
        assert_eq!(check_max_uses(1), Ok(1));
        assert_eq!(check_max_uses(20), Ok(20));
        assert!(check_max_uses(0).is_err() && check_max_uses(21).is_err());
        assert_eq!(label(None), Ok(None));
        assert_eq!(label(Some("  ")), Ok(None));
        assert_eq!(label(Some(" 监护人 ")), Ok(Some("监护人".into())));
        assert!(label(Some("guardian\u{202e}")).is_err());
        assert!(label(Some(&"x".repeat(MAX_LABEL_CHARS + 1))).is_err());
    }

    #[test]
    fn times_are_written_for_people() {
        assert_eq!(clock_text(0, 0), "1970-01-01 00:00 UTC");
        // 2026-12-05 06:30 UTC is 14:30 in Beijing.
        let t = 1_796_452_200;
        assert_eq!(clock_text(t, 0), "2026-12-05 06:30 UTC");
        assert_eq!(clock_text(t, 480), "2026-12-05 14:30 UTC+08:00");
        assert_eq!(clock_text(t, -330), "2026-12-05 01:00 UTC-05:30");
        assert_eq!(clock_text(951_782_400, 0), "2000-02-29 00:00 UTC");
    }
}
