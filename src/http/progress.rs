//! Carries what rooms tell of the care they see ([`crate::rooms::Progress`]) on to the
//! consultation requests they were held for (`referrals::Referrals::patient_admitted`,
//! `consultation_ended`). One task reads them in order; a request's steps are taken there,
//! off every room's task.

use tokio::sync::mpsc::UnboundedReceiver;

use super::AppState;
use super::referrals::{after_consultation_ended, after_patient_admitted};
use crate::rooms::Progress;

/// Runs until every room's sender is gone (the server stopping).
pub async fn run(state: AppState, mut progressed: UnboundedReceiver<Progress>) {
    while let Some(progress) = progressed.recv().await {
        match progress {
            Progress::PatientAdmitted { room, by } => {
                after_patient_admitted(&state, &room, &by).await;
            }
            Progress::Ended { room, by } => {
                after_consultation_ended(&state, &room, &by).await;
                // Its `consultation.ended` event is in the outbox: sent now, not at the next
                // poll.
                state.webhooks.wake();
            }
        }
    }
}
