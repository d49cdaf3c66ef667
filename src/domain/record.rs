//! A record's life: drafts are edited until issued; an issued record never changes again. A
//! prescription then goes through a pharmacist: reviewed, and dispensed or rejected. Every step
//! is a row in `record_events` saying who did it. The kinds and statuses here are what storage
//! keeps and what the permission table reads; `records` owns the rules that move between them.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordKind {
    /// The doctor's consultation notes.
    Note,
    /// The specialist's findings, impression and recommendation.
    DiagnosisReport,
    /// An e-prescription: one or more medication orders.
    Prescription,
}

impl RecordKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RecordKind::Note => "note",
            RecordKind::DiagnosisReport => "diagnosis_report",
            RecordKind::Prescription => "prescription",
        }
    }

    /// Issued only under the signature of the clinician account that issues it: what a
    /// patient and a pharmacist act on.
    pub fn needs_signature(self) -> bool {
        matches!(self, RecordKind::DiagnosisReport | RecordKind::Prescription)
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "note" => RecordKind::Note,
            "diagnosis_report" => RecordKind::DiagnosisReport,
            "prescription" => RecordKind::Prescription,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordStatus {
    Draft,
    Issued,
    /// Prescriptions only: checked by a pharmacist.
    Reviewed,
    Dispensed,
    Rejected,
}

impl RecordStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RecordStatus::Draft => "draft",
            RecordStatus::Issued => "issued",
            RecordStatus::Reviewed => "reviewed",
            RecordStatus::Dispensed => "dispensed",
            RecordStatus::Rejected => "rejected",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "draft" => RecordStatus::Draft,
            "issued" => RecordStatus::Issued,
            "reviewed" => RecordStatus::Reviewed,
            "dispensed" => RecordStatus::Dispensed,
            "rejected" => RecordStatus::Rejected,
            _ => return None,
        })
    }
}

/// What a pharmacist does to a prescription.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PharmacyAction {
    Review,
    Dispense,
    Reject,
}

/// The status after `action`, or `None` if it is not allowed from `from`.
pub fn next(kind: RecordKind, from: RecordStatus, action: PharmacyAction) -> Option<RecordStatus> {
    if kind != RecordKind::Prescription {
        return None;
    }
    use PharmacyAction::*;
    use RecordStatus::*;
    Some(match (from, action) {
        (Issued, Review) => Reviewed,
        (Reviewed, Dispense) => Dispensed,
        (Issued | Reviewed, Reject) => Rejected,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prescriptions_follow_the_pharmacy_path() {
        use PharmacyAction::*;
        use RecordStatus::*;
        let rx = RecordKind::Prescription;
        assert_eq!(next(rx, Issued, Review), Some(Reviewed));
        assert_eq!(next(rx, Reviewed, Dispense), Some(Dispensed));
        assert_eq!(next(rx, Issued, Reject), Some(Rejected));
        // No dispensing without review, nothing after a final state, nothing on drafts.
        assert_eq!(next(rx, Issued, Dispense), None);
        assert_eq!(next(rx, Dispensed, Reject), None);
        assert_eq!(next(rx, Rejected, Review), None);
        assert_eq!(next(rx, Draft, Review), None);
        assert_eq!(next(RecordKind::Note, Issued, Review), None);
    }
}
