//! The patient's consent on a consultation request: may the request's documents reach the
//! receiving institution's clinicians?
//!
//! The patient is no participant when a request is sent, so the consent is attested: the
//! requesting clinician records that the patient agreed to the server's words for
//! `external_sharing` (`domain::consent`), in their current version, at a time; and, when the
//! patient withdraws, that they withdrew. The rules:
//! - A request is cross-institution when its department belongs to another institution than
//!   the requester's (a forward stays in the department, so this never changes). Only then is
//!   consent needed: a request within one institution shares nothing outside it.
//! - Only the requester attests or records a withdrawal: the requesting side of a request is
//!   its requester alone (`super::side_of`), the clinician the patient told. The receiving
//!   side is refused (`NotRequester`); anyone else does not see the request at all.
//! - The words attested must be the current ones: a console that showed older words cannot
//!   record consent to words it did not show (`WordingChanged`).
//! - Giving while a consent is in force changes nothing and answers as it stands (a retried
//!   request is not an error; the record keeps the first attestation); withdrawing when none
//!   is in force likewise. Otherwise each changes one row (`storage::Change`), which the HTTP
//!   edge commits with its audit entry, so a consent is never in force without its record.
//!   Requests that decide at once may all queue the change; the row's own condition lets one
//!   take effect, and the entry is written only with it (`Append::only_if_changed`), so the
//!   trail holds one `consent.given` per consent.
//! - What needs it is [`Sharing::allowed`]: attaching to a cross-institution request, the
//!   receiving side's reads of its attachments, and the copies into the request's room
//!   (`storage`'s `may_share` decides those inside the copying transaction). Copies already in
//!   the room are withheld from the other institution's clinicians by the room's document
//!   reads (`Db::withheld_documents`), unless a patient of the room agreed there.
//!
//! This module does not write the audit trail or tell consoles: the HTTP edge does both.

use crate::domain::consent::ConsentPurpose;
use crate::domain::ids::{ConsentId, ReferralId};
use crate::domain::referral::Side;
use crate::storage::{Change, Db, ReferralConsentRecord, ReferralRow, StorageError, User};

use super::{ReferralServiceError, Referrals};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConsentError {
    /// The request itself refused (not found, not theirs).
    #[error(transparent)]
    Referral(#[from] ReferralServiceError),
    #[error(
        "only the clinician who asked for the consultation records the patient's consent or its \
         withdrawal"
    )]
    NotRequester,
    #[error(
        "a consultation request records only the patient's consent to sharing documents \
         (external_sharing); recording and observers are agreed to in the consultation room"
    )]
    NotOnRequest,
    #[error(
        "the wording of this consent changed (version {current}, not {given}): show the patient \
         the current words and record their consent to those"
    )]
    WordingChanged {
        given: String,
        current: &'static str,
    },
    #[error(transparent)]
    Storage(StorageError),
}

impl From<StorageError> for ConsentError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::NotFound => ConsentError::Referral(ReferralServiceError::NotFound),
            other => ConsentError::Storage(other),
        }
    }
}

impl ConsentError {
    /// A stable name for the HTTP edge and the audit trail.
    pub fn code(&self) -> &'static str {
        match self {
            ConsentError::Referral(e) => e.code(),
            ConsentError::NotRequester => "forbidden",
            ConsentError::NotOnRequest => "invalid_purpose",
            ConsentError::WordingChanged { .. } => "wording_changed",
            ConsentError::Storage(_) => "internal",
        }
    }
}

type Result<T> = std::result::Result<T, ConsentError>;

/// Where a request stands on sharing its documents with the receiving institution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sharing {
    /// Cross-institution: the patient's consent is needed.
    pub required: bool,
    /// The latest `external_sharing` consent on the request (in force or withdrawn).
    pub consent: Option<ReferralConsentRecord>,
}

impl Sharing {
    /// Whether the documents may reach the receiving institution now.
    pub fn allowed(&self) -> bool {
        !self.required || self.in_force()
    }

    pub fn in_force(&self) -> bool {
        self.consent
            .as_ref()
            .is_some_and(ReferralConsentRecord::in_force)
    }

    /// Whether `side` may read the request's attachments: the requester's side always (they
    /// are its own documents), the receiving side while sharing is allowed.
    pub fn readable_by(&self, side: Side) -> bool {
        side == Side::Requester || self.allowed()
    }
}

/// What giving or withdrawing decided.
#[derive(Debug, Clone)]
pub struct Decided {
    pub referral: ReferralRow,
    /// The row change to commit with its audit entry; `None`: nothing changes (already so).
    pub change: Option<Change>,
}

