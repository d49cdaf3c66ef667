//! Live notifications to signed-in clinicians' consoles: a new consultation request, a step on
//! one, the patient's consent to sharing its documents recorded or withdrawn, a patient waiting in a consultation of their care team, a draft there written or issued,
//! and a change in who waits in their department's queue.
//!
//! Each open console holds a subscription (`GET /api/v1/events`, server-sent events); what is
//! published goes to the subscriptions of the accounts it concerns and to nobody else. A
//! publisher never waits: a subscription whose queue is full misses the event (the console
//! refreshes its lists on the next one, and on a timer), and the room task hands its events to
//! a small task of the hub's that looks up the care team itself. Events name ids and states,
//! never a patient's name or reference. The hub also keeps who waits in each live waiting
//! room (names included) for the HTTP API to read, which gives the names to the care team
//! alone (`GET /rooms/{id}/attendance`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use tokio::sync::mpsc;

use crate::domain::ids::{DepartmentId, ReferralId, RoomId, UserId};
use crate::domain::role::Role;
use crate::storage::{Db, DirectoryQuery};

/// Events a subscription can hold before it misses some.
const SUBSCRIPTION_QUEUE: usize = 64;
/// Subscriptions one account may hold (a few tabs and devices).
pub const MAX_SUBSCRIPTIONS_PER_ACCOUNT: usize = 8;
/// Room events waiting for the hub's task.
const ROOM_EVENTS_QUEUE: usize = 1024;
/// Most clinicians of one department told that its queue changed (a department larger than
/// this sees the change on its consoles' next reload, every minute).
const MAX_DEPARTMENT_LISTENERS: i64 = 500;

/// What a console is told.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// A consultation request reached an inbox of this account (theirs or their department's).
    ReferralReceived {
        referral_id: ReferralId,
        urgency: &'static str,
    },
    /// A request this account is on moved to another state.
    ReferralChanged {
        referral_id: ReferralId,
        state: &'static str,
    },
    /// The patient's consent to sharing the documents of a request this account is on was
    /// recorded (`in_force`) or withdrawn: the receiving side reads them, or no longer does.
    ReferralConsent {
        referral_id: ReferralId,
        in_force: bool,
    },
    /// Who waits in the waiting room of a consultation whose care team this account is on:
    /// how many, and since when the longest has waited (Unix seconds; null when nobody).
    PatientWaiting {
        room_id: RoomId,
        waiting: usize,
        waiting_since: Option<i64>,
    },
    /// The drafts of a consultation whose care team this account is on changed: one was
    /// written, edited or issued (the console reloads what is left to sign).
    DraftsChanged { room_id: RoomId },
    /// A consultation whose care team this account is on moved to another time: the console
    /// reloads its consultations and its day.
    ConsultationRescheduled { room_id: RoomId },
    /// Who waits changed in a live consultation asked of this account's department (a request
    /// to the department or to one of its specialists): its queue is to be read again. Told to
    /// every doctor and specialist of the department, on the care team or not, so that anyone
    /// may take the next patient; it names only the department.
    DepartmentQueueChanged { department_id: DepartmentId },
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SubscribeError {
    #[error("at most {MAX_SUBSCRIPTIONS_PER_ACCOUNT} live connections per account")]
    TooMany,
}

type Subscribers = HashMap<UserId, Vec<(u64, mpsc::Sender<Event>)>>;

/// One person in a live consultation's waiting room, as its care team's consoles list them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitingPerson {
    /// The name they gave at the invitation's door.
    pub name: String,
    pub role: Role,
    /// When they began to wait (Unix seconds).
    pub since: i64,
    /// A clinician sent them back from the room.
    pub sent_back: bool,
}

/// How a live consultation's waiting room stands now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitingNow {
    pub count: usize,
    /// Of them, patients (the attendance counts the patients in the room without them).
    pub patients: usize,
    /// When the one who has waited longest arrived (Unix seconds).
    pub since: i64,
}

/// The hub; cheap to clone.
#[derive(Clone)]
pub struct Notifications {
    subscribers: Arc<Mutex<Subscribers>>,
    next_id: Arc<std::sync::atomic::AtomicU64>,
    /// Events for a consultation's care team, waiting for the hub's task to find who that is.
    rooms: mpsc::Sender<(RoomId, Event)>,
    /// The live waiting rooms that have someone in them, in queue order, for consoles that
    /// load their lists.
    waiting: Arc<Mutex<HashMap<RoomId, Vec<WaitingPerson>>>>,
}

/// One console's subscription; dropping it ends it.
pub struct Subscription {
    pub events: mpsc::Receiver<Event>,
    guard: Unsubscribe,
}

