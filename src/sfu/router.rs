//! A room's media: who is on this worker and which producers they publish.
//!
//! Consumers live on the subscribing [`super::Transport`]; the router only lists what exists,
//! so a forwarded packet costs one scan of the room's members.

use std::time::Instant;

use str0m::media::MediaKind;

use super::forwarder::{LAYER_RIDS, Layer};
use super::meter::BitrateMeter;
use super::red::RedTracker;
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
    /// Throttles keyframe requests (see `KEYFRAME_REQUEST_INTERVAL`), per layer (a producer
    /// without simulcast uses the first).
    pub last_keyframe_request: [Option<Instant>; LAYER_RIDS.len()],
    /// Some for a simulcast camera: which of its layers arrive.
    pub layers: Option<Layers>,
    /// What each layer (the only stream: the first) takes, as it arrives.
    pub meters: [BitrateMeter; LAYER_RIDS.len()],
    /// For a microphone sent with redundancy (RED): which packets arrived, so that subscribers
    /// without RED get the lost ones rebuilt, once.
    pub red: RedTracker,
    /// For a microphone sent with redundancy: its own frames' bytes, what a subscriber without
    /// RED is sent (about half of what arrives, which `meters` measure).
    pub primary: BitrateMeter,
}

/// What a stream costs a subscriber when nothing is measured yet (a layer just started):
/// what browsers send for each simulcast layer of a 720p camera, a camera without layers, a
/// shared screen, a microphone (Opus with its headers).
pub const FALLBACK_LAYER_BPS: [u64; LAYER_RIDS.len()] = [150_000, 500_000, 1_500_000];
pub const FALLBACK_CAMERA_BPS: u64 = 800_000;
pub const FALLBACK_SCREEN_BPS: u64 = 1_000_000;
pub const FALLBACK_AUDIO_BPS: u64 = 50_000;

impl Producer {
    /// What a microphone costs a subscriber: as it arrives for one that takes RED, its own
    /// frames alone for one that does not (where it sends RED; else as it arrives).
    pub fn audio_rate(&self, now: std::time::Instant, takes_red: bool) -> u64 {
        let primary = (!takes_red).then(|| self.primary.rate(now)).flatten();
        primary
            .or(self.meters[0].rate(now))
            .unwrap_or(FALLBACK_AUDIO_BPS)
    }

    /// What each layer costs where it arrives now (bits per second): measured, else the
    /// fallback. A producer without layers has only the first.
    pub fn layer_rates(&self, now: std::time::Instant) -> [Option<u64>; LAYER_RIDS.len()] {
        let mut rates = [None; LAYER_RIDS.len()];
        match &self.layers {
            Some(layers) => {
                for l in Layer::ALL {
                    if layers.available & l.bit() != 0 {
                        let i = l.index();
                        rates[i] = Some(self.meters[i].rate(now).unwrap_or(FALLBACK_LAYER_BPS[i]));
                    }
                }
            }
            None => {
                let fallback = match (self.kind, self.source) {
                    (MediaKind::Audio, _) => FALLBACK_AUDIO_BPS,
                    (_, TrackSource::Screen) => FALLBACK_SCREEN_BPS,
                    _ => FALLBACK_CAMERA_BPS,
                };
                rates[0] = Some(self.meters[0].rate(now).unwrap_or(fallback));
            }
        }
        rates
    }
}

/// The layers a simulcast producer is sending now: a layer becomes available with its first
/// packet and unavailable when str0m reports its stream paused (a browser drops its upper
/// layers on a weak uplink, or sends fewer for a small capture).
#[derive(Debug, Default, Clone, Copy)]
pub struct Layers {
    /// Bit `l` set: layer `l` is arriving.
    pub available: u8,
}

impl Layers {
    pub fn set(&mut self, layer: Layer, on: bool) {
        if on {
            self.available |= layer.bit();
        } else {
            self.available &= !layer.bit();
        }
    }

    /// The layer a subscriber gets: the one it wants if it arrives, else the best below it,
    /// else the lowest above it; with no wish, the best arriving. None while nothing arrives.
    pub fn pick(&self, wanted: Option<Layer>) -> Option<Layer> {
        let all = self.available;
        let Some(w) = wanted else {
            return Layer::highest_of(all);
        };
        // The bits of `w` and every layer below it.
        let at_or_below = all & (w.bit() | (w.bit() - 1));
        Layer::highest_of(at_or_below).or_else(|| Layer::lowest_of(all))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subscriber_gets_the_nearest_arriving_layer() {
        let mut l = Layers::default();
        let (q, h, f) = (Layer::LOW, Layer::MEDIUM, Layer::FULL);
        assert_eq!(l.pick(None), None, "nothing arrives yet");
        l.set(q, true);
        l.set(f, true);
        assert_eq!(l.pick(None), Some(f), "no wish: the best");
        assert_eq!(l.pick(Some(h)), Some(q), "the best below the wish");
        assert_eq!(l.pick(Some(f)), Some(f));
        l.set(q, false);
        assert_eq!(l.pick(Some(q)), Some(f), "the lowest above when none below");
        l.set(h, true);
        assert_eq!(l.pick(Some(q)), Some(h));
        l.set(f, false);
        l.set(h, false);
        assert_eq!(l.pick(Some(f)), None);
    }
}
