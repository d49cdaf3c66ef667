//! One connection's pre-call network check over the media path (`crate::netcheck`), as the
//! protocol carries it: `net_check` starts one (only while waiting to be admitted, at most
//! [`MAX_CHECKS_PER_CONNECTION`] per connection, one at a time), `net_check_offer` and
//! `net_check_answer` set up its peer connection (twice: the second offer adds the echo of the
//! client's own media, for the download), `net_check_estimate` tells the server's estimate of
//! the download while it runs, and `net_check_ended` says it is gone:
//! stopped by the client (`net_check_stop`), out of time, ended by the admission (the call's own
//! connection takes over at once), or failed.
//!
//! Whether the connection is waiting is learnt from what the room tells it (`waiting`,
//! `admitted`), so the room is not asked and never waits on a check.

use std::sync::Arc;

use crate::metrics::{Metrics, NetCheckEnd};
use crate::netcheck::{
    CheckEvent, Ended, MAX_CHECKS_PER_CONNECTION, NetCheck, NetCheckError, NetChecks,
};
use crate::rooms::Notice;
use crate::sfu::AnswerError;

use super::protocol::{
    ErrorCode, IceServerView, MAX_DOWN_ESTIMATE_KBPS, PublishMidsView, ServerMessage,
};

/// A refused check: the code and the words the client gets, and whether it may be misuse
/// (and goes on the audit trail).
pub struct Refused {
    pub code: ErrorCode,
    pub text: String,
    pub audit: Option<&'static str>,
}

/// The connection's check, if one runs, and what it needs to know to allow one.
pub struct CheckSlot {
    check: Option<NetCheck>,
    waiting: bool,
    started: u32,
    metrics: Arc<Metrics>,
}

impl CheckSlot {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self {
            check: None,
            waiting: false,
            started: 0,
            metrics,
        }
    }

    /// The connection entered the waiting room (its join was answered `waiting`).
    pub fn entered_waiting(&mut self) {
        self.waiting = true;
    }

    /// Follows the room's word on where this connection stands; ends a check on admission
    /// (returning what to tell the client).
    pub fn on_notice(&mut self, notice: &Notice) -> Option<ServerMessage> {
        match notice {
            Notice::Waiting(_) => {
                self.waiting = true;
                None
            }
            Notice::Admitted(_) => {
                self.waiting = false;
                self.end(Ended::Admitted)
            }
            _ => None,
        }
    }

    /// `net_check`: starts one.
    pub async fn start(&mut self, checks: &NetChecks) -> Result<(), Refused> {
        if !self.waiting {
            // Not audited: a client's check crosses its admission in the ordinary course, and
            // a check gives nothing that someone in the room lacks (a media path to the server).
            return Err(Refused {
                code: ErrorCode::NotWaiting,
                text: "a network check is for someone waiting to be admitted".into(),
                audit: None,
            });
        }
        if self.check.is_some() {
            return Err(Refused {
                code: ErrorCode::NetCheckLimited,
                text: "a network check is already running on this connection".into(),
                audit: None,
            });
        }
        if self.started >= MAX_CHECKS_PER_CONNECTION {
            return Err(Refused {
                code: ErrorCode::NetCheckLimited,
                text: format!("at most {MAX_CHECKS_PER_CONNECTION} network checks per connection"),
                audit: Some("signaling_net_check_limited"),
            });
        }
        match checks.start().await {
            Ok(check) => {
                self.started += 1;
                self.check = Some(check);
                self.metrics.net_check_started();
                tracing::debug!(running = checks.running(), "network check started");
                Ok(())
            }
            Err(e @ NetCheckError::Busy) => Err(Refused {
                code: ErrorCode::NetCheckLimited,
                text: e.to_string(),
                audit: None,
            }),
            // Not the connection's fault, and not worth ending it over: the client goes on
            // without the figures.
            Err(e @ NetCheckError::Media(_)) => Err(Refused {
                code: ErrorCode::NetCheckLimited,
                text: e.to_string(),
                audit: None,
            }),
        }
    }

    /// `net_check_answer`.
    pub async fn answer(&mut self, offer_id: u64, sdp: &str) -> Result<(), Refused> {
        let Some(check) = self.check.as_mut() else {
            return Err(Refused {
                code: ErrorCode::StaleOffer,
                text: "no network check is running".into(),
                audit: None,
            });
        };
        check.answer(offer_id, sdp).await.map_err(|e| Refused {
            code: match e {
                AnswerError::Stale => ErrorCode::StaleOffer,
                // The worker is gone (a bad SDP fails the check later, as `failed`).
                AnswerError::BadSdp(_) => ErrorCode::NetCheckLimited,
            },
            text: e.to_string(),
            audit: None,
        })
    }

    /// `net_check_stop`: the client has measured. Nothing to say when none runs.
    pub fn stop(&mut self) -> Option<ServerMessage> {
        self.end(Ended::Done)
    }

    /// Ends the check, if one runs.
    fn end(&mut self, why: Ended) -> Option<ServerMessage> {
        // Dropping it takes it off the media worker.
        self.check.take()?;
        tracing::debug!(reason = why.as_str(), "network check ended");
        self.metrics.net_check_ended(match why {
            Ended::Done => NetCheckEnd::Done,
            Ended::Time => NetCheckEnd::Time,
            Ended::Admitted => NetCheckEnd::Admitted,
            Ended::Failed => NetCheckEnd::Failed,
        });
        Some(ServerMessage::NetCheckEnded {
            reason: why.as_str(),
        })
    }

    /// What the running check next has to say to its client: its offer, or its end (failed,
    /// or out of time). Pending while none runs.
    pub async fn next(&mut self) -> ServerMessage {
        loop {
            let Some(check) = self.check.as_mut() else {
                return std::future::pending().await;
            };
            let deadline = check.deadline();
            let event = tokio::select! {
                event = check.next() => event,
                _ = tokio::time::sleep_until(deadline) => {
                    return self.end(Ended::Time).expect("a check runs");
                }
            };
            match event {
                CheckEvent::Offer(offer) => {
                    return ServerMessage::NetCheckOffer {
                        offer_id: offer.offer_id,
                        sdp: offer.sdp,
                        publish_mids: PublishMidsView {
                            audio: offer.publish_mids.audio,
                            video: offer.publish_mids.video,
                            simulcast: false,
                        },
                        ice_servers: offer.ice_servers.iter().map(IceServerView::from).collect(),
                        seconds: offer.seconds,
                    };
                }
                CheckEvent::DownEstimate(bps) => {
                    return ServerMessage::NetCheckEstimate {
                        down_kbps: u32::try_from(bps / 1000)
                            .unwrap_or(u32::MAX)
                            .min(MAX_DOWN_ESTIMATE_KBPS),
                    };
                }
                CheckEvent::Connected => {
                    tracing::debug!("network check connected");
                }
                CheckEvent::AnswerFailed(_) | CheckEvent::Failed => {
                    return self.end(Ended::Failed).expect("a check runs");
                }
            }
        }
    }
}

impl Drop for CheckSlot {
    /// The connection closed with a check running (the check's own drop takes it off the
    /// worker).
    fn drop(&mut self) {
        if self.check.is_some() {
            self.metrics.net_check_ended(NetCheckEnd::Dropped);
        }
    }
}
