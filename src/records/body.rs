//! What each kind of clinical record says, and the checks on it. Bodies are stored as canonical
//! JSON (fields in a fixed order, no extra fields) and hashed, so the audit trail can name
//! exactly which text was issued.

use serde::{Deserialize, Serialize};

use crate::domain::record::RecordKind;

const MAX_TEXT_CHARS: usize = 10_000;
const MAX_FIELD_CHARS: usize = 200;
const MAX_ITEMS: usize = 20;
/// Follow-up advice for the patient, in characters.
const MAX_FOLLOW_UP_ADVICE_CHARS: usize = 1000;
/// How far ahead a follow-up date may be, in days (two years).
const MAX_FOLLOW_UP_DAYS: i64 = 731;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Note {
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiagnosisReport {
    pub findings: String,
    pub impression: String,
    pub recommendation: String,
    /// When the patient should be seen again, `YYYY-MM-DD` (optional: bodies without it, and
    /// every body written before it existed, stay valid and hash the same).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub follow_up_date: Option<String>,
    /// What the patient should do until then, in words for them (optional, ≤ 1000 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub follow_up_advice: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Prescription {
    pub items: Vec<MedicationOrder>,
}

/// One medication order, in the prescriber's words (e.g. "aspirin", "100 mg", "oral",
/// "once daily", "30 days").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MedicationOrder {
    pub medication: String,
    pub dose: String,
    pub route: String,
    pub frequency: String,
    pub duration: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind} body: {reason}")]
pub struct BodyError {
    pub kind: &'static str,
    pub reason: String,
}

fn check_text(
    kind: RecordKind,
    field: &str,
    value: &str,
    max: usize,
    required: bool,
) -> Result<(), BodyError> {
    let n = value.trim().chars().count();
    // Shown to the patient and the pharmacist and printed: nothing hidden or reordered (a
    // right-to-left override could turn "5 mg" into something else on the page).
    let bad_char = value.chars().any(crate::domain::text::is_hiding_in_record);
    if (required && n == 0) || n > max || bad_char {
        return Err(BodyError {
            kind: kind.as_str(),
            reason: format!(
                "`{field}` must be {} to {max} printable characters, with nothing that hides or \
                 reorders text",
                usize::from(required)
            ),
        });
    }
    Ok(())
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// A calendar date written `YYYY-MM-DD`, as days since 1970-01-01; `None` if it is not one.
fn parse_date(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = &s[r];
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())
            .flatten()
    };
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days_in_month = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    (1..=days_in_month)
        .contains(&d)
        .then(|| days_from_civil(y, m, d))
}

/// Checks the structured follow-up of a report: a real date from yesterday (the clinic's day
/// may be ahead of UTC) to two years after `today` (days since 1970-01-01, UTC), and advice of
/// at most 1000 printable characters. Empty values are left out of the canonical body.
fn check_follow_up(b: &mut DiagnosisReport, today: i64) -> Result<(), BodyError> {
    let kind = RecordKind::DiagnosisReport;
    b.follow_up_date = b.follow_up_date.take().filter(|d| !d.trim().is_empty());
    b.follow_up_advice = b.follow_up_advice.take().filter(|a| !a.trim().is_empty());
    if let Some(date) = &b.follow_up_date {
        let day = parse_date(date.trim()).ok_or_else(|| BodyError {
            kind: kind.as_str(),
            reason: "`follow_up_date` must be a date written YYYY-MM-DD".into(),
        })?;
        if day < today - 1 || day > today + MAX_FOLLOW_UP_DAYS {
            return Err(BodyError {
                kind: kind.as_str(),
                reason: "`follow_up_date` must be from today to two years ahead".into(),
            });
        }
        b.follow_up_date = Some(date.trim().to_owned());
    }
    if let Some(advice) = &b.follow_up_advice {
        check_text(
            kind,
            "follow_up_advice",
            advice,
            MAX_FOLLOW_UP_ADVICE_CHARS,
            false,
        )?;
    }
    Ok(())
}

/// Checks a body against its kind and returns it in canonical form.
pub fn canonical(
    kind: RecordKind,
    body: serde_json::Value,
) -> Result<serde_json::Value, BodyError> {
    canonical_on(
        kind,
        body,
        crate::domain::clock::now_unix().div_euclid(86_400),
    )
}

