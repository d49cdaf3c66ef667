//! Consents recorded on consultation requests, as rows (migrations/0015): written through the
//! audit writer (`Change::ReferralConsentGiven`, `Change::ReferralConsentWithdrawn`, committed
//! with their audit entries, as a room's consents are), read here.
//!
//! [`may_share`] is the rule's one SQL form, for the transactions that copy a request's
//! attachments into its room: they copy only where it holds when they run, so a withdrawal
//! committed first is always seen.

use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use super::{Db, StorageError};
use crate::domain::consent::ConsentPurpose;
use crate::domain::ids::{ReferralId, UserId};

/// One consent on a request: attested, and perhaps withdrawn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReferralConsentRecord {
    pub purpose: ConsentPurpose,
    pub wording_version: String,
    /// The clinician who attested that the patient agreed.
    pub attested_by: UserId,
    pub given_at: i64,
    pub withdrawn_at: Option<i64>,
    /// The clinician who recorded the patient's withdrawal.
    pub withdrawn_by: Option<UserId>,
}

impl ReferralConsentRecord {
    pub fn in_force(&self) -> bool {
        self.withdrawn_at.is_none()
    }
}

fn corrupt(what: &'static str) -> StorageError {
    StorageError::Corrupt(what)
}

fn from_row(r: &AnyRow) -> Result<ReferralConsentRecord, StorageError> {
    let purpose: String = r.try_get("purpose")?;
    let attested_by: String = r.try_get("attested_by")?;
    let withdrawn_by: Option<String> = r.try_get("withdrawn_by")?;
    Ok(ReferralConsentRecord {
        purpose: ConsentPurpose::parse(&purpose).ok_or(corrupt("referral consent purpose"))?,
        wording_version: r.try_get("wording_version")?,
        attested_by: UserId::parse(&attested_by).ok_or(corrupt("referral consent author"))?,
        given_at: r.try_get("given_at")?,
        withdrawn_at: r.try_get("withdrawn_at")?,
        withdrawn_by: withdrawn_by
            .map(|u| UserId::parse(&u).ok_or(corrupt("referral consent withdrawer")))
            .transpose()?,
    })
}

/// Whether `referral`'s documents may reach the receiving institution now, in the caller's
/// transaction: the request stays within one institution (its department is the requester's
/// institution's), or the patient's `external_sharing` consent on it is in force.
pub(super) async fn may_share(
    tx: &mut Transaction<'static, Any>,
    referral: &ReferralId,
) -> Result<bool, StorageError> {
    let row = sqlx::query(
        "SELECT \
         (SELECT COUNT(*) FROM referrals r JOIN departments d ON d.id = r.target_department \
          WHERE r.id = $1 AND d.institution_id = r.requester_institution) AS same, \
         (SELECT COUNT(*) FROM referral_consents c \
          WHERE c.referral_id = $1 AND c.purpose = $2 AND c.withdrawn_at IS NULL) AS given",
    )
    .bind(referral.as_str())
    .bind(ConsentPurpose::ExternalSharing.as_str())
    .fetch_one(&mut **tx)
    .await?;
    let same: i64 = row.try_get("same")?;
    let given: i64 = row.try_get("given")?;
    Ok(same > 0 || given > 0)
}

impl Db {
    /// The latest consent for `purpose` on `referral` (in force, or the last withdrawn), if
    /// one was ever given.
    pub async fn referral_consent(
        &self,
        referral: &ReferralId,
        purpose: ConsentPurpose,
    ) -> Result<Option<ReferralConsentRecord>, StorageError> {
        let row = sqlx::query(
            "SELECT purpose, wording_version, attested_by, given_at, withdrawn_at, withdrawn_by \
             FROM referral_consents WHERE referral_id = $1 AND purpose = $2 \
             ORDER BY CASE WHEN withdrawn_at IS NULL THEN 0 ELSE 1 END, given_at DESC, \
             withdrawn_at DESC, id DESC LIMIT 1",
        )
        .bind(referral.as_str())
        .bind(purpose.as_str())
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// Every consent on `referral`, oldest first (its history).
    pub async fn referral_consents(
        &self,
        referral: &ReferralId,
    ) -> Result<Vec<ReferralConsentRecord>, StorageError> {
        let rows = sqlx::query(
            "SELECT purpose, wording_version, attested_by, given_at, withdrawn_at, withdrawn_by \
             FROM referral_consents WHERE referral_id = $1 ORDER BY given_at, id",
        )
        .bind(referral.as_str())
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(from_row).collect()
    }
}
