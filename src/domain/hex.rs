//! Lower-case hexadecimal, as digests are written everywhere (document SHA-256, record body
//! hashes, the audit chain).

/// `bytes` as lower-case hex, two digits a byte.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// The bytes of hex text (either case), or `None` if it is not an even run of hex digits.
pub fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn unhex_reverses_hex() {
        assert_eq!(super::unhex("000fA0ff"), Some(vec![0, 0x0f, 0xa0, 0xff]));
        assert_eq!(super::unhex("0"), None);
        assert_eq!(super::unhex("zz"), None);
        assert_eq!(super::unhex("+f"), None);
    }

    #[test]
    fn two_lower_case_digits_a_byte() {
        assert_eq!(super::hex(&[0, 0x0f, 0xa0, 0xff]), "000fa0ff");
        assert_eq!(super::hex(&[]), "");
    }
}
