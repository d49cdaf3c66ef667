//! Which video a subscriber gets, given what its link carries: a pure function of the link's
//! bandwidth estimate, what the subscriber shows each video at, and what each publisher sends.
//!
//! It owns the policy (docs/SIMULCAST.md §3) and nothing else: no str0m, no clock of its own
//! (time comes in), no I/O. The media core calls it per subscriber when an estimate arrives,
//! when the subscriber's layout or a publisher's layers change, and every
//! [`ALLOCATION_INTERVAL`] while bandwidth estimation runs, keeping the [`Memory`] it returns
//! between calls; tests drive it with synthetic estimate series.
//!
//! The policy:
//! - Budget: 90 % of the estimate, less the subscriber's audio (audio is never allocated away:
//!   video gives way first).
//! - Each video's *ladder* is the layers its publisher sends now, up to the one that is useful
//!   at the size the subscriber shows it (a hidden tile gets no video at all).
//! - Down at once: while the videos cost more than the budget, the least important one steps
//!   down (as many steps as needed, in one call); below every lowest layer, videos are paused
//!   (audio only), the least important first, a screen share last, but only on evidence that
//!   the link is congested: the estimate fell below what the subscriber was being sent (after
//!   the estimate's first [`YOUNG_FOR`]) and packets were lost ([`LOSS_EVIDENCE`]). An
//!   estimate that is merely young, application-limited (str0m's cannot rise much above what
//!   is sent) or noisy (a busy host delays packets as a queue would) pauses nothing: the lowest
//!   layers keep flowing, and what they carry is what lets the estimate grow.
//! - Probing: str0m is asked to probe toward the estimate at which every video may step up to
//!   its best (their cost with the step-up margin, and the audio, over the usable share), and
//!   asked again every [`ASK_AGAIN`] while a video flows below its best and none is paused (a
//!   desired rate lowered for one run, then raised: str0m probes on a raised desired rate,
//!   never on a repeated one; with a video paused it probes by itself, the link being
//!   application-limited).
//! - Up with hysteresis: a step up needs the budget to cover 1.25 × what the videos would then
//!   cost (1.5 × to resume a paused video) for [`HOLD`], no step down for [`CALM_AFTER_DOWN`],
//!   and at most one step per video per [`STEP_INTERVAL`]. The most important video goes first
//!   and what it waits for is kept for it.
//! - Importance: a screen share, then the larger a video is shown, then the order given.

use std::time::{Duration, Instant};

use super::forwarder::Layer;

/// How often an allocation runs while bandwidth estimation is on, whether or not the estimate
/// moved (str0m reports an estimate only when it changes by more than 5 %).
pub const ALLOCATION_INTERVAL: Duration = Duration::from_millis(500);

/// How long the headroom for a step up must hold before it is taken.
pub const HOLD: Duration = Duration::from_secs(3);
/// No step up this soon after a step down (an estimate that just fell is not trusted yet).
pub const CALM_AFTER_DOWN: Duration = Duration::from_secs(5);
/// At most one step up per video this often.
pub const STEP_INTERVAL: Duration = Duration::from_secs(2);
/// Video pauses only once even the lowest layers have not fit for this long: an estimate dips
/// for a moment (str0m's does at the start of every link), and a frozen picture costs more
/// than a moment of queueing.
pub const PAUSE_AFTER: Duration = Duration::from_secs(1);
/// For this long after the first estimate, a fall of the estimate is no evidence of congestion:
/// str0m's estimate dips in the first second of every link (its first probes, media that has
/// not started), whatever the link carries.
pub const YOUNG_FOR: Duration = Duration::from_secs(5);
/// How long a fall of the estimate below what was being sent, and a report of loss, each count
/// towards evidence of congestion (both are needed to pause).
pub const EVIDENCE_FOR: Duration = Duration::from_secs(10);
/// The loss (a share of what was sent in a second) that, with a fall of the estimate below
/// what was sent, is evidence of congestion. Loopback and a good link lose nothing; a link
/// whose queue overflows loses far more.
pub const LOSS_EVIDENCE: f32 = 0.02;
/// While a video is held back for bandwidth, str0m is asked for a new probe this often.
pub const ASK_AGAIN: Duration = Duration::from_secs(3);

/// The share of the estimate video and audio may use: estimates run ahead of what a link
/// carries without queueing.
const USABLE_PERCENT: u64 = 90;
/// Margins over the cost after a step up, in percent: 125 % to step up, 150 % to resume.
const UP_MARGIN_PERCENT: u64 = 125;
const RESUME_MARGIN_PERCENT: u64 = 150;
/// How far the desired rate is lowered for one run to ask str0m for a new probe (any decrease
/// does; this one is too small to change what str0m pads or probes to).
pub const ASK_AGAIN_DIP: u64 = 1_000;

/// The nominal size of each layer (width, height) when the publisher scales by 4, 2 and 1 from
/// 720p, what the web client asks for. The core does not parse frame sizes: a layer is useful
/// for a tile up to this size.
const NOMINAL_SIZE: [(u32, u32); 3] = [(320, 180), (640, 360), (1280, 720)];