impl Subscription {
    /// Keeps the subscription registered while the stream that owns it lives.
    pub fn into_parts(self) -> (mpsc::Receiver<Event>, impl Send + 'static) {
        (self.events, self.guard)
    }
}

struct Unsubscribe {
    hub: Arc<Mutex<Subscribers>>,
    user: UserId,
    id: u64,
}

impl Drop for Unsubscribe {
    fn drop(&mut self) {
        let mut subs = self.hub.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(list) = subs.get_mut(&self.user) {
            list.retain(|(id, _)| *id != self.id);
            if list.is_empty() {
                subs.remove(&self.user);
            }
        }
    }
}

impl std::fmt::Debug for Notifications {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let subs = self.subscribers.lock().unwrap_or_else(|e| e.into_inner());
        f.debug_struct("Notifications")
            .field("accounts_listening", &subs.len())
            .finish()
    }
}

impl Notifications {
    /// A hub, with its task that tells care teams what happened in their consultation (it
    /// reads the care team from `db`).
    pub fn start(db: Db) -> Self {
        let (rooms, mut queue) = mpsc::channel::<(RoomId, Event)>(ROOM_EVENTS_QUEUE);
        let hub = Self {
            subscribers: Arc::default(),
            next_id: Arc::default(),
            rooms,
            waiting: Arc::default(),
        };
        let publisher = hub.clone();
        tokio::spawn(async move {
            while let Some((room, event)) = queue.recv().await {
                // Only accounts with a console open need the lookup.
                if publisher.is_idle() {
                    continue;
                }
                let waiting = matches!(event, Event::PatientWaiting { .. });
                match db.care_team(&room).await {
                    Ok(team) => {
                        let users: Vec<UserId> = team.into_iter().map(|m| m.user_id).collect();
                        publisher.publish(&users, event);
                    }
                    Err(e) => tracing::warn!(error = %e, "care team not read for a notification"),
                }
                if waiting {
                    publisher.tell_department(&db, &room).await;
                }
            }
        });
        hub
    }

    /// Tells the clinicians of the department that `room`'s request was addressed to (if a
    /// request opened it) that the department's queue changed.
    async fn tell_department(&self, db: &Db, room: &RoomId) {
        let referral = match db.referral_for_room(room).await {
            Ok(Some(r)) => r,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(error = %e, "request not read for a department notification");
                return;
            }
        };
        let department = referral.target.department().clone();
        let query = DirectoryQuery {
            institution: None,
            department: Some(&department),
            specialty: None,
            name: None,
            accepting_only: false,
            limit: MAX_DEPARTMENT_LISTENERS,
        };
        match db.directory(&query).await {
            Ok(clinicians) => {
                let users: Vec<UserId> = clinicians.into_iter().map(|u| u.id).collect();
                self.publish(
                    &users,
                    Event::DepartmentQueueChanged {
                        department_id: department,
                    },
                );
            }
            Err(e) => tracing::warn!(error = %e, "department not read for a notification"),
        }
    }

    fn is_idle(&self) -> bool {
        self.subscribers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty()
    }

    /// A console of `user` begins listening.
    pub fn subscribe(&self, user: &UserId) -> Result<Subscription, SubscribeError> {
        let mut subs = self.subscribers.lock().unwrap_or_else(|e| e.into_inner());
        let list = subs.entry(user.clone()).or_default();
        if list.len() >= MAX_SUBSCRIPTIONS_PER_ACCOUNT {
            return Err(SubscribeError::TooMany);
        }
        let id = self
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(SUBSCRIPTION_QUEUE);
        list.push((id, tx));
        Ok(Subscription {
            events: rx,
            guard: Unsubscribe {
                hub: Arc::clone(&self.subscribers),
                user: user.clone(),
                id,
            },
        })
    }

    /// Tells every open console of `users`. Never waits.
    pub fn publish(&self, users: &[UserId], event: Event) {
        let subs = self.subscribers.lock().unwrap_or_else(|e| e.into_inner());
        for user in users {
            for (_, tx) in subs.get(user).into_iter().flatten() {
                // A full queue misses this one; the console refreshes on the next.
                let _ = tx.try_send(event.clone());
            }
        }
    }

    /// Ends every subscription (at shutdown): their streams finish instead of holding the
    /// listener open, and consoles reconnect to the next server.
    pub fn close(&self) {
        self.subscribers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// From a room's task: who waits now, in queue order (nobody: also at the room's end).
    /// Never waits: the snapshot is a short lock, and the hub's task finds the care team to
    /// tell.
    pub fn room_waiting(&self, room: &RoomId, people: Vec<WaitingPerson>) {
        let now = summary(&people);
        {
            let mut waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
            if people.is_empty() {
                waiting.remove(room);
            } else {
                waiting.insert(room.clone(), people);
            }
        }
        self.tell_care_team(
            room,
            Event::PatientWaiting {
                room_id: room.clone(),
                waiting: now.map_or(0, |w| w.count),
                waiting_since: now.map(|w| w.since),
            },
        );
    }

    /// Tells `room`'s care team `event`. Never waits: the hub's task finds the care team (and
    /// skips the lookup while no console is open); when its queue is full the event is missed,
    /// as a slow console misses one.
    pub fn tell_care_team(&self, room: &RoomId, event: Event) {
        let _ = self.rooms.try_send((room.clone(), event));
    }

    /// How the waiting room of a live consultation stands now (None: nobody waits).
    pub fn waiting_in(&self, room: &RoomId) -> Option<WaitingNow> {
        self.waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(room)
            .and_then(|people| summary(people))
    }

    /// Who waits in a live consultation now, in queue order.
    pub fn waiting_people(&self, room: &RoomId) -> Vec<WaitingPerson> {
        self.waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(room)
            .cloned()
            .unwrap_or_default()
    }
}

