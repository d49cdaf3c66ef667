//! What a consultation's room tells the services above it about the care it sees happen:
//! its first patient let in, its end. The room's task never waits on the database, so it
//! only sends these; the edge (`http/progress.rs`) carries them on to the consultation
//! request the room was held for (it starts when its patient is admitted and closes when its
//! consultation ends after the report), with the audit, consoles and webhooks that any step
//! of a request has.
//!
//! The channel is unbounded: what it carries changes a request's state, which a full queue
//! must not drop. It is bounded all the same by what it reports: one message per patient
//! admitted (and admissions are bounded by the joins a consultation may have,
//! `rooms/joins.rs`) and one per consultation ended.

use tokio::sync::mpsc;

use crate::domain::ids::{RoomId, UserId};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// A patient was admitted from the waiting room, by the clinician's account named (the
    /// care team in the room, or a colleague taking the department's next patient).
    PatientAdmitted { room: RoomId, by: UserId },
    /// A clinician's account ended the consultation.
    Ended { room: RoomId, by: UserId },
}

/// Where a room sends its [`Progress`]; nowhere for rooms without a receiver (tests).
#[derive(Debug, Clone, Default)]
pub struct ProgressSender(Option<mpsc::UnboundedSender<Progress>>);

impl ProgressSender {
    /// A sender, and the receiver that the edge reads.
    pub fn channel() -> (Self, mpsc::UnboundedReceiver<Progress>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Self(Some(tx)), rx)
    }

    /// Never waits; dropped only when the receiver is gone (the server is stopping).
    pub fn send(&self, progress: Progress) {
        if let Some(tx) = &self.0 {
            let _ = tx.send(progress);
        }
    }
}
