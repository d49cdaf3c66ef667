//! The pre-call network check over the media path: while someone waits to be admitted, their
//! browser may open a short-lived peer connection to a media worker, send its camera and
//! microphone on it for a few seconds, and read from its own WebRTC statistics what the path to
//! the server gives in both directions. Up: the round trip (ICE checks and RTCP), the loss the
//! server reports back (RTCP receiver reports) and the bandwidth the browser's congestion
//! control finds (from the server's transport-wide feedback). Down: the server sends the
//! person's own media straight back (an echo), and the browser reads what arrives of it: the
//! rate, the loss and the jitter, as it will read the specialist's video in the call. That
//! rate is only a floor (the echo carries what went up), so the server also estimates the
//! download itself, as it does for everyone in a call, from the browser's transport-wide
//! feedback, but probing toward what a call may need rather than what the echo carries
//! ([`TransportOptions::measure_down`]), and tells the client its estimate while the check
//! runs ([`CheckEvent::DownEstimate`]). Everything else the browser reads itself: the server
//! is the far end of a real media path, as it will be in the call.
//!
//! A check is a transport of its own, alone in a media-core room made for it (a fresh
//! [`RoomId`] that no consultation has), so what it sends is forwarded to nobody but itself
//! ([`TransportOptions::echo`]: its own tracks come back on m-lines of their own, offered once
//! its answer has made them producers): a waiting person's media reaches no one, as the
//! waiting room's rules say, and the check is sent nothing of anyone else's. It ends
//! when the client says it has measured, when admitted, at a deadline, when the path fails, or
//! when the check is dropped (its signaling connection closed): the transport is removed and
//! the room closed on the worker every time.
//!
//! Limits: checks running at once on this server (`media.max_net_checks`), how long one may
//! last (`media.net_check_seconds`), and how many one signaling connection may start
//! ([`MAX_CHECKS_PER_CONNECTION`], enforced by the session). Whether someone may run one (only
//! while waiting) is signaling's to know: it is told by the room.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

use crate::auth::{IceServer, SigningKey, TurnServers};
use crate::domain::clock::now_unix;
use crate::domain::ids::{ParticipantId, RoomId};
use crate::media::{MediaError, MediaHandle, WorkerHandle};
use crate::sfu::{
    Answer, AnswerError, PublishKinds, PublishMids, SfuCommand, SfuEvent, TransportOptions,
};

/// Checks one signaling connection may start (a reload is a new connection, and so is a
/// return to the waiting room after a dropped socket).
pub const MAX_CHECKS_PER_CONNECTION: u32 = 3;

/// The media core's events for one check: two offers (its own m-lines, then the echo's),
/// connected, failed, and its download estimates (one a second, and a backlog keeps
/// only the latest: `media::outbox`).
const EVENT_QUEUE: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum NetCheckError {
    #[error("the server is running as many network checks as it allows; try again later")]
    Busy,
    #[error("the media worker is unavailable")]
    Media(#[from] MediaError),
}

/// Starts checks within the server's limits.
#[derive(Debug, Clone)]
pub struct NetChecks {
    media: MediaHandle,
    permits: Arc<Semaphore>,
    max: usize,
    duration: Duration,
    turn: Option<TurnServers>,
    key: SigningKey,
}

/// How a check ended, as the client is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// The client said it had measured.
    Done,
    /// It reached `media.net_check_seconds`.
    Time,
    /// Its person was let in: the call's own connection takes over.
    Admitted,
    /// The path failed, or the answer was refused.
    Failed,
}

impl Ended {
    pub fn as_str(self) -> &'static str {
        match self {
            Ended::Done => "done",
            Ended::Time => "time",
            Ended::Admitted => "admitted",
            Ended::Failed => "failed",
        }
    }
}

/// An offer a check's client answers: the first sets up the path and the m-lines it sends
/// on, the second (once the first is answered) adds the m-lines its media comes back on.
#[derive(Debug)]
pub struct CheckOffer {
    pub offer_id: u64,
    pub sdp: String,
    pub publish_mids: PublishMids,
    /// TURN relays with short-lived credentials under a pseudonym of the check (in the first
    /// offer only: the peer connection is made with them).
    pub ice_servers: Vec<IceServer>,
    /// How long the check may last, from its start.
    pub seconds: u64,
}

/// What happened to a running check.
#[derive(Debug)]
pub enum CheckEvent {
    Offer(CheckOffer),
    /// The answer was refused (a malformed answer, or not to our offer): the check has ended.
    AnswerFailed(AnswerError),
    /// The path is up.
    Connected,
    /// What the server estimates the download to be, from the client's transport feedback
    /// while str0m probes it (bits per second; at most twice `sfu::DOWN_CHECK_DESIRED`).
    DownEstimate(u64),
    /// The path failed, or never came up: the check has ended.
    Failed,
}

impl NetChecks {
    pub fn new(
        media: MediaHandle,
        max: usize,
        duration: Duration,
        turn: Option<TurnServers>,
        key: SigningKey,
    ) -> Self {
        Self {
            media,
            permits: Arc::new(Semaphore::new(max)),
            max,
            duration,
            turn,
            key,
        }
    }

    /// Checks running now.
    pub fn running(&self) -> usize {
        self.max - self.permits.available_permits()
    }