/// How a subscriber shows one video (told by its client in device pixels).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Shown {
    /// Not told: any size, so the best layer is useful.
    #[default]
    Unknown,
    /// Not on screen (0 × 0): no video is sent.
    Hidden,
    Size {
        width: u32,
        height: u32,
    },
}

impl Shown {
    /// From a client's report: zero in either dimension is hidden.
    pub fn of(width: u32, height: u32) -> Shown {
        if width == 0 || height == 0 {
            Shown::Hidden
        } else {
            Shown::Size { width, height }
        }
    }

    /// For ordering by importance: larger first; not told counts as the largest.
    fn area(self) -> u64 {
        match self {
            Shown::Unknown => u64::MAX,
            Shown::Hidden => 0,
            Shown::Size { width, height } => u64::from(width) * u64::from(height),
        }
    }

    /// The lowest layer that looks as good as any at this size.
    fn useful(self) -> Layer {
        let Shown::Size { width, height } = self else {
            return Layer::FULL;
        };
        Layer::ALL
            .into_iter()
            .find(|l| {
                let (w, h) = NOMINAL_SIZE[l.index()];
                w >= width && h >= height
            })
            .unwrap_or(Layer::FULL)
    }
}

/// Why a subscriber gets the video it gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Its link holds it below what would be useful (paused: below the lowest layer).
    Bandwidth,
    /// Its client shows the video nowhere.
    Hidden,
    /// The best that is useful at the size shown and that the publisher sends: nothing holds
    /// it back.
    Display,
}

/// What one video of one subscriber is to be: a layer (the only stream of a producer without
/// layers is [`Layer::LOW`]), or nothing (paused).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Choice {
    pub layer: Option<Layer>,
    pub reason: Reason,
}

/// One video a subscriber receives, as the allocator sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Video {
    /// A shared screen (content): the most important, paused last.
    pub screen: bool,
    pub shown: Shown,
    /// What each layer costs (bits per second) where the publisher sends it now; a producer
    /// without layers sends only [`Layer::LOW`].
    pub layers: [Option<u64>; 3],
    /// The highest layer this subscriber may get (`SfuCommand::SetLayer`); None: no cap.
    pub cap: Option<Layer>,
}

/// What the allocator remembers of one video between calls.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Memory {
    /// The last choice; None before the first.
    pub given: Option<Choice>,
    /// When its layer last changed (limits steps up).
    pub changed_at: Option<Instant>,
    /// Since when the headroom for its next step up has held.
    pub ready_since: Option<Instant>,
}

/// What the allocator remembers of the link between calls.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkMemory {
    pub last_down: Option<Instant>,
    /// Since when even the lowest layers have not fit on a link known to be congested (see
    /// [`PAUSE_AFTER`]).
    pub short_since: Option<Instant>,
    /// The first run with an estimate (see [`YOUNG_FOR`]).
    pub started_at: Option<Instant>,
    /// The estimate at the last run.
    pub estimate: Option<u64>,
    /// What the last run chose to send: its videos and the audio (bits per second).
    pub sent: u64,
    /// When the estimate last fell below what was being sent (see [`EVIDENCE_FOR`]).
    pub fell_at: Option<Instant>,
    /// When loss of at least [`LOSS_EVIDENCE`] was last reported (see [`EVIDENCE_FOR`]).
    pub lossy_at: Option<Instant>,
    /// When str0m was last asked for a new probe (see [`ASK_AGAIN`]).
    pub asked_at: Option<Instant>,
}

/// What str0m's estimator is to aim for (`Bwe::set_bitrate`): `minimum` what is sent now plus
/// the next step up (padding fills the gap, so the estimate can grow to it although media does
/// not use it yet), `desired` the estimate at which every video may step up to its best useful
/// layer: their cost with the margin of a step up, and the audio, over the usable share
/// ([`estimate_for`]).
///
/// `desired` must carry the margins: str0m probes only while its estimate is below `desired`,
/// and an estimate that settles between the bare cost and what a step up needs would hold a
/// video below its best for good (measured in a browser: a Chromium subscriber held on `q` for
/// 50 s at an estimate of 322 kbit/s, with `h` costing 232 and its audio 48).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    pub minimum: u64,
    pub desired: u64,
}

/// The link as the allocator sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Link {
    /// The bandwidth estimate (bits per second); None when the link is not estimated: then
    /// every video gets its best useful layer.
    pub estimate: Option<u64>,
    /// What the subscriber's audio takes (bits per second).
    pub audio: u64,
    /// The share of what was sent in the last second that was lost (0 to 1), where known.
    pub loss: Option<f32>,
}

