//! `SignalingClient`: a bare WebSocket client speaking the protocol, without WebRTC.

#![allow(dead_code)]

use super::*;

pub(crate) enum WriterCmd {
    Send(Message, oneshot::Sender<Result<()>>),
}

/// A WebSocket connection to the server's `/ws` endpoint, without WebRTC.
///
/// Every server message is buffered; take them with [`next_event`](Self::next_event) (by type) or
/// [`next_message`](Self::next_message) (in order). Text frames that are not JSON are buffered as
/// `{"type":"__invalid_json__","raw":...}`, binary frames as `{"type":"__binary__","len":N}`.
/// Dropping the client drops the TCP connection without a close frame.
pub struct SignalingClient {
    pub(crate) events: Arc<EventBuffer>,
    pub(crate) generation: u64,
    pub(crate) cmd_tx: mpsc::Sender<WriterCmd>,
    pub(crate) reader: AbortHandle,
    pub(crate) writer: AbortHandle,
}

impl SignalingClient {
    /// Connects to `ws_url` (e.g. `wss://127.0.0.1:PORT/ws`), accepting any server certificate.
    pub async fn connect(ws_url: &str) -> Result<Self> {
        Self::connect_inner(ws_url, EventBuffer::new(), None).await
    }

    pub(crate) async fn connect_inner(
        ws_url: &str,
        events: Arc<EventBuffer>,
        offer_tap: Option<mpsc::Sender<Value>>,
    ) -> Result<Self> {
        let generation = events.begin_connection();
        let connected = async {
            let tls = insecure_tls_config()?;
            let (ws, _response) = tokio::time::timeout(
                CONNECT_TIMEOUT,
                tokio_tungstenite::connect_async_tls_with_config(
                    ws_url,
                    None,
                    true,
                    Some(Connector::Rustls(tls)),
                ),
            )
            .await
            .map_err(|_| anyhow!("timed out connecting to {ws_url}"))?
            .with_context(|| format!("WebSocket connect to {ws_url}"))?;
            anyhow::Ok(ws)
        }
        .await;
        let ws = match connected {
            Ok(ws) => ws,
            Err(e) => {
                events.set_closed(generation, None, String::new(), Some(format!("{e:#}")));
                return Err(e);
            }
        };
        let (mut sink, mut stream) = ws.split();

        let (cmd_tx, mut cmd_rx) = mpsc::channel::<WriterCmd>(WRITER_QUEUE);
        let writer = tokio::spawn(async move {
            while let Some(WriterCmd::Send(msg, ack)) = cmd_rx.recv().await {
                let result = sink.send(msg).await.context("WebSocket send");
                let _ = ack.send(result);
            }
        });

        let ev = Arc::clone(&events);
        let reader = tokio::spawn(async move {
            let mut error = None;
            while let Some(item) = stream.next().await {
                match item {
                    Ok(Message::Text(text)) => {
                        let msg = match serde_json::from_str::<Value>(text.as_str()) {
                            Ok(v) => v,
                            Err(_) => json!({"type": "__invalid_json__", "raw": text.as_str()}),
                        };
                        let is_offer = msg_type(&msg) == Some("offer");
                        ev.push(msg.clone());
                        if is_offer && let Some(tap) = &offer_tap {
                            // Bounded: back-pressure on the socket if offers pile up.
                            let _ = tap.send(msg).await;
                        }
                    }
                    Ok(Message::Binary(data)) => {
                        ev.push(json!({"type": "__binary__", "len": data.len()}));
                    }
                    Ok(Message::Close(frame)) => {
                        let (code, reason) = match frame {
                            Some(f) => (u16::from(f.code), f.reason.as_str().to_owned()),
                            None => (1005, String::new()),
                        };
                        ev.set_closed(generation, Some(code), reason, None);
                    }
                    Ok(_) => {} // ping/pong are answered by tungstenite
                    Err(e) => {
                        error = Some(e.to_string());
                        break;
                    }
                }
            }
            ev.set_closed(
                generation,
                None,
                String::new(),
                error.or_else(|| Some("stream ended".into())),
            );
        });

        Ok(Self {
            events,
            generation,
            cmd_tx,
            reader: reader.abort_handle(),
            writer: writer.abort_handle(),
        })
    }

    /// Sends one WebSocket message and waits until it is written.
    pub async fn send_message(&self, msg: Message) -> Result<()> {
        let (ack_tx, ack_rx) = oneshot::channel();
        self.cmd_tx
            .send(WriterCmd::Send(msg, ack_tx))
            .await
            .map_err(|_| anyhow!("signaling socket writer has stopped"))?;
        tokio::time::timeout(SEND_TIMEOUT, ack_rx)
            .await
            .map_err(|_| anyhow!("timed out writing to the signaling socket"))?
            .map_err(|_| anyhow!("signaling socket writer has stopped"))?
    }

    /// Sends `text` as one text frame, as is (for malformed-message tests).
    pub async fn send_raw(&self, text: &str) -> Result<()> {
        self.send_message(Message::text(text.to_owned())).await
    }

    /// Sends `msg` serialized as one text frame.
    pub async fn send_json(&self, msg: &Value) -> Result<()> {
        self.send_raw(&msg.to_string()).await
    }

    /// Sends one binary frame (a protocol violation: the server closes with 1003).
    pub async fn send_binary(&self, data: Vec<u8>) -> Result<()> {
        self.send_message(Message::binary(data)).await
    }

