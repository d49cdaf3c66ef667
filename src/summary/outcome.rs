//! The patient's outcome after a consultation (docs/protocol.md, "The patient's outcome"):
//! what was issued to them and nothing else. The issued diagnosis reports and prescriptions
//! the patient's role may read (`Role::may_read_record`: never drafts, never notes), each with
//! who signed it, its pharmacy status in words and the correction that replaced it; the
//! follow-up the current reports advise; the consultation's title, dates and institution.
//!
//! Read-only, like the rest of `summary`. Whether a link may see it (a patient's invitation,
//! not revoked, within `rooms.outcome_days`) is the HTTP edge's question; the window is
//! [`available_until`].

use super::SummaryError;
use crate::domain::ids::{InviteId, RecordId};
use crate::domain::record::{RecordKind, RecordStatus};
use crate::domain::role::Role;
use crate::records::{RecordView, Records};
use crate::storage::{Db, RoomRecord, Signature};

const DAY_S: i64 = 86_400;

/// Until when (Unix seconds, exclusive) a patient's invitation opens the outcome page:
/// `days` after the consultation ended or, while it has not ended, after the invitation was
/// made (so a consultation nobody ended does not keep its links working for ever). The link's
/// own expiry for joining plays no part.
pub fn available_until(ended_at: Option<i64>, invite_created_at: i64, days: u64) -> i64 {
    let days = i64::try_from(days).unwrap_or(i64::MAX);
    ended_at
        .unwrap_or(invite_created_at)
        .saturating_add(days.saturating_mul(DAY_S))
}

/// A record's status as the patient is told it, in Chinese and English.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusWords {
    pub zh: &'static str,
    pub en: &'static str,
}

/// The words for an issued record's status: a prescription's step at the pharmacy, or that
/// a correction replaced it.
pub fn status_words(kind: RecordKind, status: RecordStatus, replaced: bool) -> StatusWords {
    let (zh, en) = match (replaced, kind, status) {
        (true, RecordKind::Prescription, _) => (
            "已由更正后的处方取代",
            "Replaced by a corrected prescription",
        ),
        (true, _, _) => ("已由更正后的报告取代", "Replaced by a corrected report"),
        (false, RecordKind::Prescription, RecordStatus::Issued) => {
            ("等待药师审核", "Awaiting the pharmacist's review")
        }
        (false, RecordKind::Prescription, RecordStatus::Reviewed) => {
            ("药师已审核", "Reviewed by the pharmacist")
        }
        (false, RecordKind::Prescription, RecordStatus::Dispensed) => ("已发药", "Dispensed"),
        (false, RecordKind::Prescription, RecordStatus::Rejected) => (
            "药师未通过审核，请联系您的医生",
            "Not approved by the pharmacist: please contact your doctor",
        ),
        (false, _, RecordStatus::Draft) => ("草稿", "Draft"),
        (false, _, _) => ("已签发", "Issued"),
    };
    StatusWords { zh, en }
}

/// One issued record as the patient sees it.
#[derive(Debug, Clone)]
pub struct OutcomeRecord {
    pub view: RecordView,
    /// The issued correction that replaced it (a correction still in draft does not count:
    /// the patient is not shown it).
    pub replaced_by: Option<RecordId>,
    /// When it was issued (Unix milliseconds): its signature's time, else its issuing step's.
    pub issued_at_ms: i64,
}

impl OutcomeRecord {
    pub fn words(&self) -> StatusWords {
        let r = &self.view.record;
        status_words(r.kind, r.status, self.replaced_by.is_some())
    }

    fn text(&self, field: &str) -> &str {
        self.view.record.body[field].as_str().unwrap_or_default()
    }
}

/// Follow-up advised by a current (not replaced) report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowUp<'a> {
    pub report: &'a RecordId,
    pub recommendation: &'a str,
    /// `YYYY-MM-DD`.
    pub date: Option<&'a str>,
    pub advice: Option<&'a str>,
}

/// What a patient's link shows after the consultation.
#[derive(Debug, Clone)]
pub struct PatientOutcome {
    pub room: RoomRecord,
    /// The name of the institution that held the consultation.
    pub institution: String,
    /// Issued diagnosis reports and prescriptions, oldest first.
    pub records: Vec<OutcomeRecord>,
    /// Until when the link opens the page (Unix seconds).
    pub available_until: i64,
    pub generated_at_ms: i64,
}

