//! The HTTP API's one error type: a stable code, a human message and a status. Details stay
//! in the server log; the client gets nothing it should not see.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::documents::DocumentError;
use crate::rooms::RoomError;
use crate::sessions::SessionError;
use crate::storage::StorageError;

/// Seconds a client is told to wait before asking again for a render refused as busy.
pub const RENDER_RETRY_AFTER_S: u64 = 2;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    #[error("sign in first")]
    Unauthenticated,
    #[error("wrong user name or password")]
    InvalidCredentials,
    /// A password change whose current password was wrong (not 401: the session is fine).
    #[error("the current password is wrong")]
    WrongPassword,
    /// A signing confirmation with the wrong password: same code, its own words.
    #[error("the password is wrong: the record was not signed")]
    WrongSigningPassword,
    #[error("your account may not do this")]
    Forbidden,
    /// The account was disabled by an administrator.
    #[error("this account is disabled; ask your administrator")]
    AccountDisabled,
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    Invalid(String),
    #[error("the consultation has ended")]
    RoomEnded,
    /// Too many failed sign-ins; retry after this many seconds.
    #[error("too many failed sign-ins; try again later")]
    TooManyAttempts(u64),
    /// Past the request rate of what needs no session; retry after this many seconds.
    #[error("too many requests from this network; try again in {0} seconds")]
    TooManyRequests(u64),
    /// Refused by a rule, with the reason the user is shown.
    #[error("{0}")]
    Denied(String),
    #[error("{0}")]
    TooLarge(String),
    #[error("{0}")]
    UnsupportedType(String),
    #[error("the content's SHA-256 does not match the one declared; the upload was discarded")]
    HashMismatch,
    /// A chunk did not start where the upload stands; the body says where it does.
    #[error("the upload stands at byte {0}; resume from there")]
    OffsetMismatch(u64),
    #[error("another request is writing to this upload")]
    UploadBusy,
    /// Showing the document would pass a render limit; the message says which.
    #[error("{0}")]
    TooLargeToRender(String),
    /// Every render slot stayed taken; the client retries after [`RENDER_RETRY_AFTER_S`].
    #[error("the server is busy showing other documents; try again in a moment")]
    RenderBusy,
    /// Every password-check slot stayed taken (a burst of sign-ins); retry shortly.
    #[error("too many sign-ins at once; try again in a moment")]
    SignInBusy,
    /// Every slot for verifying the audit trail is taken; retry shortly.
    #[error("the audit trail is being verified already; try again in a moment")]
    AuditBusy,
    /// A quota refused the request: `limit` is its stable name (the body's `error.limit`),
    /// the message says which in words.
    #[error("{message}")]
    LimitReached {
        limit: &'static str,
        message: String,
    },
    /// A department's queue has nobody waiting to take.
    #[error("nobody is waiting in the department's consultations")]
    NobodyWaiting,
    /// The request contradicts the object's state (an issued record, a prescription already
    /// dispensed).
    #[error("{0}")]
    Conflict(String),
    /// Issuing takes a clinician's signature (their account, their password); the message
    /// says what is missing.
    #[error("{0}")]
    SignatureRequired(String),
    /// It needs a patient's consent that is not given.
    #[error("{0}")]
    ConsentRequired(String),
    /// A report or a prescription in a consultation that saw several patients names none.
    #[error("several patients came to this consultation: choose the patient this record is about")]
    PatientRequired,
    /// A signing PIN refused or not taken (docs/protocol.md, "Signing PINs"): `pin_rule`,
    /// `weak_pin`, `wrong_pin` (with the tries left before it is erased), `pin_erased`,
    /// `no_signing_pin`.
    #[error("{message}")]
    Pin {
        status: StatusCode,
        code: &'static str,
        message: String,
        tries_left: Option<i64>,
    },
    /// Stored content no longer matches its recorded hash.
    #[error("the stored document is damaged (integrity check failed); contact your IT team")]
    IntegrityFailed,
    #[error("internal error")]
    Internal(String),
    /// A consultation request refused (docs/protocol.md, "Referrals"), with its own status
    /// and stable code.
    #[error("{message}")]
    Referral {
        status: StatusCode,
        code: &'static str,
        message: String,
    },
    /// An invitation or its short code refused (docs/protocol.md, "Invitations"), with its
    /// own status and stable code; `retry_after` (seconds) for the code throttle.
    #[error("{message}")]
    Invitation {
        status: StatusCode,
        code: &'static str,
        message: String,
        retry_after: Option<u64>,
    },
    /// An institution's webhook refused (a URL the rules refuse, none set yet), with its own
    /// status and stable code.
    #[error("{message}")]
    Webhook {
        status: StatusCode,
        code: &'static str,
        message: String,
    },
    /// A link refused at the patient's outcome page (docs/protocol.md, "The patient's
    /// outcome"): `invalid_token`, `not_patient_link`, `invite_revoked`, `outcome_expired`.
    #[error("{message}")]
    Link {
        status: StatusCode,
        code: &'static str,
        message: &'static str,
    },
}

