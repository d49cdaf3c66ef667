//! What kinds of document a room accepts, as storage keeps them and clients see them. Deciding
//! a document's kind from its bytes is `documents`' work.

use serde::{Deserialize, Serialize};

/// The kinds of document a room accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DocumentKind {
    Pdf,
    Png,
    Jpeg,
    /// DICOM Part 10 file (imaging).
    Dicom,
    /// ECG samples as CSV or JSON (see [`ecg`]).
    Ecg,
    /// Plain UTF-8 text (referral letters, reports).
    Text,
}

impl DocumentKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DocumentKind::Pdf => "pdf",
            DocumentKind::Png => "png",
            DocumentKind::Jpeg => "jpeg",
            DocumentKind::Dicom => "dicom",
            DocumentKind::Ecg => "ecg",
            DocumentKind::Text => "text",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pdf" => DocumentKind::Pdf,
            "png" => DocumentKind::Png,
            "jpeg" => DocumentKind::Jpeg,
            "dicom" => DocumentKind::Dicom,
            "ecg" => DocumentKind::Ecg,
            "text" => DocumentKind::Text,
            _ => return None,
        })
    }

    /// The media type the server sends; always derived from the checked kind.
    pub fn media_type(self) -> &'static str {
        match self {
            DocumentKind::Pdf => "application/pdf",
            DocumentKind::Png => "image/png",
            DocumentKind::Jpeg => "image/jpeg",
            DocumentKind::Dicom => "application/dicom",
            // ECG files are served as the text they are; the room renders them from /ecg.
            DocumentKind::Ecg | DocumentKind::Text => "text/plain; charset=utf-8",
        }
    }
}
