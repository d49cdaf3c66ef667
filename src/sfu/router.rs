//! A room's media: who is on this worker and which producers they publish.
//!
//! Consumers live on the subscribing [`super::Transport`]; the router only lists what exists,
//! so a forwarded packet costs one scan of the room's members.

use std::time::Instant;

use str0m::media::MediaKind;

use super::{ProducerKey, TrackSource, TransportKey};
use crate::domain::ids::ParticipantId;

#[derive(Debug, Default)]
pub struct Router {
    pub members: Vec<TransportKey>,
    pub producers: Vec<Producer>,
}

#[derive(Debug)]
pub struct Producer {
    pub key: ProducerKey,
    /// Who publishes it (named in subscribers' offers).
    pub publisher: ParticipantId,
    pub kind: MediaKind,
    /// Camera, microphone or screen.
    pub source: TrackSource,
    /// Throttles keyframe requests (see `KEYFRAME_REQUEST_INTERVAL`).
    pub last_keyframe_request: Option<Instant>,
}