impl ApiError {
    fn parts(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::Unauthenticated => (StatusCode::UNAUTHORIZED, "unauthenticated"),
            ApiError::InvalidCredentials => (StatusCode::UNAUTHORIZED, "invalid_credentials"),
            ApiError::WrongPassword | ApiError::WrongSigningPassword => {
                (StatusCode::FORBIDDEN, "wrong_password")
            }
            ApiError::Forbidden => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::AccountDisabled => (StatusCode::FORBIDDEN, "account_disabled"),
            ApiError::NotFound => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::Invalid(_) => (StatusCode::BAD_REQUEST, "invalid_request"),
            ApiError::RoomEnded => (StatusCode::CONFLICT, "room_ended"),
            ApiError::TooManyAttempts(_) => (StatusCode::TOO_MANY_REQUESTS, "too_many_attempts"),
            ApiError::TooManyRequests(_) => (StatusCode::TOO_MANY_REQUESTS, "too_many_requests"),
            ApiError::Denied(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
            ApiError::UnsupportedType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_type")
            }
            ApiError::HashMismatch => (StatusCode::UNPROCESSABLE_ENTITY, "hash_mismatch"),
            ApiError::OffsetMismatch(_) => (StatusCode::CONFLICT, "offset_mismatch"),
            ApiError::UploadBusy => (StatusCode::CONFLICT, "upload_busy"),
            ApiError::TooLargeToRender(_) => {
                (StatusCode::UNPROCESSABLE_ENTITY, "too_large_to_render")
            }
            ApiError::RenderBusy => (StatusCode::SERVICE_UNAVAILABLE, "render_busy"),
            ApiError::SignInBusy => (StatusCode::SERVICE_UNAVAILABLE, "busy"),
            ApiError::AuditBusy => (StatusCode::SERVICE_UNAVAILABLE, "audit_busy"),
            ApiError::LimitReached { .. } => (StatusCode::CONFLICT, "limit_reached"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            ApiError::NobodyWaiting => (StatusCode::CONFLICT, "nobody_waiting"),
            ApiError::SignatureRequired(_) => (StatusCode::FORBIDDEN, "signature_required"),
            ApiError::ConsentRequired(_) => (StatusCode::FORBIDDEN, "consent_required"),
            ApiError::PatientRequired => (StatusCode::CONFLICT, "patient_required"),
            ApiError::IntegrityFailed => (StatusCode::INTERNAL_SERVER_ERROR, "integrity_failed"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
            ApiError::Referral { status, code, .. } => (*status, code),
            ApiError::Invitation { status, code, .. } => (*status, code),
            ApiError::Link { status, code, .. } => (*status, code),
            ApiError::Webhook { status, code, .. } => (*status, code),
            ApiError::Pin { status, code, .. } => (*status, code),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(detail) = &self {
            tracing::error!(detail = %detail, "API request failed");
        }
        if let ApiError::IntegrityFailed = &self {
            tracing::error!("a stored document failed its integrity check");
        }
        let (status, code) = self.parts();
        let mut error = json!({"code": code, "message": self.to_string()});
        if let ApiError::OffsetMismatch(offset) = &self {
            error["offset"] = json!(offset);
        }
        if let ApiError::LimitReached { limit, .. } = &self {
            error["limit"] = json!(limit);
        }
        if let ApiError::Pin {
            tries_left: Some(left),
            ..
        } = &self
        {
            error["tries_left"] = json!(left);
        }
        let body = Json(json!({ "error": error }));
        let mut response = (status, body).into_response();
        let retry_after = match self {
            ApiError::TooManyAttempts(secs) | ApiError::TooManyRequests(secs) => Some(secs),
            ApiError::RenderBusy | ApiError::SignInBusy | ApiError::AuditBusy => {
                Some(RENDER_RETRY_AFTER_S)
            }
            ApiError::Invitation { retry_after, .. } => retry_after,
            _ => None,
        };
        if let Some(secs) = retry_after {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        response
    }
}

impl From<crate::auth::AuthError> for ApiError {
    fn from(e: crate::auth::AuthError) -> Self {
        match e {
            crate::auth::AuthError::Busy => ApiError::SignInBusy,
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<crate::webhooks::WebhookError> for ApiError {
    fn from(e: crate::webhooks::WebhookError) -> Self {
        use crate::webhooks::WebhookError;
        let status = match &e {
            WebhookError::Url(_) => StatusCode::BAD_REQUEST,
            WebhookError::NotConfigured
            | WebhookError::UnknownInstitution
            | WebhookError::NoFailedEvent => StatusCode::NOT_FOUND,
            WebhookError::OutboxFull(_) => {
                return ApiError::LimitReached {
                    limit: "webhook_outbox",
                    message: e.to_string(),
                };
            }
            WebhookError::Storage(s) => return ApiError::Internal(s.to_string()),
        };
        ApiError::Webhook {
            status,
            code: e.code(),
            message: e.to_string(),
        }
    }
}

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::NotFound => ApiError::NotFound,
            // The place was checked first; this is a department removed meanwhile.
            StorageError::NoSuchDepartment => {
                ApiError::Invalid("no such department in this institution".into())
            }
            StorageError::Limit { limit, max } => ApiError::LimitReached {
                limit,
                message: format!("at most {max} {}", limit.replace('_', " ")),
            },
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<SessionError> for ApiError {
    fn from(e: SessionError) -> Self {
        match e {
            SessionError::Storage(e) => e.into(),
            _ => ApiError::Unauthenticated,
        }
    }
}

impl From<RoomError> for ApiError {
    fn from(e: RoomError) -> Self {
        match e {
            RoomError::NotFound => ApiError::NotFound,
            RoomError::Ended => ApiError::RoomEnded,
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<DocumentError> for ApiError {
    fn from(e: DocumentError) -> Self {
        match e {
            DocumentError::Forbidden(_) => ApiError::Denied(e.to_string()),
            DocumentError::NotFound => ApiError::NotFound,
            DocumentError::TooLarge { .. } | DocumentError::ChunkTooLarge { .. } => {
                ApiError::TooLarge(e.to_string())
            }
            DocumentError::Invalid(m) => ApiError::Invalid(m),
            DocumentError::LimitReached(limit) => ApiError::LimitReached {
                limit: limit.name(),
                message: e.to_string(),
            },
            DocumentError::OffsetMismatch { expected } => ApiError::OffsetMismatch(expected),
            DocumentError::Busy => ApiError::UploadBusy,
            DocumentError::TooLargeToRender(why) => ApiError::TooLargeToRender(why),
            DocumentError::RenderBusy => ApiError::RenderBusy,
            DocumentError::HashMismatch => ApiError::HashMismatch,
            DocumentError::Unsupported(k) => ApiError::UnsupportedType(k.to_string()),
            DocumentError::Corrupt => ApiError::IntegrityFailed,
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<crate::audit::AuditError> for ApiError {
    fn from(e: crate::audit::AuditError) -> Self {
        match e {
            crate::audit::AuditError::Busy => ApiError::AuditBusy,
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<crate::records::RecordError> for ApiError {
    fn from(e: crate::records::RecordError) -> Self {
        use crate::records::RecordError;
        match e {
            RecordError::Forbidden(_) => ApiError::Denied(e.to_string()),
            RecordError::NotFound => ApiError::NotFound,
            RecordError::Invalid(b) => ApiError::Invalid(b.to_string()),
            RecordError::Conflict(m) => ApiError::Conflict(m.to_owned()),
            RecordError::SignatureRequired(m) => ApiError::SignatureRequired(m.to_owned()),
            RecordError::PatientRequired => ApiError::PatientRequired,
            RecordError::UnknownPatient => ApiError::Invalid(e.to_string()),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

// Consultation requests (referrals): each refusal reaches the client under its own code;
// 409 for a step the request's state refuses (`not_now`), a concurrent step (`conflict`) or a
// step on a request a colleague has taken on (`taken`),
// 403 for the other side's step, 400 for bad input, 404 for a request that is not theirs.
impl From<crate::referrals::ReferralServiceError> for ApiError {
    fn from(e: crate::referrals::ReferralServiceError) -> Self {
        use crate::domain::referral::ReferralError;
        use crate::referrals::ReferralServiceError as E;
        let status = match &e {
            E::NotFound | E::NotVisible => return ApiError::NotFound,
            E::Storage(s) => return ApiError::Internal(s.to_string()),
            E::Limit { limit, .. } => {
                return ApiError::LimitReached {
                    limit,
                    message: e.to_string(),
                };
            }
            E::Refused(ReferralError::NotNow { .. }) | E::Conflict | E::Taken => {
                StatusCode::CONFLICT
            }
            E::Refused(ReferralError::WrongSide { .. })
            | E::NotAClinician
            | E::CoverForwardsOnly => StatusCode::FORBIDDEN,
            _ => StatusCode::BAD_REQUEST,
        };
        ApiError::Referral {
            status,
            code: e.code(),
            message: e.to_string(),
        }
    }
}

// A consultation request's documents: the request's own refusals as above; the file's as a
// room document's; 409 for a request no longer open, a per-request limit, a document of
// another patient or one already in the room.
impl From<crate::referrals::documents::AttachmentError> for ApiError {
    fn from(e: crate::referrals::documents::AttachmentError) -> Self {
        use crate::referrals::documents::AttachmentError as E;
        match e {
            E::Referral(r) => r.into(),
            E::Document(d) => d.into(),
            E::NotFound | E::SourceNotVisible => ApiError::NotFound,
            E::Storage(s) => ApiError::Internal(s.to_string()),
            E::ConsentRequired(_) => ApiError::ConsentRequired(e.to_string()),
            E::TooMany { .. } | E::TooManyBytes { .. } => ApiError::LimitReached {
                limit: e.limit().unwrap_or("documents_per_request"),
                message: e.to_string(),
            },
            other => ApiError::Referral {
                status: if matches!(other, E::NotRequester) {
                    StatusCode::FORBIDDEN
                } else {
                    StatusCode::CONFLICT
                },
                code: other.code(),
                message: other.to_string(),
            },
        }
    }
}

// The patient's consent on a consultation request: the request's own refusals as above; 403
// for the receiving side (only the requester records consent); 400 for a purpose a request
// does not record; 409 for words that changed since the console showed them.
impl From<crate::referrals::consent::ConsentError> for ApiError {
    fn from(e: crate::referrals::consent::ConsentError) -> Self {
        use crate::referrals::consent::ConsentError as E;
        let status = match e {
            E::Referral(r) => return r.into(),
            E::Storage(s) => return ApiError::Internal(s.to_string()),
            E::NotRequester => StatusCode::FORBIDDEN,
            E::NotOnRequest => StatusCode::BAD_REQUEST,
            E::WordingChanged { .. } => StatusCode::CONFLICT,
        };
        ApiError::Referral {
            status,
            code: e.code(),
            message: e.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_refusals_have_their_own_codes() {
        let busy = ApiError::from(DocumentError::RenderBusy).into_response();
        assert_eq!(busy.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            busy.headers()[axum::http::header::RETRY_AFTER],
            RENDER_RETRY_AFTER_S.to_string()
        );
        let large = ApiError::from(DocumentError::TooLargeToRender("too big".into()));
        assert_eq!(
            large.parts(),
            (StatusCode::UNPROCESSABLE_ENTITY, "too_large_to_render")
        );
        assert_eq!(large.to_string(), "too big");
    }
}
