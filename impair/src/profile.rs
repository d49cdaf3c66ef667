//! What a path does to packets: the settings of one direction of a link ([`Profile`]), and their
//! text form (`loss=10%,jitter=30ms`), which the binary's flags and control lines use.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// Longest base delay plus jitter: a packet is held at most this long, which bounds the memory
/// the proxy holds per client (with [`crate::relay::MAX_IN_FLIGHT`]).
pub const MAX_HOLD: Duration = Duration::from_secs(10);
/// Bounds on a rate cap, in bits per second.
pub const RATE_BPS: std::ops::RangeInclusive<u64> = 8_000..=100_000_000_000;
/// Bounds on the queue in front of a rate cap, in bytes: at least one full datagram.
pub const QUEUE_BYTES: std::ops::RangeInclusive<usize> = 1_500..=(64 << 20);
/// The queue in front of a rate cap when none is given: about 100 ms at 2.5 Mbit/s, a
/// plausible home router's buffer (short enough that a 300 kbit/s cap drops rather than
/// building seconds of delay).
pub const DEFAULT_QUEUE_BYTES: usize = 32_000;

/// How packets are lost, before anything else happens to them.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Loss {
    #[default]
    None,
    /// Each packet lost with probability `p`, independently of the others.
    Random { p: f64 },
    /// Losses in bursts: a two-state (Gilbert-Elliott) chain, one step per packet.
    Bursty(GilbertElliott),
}

/// A two-state Markov chain: in the good state packets are lost with `loss_good`, in the bad
/// state with `loss_bad`; before each packet the chain moves good→bad with `to_bad` and
/// bad→good with `to_good`. Mean burst length (in packets) is about `1 / to_good`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GilbertElliott {
    pub to_bad: f64,
    pub to_good: f64,
    pub loss_good: f64,
    pub loss_bad: f64,
}

impl GilbertElliott {
    /// The long-run share of packets lost.
    pub fn mean_loss(&self) -> f64 {
        let bad = self.to_bad / (self.to_bad + self.to_good);
        (1.0 - bad) * self.loss_good + bad * self.loss_bad
    }
}

/// One direction of a path. The default does nothing to packets.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Profile {
    pub loss: Loss,
    /// Added to every packet.
    pub delay: Duration,
    /// Up to this much more, uniformly drawn per packet.
    pub jitter: Duration,
    /// Whether jitter may reorder packets; without it a packet never overtakes an earlier one
    /// (it waits for it, as on one physical path).
    pub reorder: bool,
    /// Share of packets sent twice.
    pub duplicate: f64,
    /// A bandwidth cap, in bits per second, with a tail-drop queue of `queue_bytes` in front.
    pub rate_bps: Option<u64>,
    pub queue_bytes: usize,
    /// The path is down: every packet is dropped (a blackout until set otherwise).
    pub down: bool,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum SpecError {
    #[error(
        "unknown setting {0:?} (known: loss, ge, delay, jitter, reorder, dup, rate, queue, down, clean)"
    )]
    UnknownKey(String),
    #[error("{key} needs a value ({key}=...)")]
    MissingValue { key: String },
    #[error("{key}: {value:?} is not {expected}")]
    BadValue {
        key: String,
        value: String,
        expected: &'static str,
    },
    #[error("{key} must be between {min} and {max}")]
    OutOfRange {
        key: &'static str,
        min: String,
        max: String,
    },
}