impl PatientOutcome {
    pub fn of_kind(&self, kind: RecordKind) -> impl Iterator<Item = &OutcomeRecord> {
        self.records
            .iter()
            .filter(move |r| r.view.record.kind == kind)
    }

    /// The clinicians who signed what the patient is shown, each once, in order of signing.
    pub fn signers(&self) -> Vec<&Signature> {
        let mut out: Vec<&Signature> = Vec::new();
        for sig in self
            .records
            .iter()
            .filter_map(|r| r.view.record.signature.as_ref())
        {
            if !out.iter().any(|s| s.by == sig.by) {
                out.push(sig);
            }
        }
        out
    }

    /// The follow-up of every current report that advises any.
    pub fn follow_up(&self) -> Vec<FollowUp<'_>> {
        self.of_kind(RecordKind::DiagnosisReport)
            .filter(|r| r.replaced_by.is_none())
            .map(|r| {
                let field = |k: &str| Some(r.text(k)).filter(|t| !t.trim().is_empty());
                FollowUp {
                    report: &r.view.record.id,
                    recommendation: r.text("recommendation"),
                    date: field("follow_up_date"),
                    advice: field("follow_up_advice"),
                }
            })
            .filter(|f| {
                !f.recommendation.trim().is_empty() || f.date.is_some() || f.advice.is_some()
            })
            .collect()
    }
}

/// Assembles the outcome of `room` for its patient.
pub async fn assemble(
    db: &Db,
    records: &Records,
    room: RoomRecord,
    invite: &InviteId,
    available_until: i64,
) -> Result<PatientOutcome, SummaryError> {
    let institution = db
        .institution(&room.institution_id)
        .await?
        .map(|i| i.name)
        .unwrap_or_default();
    // The permission table decides: for the patient, issued reports and prescriptions only,
    // and only their own (a consultation may have seen several patients).
    let views = records
        .in_room_for(&room.id, Some((Role::Patient, invite)))
        .await?;
    let shown = |id: &RecordId| views.iter().any(|v| &v.record.id == id);
    let records = views
        .iter()
        .map(|v| OutcomeRecord {
            replaced_by: v.superseded_by.clone().filter(|n| shown(n)),
            issued_at_ms: v
                .record
                .signature
                .as_ref()
                .map(|s| s.at_ms)
                .or_else(|| {
                    v.events
                        .iter()
                        .find(|e| e.to_status == RecordStatus::Issued)
                        .map(|e| e.at_ms)
                })
                .unwrap_or(v.record.created_at_ms),
            view: v.clone(),
        })
        .collect();
    Ok(PatientOutcome {
        room,
        institution,
        records,
        available_until,
        generated_at_ms: crate::domain::clock::now_unix_ms(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_runs_from_the_end_or_else_from_the_link() {
        // Ended: 30 days from the end, whenever the link was made.
        assert_eq!(available_until(Some(1_000), 10, 30), 1_000 + 30 * DAY_S);
        // Not ended: from the link's making.
        assert_eq!(available_until(None, 10, 30), 10 + 30 * DAY_S);
        // 0 days: closed from the end on.
        assert_eq!(available_until(Some(1_000), 10, 0), 1_000);
        assert_eq!(available_until(Some(1_000), 10, u64::MAX), i64::MAX);
    }

    #[test]
    fn every_status_has_words_and_a_correction_overrides_them() {
        use RecordStatus::*;
        let rx = RecordKind::Prescription;
        assert_eq!(
            status_words(rx, Issued, false).en,
            "Awaiting the pharmacist's review"
        );
        assert_eq!(status_words(rx, Reviewed, false).zh, "药师已审核");
        assert_eq!(status_words(rx, Dispensed, false).en, "Dispensed");
        assert!(status_words(rx, Rejected, false).en.contains("contact"));
        assert!(status_words(rx, Reviewed, true).en.starts_with("Replaced"));
        let report = RecordKind::DiagnosisReport;
        assert_eq!(status_words(report, Issued, false).en, "Issued");
        assert!(
            status_words(report, Issued, true)
                .en
                .starts_with("Replaced")
        );
    }
}
