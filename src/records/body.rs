//! What each kind of clinical record says, and the checks on it. Bodies are stored as canonical
//! JSON (fields in a fixed order, no extra fields) and hashed, so the audit trail can name
//! exactly which text was issued.

use serde::{Deserialize, Serialize};

use crate::domain::record::RecordKind;

const MAX_TEXT_CHARS: usize = 10_000;
const MAX_FIELD_CHARS: usize = 200;
const MAX_ITEMS: usize = 20;

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
    let bad_char = value
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\t'));
    if (required && n == 0) || n > max || bad_char {
        return Err(BodyError {
            kind: kind.as_str(),
            reason: format!(
                "`{field}` must be {} to {max} printable characters",
                usize::from(required)
            ),
        });
    }
    Ok(())
}

/// Checks a body against its kind and returns it in canonical form.
pub fn canonical(
    kind: RecordKind,
    body: serde_json::Value,
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
            let b: DiagnosisReport = serde_json::from_value(body).map_err(malformed)?;
            check_text(kind, "findings", &b.findings, MAX_TEXT_CHARS, true)?;
            check_text(kind, "impression", &b.impression, MAX_TEXT_CHARS, true)?;
            check_text(
                kind,
                "recommendation",
                &b.recommendation,
                MAX_TEXT_CHARS,
                false,
            )?;
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
    }
}