/// [`canonical`] on the day `today` (days since 1970-01-01, UTC), which dates are judged by.
fn canonical_on(
    kind: RecordKind,
    body: serde_json::Value,
    today: i64,
) -> Result<serde_json::Value, BodyError> {
    let malformed = |e: serde_json::Error| BodyError {
        kind: kind.as_str(),
        reason: e.to_string(),
    };
    let value = match kind {
        RecordKind::Note => {
            let b: Note = serde_json::from_value(body).map_err(malformed)?;
            check_text(kind, "text", &b.text, MAX_TEXT_CHARS, true)?;
            serde_json::to_value(b)
        }
        RecordKind::DiagnosisReport => {
            let mut b: DiagnosisReport = serde_json::from_value(body).map_err(malformed)?;
            check_text(kind, "findings", &b.findings, MAX_TEXT_CHARS, true)?;
            check_text(kind, "impression", &b.impression, MAX_TEXT_CHARS, true)?;
            check_text(
                kind,
                "recommendation",
                &b.recommendation,
                MAX_TEXT_CHARS,
                false,
            )?;
            check_follow_up(&mut b, today)?;
            serde_json::to_value(b)
        }
        RecordKind::Prescription => {
            let b: Prescription = serde_json::from_value(body).map_err(malformed)?;
            if b.items.is_empty() || b.items.len() > MAX_ITEMS {
                return Err(BodyError {
                    kind: kind.as_str(),
                    reason: format!("1 to {MAX_ITEMS} medication orders"),
                });
            }
            for item in &b.items {
                for (field, value) in [
                    ("medication", &item.medication),
                    ("dose", &item.dose),
                    ("route", &item.route),
                    ("frequency", &item.frequency),
                    ("duration", &item.duration),
                ] {
                    check_text(kind, field, value, MAX_FIELD_CHARS, true)?;
                }
                if let Some(note) = &item.note {
                    check_text(kind, "note", note, MAX_FIELD_CHARS * 5, false)?;
                }
            }
            serde_json::to_value(b)
        }
    };
    Ok(value.expect("record bodies serialize"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bodies_are_checked_per_kind() {
        let rx = json!({"items": [{"medication": "阿司匹林肠溶片", "dose": "100 mg", "route": "oral",
                                   "frequency": "once daily", "duration": "30 days"}]});
        assert!(canonical(RecordKind::Prescription, rx).is_ok());
        for bad in [
            json!({"items": []}),
            json!({"items": [{"medication": "x", "dose": "", "route": "oral", "frequency": "qd", "duration": "1d"}]}),
            json!({"items": [{"medication": "x", "dose": "1", "route": "oral", "frequency": "qd", "duration": "1d", "extra": 1}]}),
            json!({"text": "a note is not a prescription"}),
        ] {
            assert!(
                canonical(RecordKind::Prescription, bad.clone()).is_err(),
                "{bad}"
            );
        }
        assert!(canonical(RecordKind::DiagnosisReport, json!({"findings": "ST elevation V1-V4", "impression": "anterior STEMI", "recommendation": ""})).is_ok());
        assert!(canonical(RecordKind::DiagnosisReport, json!({"findings": "x"})).is_err());
        assert!(canonical(RecordKind::Note, json!({"text": "bell\u{7}"})).is_err());
        // Lines and tabs are text; what hides or reorders it is not: a right-to-left override
        // in a dose, a zero-width space in a medication's name.
        assert!(canonical(RecordKind::Note, json!({"text": "line 1\n\tline 2"})).is_ok());
        for (field, value) in [
            ("dose", "\u{202e}gm 01"),
            ("medication", "Meto\u{200b}prolol"),
        ] {
            let mut item = json!({"medication": "Metoprolol", "dose": "10 mg", "route": "oral",
                                  "frequency": "qd", "duration": "7 days"});
            item[field] = json!(value);
            let refused = canonical(RecordKind::Prescription, json!({"items": [item]}));
            assert!(
                refused.as_ref().is_err_and(|e| e.reason.contains(field)),
                "{field}: {:?}",
                refused.map(|_| ())
            );
        }
    }

    #[test]
    fn follow_up_is_optional_checked_and_keeps_old_bodies_as_they_were() {
        let report = RecordKind::DiagnosisReport;
        let today = days_from_civil(2026, 12, 3);
        let old = json!({"findings": "f", "impression": "i", "recommendation": "r"});
        // A body written before follow-up existed is the same canonical body (same hash).
        assert_eq!(canonical_on(report, old.clone(), today).unwrap(), old);
        let with = |date: &str, advice: &str| {
            json!({"findings": "f", "impression": "i", "recommendation": "r",
                   "follow_up_date": date, "follow_up_advice": advice})
        };
        let ok = canonical_on(report, with("2027-01-15", "两周后复查心电图"), today).unwrap();
        assert_eq!(ok["follow_up_date"], "2027-01-15");
        assert_eq!(ok["follow_up_advice"], "两周后复查心电图");
        // Empty values are left out, as if absent.
        assert_eq!(canonical_on(report, with("", " "), today).unwrap(), old);
        // Yesterday (the clinic's day may be ahead of UTC) up to two years ahead.
        assert!(canonical_on(report, with("2026-12-02", ""), today).is_ok());
        assert!(canonical_on(report, with("2028-12-03", ""), today).is_ok());
        for bad_date in [
            "2026-12-01",
            "2028-12-05",
            "2027-02-29",
            "2027-13-01",
            "2027-1-15",
            "15/01/2027",
            "２０２７-01-15",
            "+027-01-15",
        ] {
            assert!(
                canonical_on(report, with(bad_date, ""), today).is_err(),
                "{bad_date}"
            );
        }
        assert!(canonical_on(report, with("2028-02-29", ""), today).is_ok());
        assert!(canonical_on(report, with("2027-01-15", &"长".repeat(1000)), today).is_ok());
        assert!(canonical_on(report, with("2027-01-15", &"长".repeat(1001)), today).is_err());
        assert!(canonical_on(report, with("2027-01-15", "bell\u{7}"), today).is_err());
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(parse_date("2000-03-01"), Some(11_017));
    }
}
