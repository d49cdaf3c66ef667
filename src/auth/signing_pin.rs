//! Signing PINs: a short number a clinician may set to confirm a signature instead of typing
//! their password (issue 17: "with their password (or a signing PIN)"). A ward doctor who
//! signs thirty prescriptions a day on a shared workstation types six digits, not a long
//! password in view of the room.
//!
//! A PIN has far fewer possibilities than a password, so it is guarded harder than one:
//! it is hashed like a password (Argon2id, `PasswordWork`), only a few wrong tries are allowed
//! before it is erased and the password is needed again (`MAX_PIN_FAILURES`, counted in the
//! database before each check so parallel guesses cannot exceed it), setting one takes the
//! password, and changing the password erases it. The rules for the digits are here; the
//! counting is `Db::begin_pin_attempt`'s.

use super::AuthError;

/// The fewest digits of a PIN: a million possibilities, of which an attacker gets
/// [`MAX_PIN_FAILURES`] tries.
pub const MIN_PIN_DIGITS: usize = 6;
/// The most digits of a PIN.
pub const MAX_PIN_DIGITS: usize = 12;
/// Wrong PINs in a row after which the PIN is erased: the clinician signs with their password
/// and may set a new one.
pub const MAX_PIN_FAILURES: i64 = 5;

/// The rule every new PIN meets: 6 to 12 ASCII digits, not one digit repeated and not a
/// run of consecutive digits up or down (the first PINs anyone guesses).
pub fn check_new_pin(pin: &str) -> Result<(), AuthError> {
    let digits = pin.as_bytes();
    if !(MIN_PIN_DIGITS..=MAX_PIN_DIGITS).contains(&digits.len())
        || !digits.iter().all(u8::is_ascii_digit)
    {
        return Err(AuthError::PinRule);
    }
    let steps: Vec<i16> = digits
        .windows(2)
        .map(|w| i16::from(w[1]) - i16::from(w[0]))
        .collect();
    let all = |d: i16| steps.iter().all(|&s| s == d || s == d - 10 * d.signum());
    // 111111; 123456 and 890123 (wrapping past 9); 654321 and 210987.
    if all(0) || all(1) || all(-1) {
        return Err(AuthError::WeakPin);
    }
    Ok(())
}

/// Whether what was typed could be a PIN at all: checked before any hashing, so that a
/// password typed into the PIN field is refused without spending an attempt.
pub fn looks_like_pin(pin: &str) -> bool {
    (MIN_PIN_DIGITS..=MAX_PIN_DIGITS).contains(&pin.len())
        && pin.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn six_to_twelve_digits() {
        assert_eq!(check_new_pin("48213"), Err(AuthError::PinRule));
        assert_eq!(check_new_pin("482139"), Ok(()));
        assert_eq!(check_new_pin("482139027415"), Ok(()));
        assert_eq!(check_new_pin("4821390274151"), Err(AuthError::PinRule));
        assert_eq!(check_new_pin(""), Err(AuthError::PinRule));
    }

    #[test]
    fn digits_only() {
        assert_eq!(check_new_pin("48213a"), Err(AuthError::PinRule));
        assert_eq!(check_new_pin("482 139"), Err(AuthError::PinRule));
        // Full-width digits are not ASCII digits: a phone keyboard in Chinese mode types them.
        assert_eq!(check_new_pin("４８２１３９"), Err(AuthError::PinRule));
        assert_eq!(check_new_pin("-48213"), Err(AuthError::PinRule));
    }

    #[test]
    fn the_first_guesses_are_refused() {
        for weak in [
            "000000",
            "999999999",
            "123456",
            "234567890",
            "890123",
            "654321",
            "3210987",
        ] {
            assert_eq!(check_new_pin(weak), Err(AuthError::WeakPin), "{weak}");
        }
        for fine in ["123457", "112233", "135790", "024680", "909090"] {
            assert_eq!(check_new_pin(fine), Ok(()), "{fine}");
        }
    }

    #[test]
    fn a_password_does_not_look_like_a_pin() {
        assert!(looks_like_pin("482139"));
        assert!(!looks_like_pin("correct horse"));
        assert!(!looks_like_pin("12345"));
        assert!(!looks_like_pin("1234567890123"));
    }
}