/// How many wait, how many of them patients, and since when the longest has.
fn summary(people: &[WaitingPerson]) -> Option<WaitingNow> {
    Some(WaitingNow {
        count: people.len(),
        patients: people.iter().filter(|p| p.role == Role::Patient).count(),
        since: people.iter().map(|p| p.since).min()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hub() -> Notifications {
        let (rooms, _) = mpsc::channel(1);
        Notifications {
            subscribers: Arc::default(),
            next_id: Arc::default(),
            rooms,
            waiting: Arc::default(),
        }
    }

    #[test]
    fn events_reach_only_those_they_concern_and_subscriptions_end_when_dropped() {
        let hub = hub();
        let (a, b) = (UserId::generate(), UserId::generate());
        let mut sa = hub.subscribe(&a).unwrap();
        let mut sb = hub.subscribe(&b).unwrap();
        let event = Event::ReferralChanged {
            referral_id: ReferralId::generate(),
            state: "scheduled",
        };
        hub.publish(std::slice::from_ref(&a), event.clone());
        assert_eq!(sa.events.try_recv().unwrap(), event);
        assert!(sb.events.try_recv().is_err(), "not b's");
        drop(sa);
        assert!(!hub.subscribers.lock().unwrap().contains_key(&a));
        hub.publish(std::slice::from_ref(&a), event);
        assert!(sb.events.try_recv().is_err());
    }

    #[test]
    fn the_waiting_snapshot_holds_rooms_with_someone_waiting() {
        let hub = hub();
        let room = RoomId::generate();
        let person = |name: &str, role, since| WaitingPerson {
            name: name.into(),
            role,
            since,
            sent_back: false,
        };
        let people = vec![
            person("Li Hua", Role::Observer, 120),
            person("Chen Jie", Role::Patient, 100),
        ];
        hub.room_waiting(&room, people.clone());
        assert_eq!(
            hub.waiting_in(&room),
            Some(WaitingNow {
                count: 2,
                patients: 1,
                since: 100
            })
        );
        assert_eq!(hub.waiting_people(&room), people, "in queue order");
        hub.room_waiting(&room, Vec::new());
        assert_eq!(hub.waiting_in(&room), None);
        assert_eq!(hub.waiting_people(&room), []);
        assert!(
            hub.waiting.lock().unwrap().is_empty(),
            "nothing kept for empty rooms"
        );
    }

    #[tokio::test]
    async fn closing_ends_every_stream() {
        let hub = hub();
        let mut s = hub.subscribe(&UserId::generate()).unwrap();
        hub.close();
        assert_eq!(s.events.recv().await, None);
        drop(s);
    }

    #[test]
    fn an_account_holds_a_bounded_number_of_subscriptions() {
        let hub = hub();
        let a = UserId::generate();
        let held: Vec<_> = (0..MAX_SUBSCRIPTIONS_PER_ACCOUNT)
            .map(|_| hub.subscribe(&a).unwrap())
            .collect();
        assert_eq!(hub.subscribe(&a).err(), Some(SubscribeError::TooMany));
        drop(held);
        assert!(hub.subscribe(&a).is_ok());
    }

    #[test]
    fn a_slow_console_misses_events_and_the_publisher_never_waits() {
        let hub = hub();
        let a = UserId::generate();
        let mut s = hub.subscribe(&a).unwrap();
        for i in 0..SUBSCRIPTION_QUEUE + 10 {
            hub.publish(
                std::slice::from_ref(&a),
                Event::PatientWaiting {
                    room_id: RoomId::generate(),
                    waiting: i,
                    waiting_since: Some(1),
                },
            );
        }
        let mut got = 0;
        while s.events.try_recv().is_ok() {
            got += 1;
        }
        assert_eq!(got, SUBSCRIPTION_QUEUE);
    }
}
