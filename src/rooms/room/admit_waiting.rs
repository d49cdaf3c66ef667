//! Letting someone in from the waiting room: one step of the room's task, whether a clinician
//! in the room asks (`Moderation::Admit`) or one of the department's clinicians takes the next
//! patient from the department's queue over HTTP (`RoomCommand::AdmitNext`). The room's task
//! is the only owner of its waiting room, so of two admitting the same person at once one wins
//! and the other is told, and concurrent "admit next" calls each let in someone different.

use super::Room;
use crate::audit::{Action, Actor, AuditEvent};
use crate::domain::clock::now_unix;
use crate::domain::ids::ParticipantId;
use crate::domain::role::Role;
use crate::rooms::lobby::Waiter;
use crate::rooms::waiting::{self, Asker, Refusal, Request};
use crate::rooms::{Notice, Problem, Progress};

impl Room {
    /// Admits `target`, or whoever waits longest, on `by`'s behalf: seated, told, audited
    /// (`waiting.admitted`). The one admitted, or why nobody was (with what to tell the actor).
    pub(super) async fn admit_waiting(
        &mut self,
        target: Option<&ParticipantId>,
        by: Actor,
    ) -> Result<ParticipantId, (Problem, String)> {
        // Decided before anyone is taken out of the queue: a refused admission leaves
        // everyone's place as it was.
        let request = match target {
            Some(id) => Request::Admit(self.place(id)),
            None => Request::AdmitNext(self.lobby.first().map(|w| w.person.role)),
        };
        // The care team asks (`moderate` authorised those in the room, the department queue
        // those outside it); an admission is the only step an admission request yields.
        if let Err(refusal) = waiting::apply(Asker::CareTeam, request, self.facts()) {
            let text = match refusal {
                Refusal::AwaitsConsent => {
                    let name = match target {
                        Some(id) => self.lobby.find(id),
                        None => self.lobby.first(),
                    }
                    .map(|w| w.person.name.clone())
                    .unwrap_or_default();
                    format!("{name} may come in once the patient agrees to observers being present")
                }
                other => other.to_string(),
            };
            return Err((refusal.problem(), text));
        }
        let place = target.and_then(|id| self.lobby.position(id)).unwrap_or(0);
        let waiter = match target {
            Some(id) => self.lobby.take(id),
            None => self.lobby.take_next(),
        };
        let Some(waiter) = waiter else {
            return Err((Problem::NotWaiting, Refusal::NotWaiting.to_string()));
        };
        let id = waiter.person.id.clone();
        let role = waiter.person.role;
        let waited = now_unix() - waiter.since;
        if let Err(person) = self.seat(waiter.person).await {
            self.lobby.restore(
                place,
                Waiter {
                    person,
                    since: waiter.since,
                    sent_back: waiter.sent_back,
                    precall: waiter.precall,
                },
            );
            return Err((
                Problem::Internal,
                "the media service could not take them; try again".to_owned(),
            ));
        }
        self.lobby.note_admission(self.settings.clock.now());
        if let Some(p) = self.find(&id) {
            p.send(Notice::Admitted(Box::new(self.welcome(&id))));
        }
        let admitter = match &by {
            Actor::User(account, _) => Some(account.clone()),
            Actor::Participant(pid, _) => self.find(pid).and_then(|p| p.account.clone()),
            _ => None,
        };
        let event = AuditEvent::new(by, Action::WaitingAdmitted)
            .room(self.id())
            .object("participant", &id)
            .detail(serde_json::json!({"role": role, "waited_s": waited}));
        self.services.audit.record_or_log(event).await;
        // After the admission is queued for the trail, so the request's start follows it there.
        if let (Role::Patient, Some(by)) = (role, admitter) {
            self.services.progress.send(Progress::PatientAdmitted {
                room: self.id().clone(),
                by,
            });
        }
        tracing::info!(room = %self.record.id, participant = %id, "admitted");
        Ok(id)
    }

    /// The department queue's "admit next" (`RoomCommand::AdmitNext`): the patient who waits
    /// longest, for a clinician who need not be in the room; everyone concerned is told as
    /// after any admission. Only a patient: an interpreter, a relative or an observer waiting
    /// ahead of them is the consultation's own care team's to let in, not a colleague's who
    /// takes the department's next patient (and may not know who they are).
    pub(super) async fn admit_next_for(&mut self, by: Actor) -> Result<ParticipantId, Problem> {
        let Some(patient) = self
            .lobby
            .iter()
            .find(|w| w.person.role == Role::Patient)
            .map(|w| w.person.id.clone())
        else {
            return Err(Problem::NotWaiting);
        };
        let admitted = self
            .admit_waiting(Some(&patient), by)
            .await
            .map_err(|(problem, _)| problem)?;
        self.tell_queue();
        self.tell_waiting();
        Ok(admitted)
    }
}