    /// Starts a check on the least loaded worker: an offer follows as its first event.
    pub async fn start(&self) -> Result<NetCheck, NetCheckError> {
        let permit = self
            .permits
            .clone()
            .try_acquire_owned()
            .map_err(|_| NetCheckError::Busy)?;
        let room = RoomId::generate();
        let participant = ParticipantId::generate();
        let (tx, events) = mpsc::channel(EVENT_QUEUE);
        let worker = self.media.assign_worker();
        // From here on the guard undoes whatever of the set-up went through.
        let mut check = NetCheck {
            guard: Guard {
                worker: worker.clone(),
                room: room.clone(),
                participant: participant.clone(),
                opened: false,
                permit: Some(permit),
            },
            events,
            offer_id: None,
            deadline: tokio::time::Instant::now() + self.duration,
            seconds: self.duration.as_secs(),
            ice_servers: self.turn.as_ref().map_or_else(Vec::new, |turn| {
                turn.ice_servers(
                    &self
                        .key
                        .pseudonym(format!("net check {participant}").as_bytes()),
                    now_unix(),
                )
            }),
        };
        worker.open_room(room.clone(), tx).await?;
        check.guard.opened = true;
        worker
            .command(SfuCommand::AddTransport {
                room,
                participant,
                // Both kinds, so that the path carries what the call will; the client sends
                // what it has, and gets it back to measure the download by. Nobody else's to
                // receive: the room holds no one else.
                publish: PublishKinds {
                    audio: true,
                    video: true,
                },
                subscribe: false,
                // The download is measured twice: by what of the echo arrives (a floor: it
                // carries what went up) and by the server's estimator, which probes the link
                // toward what a call may need (`DOWN_CHECK_DESIRED`), above what went up.
                options: TransportOptions {
                    echo: true,
                    measure_down: true,
                    ..TransportOptions::default()
                },
            })
            .await?;
        Ok(check)
    }
}

/// One running check. Dropping it ends it on the media worker.
#[derive(Debug)]
pub struct NetCheck {
    guard: Guard,
    events: mpsc::Receiver<SfuEvent>,
    /// The offer outstanding, once made.
    offer_id: Option<u64>,
    deadline: tokio::time::Instant,
    seconds: u64,
    ice_servers: Vec<IceServer>,
}

impl NetCheck {
    /// When the check ends if nothing else ends it first.
    pub fn deadline(&self) -> tokio::time::Instant {
        self.deadline
    }

    /// The next thing the media core says of this check. Pending forever once the worker is
    /// gone (the deadline still ends the check).
    pub async fn next(&mut self) -> CheckEvent {
        loop {
            let Some(event) = self.events.recv().await else {
                return std::future::pending().await;
            };
            match event {
                SfuEvent::Offer { offer, .. } => {
                    self.offer_id = Some(offer.offer_id);
                    return CheckEvent::Offer(CheckOffer {
                        offer_id: offer.offer_id,
                        sdp: offer.sdp,
                        publish_mids: offer.publish_mids,
                        ice_servers: std::mem::take(&mut self.ice_servers),
                        seconds: self.seconds,
                    });
                }
                SfuEvent::AnswerFailed { error, .. } => return CheckEvent::AnswerFailed(error),
                SfuEvent::Connected { .. } => return CheckEvent::Connected,
                SfuEvent::Failed { .. } => return CheckEvent::Failed,
                SfuEvent::DownEstimate { bps, .. } => return CheckEvent::DownEstimate(bps),
                // The echo is one layer, and no layout sizes it: nothing for the client.
                SfuEvent::VideoQuality { .. } => {}
            }
        }
    }

    /// The client's answer to the offer. Parsed here, on the session's task, as the room does
    /// for the call (the worker never pays for parsing); refused at once when it answers no
    /// offer of ours.
    pub async fn answer(&mut self, offer_id: u64, sdp: &str) -> Result<(), AnswerError> {
        if self.offer_id != Some(offer_id) {
            return Err(AnswerError::Stale);
        }
        self.offer_id = None;
        self.guard
            .worker
            .command(SfuCommand::Answer {
                participant: self.guard.participant.clone(),
                offer_id,
                answer: Answer::parse(sdp),
            })
            .await
            .map_err(|e| AnswerError::BadSdp(e.to_string()))
    }
}

/// Removes the check's transport and closes its room on the worker, however the check ends,
/// and gives its place back.
#[derive(Debug)]
struct Guard {
    worker: WorkerHandle,
    room: RoomId,
    participant: ParticipantId,
    /// Whether the room was opened on the worker (else it only counts towards its load).
    opened: bool,
    /// Given back once the worker has been told (taken by `drop`).
    permit: Option<OwnedSemaphorePermit>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        let worker = self.worker.clone();
        let room = self.room.clone();
        let participant = self.participant.clone();
        let opened = self.opened;
        let permit = self.permit.take();
        let undo = async move {
            if opened {
                let _ = worker
                    .command(SfuCommand::RemoveTransport { participant })
                    .await;
            }
            // Also what takes the check off the worker's load.
            let _ = worker.close_room(room).await;
            drop(permit);
        };
        // Dropped on a task (a session's) nearly always; the undo must not wait for a full
        // command queue there, so it runs on its own.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(undo);
        }
    }
}
