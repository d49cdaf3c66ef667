//! A stored file about to be shown in the viewer, whoever shares it: a document of a
//! consultation's room, or an attachment of a consultation request that has no room yet.
//!
//! The viewer's renders (page count, page images, DICOM header, ECG samples:
//! [`super::Documents::page_count`] and its neighbours) take a [`Viewable`], not a room's
//! document, so that both kinds are shown through the same render gate, limits and cache.
//! Deciding who may see the file is the caller's (a room's roles, a request's two sides), done
//! before it asks for a [`Viewable`]; this type only carries the proof that the bytes were
//! checked against their SHA-256 on this read, as every read of a document is.

use std::path::{Path, PathBuf};

use crate::domain::document::DocumentKind;

/// A stored file whose bytes still hash to `sha256`, with its kind; made only by
/// [`super::Documents::viewable`].
#[derive(Debug, Clone)]
pub struct Viewable {
    pub(super) path: PathBuf,
    pub(super) sha256: String,
    pub(super) kind: DocumentKind,
}

impl Viewable {
    pub fn kind(&self) -> DocumentKind {
        self.kind
    }

    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    pub(super) fn path(&self) -> &Path {
        &self.path
    }
}
