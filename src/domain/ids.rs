//! Typed identifiers shared by every layer.
//!
//! Each id is an opaque string with a short prefix (`r_` room, `p_` participant, `u_` user,
//! `i_` invite, `ses_` clinician session, `doc_` document, `upl_` upload, `ann_` annotation,
//! `msg_` chat message, `rec_` clinical record, `evt_` record event, `ins_` institution, `dep_`
//! department, `ref_` referral, `rdc_` referral document, `cns_` consent, `whe_` webhook event,
//! `aup_` audit entry owed)
//! and 16 random base62 characters, so ids are unguessable, safe to put in URLs and easy to tell apart in logs. The
//! prefix is part of the value; `parse` checks it.

use std::fmt;

use rand::Rng;
use serde::{Deserialize, Serialize};

const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const RANDOM_LEN: usize = 16;

fn random_suffix() -> String {
    let mut rng = rand::rng();
    (0..RANDOM_LEN)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        // Deserialised through `parse`, so no path in (JSON, a URL path, a query) can make an
        // id that the constructor would have refused.
        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                Self::parse(&s).ok_or_else(|| {
                    serde::de::Error::custom(concat!(
                        "not a valid ",
                        stringify!($name),
                        " (\"",
                        $prefix,
                        "\" and 16 letters or digits)"
                    ))
                })
            }
        }

        impl $name {
            /// A fresh random id.
            pub fn generate() -> Self {
                Self(format!("{}{}", $prefix, random_suffix()))
            }

            /// Accepts only strings this module could have generated.
            pub fn parse(s: &str) -> Option<Self> {
                let rest = s.strip_prefix($prefix)?;
                let ok = rest.len() == RANDOM_LEN && rest.bytes().all(|b| b.is_ascii_alphanumeric());
                ok.then(|| Self(s.to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

string_id!(
    /// A consultation room.
    RoomId,
    "r_"
);
string_id!(
    /// One participant's presence in a room (a new one per join).
    ParticipantId,
    "p_"
);
string_id!(
    /// A clinician account.
    UserId,
    "u_"
);
string_id!(
    /// An invite link issued for a room.
    InviteId,
    "i_"
);
string_id!(
    /// One sign-in of a clinician account: its session tokens name it (`sid`), so that it can
    /// be renewed, signed out and revoked on the server.
    SessionId,
    "ses_"
);

string_id!(
    /// A document shared into a room (complete and hash-checked).
    DocumentId,
    "doc_"
);
string_id!(
    /// An upload in progress; becomes a [`DocumentId`] when complete.
    UploadId,
    "upl_"
);
string_id!(
    /// One annotation on a document page.
    AnnotationId,
    "ann_"
);
string_id!(
    /// One chat message in a room.
    ChatMessageId,
    "msg_"
);
string_id!(
    /// One version of a clinical record (note, diagnosis report, prescription).
    RecordId,
    "rec_"
);

string_id!(
    /// One step in a record's life (issued, reviewed, dispensed, rejected).
    RecordEventId,
    "evt_"
);

string_id!(
    /// A hospital, a township clinic or an internet hospital of the network.
    InstitutionId,
    "ins_"
);
string_id!(
    /// A department of an institution (cardiology, radiology, general practice).
    DepartmentId,
    "dep_"
);
string_id!(
    /// A consultation request from one clinician to a department or a specialist.
    ReferralId,
    "ref_"
);
string_id!(
    /// A document attached to a consultation request (uploaded with it, or taken from one of
    /// the patient's earlier consultations).
    ReferralDocumentId,
    "rdc_"
);
string_id!(
    /// One consent a patient gave for one purpose in one consultation.
    ConsentId,
    "cns_"
);
string_id!(
    /// One event queued for one institution's webhook: the receiver's idempotency key.
    WebhookEventId,
    "whe_"
);
string_id!(
    /// One audit entry owed by a committed step, until it is on the chain
    /// (`storage::audit_pending`).
    PendingAuditId,
    "aup_"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_parse_back_and_prefixes_are_checked() {
        let r = RoomId::generate();
        assert_eq!(RoomId::parse(r.as_str()), Some(r.clone()));
        assert!(ParticipantId::parse(r.as_str()).is_none());
        assert!(RoomId::parse("r_short").is_none());
        assert!(RoomId::parse("r_../../etc/passwdxx").is_none());
    }

    #[test]
    fn deserialising_validates_like_parse() {
        let r = RoomId::generate();
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(serde_json::from_str::<RoomId>(&json).unwrap(), r);
        for bad in [
            r#""r_short""#,
            r#""r_../../etc/passwdxx""#,
            r#""p_0123456789abcdef""#,
            r#""""#,
        ] {
            let err = serde_json::from_str::<RoomId>(bad).unwrap_err().to_string();
            assert!(err.contains("not a valid RoomId"), "{bad}: {err}");
        }
        assert!(serde_json::from_str::<RoomId>("7").is_err());
        // Inside a message too, with escapes (an owned string).
        #[derive(Deserialize)]
        struct M {
            #[allow(dead_code)]
            room: RoomId,
        }
        assert!(serde_json::from_str::<M>(r#"{"room":"r_\u0041BCDEFGHIJKLMNOP"}"#).is_ok());
        assert!(serde_json::from_str::<M>(r#"{"room":"r_\u002e./xxxxxxxxxxxx"}"#).is_err());
    }
}
