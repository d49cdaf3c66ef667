//! What a document is, decided from its bytes: the name a client gives is checked against the
//! content and never trusted on its own.

use crate::domain::document::DocumentKind;

use super::ecg;

/// Why content was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KindError {
    #[error("unsupported document type: the content is not PDF, PNG, JPEG, DICOM, ECG or text")]
    Unsupported,
    #[error("the name says .{extension} but the content is {found}")]
    Mismatch {
        extension: String,
        found: &'static str,
    },
}

fn describe(kind: DocumentKind) -> &'static str {
    match kind {
        DocumentKind::Pdf => "a PDF",
        DocumentKind::Png => "a PNG image",
        DocumentKind::Jpeg => "a JPEG image",
        DocumentKind::Dicom => "a DICOM file",
        DocumentKind::Ecg => "ECG samples",
        DocumentKind::Text => "plain text",
    }
}

/// Name extensions that agree with this kind.
fn extensions(kind: DocumentKind) -> &'static [&'static str] {
    match kind {
        DocumentKind::Pdf => &["pdf"],
        DocumentKind::Png => &["png"],
        DocumentKind::Jpeg => &["jpg", "jpeg"],
        DocumentKind::Dicom => &["dcm", "dicom"],
        DocumentKind::Ecg => &["csv", "json", "ecg"],
        DocumentKind::Text => &["txt", "text", "csv", "json", "md"],
    }
}

/// Decides the kind from the content of a complete file, then checks that the name's extension
/// (if it has one) agrees. A name without an extension is accepted for any kind.
pub fn detect(name: &str, content: &[u8]) -> Result<DocumentKind, KindError> {
    let kind = sniff(content).ok_or(KindError::Unsupported)?;
    let extension = name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .filter(|e| !e.is_empty());
    match extension {
        Some(ext) if !extensions(kind).contains(&ext.as_str()) => Err(KindError::Mismatch {
            extension: ext,
            found: describe(kind),
        }),
        _ => Ok(kind),
    }
}

fn sniff(b: &[u8]) -> Option<DocumentKind> {
    if b.starts_with(b"%PDF-") {
        return Some(DocumentKind::Pdf);
    }
    if b.starts_with(b"\x89PNG\r\n\x1a\n") {
        return Some(DocumentKind::Png);
    }
    if b.starts_with(&[0xFF, 0xD8, 0xFF]) {
        return Some(DocumentKind::Jpeg);
    }
    if b.len() >= 132 && &b[128..132] == b"DICM" {
        return Some(DocumentKind::Dicom);
    }
    // Text must be valid UTF-8 without NUL or other binary control characters, so executables
    // and archives renamed .txt are refused.
    let text = std::str::from_utf8(b).ok()?;
    if text
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t' | '\u{c}'))
    {
        return None;
    }
    if ecg::parse(text).is_ok() {
        return Some(DocumentKind::Ecg);
    }
    Some(DocumentKind::Text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dicom() -> Vec<u8> {
        let mut d = vec![0u8; 128];
        d.extend_from_slice(b"DICM");
        d.extend_from_slice(&[2, 0, 0, 0]);
        d
    }

    #[test]
    fn content_decides_the_kind() {
        assert_eq!(detect("a.pdf", b"%PDF-1.7\n..."), Ok(DocumentKind::Pdf));
        assert_eq!(
            detect("scan.PNG", b"\x89PNG\r\n\x1a\n\0\0"),
            Ok(DocumentKind::Png)
        );
        assert_eq!(
            detect("x.jpg", &[0xFF, 0xD8, 0xFF, 0xE0]),
            Ok(DocumentKind::Jpeg)
        );
        assert_eq!(detect("ct.dcm", &dicom()), Ok(DocumentKind::Dicom));
        assert_eq!(detect("IM0001", &dicom()), Ok(DocumentKind::Dicom));
        assert_eq!(
            detect("letter.txt", "转诊信\n血压 150/95".as_bytes()),
            Ok(DocumentKind::Text)
        );
        assert_eq!(
            detect("ecg.csv", b"I,II\n0.1,0.2\n0.15,0.25\n"),
            Ok(DocumentKind::Ecg)
        );
    }

    #[test]
    fn spoofed_and_binary_content_is_refused() {
        // An executable renamed to a PDF.
        assert_eq!(
            detect("report.pdf", b"\x7fELF\x02\x01\x01\0\0\0"),
            Err(KindError::Unsupported)
        );
        assert_eq!(
            detect("notes.txt", b"MZ\x90\0\x03\0"),
            Err(KindError::Unsupported)
        );
        // A PDF named as an image.
        assert!(matches!(
            detect("xray.png", b"%PDF-1.4"),
            Err(KindError::Mismatch { .. })
        ));
        // HTML is text, and must not be named as something the browser would run.
        assert!(matches!(
            detect("page.html", b"<script>alert(1)</script>"),
            Err(KindError::Mismatch { .. })
        ));
        assert_eq!(detect("empty.txt", b""), Ok(DocumentKind::Text));
    }
}