/// One allocation for one subscriber: a choice per video (in the order given), and what to
/// probe for. `memory` holds one entry per video, in the same order.
pub fn allocate(
    now: Instant,
    link: Link,
    videos: &[Video],
    memory: &mut [Memory],
    link_memory: &mut LinkMemory,
) -> (Vec<Choice>, Option<Probe>) {
    debug_assert_eq!(videos.len(), memory.len());
    let ladders: Vec<Ladder> = videos.iter().map(Ladder::of).collect();
    // Each video's rung (index in its ladder); None: paused or hidden.
    let mut rung: Vec<Option<usize>> = Vec::with_capacity(videos.len());
    for (ladder, mem) in ladders.iter().zip(memory.iter()) {
        let start = match (ladder.hidden, mem.given, link.estimate) {
            (true, _, _) => None,
            // Unestimated: the best useful.
            (false, _, None) => ladder.top(),
            (false, None, Some(_)) => ladder.bottom(),
            // Shown again: from the bottom, as a new video.
            (
                false,
                Some(Choice {
                    reason: Reason::Hidden,
                    ..
                }),
                Some(_),
            ) => ladder.bottom(),
            (false, Some(Choice { layer: None, .. }), Some(_)) => None,
            (false, Some(Choice { layer: Some(l), .. }), Some(_)) => ladder.at_or_below(l),
        };
        rung.push(start);
    }
    let mut probe = None;
    if let Some(estimate) = link.estimate {
        let started = *link_memory.started_at.get_or_insert(now);
        // Evidence of congestion: the estimate fell below what the link was carrying for us,
        // and packets were lost. A young estimate's fall is none. A fall without loss is none
        // either: a delay-based estimator also falls when the hosts at either end are short of
        // CPU (measured: to 41–60 kbit/s on loopback, SIMULCAST.md §10), and an
        // application-limited one rises again on what is sent.
        if link_memory.estimate.is_some_and(|before| estimate < before)
            && estimate < link_memory.sent
            && now.saturating_duration_since(started) >= YOUNG_FOR
        {
            link_memory.fell_at = Some(now);
        }
        if link.loss.is_some_and(|l| l >= LOSS_EVIDENCE) {
            link_memory.lossy_at = Some(now);
        }
        link_memory.estimate = Some(estimate);
        let recent = |at: Option<Instant>| {
            at.is_some_and(|t| now.saturating_duration_since(t) < EVIDENCE_FOR)
        };
        let congested = recent(link_memory.fell_at) && recent(link_memory.lossy_at);
        let budget = (estimate / 100 * USABLE_PERCENT).saturating_sub(link.audio);
        let order = importance(videos);
        let cost = |rung: &[Option<usize>]| -> u64 {
            rung.iter()
                .zip(&ladders)
                .map(|(r, l)| r.map_or(0, |r| l.rate(r)))
                .sum()
        };
        let mut usage = cost(&rung);
        // Down: the least important first, a step at a time, then pauses (once short for
        // long enough).
        let mut down = false;
        while usage > budget {
            let mut step = order
                .iter()
                .rev()
                .find(|i| rung[**i].is_some_and(|r| r > 0));
            if step.is_none() {
                if !congested {
                    // Over the budget at the lowest layers, but nothing says the link cannot
                    // carry them: they are what lets the estimate grow.
                    link_memory.short_since = None;
                    break;
                }
                let since = *link_memory.short_since.get_or_insert(now);
                if now.saturating_duration_since(since) >= PAUSE_AFTER {
                    step = order.iter().rev().find(|i| rung[**i].is_some());
                }
            }
            let Some(&i) = step else {
                break;
            };
            rung[i] = rung[i].and_then(|r| r.checked_sub(1));
            usage = cost(&rung);
            down = true;
        }
        if usage <= budget {
            link_memory.short_since = None;
        }
        if down {
            link_memory.last_down = Some(now);
            for m in memory.iter_mut() {
                m.ready_since = None;
            }
        }
        // Up: in order of importance, one step each, what a waiting one needs kept for it.
        let calm = link_memory
            .last_down
            .is_none_or(|t| now.saturating_duration_since(t) >= CALM_AFTER_DOWN);
        let mut reserved = usage;
        let mut next_step = None;
        for &i in &order {
            let ladder = &ladders[i];
            if ladder.hidden || ladder.rungs.is_empty() {
                continue;
            }
            let (to, margin) = match rung[i] {
                None => (0, RESUME_MARGIN_PERCENT),
                Some(r) if r + 1 < ladder.rungs.len() => (r + 1, UP_MARGIN_PERCENT),
                Some(_) => continue,
            };
            // Measured rates need not rise with the layer (Firefox sends its quarter layer
            // above its cap): a step that measures cheaper costs nothing more.
            let delta = ladder
                .rate(to)
                .saturating_sub(rung[i].map_or(0, |r| ladder.rate(r)));
            next_step.get_or_insert(delta);
            let mem = &mut memory[i];
            if budget < (reserved + delta) / 100 * margin {
                mem.ready_since = None;
                continue;
            }
            let ready = *mem.ready_since.get_or_insert(now);
            reserved += delta;
            let held = now.saturating_duration_since(ready) >= HOLD;
            let rested = mem
                .changed_at
                .is_none_or(|t| now.saturating_duration_since(t) >= STEP_INTERVAL);
            if calm && held && rested && !down {
                rung[i] = Some(to);
                mem.ready_since = None;
            }
        }
        let usage = cost(&rung);
        link_memory.sent = usage + link.audio;
        let best: u64 = ladders
            .iter()
            .filter_map(|l| l.top().map(|t| l.rate(t)))
            .sum();
        let desired = estimate_for(best, link.audio);
        let minimum = usage + next_step.unwrap_or(0) + link.audio;
        // Held back: a video flowing below its best. Not while a video is paused: then little
        // but audio is sent, str0m is application-limited and probes every 5 s by itself, and
        // its probes pad with earlier video packets, which a paused subscriber should not get
        // more of than that.
        let shown = || {
            rung.iter()
                .zip(&ladders)
                .filter(|(_, l)| !l.rungs.is_empty())
        };
        let held_back =
            shown().any(|(r, l)| r.is_some() && *r != l.top()) && shown().all(|(r, _)| r.is_some());
        let asked = *link_memory.asked_at.get_or_insert(now);
        let ask_again = held_back && now.saturating_duration_since(asked) >= ASK_AGAIN;
        if ask_again {
            link_memory.asked_at = Some(now);
        }
        probe = Some(Probe {
            minimum,
            // Lowered for this run only: the next run raises it again, which str0m answers
            // with a probe (repeating the same desired rate asks for nothing).
            desired: if ask_again {
                desired.saturating_sub(ASK_AGAIN_DIP)
            } else {
                desired
            },
        });
    }
    let choices = ladders
        .iter()
        .zip(memory.iter_mut())
        .zip(rung)
        .map(|((ladder, mem), rung)| {
            let choice = if ladder.hidden {
                Choice {
                    layer: None,
                    reason: Reason::Hidden,
                }
            } else if ladder.rungs.is_empty() {
                // Nothing arrives yet: whatever comes first, at its best.
                Choice {
                    layer: Some(Layer::FULL),
                    reason: Reason::Display,
                }
            } else {
                match rung {
                    None => Choice {
                        layer: None,
                        reason: Reason::Bandwidth,
                    },
                    // Unestimated, the best useful is whatever arrives up to the ceiling: a
                    // layer that starts arriving is taken at once (`Layers::pick`).
                    Some(_) if link.estimate.is_none() => Choice {
                        layer: Some(ladder.ceiling),
                        reason: Reason::Display,
                    },
                    Some(r) => Choice {
                        layer: Some(ladder.rungs[r].0),
                        reason: if r + 1 < ladder.rungs.len() {
                            Reason::Bandwidth
                        } else {
                            Reason::Display
                        },
                    },
                }
            };
            if !ladder.hidden && ladder.rungs.is_empty() {
                // Not remembered: once layers arrive it starts as a new video.
                return choice;
            }
            if mem.given.map(|g| g.layer) != Some(choice.layer) {
                mem.changed_at = Some(now);
            }
            mem.given = Some(choice);
            choice
        })
        .collect();
    (choices, probe)
}