impl Profile {
    /// Checks every setting against its bounds.
    pub fn validate(&self) -> Result<(), SpecError> {
        let unit = |key: &'static str, p: f64| {
            if (0.0..=1.0).contains(&p) {
                Ok(())
            } else {
                Err(SpecError::OutOfRange {
                    key,
                    min: "0".into(),
                    max: "1 (100%)".into(),
                })
            }
        };
        match self.loss {
            Loss::None => {}
            Loss::Random { p } => unit("loss", p)?,
            Loss::Bursty(ge) => {
                unit("ge", ge.to_bad)?;
                unit("ge", ge.to_good)?;
                unit("ge", ge.loss_good)?;
                unit("ge", ge.loss_bad)?;
                if ge.to_bad + ge.to_good == 0.0 {
                    return Err(SpecError::OutOfRange {
                        key: "ge",
                        min: "a chain that moves (to_bad + to_good > 0)".into(),
                        max: "1".into(),
                    });
                }
            }
        }
        unit("dup", self.duplicate)?;
        if self.delay + self.jitter > MAX_HOLD {
            return Err(SpecError::OutOfRange {
                key: "delay+jitter",
                min: "0".into(),
                max: format!("{MAX_HOLD:?}"),
            });
        }
        if let Some(r) = self.rate_bps
            && !RATE_BPS.contains(&r)
        {
            return Err(SpecError::OutOfRange {
                key: "rate",
                min: format!("{} bit/s", RATE_BPS.start()),
                max: format!("{} bit/s", RATE_BPS.end()),
            });
        }
        if self.rate_bps.is_some() && !QUEUE_BYTES.contains(&self.queue_bytes) {
            return Err(SpecError::OutOfRange {
                key: "queue",
                min: format!("{} bytes", QUEUE_BYTES.start()),
                max: format!("{} bytes", QUEUE_BYTES.end()),
            });
        }
        Ok(())
    }

    /// This profile with the settings of `spec` applied on top (a comma-separated list of
    /// `key=value` and flags; `clean` resets everything first). Validated.
    pub fn with_spec(mut self, spec: &str) -> Result<Self, SpecError> {
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (key, value) = match item.split_once('=') {
                Some((k, v)) => (k.trim(), Some(v.trim())),
                None => (item, None),
            };
            let need = || {
                value.ok_or_else(|| SpecError::MissingValue {
                    key: key.to_owned(),
                })
            };
            match key {
                "clean" => self = Profile::default(),
                "loss" => {
                    let p = probability(key, need()?)?;
                    self.loss = if p == 0.0 {
                        Loss::None
                    } else {
                        Loss::Random { p }
                    };
                }
                "ge" => self.loss = Loss::Bursty(gilbert_elliott(need()?)?),
                "delay" => self.delay = duration(key, need()?)?,
                "jitter" => self.jitter = duration(key, need()?)?,
                "reorder" => self.reorder = flag(key, value)?,
                "dup" => self.duplicate = probability(key, need()?)?,
                "rate" => {
                    let v = need()?;
                    self.rate_bps = if v == "off" {
                        None
                    } else {
                        Some(rate(key, v)?)
                    };
                    if self.queue_bytes == 0 {
                        self.queue_bytes = DEFAULT_QUEUE_BYTES;
                    }
                }
                "queue" => self.queue_bytes = bytes(key, need()?)?,
                "down" => self.down = flag(key, value)?,
                _ => return Err(SpecError::UnknownKey(key.to_owned())),
            }
        }
        self.validate()?;
        Ok(self)
    }
}

impl FromStr for Profile {
    type Err = SpecError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Profile::default().with_spec(s)
    }
}

impl fmt::Display for Profile {
    /// The spec that gives this profile (so a run's settings can be printed and replayed).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        match self.loss {
            Loss::None => {}
            Loss::Random { p } => parts.push(format!("loss={p}")),
            Loss::Bursty(g) => parts.push(format!(
                "ge={}/{}/{}/{}",
                g.to_bad, g.to_good, g.loss_good, g.loss_bad
            )),
        }
        if !self.delay.is_zero() {
            parts.push(format!("delay={}us", self.delay.as_micros()));
        }
        if !self.jitter.is_zero() {
            parts.push(format!("jitter={}us", self.jitter.as_micros()));
        }
        if self.reorder {
            parts.push("reorder".into());
        }
        if self.duplicate > 0.0 {
            parts.push(format!("dup={}", self.duplicate));
        }
        if let Some(r) = self.rate_bps {
            parts.push(format!("rate={r}"));
            parts.push(format!("queue={}", self.queue_bytes));
        }
        if self.down {
            parts.push("down".into());
        }
        if parts.is_empty() {
            parts.push("clean".into());
        }
        f.write_str(&parts.join(","))
    }
}

fn bad(key: &str, value: &str, expected: &'static str) -> SpecError {
    SpecError::BadValue {
        key: key.to_owned(),
        value: value.to_owned(),
        expected,
    }
}

fn flag(key: &str, value: Option<&str>) -> Result<bool, SpecError> {
    match value {
        None | Some("on" | "true" | "1") => Ok(true),
        Some("off" | "false" | "0") => Ok(false),
        Some(v) => Err(bad(key, v, "on or off")),
    }
}

/// `10%` or `0.1`.
fn probability(key: &str, v: &str) -> Result<f64, SpecError> {
    let expected = "a probability (0.1 or 10%)";
    let p = match v.strip_suffix('%') {
        Some(pct) => pct.trim().parse::<f64>().map(|x| x / 100.0),
        None => v.parse::<f64>(),
    }
    .map_err(|_| bad(key, v, expected))?;
    if p.is_finite() && (0.0..=1.0).contains(&p) {
        Ok(p)
    } else {
        Err(bad(key, v, expected))
    }
}

/// `to_bad/to_good` (loss 0 in the good state, 1 in the bad) or all four.
fn gilbert_elliott(v: &str) -> Result<GilbertElliott, SpecError> {
    let parts: Vec<&str> = v.split('/').collect();
    let p = |i: usize| probability("ge", parts[i]);
    match parts.len() {
        2 => Ok(GilbertElliott {
            to_bad: p(0)?,
            to_good: p(1)?,
            loss_good: 0.0,
            loss_bad: 1.0,
        }),
        4 => Ok(GilbertElliott {
            to_bad: p(0)?,
            to_good: p(1)?,
            loss_good: p(2)?,
            loss_bad: p(3)?,
        }),
        _ => Err(bad(
            "ge",
            v,
            "to_bad/to_good or to_bad/to_good/loss_good/loss_bad",
        )),
    }
}

