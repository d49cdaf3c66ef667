//! Which copies of a consultation request's attachments a room withholds from the clinicians of
//! another institution than its own (the request's receiving side): those of a request to
//! another institution whose patient's consent to sharing is not in force, on the request or in
//! the room (`Db::withheld_room_copies`, the rule the HTTP reads apply). The room's signaling
//! state follows the same rule, so that a withheld document's name, which can say something
//! about the patient, reaches nobody it is withheld from: `joined` leaves it out, so do
//! `document_shared`, `follow` and `annotation_added`, and those who listed it before it was
//! withheld are told `document_withheld`; those it is released to again get `document_shared`.
//!
//! The set is read from storage when the room opens, and again whenever the consent may have
//! changed: the request's consent over HTTP (`RoomCommand::SharingChanged`), a patient's own
//! `external_sharing` consent in the room, or a request's attachment copied in. Reads run off
//! the room's task (a slow database stalls no room), one at a time; a read asked for while one
//! is under way makes that one's answer stale, and the next read starts when it returns, so
//! the set applied is always read after the last change. A copy of a request's attachment is
//! withheld until a read says otherwise: a consent withdrawn while the copy was being made
//! never shows its name.

use std::collections::HashSet;

use tokio::task::JoinHandle;

use super::Room;
use crate::domain::ids::DocumentId;
use crate::rooms::Notice;
use crate::rooms::participant::Participant;
use crate::storage::DocumentRecord;

/// What a read found, or why it failed.
type Read = Result<HashSet<DocumentId>, String>;

/// The room's withheld copies, and the read of them under way.
#[derive(Default)]
pub(super) struct Sharing {
    /// Documents of the room withheld from those outside its institution.
    pub(super) withheld: HashSet<DocumentId>,
    reading: Option<JoinHandle<Read>>,
    /// A change came after the read under way began: its answer may be stale.
    stale: bool,
    /// The last read failed: try again at the next tick.
    failed: bool,
}

impl Sharing {
    /// The answer of the read under way (for ever when there is none). Cancel-safe: the read
    /// stays under way until it is taken.
    pub(super) async fn next_read(&mut self) -> Read {
        match &mut self.reading {
            Some(handle) => {
                let read = handle.await;
                self.reading = None;
                read.map_err(|e| e.to_string())?
            }
            None => std::future::pending().await,
        }
    }
}

impl Room {
    /// Whether `p` is shown `doc`: their role may see it, and it is not withheld from them.
    pub(super) fn may_see(&self, p: &Participant, doc: &DocumentRecord) -> bool {
        p.role.may_view(doc.visibility)
            && (p.of_institution || !self.sharing.withheld.contains(&doc.id))
    }

    /// Reads the withheld copies again, off the room's task: what the room's own consents
    /// queued is committed first, so the read sees them.
    pub(super) fn reread_sharing(&mut self) {
        if self.sharing.reading.is_some() {
            self.sharing.stale = true;
            return;
        }
        self.sharing.stale = false;
        self.sharing.failed = false;
        let (db, audit, room) = (
            self.db.clone(),
            self.services.audit.clone(),
            self.id().clone(),
        );
        self.sharing.reading = Some(tokio::spawn(async move {
            if let Err(e) = audit.flush().await {
                tracing::warn!(room = %room, error = %e, "audit writer not flushed before reading consent");
            }
            db.withheld_room_copies(&room)
                .await
                .map_err(|e| e.to_string())
        }));
    }

    /// A read of the withheld copies returned: applied, unless a change came meanwhile (then
    /// the next read starts). Those the change concerns are told.
    pub(super) fn sharing_read(&mut self, read: Read) {
        if self.sharing.stale {
            self.reread_sharing();
            return;
        }
        let withheld = match read {
            Ok(withheld) => withheld,
            Err(e) => {
                // What was withheld stays withheld; the HTTP reads decide on their own reads.
                tracing::error!(room = %self.id(), error = %e, "could not read which documents are withheld");
                self.sharing.failed = true;
                return;
            }
        };
        let before = std::mem::replace(&mut self.sharing.withheld, withheld);
        let outside = |p: &Participant, doc: &DocumentRecord| {
            !p.of_institution && p.role.may_view(doc.visibility)
        };
        for doc in &self.documents {
            let (was, is) = (
                before.contains(&doc.id),
                self.sharing.withheld.contains(&doc.id),
            );
            if was && !is {
                self.broadcast_where(|p| outside(p, doc), Notice::DocumentShared(doc.clone()));
            } else if is && !was {
                tracing::info!(room = %self.id(), document = %doc.id, "document withheld from the other institution");
                self.broadcast_where(
                    |p| outside(p, doc),
                    Notice::DocumentWithheld(doc.id.clone()),
                );
            }
        }
    }

    /// At each tick: a read that failed is tried again.
    pub(super) fn retry_sharing(&mut self) {
        if self.sharing.failed && self.sharing.reading.is_none() {
            self.reread_sharing();
        }
    }

    /// A document is shared: told to everyone who may see it. A copy of a request's attachment
    /// is withheld from those outside the room's institution until a read says it need not be.
    pub(super) fn document_shared(&mut self, document: DocumentRecord, from_request: bool) {
        if self.documents.iter().any(|d| d.id == document.id) {
            return;
        }
        if from_request {
            self.sharing.withheld.insert(document.id.clone());
            self.reread_sharing();
        }
        let msg = Notice::DocumentShared(document.clone());
        self.documents.push(document);
        let doc = self.documents.last().expect("just pushed");
        self.broadcast_where(|p| self.may_see(p, doc), msg);
    }
}
