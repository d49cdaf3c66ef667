//! The buffer of server messages a signaling client keeps, and how a connection closed.

#![allow(dead_code)]

use super::*;

/// How the current signaling connection ended, if it did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CloseInfo {
    /// The socket is closed (close frame received, stream ended, error, or closed locally).
    pub closed: bool,
    /// Code of the server's close frame; 1005 for a close frame without a code; `None` when the
    /// connection ended without a close frame.
    pub code: Option<u16>,
    /// Reason text of the close frame.
    pub reason: String,
    /// Transport error that ended the connection, or "closed locally".
    pub error: Option<String>,
}

#[derive(Default)]
pub(crate) struct EventState {
    pub(crate) queue: VecDeque<Value>,
    pub(crate) history: VecDeque<Value>,
    pub(crate) dropped: u64,
    pub(crate) close: CloseInfo,
    /// Which connection `close` describes (a resume starts a new one on the same buffer).
    pub(crate) generation: u64,
}

/// Every server message, in order; consumers take messages out by type.
pub(crate) struct EventBuffer {
    pub(crate) state: Mutex<EventState>,
    pub(crate) version: watch::Sender<u64>,
}

impl EventBuffer {
    pub(crate) fn new() -> Arc<Self> {
        let (version, _) = watch::channel(0u64);
        Arc::new(Self {
            state: Mutex::new(EventState::default()),
            version,
        })
    }

    pub(crate) fn bump(&self) {
        self.version.send_modify(|v| *v = v.wrapping_add(1));
    }

    pub(crate) fn push(&self, msg: Value) {
        {
            let mut st = lock(&self.state);
            if st.queue.len() >= MAX_QUEUED_MESSAGES {
                st.queue.pop_front();
                st.dropped += 1;
            }
            if st.history.len() >= MAX_HISTORY {
                st.history.pop_front();
            }
            st.history.push_back(msg.clone());
            st.queue.push_back(msg);
        }
        self.bump();
    }

    /// Records the end of connection `generation` (ignored if a newer connection started); the
    /// first record wins, except that a close code fills in a record that lacked one.
    pub(crate) fn set_closed(
        &self,
        generation: u64,
        code: Option<u16>,
        reason: String,
        error: Option<String>,
    ) {
        {
            let mut st = lock(&self.state);
            if st.generation != generation {
                return;
            }
            if !st.close.closed {
                st.close = CloseInfo {
                    closed: true,
                    code,
                    reason,
                    error,
                };
            } else if st.close.code.is_none() && code.is_some() {
                st.close.code = code;
                st.close.reason = reason;
            }
        }
        self.bump();
    }

    /// A new connection starts: forget the previous connection's close; returns its generation.
    pub(crate) fn begin_connection(&self) -> u64 {
        let generation = {
            let mut st = lock(&self.state);
            st.generation += 1;
            st.close = CloseInfo::default();
            st.generation
        };
        self.bump();
        generation
    }

    pub(crate) fn close_info(&self) -> CloseInfo {
        lock(&self.state).close.clone()
    }

    pub(crate) fn history(&self) -> Vec<Value> {
        lock(&self.state).history.iter().cloned().collect()
    }

    pub(crate) fn pending(&self) -> Vec<Value> {
        lock(&self.state).queue.iter().cloned().collect()
    }

    /// Takes the first queued message matching `pred`, waiting up to `timeout`. Fails at once
    /// when the connection is closed and no queued message matches.
    pub(crate) async fn take<F>(&self, what: &str, timeout: Duration, pred: F) -> Result<Value>
    where
        F: Fn(&Value) -> bool,
    {
        let deadline = Instant::now() + timeout;
        let mut rx = self.version.subscribe();
        loop {
            {
                let mut st = lock(&self.state);
                if let Some(pos) = st.queue.iter().position(&pred)
                    && let Some(msg) = st.queue.remove(pos)
                {
                    return Ok(msg);
                }
                if st.close.closed {
                    bail!(
                        "signaling connection closed (close code {:?}, reason {:?}, error {:?}) \
                         while waiting for {what}; unconsumed messages: {}",
                        st.close.code,
                        st.close.reason,
                        st.close.error,
                        summarize(&st.queue)
                    );
                }
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => bail!("message buffer dropped while waiting for {what}"),
                Err(_) => {
                    let st = lock(&self.state);
                    bail!(
                        "timed out after {timeout:?} waiting for {what}; unconsumed messages: {}",
                        summarize(&st.queue)
                    );
                }
            }
        }
    }

    pub(crate) async fn wait_closed(&self, timeout: Duration) -> Result<CloseInfo> {
        let deadline = Instant::now() + timeout;
        let mut rx = self.version.subscribe();
        loop {
            let info = self.close_info();
            if info.closed {
                return Ok(info);
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => bail!("message buffer dropped while waiting for the socket to close"),
                Err(_) => {
                    bail!("timed out after {timeout:?} waiting for the server to close the socket")
                }
            }
        }
    }
}

/// Short description of queued messages for error texts: their types (and error codes).
pub(crate) fn summarize(queue: &VecDeque<Value>) -> String {
    let items: Vec<String> = queue
        .iter()
        .take(20)
        .map(|m| {
            let t = msg_type(m).unwrap_or("?");
            match m.get("code").and_then(Value::as_str) {
                Some(code) => format!("{t}({code})"),
                None => t.to_owned(),
            }
        })
        .collect();
    format!(
        "[{}]{}",
        items.join(", "),
        if queue.len() > 20 { " ..." } else { "" }
    )
}

/// The `type` field of a message.
pub fn msg_type(msg: &Value) -> Option<&str> {
    msg.get("type").and_then(Value::as_str)
}
