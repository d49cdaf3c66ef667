//! Which of a room's documents it withholds from the clinicians of another institution than its
//! own (the receiving side of its consultation request, or a specialist put on its care team):
//! those the patient has not agreed to share with them (`Db::withheld_documents`, the rule the
//! HTTP reads apply): the request's attachments without the consent on the request, and what
//! the room's own side shared, without a room patient's `external_sharing` consent. The room's
//! signaling state follows the same rule, so that a withheld document's name, which can say
//! something about the patient, reaches nobody it is withheld from: `joined` leaves it out, so
//! do `document_shared`, `follow` and `annotation_added`, and those who listed it before it was
//! withheld are told `document_withheld`; those it is released to again get `document_shared`.
//!
//! The set is read from storage when the room opens, and again whenever it may have changed:
//! the request's consent over HTTP (`RoomCommand::SharingChanged`), a patient's own
//! `external_sharing` consent in the room, a document shared or a request's attachment copied
//! in. Reads run off the room's task (a slow database stalls no room), one at a time; a read
//! asked for while one is under way makes that one's answer stale, and the next read starts
//! when it returns, so the set applied is always read after the last change. A new document
//! (unless another institution's clinician shared it: it is theirs) is withheld until a read
//! says otherwise: a consent withdrawn while it was being shared never shows its name.

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

/// What a read that returned comes to.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Returned {
    /// Applied: the set it replaced.
    Applied(HashSet<DocumentId>),
    /// A change came while it ran: dropped, and another read is due.
    Stale,
    /// It failed: the set stays as it was, and another read is due at the next tick.
    Failed(String),
}

impl Sharing {
    /// Something the set depends on changed: `true` when a read is to start now. With one
    /// under way, that one's answer is stale, and another starts when it returns.
    fn must_read(&mut self) -> bool {
        if self.reading.is_some() {
            self.stale = true;
            return false;
        }
        self.stale = false;
        self.failed = false;
        true
    }

    /// What the read that returned comes to.
    fn returned(&mut self, read: Read) -> Returned {
        if std::mem::take(&mut self.stale) {
            return Returned::Stale;
        }
        match read {
            Ok(withheld) => Returned::Applied(std::mem::replace(&mut self.withheld, withheld)),
            Err(e) => {
                self.failed = true;
                Returned::Failed(e)
            }
        }
    }

    /// A read failed and none is under way: time to try again.
    fn retry_due(&self) -> bool {
        self.failed && self.reading.is_none()
    }

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
            && (!from_elsewhere(p) || !self.sharing.withheld.contains(&doc.id))
    }

    /// Reads the withheld copies again, off the room's task: what the room's own consents
    /// queued is committed first, so the read sees them.
    pub(super) fn reread_sharing(&mut self) {
        if !self.sharing.must_read() {
            return;
        }
        let (db, audit, room) = (
            self.db.clone(),
            self.services.audit.clone(),
            self.id().clone(),
        );
        self.sharing.reading = Some(tokio::spawn(async move {
            if let Err(e) = audit.flush().await {
                tracing::warn!(room = %room, error = %e, "audit writer not flushed before reading consent");
            }
            db.withheld_documents(&room)
                .await
                .map_err(|e| e.to_string())
        }));
    }

    /// A read of the withheld copies returned: applied, unless a change came meanwhile (then
    /// the next read starts). Those the change concerns are told.
    pub(super) fn sharing_read(&mut self, read: Read) {
        let before = match self.sharing.returned(read) {
            Returned::Applied(before) => before,
            Returned::Stale => {
                self.reread_sharing();
                return;
            }
            Returned::Failed(e) => {
                // What was withheld stays withheld; the HTTP reads decide on their own reads.
                tracing::error!(room = %self.id(), error = %e, "could not read which documents are withheld");
                return;
            }
        };
        let outside = |p: &Participant, doc: &DocumentRecord| {
            from_elsewhere(p) && p.role.may_view(doc.visibility)
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
        if self.sharing.retry_due() {
            self.reread_sharing();
        }
    }

    /// A document is shared: told to everyone who may see it. Unless another institution's
    /// clinician shared it themselves, it is withheld from the clinicians of other institutions
    /// until a read says it need not be (a copy of a request's attachment always is).
    pub(super) fn document_shared(&mut self, document: DocumentRecord, from_request: bool) {
        if self.documents.iter().any(|d| d.id == document.id) {
            return;
        }
        let theirs = !from_request
            && self
                .participants
                .iter()
                .find(|p| p.id == document.shared_by)
                .is_some_and(from_elsewhere);
        if !theirs {
            self.sharing.withheld.insert(document.id.clone());
            self.reread_sharing();
        }
        let msg = Notice::DocumentShared(document.clone());
        self.documents.push(document);
        let doc = self.documents.last().expect("just pushed");
        self.broadcast_where(|p| self.may_see(p, doc), msg);
    }
}

/// A clinician of another institution than the room's: whom withheld documents are kept from.
/// (Whoever came with a link is not: their role's rules decide what they see.)
fn from_elsewhere(p: &Participant) -> bool {
    p.account.is_some() && !p.of_institution
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(ids: &[&DocumentId]) -> HashSet<DocumentId> {
        ids.iter().map(|id| (*id).clone()).collect()
    }

    /// Starts a read that answers `read`, as the room does when `must_read` says so.
    fn start(s: &mut Sharing, read: Read) {
        s.reading = Some(tokio::spawn(async move { read }));
    }

    #[tokio::test]
    async fn only_a_read_begun_after_the_last_change_is_applied() {
        let (a, b) = (DocumentId::generate(), DocumentId::generate());
        let mut s = Sharing::default();
        assert!(s.must_read());
        start(&mut s, Ok(set(&[&a])));
        // A change while it runs: its answer may predate the change.
        assert!(!s.must_read(), "one read at a time");
        let read = s.next_read().await;
        assert_eq!(s.returned(read), Returned::Stale);
        assert!(s.withheld.is_empty(), "a stale answer is not applied");
        // The next read, begun after the change, is.
        assert!(s.must_read());
        start(&mut s, Ok(set(&[&b])));
        let read = s.next_read().await;
        assert_eq!(s.returned(read), Returned::Applied(HashSet::new()));
        assert_eq!(s.withheld, set(&[&b]));
        assert!(!s.retry_due());
    }

    #[tokio::test]
    async fn a_failed_read_keeps_what_was_withheld_and_is_tried_again() {
        let a = DocumentId::generate();
        let mut s = Sharing {
            withheld: set(&[&a]),
            ..Sharing::default()
        };
        assert!(s.must_read());
        start(&mut s, Err("database unavailable".into()));
        assert!(!s.retry_due(), "not while it runs");
        let read = s.next_read().await;
        assert_eq!(
            s.returned(read),
            Returned::Failed("database unavailable".into())
        );
        assert_eq!(s.withheld, set(&[&a]));
        assert!(s.retry_due());
        assert!(s.must_read());
        assert!(!s.retry_due(), "a read starts: no longer due");
        start(&mut s, Ok(HashSet::new()));
        let read = s.next_read().await;
        assert_eq!(s.returned(read), Returned::Applied(set(&[&a])));
        assert!(s.withheld.is_empty());
    }

    #[tokio::test]
    async fn a_read_that_panicked_counts_as_failed() {
        let mut s = Sharing::default();
        assert!(s.must_read());
        s.reading = Some(tokio::spawn(async { panic!("read panicked") }));
        let read = s.next_read().await;
        assert!(matches!(s.returned(read), Returned::Failed(_)));
        assert!(s.retry_due());
    }
}
