//! Authentication: who a caller is and what a token entitles them to.
//!
//! Owns the signed token format (`token`), clinician password hashing (`password`), the rules
//! of signing PINs (`signing_pin`) and the signing key's life cycle. It knows nothing of HTTP
//! or WebSockets: the edge maps [`AuthError`] to client errors.

// Invitation short codes: the redemption throttle.
mod code_throttle;
mod password;
// What callers without a session may ask, per address.
mod request_rate;
mod signing_pin;
mod throttle;
mod token;
mod turn;

pub use code_throttle::{CodeAttempt, CodeScope, CodeThrottle, CodeThrottled};
pub use password::{
    MAX_PASSWORD_BYTES, MIN_PASSWORD_CHARS, PasswordWork, check_new_password, hash_password,
    verify_password,
};
pub use request_rate::{RateLimited, RequestRate};
pub use signing_pin::{
    MAX_PIN_DIGITS, MAX_PIN_FAILURES, MIN_PIN_DIGITS, check_new_pin, looks_like_pin,
};
pub use throttle::{LoginThrottle, client_key};
pub use token::{Claims, SigningKey, TokenKind};
pub use turn::{IceServer, TurnSecret, TurnServers};

/// Why a credential was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthError {
    #[error("the token is malformed or its signature does not match")]
    InvalidToken,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid for this use")]
    WrongKind,
    #[error("the token is not valid for this room")]
    WrongRoom,
    #[error("wrong user name or password")]
    InvalidCredentials,
    #[error(
        "a password must have at least {MIN_PASSWORD_CHARS} characters (and at most {MAX_PASSWORD_BYTES} bytes)"
    )]
    PasswordRule,
    #[error(
        "a signing PIN has {MIN_PIN_DIGITS} to {MAX_PIN_DIGITS} digits (0-9), and nothing else"
    )]
    PinRule,
    #[error(
        "this PIN is too easy to guess (one digit repeated, or digits in a row); choose another"
    )]
    WeakPin,
    #[error("signing key unusable: {0}")]
    Key(String),
    #[error("too many password checks at once; try again shortly")]
    Busy,
}
