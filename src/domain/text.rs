//! Rules for text that people are shown as someone's name or a document's name: printable,
//! and with nothing that hides or reorders what is shown. A right-to-left override or a
//! zero-width character lets "Dr. For" display as a spoofed name, so such text is refused with
//! a clear error rather than shown.

/// Characters that change how the text around them is displayed without being visible
/// themselves: direction marks, embeddings, overrides and isolates, zero-width characters,
/// invisible operators, tag characters, and the like.
pub fn is_hiding(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{00ad}'                      // soft hyphen
            | '\u{034f}'                    // combining grapheme joiner
            | '\u{061c}'                    // Arabic letter mark
            | '\u{115f}' | '\u{1160}'       // Hangul fillers
            | '\u{17b4}' | '\u{17b5}'       // Khmer invisible vowels
            | '\u{180b}'..='\u{180f}'       // Mongolian variation selectors and vowel separator
            | '\u{200b}'..='\u{200f}'       // zero-width space, non-joiner, joiner; LRM, RLM
            | '\u{2028}'..='\u{202e}'       // line and paragraph separators; embeddings, overrides
            | '\u{2060}'..='\u{206f}'       // word joiner, invisible operators, isolates
            | '\u{3164}'                    // Hangul filler
            | '\u{fe00}'..='\u{fe0f}'       // variation selectors
            | '\u{feff}'                    // zero-width no-break space
            | '\u{ffa0}'                    // halfwidth Hangul filler
            | '\u{fff9}'..='\u{fffb}'       // interlinear annotation
            | '\u{e0000}'..='\u{e007f}'     // tags
            | '\u{e0100}'..='\u{e01ef}' // variation selectors supplement
        )
}

/// What [`is_hiding`] refuses, except line breaks: for text of several lines (a message, a
/// reason).
pub fn is_hiding_but_newline(c: char) -> bool {
    c != '\n' && is_hiding(c)
}

/// The longest username, in characters (sign-in refuses a longer one before it is looked up or
/// counted by the throttle).
pub const MAX_USERNAME_CHARS: usize = 64;

/// Whether `name` (trimmed) may be a new account's username, from the command line and over
/// HTTP alike: 1 to [`MAX_USERNAME_CHARS`] ASCII letters, digits or `. _ - @`. ASCII only, so no
/// two usernames look alike (a Cyrillic "а" for a Latin "a"); people's own names are the
/// display names.
pub fn is_valid_username(name: &str) -> bool {
    !name.is_empty()
        && name.chars().count() <= MAX_USERNAME_CHARS
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-@".contains(c))
}

/// Text of several lines for a clinical record (a report's findings, a prescription's
/// directions): printable, tabs and line breaks allowed, nothing that hides or reorders what a
/// patient, a pharmacist or a printed summary shows.
pub fn is_hiding_in_record(c: char) -> bool {
    c != '\t' && is_hiding_but_newline(c)
}

/// The longest name an account may carry, in characters; the same from the command line and
/// over HTTP.
pub const MAX_ACCOUNT_NAME_CHARS: usize = 64;

/// Why a name was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("a name must be 1 to {0} characters")]
    Length(usize),
    #[error("a name may not contain control, direction-changing or invisible characters")]
    Hidden,
}

/// A name as it will be shown: trimmed, 1 to `max_chars` characters, nothing hidden.
pub fn display_name(raw: &str, max_chars: usize) -> Result<String, NameError> {
    let name = raw.trim();
    let chars = name.chars().count();
    if chars == 0 || chars > max_chars {
        return Err(NameError::Length(max_chars));
    }
    if name.chars().any(is_hiding) {
        return Err(NameError::Hidden);
    }
    Ok(name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spoofing_characters_are_refused() {
        for bad in [
            "Dr. \u{202e}roF",
            "Dr.\u{200b}Wang",
            "Dr. Wang\u{2066}",
            "\u{feff}Dr. Li",
            "Nurse\u{00ad}Zhang",
            "a\u{e0041}",
            "tab\there",
        ] {
            assert_eq!(display_name(bad, 64), Err(NameError::Hidden), "{bad:?}");
        }
        assert_eq!(display_name("   ", 64), Err(NameError::Length(64)));
        assert_eq!(
            display_name(&"王".repeat(65), 64),
            Err(NameError::Length(64))
        );
        assert_eq!(
            display_name("  王医生 (Dr. Wang) ", 64).unwrap(),
            "王医生 (Dr. Wang)"
        );
        assert_eq!(
            display_name("José Müller-Łukasz", 64).unwrap(),
            "José Müller-Łukasz"
        );
    }
}