    /// Sends a close frame with `code` (client-initiated close handshake).
    pub async fn send_close(&self, code: u16) -> Result<()> {
        let frame = CloseFrame {
            code: CloseCode::from(code),
            reason: "".into(),
        };
        self.send_message(Message::Close(Some(frame))).await
    }

    /// Sends `join` with protocol version 1 and waits for `joined`. A server `error` instead is
    /// returned as an `Err` naming its code.
    pub async fn join(&self, token: &str, name: &str, audio: bool, video: bool) -> Result<Value> {
        self.send_json(&join_message(token, name, audio, video, None))
            .await?;
        self.expect_reply("joined").await
    }

    /// A page reload: sends `join` on this (new) socket naming `welcome`'s resume token as the
    /// participant it `replaces`, and waits for `joined` (an `error` becomes an `Err`).
    pub async fn rejoin(
        &self,
        token: &str,
        name: &str,
        audio: bool,
        video: bool,
        welcome: &Value,
    ) -> Result<Value> {
        let replaces = welcome["resume_token"].as_str();
        self.send_json(&join_message(token, name, audio, video, replaces))
            .await?;
        self.expect_reply("joined").await
    }

    /// Sends `resume` and waits for `resumed` (an `error` becomes an `Err`).
    pub async fn resume(&self, resume_token: &str) -> Result<Value> {
        self.send_json(&json!({"type": "resume", "v": 1, "resume_token": resume_token}))
            .await?;
        self.expect_reply("resumed").await
    }

    pub(crate) async fn expect_reply(&self, want: &str) -> Result<Value> {
        let msg = self.next_event_of(&[want, "error"], JOIN_TIMEOUT).await?;
        if msg_type(&msg) == Some("error") {
            bail!("server answered error instead of {want}: {msg}");
        }
        Ok(msg)
    }

    /// Takes the first buffered (or next arriving) message whose `type` is `type_name`. Other
    /// messages stay buffered. Fails on timeout, or when the socket closed with no such message
    /// buffered.
    pub async fn next_event(&self, type_name: &str, timeout: Duration) -> Result<Value> {
        self.events
            .take(&format!("a {type_name:?} message"), timeout, |m| {
                msg_type(m) == Some(type_name)
            })
            .await
    }

    /// The first message of `type_name` that `pred` accepts; the others of that type before it
    /// are taken too (they were not it).
    pub async fn next_event_where(
        &self,
        type_name: &str,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Result<Value> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let msg = self.next_event(type_name, left).await?;
            if pred(&msg) {
                return Ok(msg);
            }
        }
    }

    /// Like [`next_event`](Self::next_event) for any of several types.
    pub async fn next_event_of(&self, types: &[&str], timeout: Duration) -> Result<Value> {
        self.events
            .take(&format!("one of {types:?}"), timeout, |m| {
                msg_type(m).is_some_and(|t| types.contains(&t))
            })
            .await
    }

    /// Takes the next `error` message and checks its `code`; returns the whole message.
    pub async fn expect_error(&self, code: &str, timeout: Duration) -> Result<Value> {
        let msg = self.next_event("error", timeout).await?;
        let got = msg.get("code").and_then(Value::as_str).unwrap_or("");
        if got != code {
            bail!("expected error code {code:?}, got {msg}");
        }
        Ok(msg)
    }

    /// Takes the oldest buffered message of any type.
    pub async fn next_message(&self, timeout: Duration) -> Result<Value> {
        self.events.take("any message", timeout, |_| true).await
    }

    /// Every message received so far (bounded), consumed or not.
    pub fn history(&self) -> Vec<Value> {
        self.events.history()
    }

    /// Messages received and not yet taken.
    pub fn pending(&self) -> Vec<Value> {
        self.events.pending()
    }

    /// The server's close code, once the server has closed the socket.
    pub fn close_code(&self) -> Option<u16> {
        self.events.close_info().code
    }

    /// Whether the socket is closed.
    pub fn is_closed(&self) -> bool {
        self.events.close_info().closed
    }

    /// Full close details.
    pub fn close_info(&self) -> CloseInfo {
        self.events.close_info()
    }

    /// Waits until the socket is closed; returns the server's close code (if it sent one).
    pub async fn wait_closed(&self, timeout: Duration) -> Result<Option<u16>> {
        Ok(self.events.wait_closed(timeout).await?.code)
    }

    /// Drops the TCP connection at once, without `leave` and without a close frame.
    pub fn abort(&self) {
        self.reader.abort();
        self.writer.abort();
        self.events.set_closed(
            self.generation,
            None,
            String::new(),
            Some("closed locally".into()),
        );
    }
}

impl Drop for SignalingClient {
    fn drop(&mut self) {
        self.reader.abort();
        self.writer.abort();
    }
}

/// A protocol-version-1 `join` message.
pub fn join_message(
    token: &str,
    name: &str,
    audio: bool,
    video: bool,
    replaces: Option<&str>,
) -> Value {
    let mut msg = json!({
        "type": "join",
        "v": 1,
        "token": token,
        "name": name,
        "publish": {"audio": audio, "video": video},
    });
    if let (Some(r), Some(obj)) = (replaces, msg.as_object_mut()) {
        obj.insert("replaces".into(), Value::String(r.to_owned()));
    }
    msg
}