/// The estimate at which videos costing `videos` (bits per second) may all be sent beside
/// `audio`: the step-up margin over their cost, the audio, over the usable share of an estimate.
pub const fn estimate_for(videos: u64, audio: u64) -> u64 {
    // Rounded up, in the same steps as the budget and the margin are computed in `allocate`.
    (videos / 100 * UP_MARGIN_PERCENT + audio).div_ceil(USABLE_PERCENT) * 100
}

/// The layers a subscriber may get of one video, lowest first, with their costs.
struct Ladder {
    hidden: bool,
    /// The best layer that would be useful (the size shown, the cap), arriving or not.
    ceiling: Layer,
    rungs: Vec<(Layer, u64)>,
}

impl Ladder {
    fn of(v: &Video) -> Ladder {
        if v.shown == Shown::Hidden {
            return Ladder {
                hidden: true,
                ceiling: Layer::LOW,
                rungs: Vec::new(),
            };
        }
        let ceiling = v.shown.useful().min(v.cap.unwrap_or(Layer::FULL));
        let arriving = Layer::ALL
            .into_iter()
            .filter_map(|l| v.layers[l.index()].map(|rate| (l, rate)));
        let mut rungs: Vec<(Layer, u64)> =
            arriving.clone().filter(|(l, _)| *l <= ceiling).collect();
        if rungs.is_empty() {
            // Nothing at or below the ceiling arrives: the lowest that does (as
            // `Layers::pick` forwards).
            rungs.extend(arriving.take(1));
        }
        Ladder {
            hidden: false,
            ceiling,
            rungs,
        }
    }

    fn rate(&self, rung: usize) -> u64 {
        self.rungs[rung].1
    }

    fn top(&self) -> Option<usize> {
        self.rungs.len().checked_sub(1)
    }

    fn bottom(&self) -> Option<usize> {
        (!self.rungs.is_empty()).then_some(0)
    }

    /// The highest rung at or below `layer` (the bottom one if all are above).
    fn at_or_below(&self, layer: Layer) -> Option<usize> {
        self.rungs
            .iter()
            .rposition(|(l, _)| *l <= layer)
            .or(self.bottom())
    }
}

