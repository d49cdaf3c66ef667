//! Carries what rooms tell of the care they see ([`crate::rooms::Progress`]) on to the
//! consultation requests they were held for (`referrals::Referrals::patient_admitted`,
//! `consultation_ended`). One task reads them in order; a request's steps are taken there,
//! off every room's task. At shutdown, once the rooms have ended, it carries on what they said
//! before and stops (`Server::shutdown`, before the audit writer closes).

use tokio::sync::mpsc::UnboundedReceiver;
use tokio::sync::oneshot;

use super::AppState;
use super::referrals::{after_consultation_ended, after_patient_admitted};
use crate::rooms::Progress;

/// Runs until `stop` (the server stopping; the rooms' senders live as long as the state this
/// task holds, so the channel alone would never close), then carries on what was sent before.
pub async fn run(
    state: AppState,
    mut progressed: UnboundedReceiver<Progress>,
    mut stop: oneshot::Receiver<()>,
) {
    loop {
        tokio::select! {
            progress = progressed.recv() => match progress {
                Some(progress) => carry(&state, progress).await,
                None => return,
            },
            _ = &mut stop => break,
        }
    }
    progressed.close();
    while let Some(progress) = progressed.recv().await {
        carry(&state, progress).await;
    }
}

async fn carry(state: &AppState, progress: Progress) {
    match progress {
        Progress::PatientAdmitted { room, by } => {
            after_patient_admitted(state, &room, &by).await;
        }
        Progress::Ended { room, by } => {
            after_consultation_ended(state, &room, &by).await;
            // Its `consultation.ended` event is in the outbox: sent now, not at the next poll.
            state.webhooks.wake();
        }
    }
}