/// `30ms`, `1.5s`, `500us`, at most [`MAX_HOLD`].
fn duration(key: &str, v: &str) -> Result<Duration, SpecError> {
    parse_duration(key, v, MAX_HOLD)
}

/// `30ms`, `1.5s`, `500us`, at most `max` (the binary's `blackout 3s` uses it too).
pub fn parse_duration(key: &str, v: &str, max: Duration) -> Result<Duration, SpecError> {
    let expected = "a duration (30ms, 1.5s, 500us)";
    let (num, scale) = if let Some(n) = v.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = v.strip_suffix("us") {
        (n, 1e-6)
    } else if let Some(n) = v.strip_suffix('s') {
        (n, 1.0)
    } else {
        return Err(bad(key, v, expected));
    };
    let x: f64 = num.trim().parse().map_err(|_| bad(key, v, expected))?;
    if !x.is_finite() || x < 0.0 || x * scale > max.as_secs_f64() {
        return Err(bad(key, v, expected));
    }
    Ok(Duration::from_secs_f64(x * scale))
}

/// `300kbit`, `2mbit`, `64000` (bits per second).
fn rate(key: &str, v: &str) -> Result<u64, SpecError> {
    let expected = "a rate (300kbit, 2mbit, 64000)";
    let lower = v.to_ascii_lowercase();
    let (num, scale) = if let Some(n) = lower.strip_suffix("gbit") {
        (n.to_owned(), 1e9)
    } else if let Some(n) = lower.strip_suffix("mbit") {
        (n.to_owned(), 1e6)
    } else if let Some(n) = lower.strip_suffix("kbit") {
        (n.to_owned(), 1e3)
    } else {
        (lower.strip_suffix("bit").unwrap_or(&lower).to_owned(), 1.0)
    };
    let x: f64 = num.trim().parse().map_err(|_| bad(key, v, expected))?;
    let bps = x * scale;
    if !bps.is_finite() || bps < 0.0 || bps > u64::MAX as f64 {
        return Err(bad(key, v, expected));
    }
    Ok(bps.round() as u64)
}

/// `32000` or `32kB` (bytes).
fn bytes(key: &str, v: &str) -> Result<usize, SpecError> {
    let expected = "a size in bytes (32000 or 32kB)";
    let (num, scale) = match v.strip_suffix("kB") {
        Some(n) => (n, 1000),
        None => (v, 1),
    };
    num.trim()
        .parse::<usize>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .ok_or_else(|| bad(key, v, expected))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spec_sets_what_it_names() {
        let p: Profile = "loss=10%,jitter=30ms,delay=20ms,reorder,dup=0.5%,rate=300kbit,queue=20kB"
            .parse()
            .unwrap();
        assert_eq!(p.loss, Loss::Random { p: 0.1 });
        assert_eq!(p.jitter, Duration::from_millis(30));
        assert_eq!(p.delay, Duration::from_millis(20));
        assert!(p.reorder);
        assert!((p.duplicate - 0.005).abs() < 1e-12);
        assert_eq!(p.rate_bps, Some(300_000));
        assert_eq!(p.queue_bytes, 20_000);
        assert!(!p.down);
        // Printed, it reads back as itself.
        assert_eq!(p.to_string().parse::<Profile>().unwrap(), p);
    }

    #[test]
    fn specs_apply_on_top_and_clean_resets() {
        let p: Profile = "loss=5%".parse().unwrap();
        let p = p.with_spec("down").unwrap();
        assert_eq!(p.loss, Loss::Random { p: 0.05 });
        assert!(p.down);
        let p = p.with_spec("down=off,rate=1mbit").unwrap();
        assert!(!p.down);
        assert_eq!(p.queue_bytes, DEFAULT_QUEUE_BYTES);
        assert_eq!(p.with_spec("clean").unwrap(), Profile::default());
        assert_eq!("".parse::<Profile>().unwrap(), Profile::default());
        let ge: Profile = "ge=5%/50%".parse().unwrap();
        let Loss::Bursty(g) = ge.loss else {
            panic!("{ge:?}")
        };
        assert!((g.mean_loss() - 0.05 / 0.55).abs() < 1e-9);
    }

    #[test]
    fn bad_specs_are_typed_errors() {
        let cases = [
            ("lost=1%", "unknown"),
            ("loss", "needs a value"),
            ("loss=110%", "probability"),
            ("loss=abc", "probability"),
            ("jitter=30", "duration"),
            ("delay=-1ms", "duration"),
            ("delay=8s,jitter=3s", "delay+jitter"),
            ("rate=1bit", "rate must be"),
            ("rate=fast", "a rate"),
            ("rate=1mbit,queue=10", "queue must be"),
            ("ge=1/2/3", "to_bad/to_good"),
            ("ge=0/0", "moves"),
            ("reorder=maybe", "on or off"),
        ];
        for (spec, want) in cases {
            let err = spec.parse::<Profile>().unwrap_err().to_string();
            assert!(err.contains(want), "{spec}: {err}");
        }
    }
}