/// Video indices, most important first: screen shares, then by the size shown, then as given.
fn importance(videos: &[Video]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..videos.len()).collect();
    order.sort_by_key(|&i| {
        let v = &videos[i];
        (!v.screen, std::cmp::Reverse(v.shown.area()), i)
    });
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    const KBPS: u64 = 1000;
    /// A camera sending all three layers at 150, 500 and 1500 kbit/s.
    const CAMERA: Video = Video {
        screen: false,
        shown: Shown::Unknown,
        layers: [Some(150 * KBPS), Some(500 * KBPS), Some(1500 * KBPS)],
        cap: None,
    };
    const SCREEN: Video = Video {
        screen: true,
        shown: Shown::Unknown,
        layers: [Some(800 * KBPS), None, None],
        cap: None,
    };
    const AUDIO: u64 = 50 * KBPS;
    const Q: Option<Layer> = Some(Layer::LOW);
    const H: Option<Layer> = Some(Layer::MEDIUM);
    const F: Option<Layer> = Some(Layer::FULL);

    /// A link that loses 5 % of what is sent: with a fall of the estimate, congestion.
    const LOSSY: f32 = 0.05;

    /// Runs the allocator over `series` (milliseconds since the start, the estimate in kbit/s,
    /// the layer each video is expected to get then), calling it as the core does: at each
    /// step, which are `ALLOCATION_INTERVAL` apart or an estimate's arrival.
    fn run(videos: &[Video], series: &[(u64, u64, &[Option<Layer>])]) -> Vec<Vec<Choice>> {
        run_with_loss(videos, Some(LOSSY), series)
    }

    /// As [`run`], with the link losing `loss` of what is sent throughout.
    fn run_with_loss(
        videos: &[Video],
        loss: Option<f32>,
        series: &[(u64, u64, &[Option<Layer>])],
    ) -> Vec<Vec<Choice>> {
        let t0 = Instant::now();
        let mut memory = vec![Memory::default(); videos.len()];
        let mut link = LinkMemory::default();
        let mut out = Vec::new();
        let mut next = 0;
        for &(at_ms, estimate, expected) in series {
            // The periodic runs before this point, with the estimate unchanged since the last.
            let estimate_before = out.last().map(|(_, e)| *e).unwrap_or(estimate);
            while next < at_ms {
                allocate(
                    t0 + Duration::from_millis(next),
                    Link {
                        estimate: Some(estimate_before * KBPS),
                        audio: AUDIO,
                        loss,
                    },
                    videos,
                    &mut memory,
                    &mut link,
                );
                next += ALLOCATION_INTERVAL.as_millis() as u64;
            }
            let (choices, _) = allocate(
                t0 + Duration::from_millis(at_ms),
                Link {
                    estimate: Some(estimate * KBPS),
                    audio: AUDIO,
                    loss,
                },
                videos,
                &mut memory,
                &mut link,
            );
            next = next.max(at_ms + ALLOCATION_INTERVAL.as_millis() as u64);
            let layers: Vec<Option<Layer>> = choices.iter().map(|c| c.layer).collect();
            assert_eq!(
                layers, expected,
                "at {at_ms} ms with {estimate} kbit/s: {choices:?}"
            );
            out.push((choices, estimate));
        }
        out.into_iter().map(|(c, _)| c).collect()
    }

    #[test]
    fn a_new_video_starts_low_and_climbs_one_step_at_a_time_with_hysteresis() {
        // Plenty of bandwidth: q at once, h once the headroom held 3 s, f once the headroom
        // for it held 3 s from the next run (the 2 s between steps is then spent too).
        run(
            &[CAMERA],
            &[
                (0, 5000, &[Q]),
                (2500, 5000, &[Q]),
                (3000, 5000, &[H]),
                (6000, 5000, &[H]),
                (6500, 5000, &[F]),
                (20_000, 5000, &[F]),
            ],
        );
    }

    #[test]
    fn a_lower_layer_measured_dearer_than_the_next_does_not_break_the_climb() {
        // As Firefox sends: its quarter layer at 1.2 Mbit/s, above its half layer. This once
        // overflowed (a panic that took the media worker down).
        let odd = Video {
            layers: [Some(1200 * KBPS), Some(500 * KBPS), Some(1500 * KBPS)],
            ..CAMERA
        };
        run(
            &[odd],
            &[
                (0, 5000, &[Q]),
                (3000, 5000, &[H]),
                (6000, 5000, &[H]),
                (6500, 5000, &[F]),
            ],
        );
    }

    #[test]
    fn down_is_at_once_and_as_far_as_needed() {
        let c = run(
            &[CAMERA],
            &[
                (0, 5000, &[Q]),
                (6500, 5000, &[F]),
                // 90 % of 600 less 50 of audio is 490: h (500) does not fit, q does, in one go.
                (6600, 600, &[Q]),
            ],
        );
        assert_eq!(c[2][0].reason, Reason::Bandwidth);
        assert_eq!(c[1][0].reason, Reason::Display);
    }

    #[test]
    fn no_step_up_within_five_seconds_of_a_step_down() {
        run(
            &[CAMERA],
            &[
                (0, 5000, &[Q]),
                (3000, 5000, &[H]),
                (3100, 400, &[Q]),
                // The estimate is back at once; the headroom holds from 3.5 s, but the link
                // went down at 3.1 s: nothing before 8.1 s.
                (3500, 5000, &[Q]),
                (8000, 5000, &[Q]),
                (8500, 5000, &[H]),
            ],
        );
    }

    #[test]
    fn below_the_lowest_layer_video_pauses_and_resumes_with_a_wider_margin() {
        let c = run(
            &[CAMERA],
            &[
                (0, 1000, &[Q]),
                // The estimate falls below what q and audio take (200): 90 % of 180 less 50
                // is 112, not even q (150). Paused once that lasted 1 s.
                (6000, 180, &[Q]),
                (6500, 180, &[Q]),
                (7000, 180, &[None]),
                // Budget 220: q would fit, but resuming needs 1.5 × 150 = 225.
                (12_000, 300, &[None]),
                (17_000, 300, &[None]),
                // Budget 310 from 17.5 s: resumed once that held 3 s.
                (17_500, 400, &[None]),
                (20_000, 400, &[None]),
                (20_500, 400, &[Q]),
            ],
        );
        assert_eq!(
            c[3][0],
            Choice {
                layer: None,
                reason: Reason::Bandwidth
            }
        );
    }

    #[test]
    fn a_young_or_application_limited_estimate_pauses_nothing() {
        // What browsers on loopback showed (SIMULCAST.md §9, §10): the estimate starts at 300,
        // dips to 200 in the first second and stays there while nothing more is sent. Two
        // cameras at q (300) and audio (50) are over its budget (130), but nothing says the
        // link cannot carry them: both keep q, held there for bandwidth.
        let c = run(
            &[CAMERA, CAMERA],
            &[
                (0, 300, &[Q, Q]),
                (500, 200, &[Q, Q]),
                (1500, 200, &[Q, Q]),
                (5000, 200, &[Q, Q]),
                (30_000, 200, &[Q, Q]),
                // Carried, the estimate grows (str0m's may reach 1.5 × what is sent, and
                // probes find more): both climb.
                (30_500, 600, &[Q, Q]),
                (33_500, 2000, &[Q, Q]),
                (36_500, 2000, &[H, H]),
            ],
        );
        assert!(
            c[4].iter().all(|c| c.reason == Reason::Bandwidth),
            "{:?}",
            c[4]
        );
    }

    #[test]
    fn a_fall_without_loss_pauses_nothing() {
        // What a loaded host showed on loopback (SIMULCAST.md §10): the estimate falls far
        // below what is sent, nothing is lost. Held at q, never paused.
        let c = run_with_loss(
            &[CAMERA, CAMERA],
            Some(0.0),
            &[
                (0, 1000, &[Q, Q]),
                (6000, 120, &[Q, Q]),
                (9000, 60, &[Q, Q]),
                (30_000, 60, &[Q, Q]),
            ],
        );
        assert!(c[3].iter().all(|c| c.reason == Reason::Bandwidth));
        // Nor does loss without a fall: a link that loses a little at random, wide enough.
        run_with_loss(
            &[CAMERA],
            Some(0.2),
            &[(0, 400, &[Q]), (6000, 400, &[Q]), (30_000, 400, &[Q])],
        );
        // Loss while the estimate falls below what is sent: congestion, paused after 1 s.
        run_with_loss(
            &[CAMERA],
            Some(0.1),
            &[(0, 400, &[Q]), (6000, 150, &[Q]), (7000, 150, &[None])],
        );
    }

    #[test]
    fn only_a_fall_below_what_is_sent_allows_a_pause() {
        // q and audio take 200 (400 leaves no room to climb).
        run(
            &[CAMERA],
            &[
                (0, 400, &[Q]),
                // Fallen, but still above what is sent: q is over the budget (139), no pause.
                (6000, 210, &[Q]),
                (7000, 210, &[Q]),
                (10_000, 210, &[Q]),
                // Below what is sent: congestion. Paused once short for 1 s.
                (10_500, 190, &[Q]),
                (11_000, 190, &[Q]),
                (11_500, 190, &[None]),
            ],
        );
        // A fall below what is sent while the estimate is young is no evidence.
        run(
            &[CAMERA],
            &[(0, 1000, &[Q]), (500, 150, &[Q]), (4500, 150, &[Q])],
        );
        // Evidence lasts EVIDENCE_FOR: a shortfall that starts later pauses nothing.
        let t0 = Instant::now();
        let mut memory = [Memory::default()];
        let mut link = LinkMemory::default();
        let mut layer_at = |secs: u64, kbps: u64, audio: u64| {
            allocate(
                t0 + Duration::from_secs(secs),
                Link {
                    estimate: Some(kbps * KBPS),
                    audio: audio * KBPS,
                    loss: Some(LOSSY),
                },
                &[CAMERA],
                &mut memory,
                &mut link,
            )
            .0[0]
                .layer
        };
        assert_eq!(layer_at(0, 1000, 50), Q);
        // Below what is sent (200), but q still fits the budget (162).
        assert_eq!(layer_at(6, 180, 0), Q);
        // Eleven seconds on, the audio costs more and q no longer fits: no new evidence.
        assert_eq!(layer_at(17, 180, 50), Q);
        assert_eq!(layer_at(19, 180, 50), Q);
    }

    #[test]
    fn a_held_back_video_asks_for_a_probe_again() {
        let t0 = Instant::now();
        let mut memory = [Memory::default()];
        let mut link = LinkMemory::default();
        let mut desired = Vec::new();
        for ms in (0..=7000).step_by(500) {
            let (_, probe) = allocate(
                t0 + Duration::from_millis(ms),
                Link {
                    estimate: Some(300 * KBPS),
                    audio: AUDIO,
                    loss: Some(LOSSY),
                },
                &[CAMERA],
                &mut memory,
                &mut link,
            );
            desired.push((ms, probe.map(|p| p.desired)));
        }
        // Held at q: every 3 s the desired rate is lowered for one run, so that the next run
        // raises it (a probe).
        let best = estimate_for(1500 * KBPS, AUDIO);
        for (ms, d) in desired {
            let dip = ms == 3000 || ms == 6000;
            assert_eq!(
                d,
                Some(if dip { best - ASK_AGAIN_DIP } else { best }),
                "at {ms} ms"
            );
        }
        // Paused (a fall below what is sent, at 6 s), nothing is asked again either: str0m
        // probes an application-limited link by itself.
        let mut memory = [Memory::default()];
        let mut link = LinkMemory::default();
        for ms in (0..=15_000).step_by(500) {
            let (c, probe) = allocate(
                t0 + Duration::from_millis(ms),
                Link {
                    estimate: Some(if ms < 6000 { 300 } else { 100 } * KBPS),
                    audio: AUDIO,
                    loss: Some(LOSSY),
                },
                &[CAMERA],
                &mut memory,
                &mut link,
            );
            if ms >= 7000 {
                assert_eq!(c[0].layer, None, "at {ms} ms");
                assert_eq!(probe.map(|p| p.desired), Some(best), "at {ms} ms");
            }
        }
        // At its best, nothing is asked again.
        let mut memory = [Memory::default()];
        let mut link = LinkMemory::default();
        let thumbnail = Video {
            shown: Shown::of(160, 90),
            ..CAMERA
        };
        for ms in (0..=7000).step_by(500) {
            let (c, probe) = allocate(
                t0 + Duration::from_millis(ms),
                Link {
                    estimate: Some(300 * KBPS),
                    audio: AUDIO,
                    loss: Some(LOSSY),
                },
                &[thumbnail],
                &mut memory,
                &mut link,
            );
            assert_eq!(c[0].layer, Q);
            assert_eq!(
                probe.map(|p| p.desired),
                Some(estimate_for(150 * KBPS, AUDIO))
            );
        }
    }

    #[test]
    fn an_estimate_that_reaches_the_desired_rate_takes_every_video_to_its_best() {
        // As str0m's estimator does on a free link: it probes up to the desired rate and
        // settles there (an application-limited estimate rises no further on its own).
        let tile = |width, height| Video {
            shown: Shown::of(width, height),
            ..CAMERA
        };
        /// A minute of allocations from 300 kbit/s: following the desired rate (`None`) or
        /// at a fixed estimate. The last choice's layers, and the estimate at the end.
        fn settle(videos: &[Video], fixed: Option<u64>) -> (Vec<Option<Layer>>, u64) {
            let t0 = Instant::now();
            let mut memory = vec![Memory::default(); videos.len()];
            let mut link = LinkMemory::default();
            let mut estimate = fixed.unwrap_or(300 * KBPS);
            let mut last = Vec::new();
            for ms in (0..=60_000).step_by(500) {
                let (c, probe) = allocate(
                    t0 + Duration::from_millis(ms),
                    Link {
                        estimate: Some(estimate),
                        audio: AUDIO,
                        loss: Some(0.0),
                    },
                    videos,
                    &mut memory,
                    &mut link,
                );
                if fixed.is_none() {
                    estimate = estimate.max(probe.expect("estimated").desired);
                }
                last = c.iter().map(|c| c.layer).collect();
            }
            (last, estimate)
        }
        for videos in [
            vec![CAMERA],
            vec![tile(640, 360), tile(1280, 720), SCREEN],
            vec![tile(640, 360), tile(640, 360)],
        ] {
            let best: Vec<_> = videos
                .iter()
                .map(|v| Ladder::of(v).top().map(|t| Ladder::of(v).rungs[t].0))
                .collect();
            let (got, estimate) = settle(&videos, None);
            assert_eq!(got, best, "at an estimate of {estimate} bit/s");
            // And not a step more than needed: just below it, the last step is not taken.
            let (got, _) = settle(&videos, Some(estimate - 100));
            assert_ne!(got, best, "at {} bit/s", estimate - 100);
        }
    }

    #[test]
    fn the_screen_share_and_larger_tiles_come_first_and_pause_last() {
        let big = Video {
            shown: Shown::of(1280, 720),
            ..CAMERA
        };
        let small = Video {
            shown: Shown::of(640, 360),
            ..CAMERA
        };
        // Order given: small, big, screen. Ample at first: all reach their best (small's is h).
        let ample = 10_000;
        run(
            &[small, big, SCREEN],
            &[
                (0, ample, &[Q, Q, Q]),
                (3000, ample, &[H, H, Q]),
                (6500, ample, &[H, F, Q]),
                // Budget 2200 (90 % of 2500 less audio): screen 800 + big f 1500 = 2300 is too
                // much, so small goes down first (to q), then big (to h): 800 + 500 + 150.
                (6600, 2500, &[Q, H, Q]),
                // Budget 850: both cameras to q at once (1100 is still too much), then once
                // that lasted 1 s the small tile pauses first, then the big one; the screen
                // stays.
                (6700, 1000, &[Q, Q, Q]),
                (7700, 1000, &[None, None, Q]),
                // Budget 400: not even the screen, once that lasted 1 s.
                (7800, 500, &[None, None, Q]),
                (8800, 500, &[None, None, None]),
            ],
        );
    }

    #[test]
    fn the_more_important_video_steps_up_first_and_keeps_its_headroom() {
        let big = Video {
            shown: Shown::of(1280, 720),
            ..CAMERA
        };
        let small = Video {
            shown: Shown::of(320, 240),
            ..CAMERA
        };
        // Budget 1300 (90 % of 1500 less 50): both start on q (300). The big one's step to h
        // (+350 → 650, × 1.25 = 812) fits and is kept for it; the small one's would too, after
        // it (+350 → 1000, × 1.25 = 1250), so both step at 3 s.
        run(
            &[small, big],
            &[
                (0, 1500, &[Q, Q]),
                (3000, 1500, &[H, H]),
                // Big to f: +1000 → 2000 × 1.25 is beyond 1300. Nothing moves.
                (10_000, 1500, &[H, H]),
            ],
        );
        // With room for one step only (budget 940): the big one takes it.
        run(&[small, big], &[(0, 1100, &[Q, Q]), (3000, 1100, &[Q, H])]);
    }

    #[test]
    fn a_hidden_or_small_tile_gets_what_is_useful_whatever_the_link() {
        let hidden = Video {
            shown: Shown::of(0, 0),
            ..CAMERA
        };
        let thumbnail = Video {
            shown: Shown::of(160, 90),
            ..CAMERA
        };
        let c = run(
            &[hidden, thumbnail],
            &[(0, 5000, &[None, Q]), (20_000, 5000, &[None, Q])],
        );
        assert_eq!(c[1][0].reason, Reason::Hidden);
        assert_eq!(c[1][1].reason, Reason::Display, "q is all it needs");
    }

    #[test]
    fn an_unestimated_link_gets_the_best_useful_layer_at_once() {
        let t0 = Instant::now();
        let videos = [
            CAMERA,
            Video {
                shown: Shown::of(600, 300),
                ..CAMERA
            },
            Video { cap: Q, ..CAMERA },
            // The publisher sends only q and h (a small capture, a weak uplink).
            Video {
                layers: [Some(150 * KBPS), Some(500 * KBPS), None],
                ..CAMERA
            },
            Video {
                shown: Shown::Hidden,
                ..SCREEN
            },
        ];
        let mut memory = vec![Memory::default(); videos.len()];
        let (c, probe) = allocate(
            t0,
            Link {
                estimate: None,
                audio: AUDIO,
                loss: None,
            },
            &videos,
            &mut memory,
            &mut LinkMemory::default(),
        );
        let layers: Vec<_> = c.iter().map(|c| c.layer).collect();
        // The fourth gets f: the best arriving up to it, so h now and f once it arrives.
        assert_eq!(layers, [F, H, Q, F, None]);
        assert!(c[..4].iter().all(|c| c.reason == Reason::Display));
        assert_eq!(probe, None, "nothing to probe without an estimator");
    }

    #[test]
    fn the_probe_asks_for_the_next_step_and_the_best() {
        let t0 = Instant::now();
        let mut memory = [Memory::default()];
        let (_, probe) = allocate(
            t0,
            Link {
                estimate: Some(300 * KBPS),
                audio: AUDIO,
                loss: Some(LOSSY),
            },
            &[CAMERA],
            &mut memory,
            &mut LinkMemory::default(),
        );
        assert_eq!(
            probe,
            Some(Probe {
                minimum: (150 + 350 + 50) * KBPS,
                // 1500 × 1.25 + 50, over 90 %.
                desired: 2_138_900,
            })
        );
        // Paused: the minimum is the lowest layer, to find room to resume. (The estimate
        // falls below what is sent once it is no longer young: evidence of congestion.)
        let mut link = LinkMemory::default();
        for (after, kbps) in [(0, 300), (6, 100), (7, 100)] {
            allocate(
                t0 + Duration::from_secs(after),
                Link {
                    estimate: Some(kbps * KBPS),
                    audio: AUDIO,
                    loss: Some(LOSSY),
                },
                &[CAMERA],
                &mut memory,
                &mut link,
            );
        }
        let (c, probe) = allocate(
            t0 + Duration::from_secs(8),
            Link {
                estimate: Some(100 * KBPS),
                audio: AUDIO,
                loss: Some(LOSSY),
            },
            &[CAMERA],
            &mut memory,
            &mut link,
        );
        assert_eq!(c[0].layer, None);
        assert_eq!(probe.map(|p| p.minimum), Some((150 + 50) * KBPS));
    }
}