/// Checks that `version` is the current wording of `purpose`, and that it is a purpose a
/// request records; the current version.
pub fn current_wording(purpose: ConsentPurpose, version: &str) -> Result<&'static str> {
    if purpose != ConsentPurpose::ExternalSharing {
        return Err(ConsentError::NotOnRequest);
    }
    let current = purpose.wording().version;
    if version != current {
        return Err(ConsentError::WordingChanged {
            given: version.chars().take(40).collect(),
            current,
        });
    }
    Ok(current)
}

/// The consent service; cheap to clone.
#[derive(Clone, Debug)]
pub struct ReferralConsents {
    db: Db,
}

impl ReferralConsents {
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    /// Where `referral` stands on sharing (see the module). Only the request or the storage
    /// can refuse this, hence its narrower error.
    pub async fn sharing(
        &self,
        referral: &ReferralRow,
    ) -> std::result::Result<Sharing, ReferralServiceError> {
        let receiving = self
            .db
            .department(referral.target.department())
            .await?
            .ok_or(ReferralServiceError::UnknownDepartment)?
            .institution_id;
        Ok(Sharing {
            required: receiving != referral.requester_institution,
            consent: self
                .db
                .referral_consent(&referral.id, ConsentPurpose::ExternalSharing)
                .await?,
        })
    }

    /// The request, if `who` asked for it.
    async fn own(&self, id: &ReferralId, who: &User) -> Result<ReferralRow> {
        match Referrals::new(self.db.clone()).visible(id, who).await? {
            (row, Side::Requester) => Ok(row),
            (_, Side::Receiver) => Err(ConsentError::NotRequester),
        }
    }

    /// `who` attests that the patient agreed to `purpose` in the words of `version`.
    pub async fn give(
        &self,
        id: &ReferralId,
        who: &User,
        purpose: ConsentPurpose,
        version: &str,
        now: i64,
    ) -> Result<Decided> {
        let referral = self.own(id, who).await?;
        let version = current_wording(purpose, version)?;
        let change = if self.sharing(&referral).await?.in_force() {
            None
        } else {
            Some(Change::ReferralConsentGiven {
                referral: referral.id.clone(),
                id: ConsentId::generate(),
                purpose,
                wording_version: version,
                by: who.id.clone(),
                at: now,
            })
        };
        Ok(Decided { referral, change })
    }

    /// `who` records that the patient withdrew their consent to `purpose`.
    pub async fn withdraw(
        &self,
        id: &ReferralId,
        who: &User,
        purpose: ConsentPurpose,
        now: i64,
    ) -> Result<Decided> {
        let referral = self.own(id, who).await?;
        if purpose != ConsentPurpose::ExternalSharing {
            return Err(ConsentError::NotOnRequest);
        }
        let change =
            self.sharing(&referral)
                .await?
                .in_force()
                .then(|| Change::ReferralConsentWithdrawn {
                    referral: referral.id.clone(),
                    purpose,
                    by: who.id.clone(),
                    at: now,
                });
        Ok(Decided { referral, change })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_current_words_for_sharing_are_recorded() {
        let current = ConsentPurpose::ExternalSharing.wording().version;
        assert_eq!(
            current_wording(ConsentPurpose::ExternalSharing, current).unwrap(),
            current
        );
        match current_wording(ConsentPurpose::ExternalSharing, "2020-01-01") {
            Err(e @ ConsentError::WordingChanged { .. }) => {
                assert_eq!(e.code(), "wording_changed");
                assert!(e.to_string().contains(current), "{e}");
            }
            other => panic!("{other:?}"),
        }
        let recording = ConsentPurpose::Recording.wording().version;
        assert!(matches!(
            current_wording(ConsentPurpose::Recording, recording),
            Err(ConsentError::NotOnRequest)
        ));
    }

    #[test]
    fn the_requesting_side_always_reads_the_receiving_side_only_when_allowed() {
        let record = |withdrawn: Option<i64>| ReferralConsentRecord {
            purpose: ConsentPurpose::ExternalSharing,
            wording_version: "v".into(),
            attested_by: crate::domain::ids::UserId::generate(),
            given_at: 1,
            withdrawn_at: withdrawn,
            withdrawn_by: None,
        };
        let cases = [
            (false, None, true),
            (true, None, false),
            (true, Some(record(None)), true),
            (true, Some(record(Some(2))), false),
        ];
        for (required, consent, allowed) in cases {
            let s = Sharing { required, consent };
            assert_eq!(s.allowed(), allowed, "{s:?}");
            assert!(s.readable_by(Side::Requester));
            assert_eq!(s.readable_by(Side::Receiver), allowed);
        }
    }
}
