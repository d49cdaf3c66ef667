//! `TestPeer`: a full participant with a webrtc-rs peer connection that publishes and receives.

#![allow(dead_code)]

use super::*;

use webrtc::peer_connection::policy::ice_transport_policy::RTCIceTransportPolicy;

/// How a [`TestPeer`] joins.
#[derive(Debug, Clone)]
pub struct JoinOptions {
    /// `wss://127.0.0.1:PORT/ws`
    pub ws_url: String,
    /// Invite token.
    pub token: String,
    /// Display name.
    pub name: String,
    /// `publish.audio` in `join`; also whether an Opus track is added and sent.
    pub publish_audio: bool,
    /// `publish.video` in `join`; also whether a VP8 track is added and sent.
    pub publish_video: bool,
    /// Byte embedded in every published packet (must not be 0x00; give each peer its own).
    pub marker: u8,
    /// Publish H.264 (constrained baseline, packetization-mode 1, as Safari does) instead of VP8.
    pub h264: bool,
}

pub(crate) struct Shared {
    pub(crate) events: Arc<EventBuffer>,
    pub(crate) signaling: Mutex<Option<Arc<SignalingClient>>>,
    /// Every MID ever announced in an offer's `tracks`, to the latest owner.
    pub(crate) mids: Mutex<HashMap<String, TrackKey>>,
    /// Tracks of the latest offer (not stopped).
    pub(crate) active: Mutex<Vec<OfferedTrack>>,
    pub(crate) recv: Mutex<HashMap<TrackKey, ReceivedStats>>,
    /// Reader and RTCP tasks (bounded by the number of tracks).
    pub(crate) tasks: Mutex<Vec<AbortHandle>>,
    pub(crate) answered: watch::Sender<u64>,
    pub(crate) offer_errors: Mutex<Vec<String>>,
    pub(crate) conn_state: watch::Sender<RTCPeerConnectionState>,
    pub(crate) resume_token: Mutex<Option<String>>,
    pub(crate) sent_audio: AtomicU64,
    pub(crate) sent_video: AtomicU64,
    pub(crate) send_errors: AtomicU64,
    pub(crate) rtcp: Mutex<RtcpStats>,
    /// Where this peer sends its media instead of the server's candidates (see
    /// [`TestPeer::join_via`]).
    pub(crate) media_via: Mutex<Option<std::net::SocketAddr>>,
    /// The screen share's publisher while [`TestPeer::share_screen`] runs.
    pub(crate) screen: Mutex<Option<AbortHandle>>,
    /// Joined with `publish.simulcast` ([`TestPeer::join_simulcast`]): answers are cleaned of
    /// webrtc-rs's repeated rid lines.
    pub(crate) simulcast: AtomicBool,
    /// The camera's simulcast layers, lowest first, when it publishes in layers.
    pub(crate) layers: Mutex<Vec<Arc<TrackLocalStaticRTP>>>,
}

impl Shared {
    pub(crate) fn new() -> Arc<Self> {
        let (answered, _) = watch::channel(0u64);
        let (conn_state, _) = watch::channel(RTCPeerConnectionState::New);
        Arc::new(Shared {
            events: EventBuffer::new(),
            signaling: Mutex::new(None),
            mids: Mutex::new(HashMap::new()),
            active: Mutex::new(Vec::new()),
            recv: Mutex::new(HashMap::new()),
            tasks: Mutex::new(Vec::new()),
            answered,
            offer_errors: Mutex::new(Vec::new()),
            conn_state,
            resume_token: Mutex::new(None),
            sent_audio: AtomicU64::new(0),
            sent_video: AtomicU64::new(0),
            send_errors: AtomicU64::new(0),
            rtcp: Mutex::new(RtcpStats::default()),
            media_via: Mutex::new(None),
            screen: Mutex::new(None),
            simulcast: AtomicBool::new(false),
            layers: Mutex::new(Vec::new()),
        })
    }

    pub(crate) fn current_signaling(&self) -> Option<Arc<SignalingClient>> {
        lock(&self.signaling).clone()
    }

    pub(crate) fn register_task(&self, handle: AbortHandle) {
        let mut tasks = lock(&self.tasks);
        tasks.retain(|h| !h.is_finished());
        tasks.push(handle);
    }

    pub(crate) fn push_offer_error(&self, err: String) {
        let mut errs = lock(&self.offer_errors);
        if errs.len() >= MAX_OFFER_ERRORS {
            errs.remove(0);
        }
        errs.push(err);
    }

    /// Applies an offer's `tracks` before its SDP is applied, so `on_track` finds the owners.
    pub(crate) fn apply_offer_tracks(&self, tracks: Vec<OfferedTrack>, stopped: &HashSet<String>) {
        let live: Vec<OfferedTrack> = tracks
            .into_iter()
            .filter(|t| !stopped.contains(&t.mid))
            .collect();
        let live_keys: HashSet<TrackKey> = live
            .iter()
            .map(|t| (t.participant_id.clone(), t.kind.clone()))
            .collect();
        {
            let mut mids = lock(&self.mids);
            for t in &live {
                mids.insert(t.mid.clone(), (t.participant_id.clone(), t.kind.clone()));
            }
        }
        let previous = std::mem::replace(&mut *lock(&self.active), live);
        let mut recv = lock(&self.recv);
        for t in previous {
            let key = (t.participant_id, t.kind);
            if !live_keys.contains(&key) {
                let entry = recv.entry(key).or_default();
                entry.mline_stopped = true;
                entry.ended = true;
            }
        }
        for key in live_keys {
            recv.entry(key).or_default();
        }
    }

    pub(crate) fn key_for_mid(&self, mid: Option<&str>, kind: &str) -> TrackKey {
        let found = mid.and_then(|m| lock(&self.mids).get(m).cloned());
        found.unwrap_or_else(|| {
            (
                format!("unknown-mid:{}", mid.unwrap_or("none")),
                kind.to_owned(),
            )
        })
    }

    pub(crate) fn reader_started(&self, key: &TrackKey, mid: Option<String>, mime: String) {
        let mut recv = lock(&self.recv);
        let entry = recv.entry(key.clone()).or_default();
        entry.active_readers += 1;
        entry.tracks_started += 1;
        entry.mid = mid;
        entry.mime_type = Some(mime);
        if !entry.mline_stopped {
            entry.ended = false;
        }
    }

    pub(crate) fn reader_ended(&self, key: &TrackKey, reason: String) {
        let mut recv = lock(&self.recv);
        let entry = recv.entry(key.clone()).or_default();
        entry.end_reason = Some(reason);
        entry.active_readers = entry.active_readers.saturating_sub(1);
        if entry.active_readers == 0 {
            entry.ended = true;
        }
    }

    pub(crate) fn record_packet(&self, key: &TrackKey, payload: &[u8]) {
        let mut recv = lock(&self.recv);
        let stats = recv.entry(key.clone()).or_default();
        stats.packets += 1;
        stats.bytes += payload.len() as u64;
        match find_marker(payload) {
            Some((marker, counter)) => {
                stats.markers_seen.insert(marker);
                stats.last_marker = Some(marker);
                stats.max_counter = stats.max_counter.max(counter);
            }
            None => stats.unmarked += 1,
        }
    }

    pub(crate) fn record_rtcp(
        &self,
        video: bool,
        pkts: &[Box<dyn webrtc::rtcp::packet::Packet + Send + Sync>],
    ) {
        let mut st = lock(&self.rtcp);
        for p in pkts {
            if video {
                st.video_packets += 1;
            } else {
                st.audio_packets += 1;
            }
            let any = p.as_any();
            if any.downcast_ref::<PictureLossIndication>().is_some() {
                st.pli += 1;
            } else if any.downcast_ref::<FullIntraRequest>().is_some() {
                st.fir += 1;
            } else if any.downcast_ref::<TransportLayerNack>().is_some() {
                st.nack += 1;
            }
        }
    }
}

/// A headless participant: signaling + one webrtc-rs peer connection (loopback only).
///
/// Offers are answered automatically (in order, one at a time) for as long as the peer lives;
/// every server message is also buffered for [`next_event`](Self::next_event). Dropping the peer
/// drops the socket, stops all its tasks and closes the peer connection.
pub struct TestPeer {
    pub(crate) opts: JoinOptions,
    pub(crate) id: String,
    pub(crate) joined: Value,
    pub(crate) pc: Arc<RTCPeerConnection>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) audio_track: Option<Arc<TrackLocalStaticRTP>>,
    pub(crate) video_track: Option<Arc<TrackLocalStaticRTP>>,
    pub(crate) offer_tx: mpsc::Sender<Value>,
    pub(crate) worker: AbortHandle,
    pub(crate) media_tasks: Mutex<Vec<AbortHandle>>,
}

impl TestPeer {
    /// Creates the peer connection (with its send tracks), connects the WebSocket, sends `join`
    /// and waits for `joined`. The first `offer` is answered in the background; use
    /// [`wait_connected`](Self::wait_connected) next. An `error` reply becomes an `Err`.
    pub async fn join(opts: JoinOptions) -> Result<Self> {
        Self::join_inner(opts, None).await
    }

    /// Joins a consultation with a waiting room: the server answers `waiting` (returned with
    /// the peer, whose id is unknown until [`admitted`](Self::admitted)).
    pub async fn join_waiting(opts: JoinOptions) -> Result<(Self, Value)> {
        let mut peer = Self::join_inner_expecting(opts, None, "waiting").await?;
        let waiting = std::mem::take(&mut peer.joined);
        Ok((peer, waiting))
    }

    /// Waits for the `joined` that admission sends, and takes this peer's id from it.
    pub async fn admitted(&mut self, timeout: Duration) -> Result<Value> {
        let joined = self.next_event("joined", timeout).await?;
        self.store_resume_token(&joined);
        self.id = joined
            .pointer("/you/id")
            .and_then(Value::as_str)
            .context("joined message without you.id")?
            .to_owned();
        self.joined = joined.clone();
        Ok(joined)
    }

    /// Joins first, then builds the peer connection with the TURN servers and credentials of
    /// `joined` (`ice_servers`) and the relay-only ICE transport policy: every path to the SFU
    /// goes through a TURN relay. Offers that arrive meanwhile wait for the peer connection.
    pub async fn join_relayed(opts: JoinOptions) -> Result<Self> {
        if opts.marker == 0 {
            bail!("JoinOptions.marker must not be 0x00");
        }
        let shared = Shared::new();
        let (offer_tx, offer_rx) = mpsc::channel(OFFER_QUEUE);
        let sig = Arc::new(
            SignalingClient::connect_inner(
                &opts.ws_url,
                Arc::clone(&shared.events),
                Some(offer_tx.clone()),
            )
            .await?,
        );
        *lock(&shared.signaling) = Some(Arc::clone(&sig));
        sig.send_json(&join_message(
            &opts.token,
            &opts.name,
            opts.publish_audio,
            opts.publish_video,
            None,
        ))
        .await
        .context("sending join")?;
        let joined = sig.expect_reply("joined").await?;
        let ice_servers = ice_servers_of(&joined)?;
        if ice_servers.is_empty() {
            bail!("joined carries no ice servers: {joined}");
        }
        let pc = build_peer_connection_with(ice_servers, RTCIceTransportPolicy::Relay).await?;
        let (audio_track, video_track) = match Self::setup(&pc, &shared, &opts).await {
            Ok(tracks) => tracks,
            Err(e) => {
                let _ = pc.close().await;
                return Err(e);
            }
        };
        let worker = tokio::spawn(offer_worker(Arc::clone(&pc), Arc::clone(&shared), offer_rx))
            .abort_handle();
        let id = joined
            .pointer("/you/id")
            .and_then(Value::as_str)
            .context("joined message without you.id")?
            .to_owned();
        let mut peer = Self {
            opts,
            id,
            joined: Value::Null,
            pc,
            shared,
            audio_track,
            video_track,
            offer_tx,
            worker,
            media_tasks: Mutex::new(Vec::new()),
        };
        peer.store_resume_token(&joined);
        peer.joined = joined;
        Ok(peer)
    }

    /// Like [`join`](Self::join) with `replaces: <resume token of the previous participant>`.
    pub async fn join_replacing(opts: JoinOptions, replaces: &str) -> Result<Self> {
        Self::join_inner(opts, Some(replaces.to_owned())).await
    }

    /// Like [`join`](Self::join), with every offer's media candidates replaced by `via`: this
    /// peer's media goes through what listens there (an impairment proxy in front of the
    /// server, tests/common/impaired.rs), the other peers' straight to the server.
    pub async fn join_via(opts: JoinOptions, via: std::net::SocketAddr) -> Result<Self> {
        Self::join_inner_full(opts, None, "joined", Some(via), false).await
    }

    /// Like [`join`](Self::join) (through `via` if given, as [`join_via`](Self::join_via)),
    /// asking for simulcast (`publish.simulcast`): the camera, if it publishes one, is sent in
    /// three layers (`simulcast.rs`), and the server estimates this peer's bandwidth and chooses
    /// what it is sent from it.
    pub async fn join_simulcast(
        opts: JoinOptions,
        via: Option<std::net::SocketAddr>,
    ) -> Result<Self> {
        Self::join_inner_full(opts, None, "joined", via, true).await
    }

    pub(crate) async fn join_inner(opts: JoinOptions, replaces: Option<String>) -> Result<Self> {
        Self::join_inner_expecting(opts, replaces, "joined").await
    }

    async fn join_inner_expecting(
        opts: JoinOptions,
        replaces: Option<String>,
        expect: &str,
    ) -> Result<Self> {
        Self::join_inner_full(opts, replaces, expect, None, false).await
    }

    async fn join_inner_full(
        opts: JoinOptions,
        replaces: Option<String>,
        expect: &str,
        via: Option<std::net::SocketAddr>,
        simulcast: bool,
    ) -> Result<Self> {
        if opts.marker == 0 {
            bail!("JoinOptions.marker must not be 0x00");
        }
        let pc =
            build_peer_connection_full(Vec::new(), RTCIceTransportPolicy::All, simulcast).await?;
        let shared = Shared::new();
        *lock(&shared.media_via) = via;
        shared.simulcast.store(simulcast, Ordering::Relaxed);

        match Self::setup(&pc, &shared, &opts).await {
            Ok((audio_track, video_track)) => {
                let (offer_tx, offer_rx) = mpsc::channel(OFFER_QUEUE);
                let worker =
                    tokio::spawn(offer_worker(Arc::clone(&pc), Arc::clone(&shared), offer_rx))
                        .abort_handle();
                let mut peer = Self {
                    opts,
                    id: String::new(),
                    joined: Value::Null,
                    pc,
                    shared,
                    audio_track,
                    video_track,
                    offer_tx,
                    worker,
                    media_tasks: Mutex::new(Vec::new()),
                };
                // On failure `peer` is dropped, which closes everything.
                let joined = peer.signal_join(replaces, expect).await?;
                if expect == "joined" {
                    peer.id = joined
                        .pointer("/you/id")
                        .and_then(Value::as_str)
                        .context("joined message without you.id")?
                        .to_owned();
                }
                peer.joined = joined;
                Ok(peer)
            }
            Err(e) => {
                let _ = pc.close().await;
                Err(e)
            }
        }
    }

    /// Adds send tracks and installs the peer-connection callbacks.
    pub(crate) async fn setup(
        pc: &Arc<RTCPeerConnection>,
        shared: &Arc<Shared>,
        opts: &JoinOptions,
    ) -> Result<(
        Option<Arc<TrackLocalStaticRTP>>,
        Option<Arc<TrackLocalStaticRTP>>,
    )> {
        let s = Arc::clone(shared);
        pc.on_peer_connection_state_change(Box::new(move |state| {
            s.conn_state.send_replace(state);
            Box::pin(async {})
        }));

        let s = Arc::clone(shared);
        pc.on_track(Box::new(move |track, receiver, transceiver| {
            let shared = Arc::clone(&s);
            Box::pin(async move {
                let mid = transceiver.mid().map(|m| m.to_string());
                let kind = track.kind().to_string();
                let key = shared.key_for_mid(mid.as_deref(), &kind);
                shared.reader_started(&key, mid, track.codec().capability.mime_type.clone());
                let s2 = Arc::clone(&shared);
                let reader = tokio::spawn(read_track(track, key, s2));
                shared.register_task(reader.abort_handle());
                let rtcp = tokio::spawn(drain_receiver_rtcp(receiver));
                shared.register_task(rtcp.abort_handle());
            })
        }));

        let stream_id = format!("huizhen-test-{:02x}", opts.marker);
        let mut audio = None;
        if opts.publish_audio {
            let track = Arc::new(TrackLocalStaticRTP::new(
                RTCRtpCodecCapability {
                    mime_type: MIME_TYPE_OPUS.to_owned(),
                    clock_rate: 48_000,
                    channels: 2,
                    ..Default::default()
                },
                "audio".to_owned(),
                stream_id.clone(),
            ));
            let sender = pc
                .add_track(Arc::clone(&track) as Arc<dyn TrackLocal + Send + Sync>)
                .await
                .context("adding the audio track")?;
            let t = tokio::spawn(drain_sender_rtcp(sender, Arc::clone(shared), false));
            shared.register_task(t.abort_handle());
            audio = Some(track);
        }
        let mut video = None;
        if opts.publish_video && shared.simulcast.load(Ordering::Relaxed) {
            add_simulcast_camera(pc, shared, &stream_id).await?;
        } else if opts.publish_video {
            let capability = if opts.h264 {
                RTCRtpCodecCapability {
                    mime_type: MIME_TYPE_H264.to_owned(),
                    clock_rate: 90_000,
                    sdp_fmtp_line:
                        "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"
                            .to_owned(),
                    ..Default::default()
                }
            } else {
                RTCRtpCodecCapability {
                    mime_type: MIME_TYPE_VP8.to_owned(),
                    clock_rate: 90_000,
                    ..Default::default()
                }
            };
            let track = Arc::new(TrackLocalStaticRTP::new(
                capability,
                "video".to_owned(),
                stream_id,
            ));
            let sender = pc
                .add_track(Arc::clone(&track) as Arc<dyn TrackLocal + Send + Sync>)
                .await
                .context("adding the video track")?;
            let t = tokio::spawn(drain_sender_rtcp(sender, Arc::clone(shared), true));
            shared.register_task(t.abort_handle());
            video = Some(track);
        }
        Ok((audio, video))
    }

    pub(crate) async fn signal_join(
        &self,
        replaces: Option<String>,
        expect: &str,
    ) -> Result<Value> {
        let sig = Arc::new(
            SignalingClient::connect_inner(
                &self.opts.ws_url,
                Arc::clone(&self.shared.events),
                Some(self.offer_tx.clone()),
            )
            .await?,
        );
        *lock(&self.shared.signaling) = Some(Arc::clone(&sig));
        let mut join = join_message(
            &self.opts.token,
            &self.opts.name,
            self.opts.publish_audio,
            self.opts.publish_video,
            replaces.as_deref(),
        );
        if self.shared.simulcast.load(Ordering::Relaxed) {
            join["publish"]["simulcast"] = Value::Bool(true);
        }
        sig.send_json(&join).await.context("sending join")?;
        let joined = sig.expect_reply(expect).await?;
        self.store_resume_token(&joined);
        Ok(joined)
    }

    pub(crate) fn store_resume_token(&self, msg: &Value) {
        if let Some(t) = msg.get("resume_token").and_then(Value::as_str) {
            *lock(&self.shared.resume_token) = Some(t.to_owned());
        }
    }

    /// The participant id from `joined` (`you.id`).
    pub fn id(&self) -> String {
        self.id.clone()
    }

    /// The whole `joined` message.
    pub fn joined_message(&self) -> Value {
        self.joined.clone()
    }

    /// The options this peer joined with.
    pub fn options(&self) -> &JoinOptions {
        &self.opts
    }

    /// The latest resume token (from `joined` or `resumed`).
    pub fn resume_token(&self) -> Option<String> {
        lock(&self.shared.resume_token).clone()
    }

    /// The underlying webrtc-rs peer connection.
    pub fn peer_connection(&self) -> &Arc<RTCPeerConnection> {
        &self.pc
    }

    /// Current peer connection state.
    pub fn connection_state(&self) -> RTCPeerConnectionState {
        self.pc.connection_state()
    }

    /// Waits until the peer connection is `Connected` (ICE + DTLS). Fails early on `Failed` or
    /// `Closed`, and with the offer-handling errors if any occurred.
    pub async fn wait_connected(&self, timeout: Duration) -> Result<()> {
        let mut rx = self.shared.conn_state.subscribe();
        let result = tokio::time::timeout(timeout, async {
            loop {
                let state = *rx.borrow_and_update();
                match state {
                    RTCPeerConnectionState::Connected => return Ok(()),
                    RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed => {
                        bail!("peer connection is {state}")
                    }
                    _ => {}
                }
                rx.changed()
                    .await
                    .context("peer connection state channel closed")?;
            }
        })
        .await;
        match result {
            Ok(r) => r.with_context(|| format!("offer errors: {:?}", self.offer_errors())),
            Err(_) => bail!(
                "timed out after {timeout:?} waiting for the peer connection to connect \
                 (state {}, answered offer {}, offer errors {:?})",
                self.pc.connection_state(),
                self.last_answered_offer(),
                self.offer_errors()
            ),
        }
    }

    /// Highest `offer_id` answered so far (0 before the first answer).
    pub fn last_answered_offer(&self) -> u64 {
        *self.shared.answered.borrow()
    }

    /// Waits until an answer for `offer_id` (or a later offer) has been sent.
    pub async fn wait_answered(&self, offer_id: u64, timeout: Duration) -> Result<()> {
        let mut rx = self.shared.answered.subscribe();
        let r = tokio::time::timeout(timeout, async {
            loop {
                if *rx.borrow_and_update() >= offer_id {
                    return Ok(());
                }
                rx.changed().await.context("answer channel closed")?;
            }
        })
        .await;
        match r {
            Ok(r) => r,
            Err(_) => bail!(
                "timed out after {timeout:?} waiting to answer offer {offer_id} (last answered \
                 {}, offer errors {:?})",
                self.last_answered_offer(),
                self.offer_errors()
            ),
        }
    }

    /// Errors met while applying offers (webrtc-rs refusals, missing fields, send failures).
    pub fn offer_errors(&self) -> Vec<String> {
        lock(&self.shared.offer_errors).clone()
    }

    /// The live (not stopped) tracks of the latest applied offer.
    pub fn offered_tracks(&self) -> Vec<OfferedTrack> {
        lock(&self.shared.active).clone()
    }

    /// Starts publishing synthetic RTP on the tracks given in [`JoinOptions`] (idempotent).
    /// Packets written before the connection is up are dropped by webrtc-rs.
    pub fn start_media(&self) {
        let mut tasks = lock(&self.media_tasks);
        if !tasks.is_empty() {
            return;
        }
        let marker = self.opts.marker;
        if let Some(track) = &self.audio_track {
            let t = tokio::spawn(publish_audio(
                Arc::clone(track),
                marker,
                Arc::clone(&self.shared),
            ));
            tasks.push(t.abort_handle());
        }
        if let Some(track) = &self.video_track {
            let t = tokio::spawn(publish_video(
                Arc::clone(track),
                marker,
                self.opts.h264,
                Arc::clone(&self.shared),
            ));
            tasks.push(t.abort_handle());
        }
        let layers = lock(&self.shared.layers).clone();
        for (index, track) in layers.into_iter().enumerate() {
            let t = tokio::spawn(publish_layer(
                track,
                marker,
                index,
                Arc::clone(&self.shared),
            ));
            tasks.push(t.abort_handle());
        }
    }

    /// The marker byte of this peer's shared screen (its camera's with the top bit flipped).
    pub fn screen_marker(&self) -> u8 {
        self.opts.marker ^ 0x80
    }

    /// Shares a "screen" (synthetic VP8 carrying [`TestPeer::screen_marker`]) and asks the
    /// server (`screen_share`). As a browser does with `addTransceiver`, the send-only
    /// transceiver exists before the server's offer adds the screen's recvonly m-line, which
    /// pairs with it (webrtc-rs matches a new recvonly m-line to an unassigned send-only
    /// transceiver of its kind); its packets count under `sent_packets("video")`.
    pub async fn share_screen(&self) -> Result<()> {
        let marker = self.screen_marker();
        let track = Arc::new(TrackLocalStaticRTP::new(
            RTCRtpCodecCapability {
                mime_type: MIME_TYPE_VP8.to_owned(),
                clock_rate: 90_000,
                ..Default::default()
            },
            "screen".to_owned(),
            format!("huizhen-test-screen-{marker:02x}"),
        ));
        self.add_sender(&track, true)
            .await
            .context("adding the screen's transceiver")?;
        let publisher = tokio::spawn(publish_video(
            track,
            marker,
            false,
            Arc::clone(&self.shared),
        ));
        if let Some(old) = lock(&self.shared.screen).replace(publisher.abort_handle()) {
            old.abort();
        }
        self.send_json(json!({"type": "screen_share", "active": true}))
            .await
    }

    /// Starts sending a microphone and a camera after the join (the care team let this
    /// observer speak): send-only Opus and VP8 transceivers carrying this peer's marker, which
    /// webrtc-rs pairs with the recvonly m-lines the server's next offer adds (as it does for a
    /// screen). Call it before the role change, as a browser has its tracks by the time the
    /// offer comes. Stopped by [`TestPeer::stop_media`]; counted under `sent_packets`.
    pub async fn publish_late(&self) -> Result<()> {
        let marker = self.opts.marker;
        let stream_id = format!("huizhen-test-late-{marker:02x}");
        for video in [false, true] {
            let capability = if video {
                RTCRtpCodecCapability {
                    mime_type: MIME_TYPE_VP8.to_owned(),
                    clock_rate: 90_000,
                    ..Default::default()
                }
            } else {
                RTCRtpCodecCapability {
                    mime_type: MIME_TYPE_OPUS.to_owned(),
                    clock_rate: 48_000,
                    channels: 2,
                    ..Default::default()
                }
            };
            let kind = if video { "video" } else { "audio" };
            let track = Arc::new(TrackLocalStaticRTP::new(
                capability,
                kind.to_owned(),
                stream_id.clone(),
            ));
            self.add_sender(&track, video)
                .await
                .with_context(|| format!("adding a late {kind} transceiver"))?;
            let publisher = if video {
                tokio::spawn(publish_video(
                    track,
                    marker,
                    false,
                    Arc::clone(&self.shared),
                ))
            } else {
                tokio::spawn(publish_audio(track, marker, Arc::clone(&self.shared)))
            };
            lock(&self.media_tasks).push(publisher.abort_handle());
        }
        Ok(())
    }

    /// A send-only transceiver for `track` (which the server's next recvonly m-line of its kind
    /// pairs with), its sender's RTCP drained into the stats.
    async fn add_sender(&self, track: &Arc<TrackLocalStaticRTP>, video: bool) -> Result<()> {
        use webrtc::rtp_transceiver::RTCRtpTransceiverInit;
        use webrtc::rtp_transceiver::rtp_transceiver_direction::RTCRtpTransceiverDirection;
        let transceiver = self
            .pc
            .add_transceiver_from_track(
                Arc::clone(track) as Arc<dyn TrackLocal + Send + Sync>,
                Some(RTCRtpTransceiverInit {
                    direction: RTCRtpTransceiverDirection::Sendonly,
                    send_encodings: Vec::new(),
                }),
            )
            .await?;
        let rtcp = tokio::spawn(drain_sender_rtcp(
            transceiver.sender().await,
            Arc::clone(&self.shared),
            video,
        ));
        self.shared.register_task(rtcp.abort_handle());
        Ok(())
    }

    /// Stops the screen's publisher and tells the server the share ended.
    pub async fn stop_screen(&self) -> Result<()> {
        if let Some(publisher) = lock(&self.shared.screen).take() {
            publisher.abort();
        }
        self.send_json(json!({"type": "screen_share", "active": false}))
            .await
    }

    /// Stops publishing (the tracks stay negotiated).
    pub fn stop_media(&self) {
        for t in lock(&self.media_tasks).drain(..) {
            t.abort();
        }
    }

    /// RTP packets written to the transport so far for `"audio"` or `"video"`.
    pub fn sent_packets(&self, kind: &str) -> u64 {
        match kind {
            "audio" => self.shared.sent_audio.load(Ordering::Relaxed),
            "video" => self.shared.sent_video.load(Ordering::Relaxed),
            _ => 0,
        }
    }

    /// Failed RTP writes so far.
    pub fn send_errors(&self) -> u64 {
        self.shared.send_errors.load(Ordering::Relaxed)
    }

    /// RTCP feedback received for this peer's published tracks (e.g. PLIs forwarded by the SFU).
    pub fn rtcp_stats(&self) -> RtcpStats {
        lock(&self.shared.rtcp).clone()
    }

    /// What was received from `participant_id`'s `kind` (`"audio"`/`"video"`) track so far
    /// (all zero if nothing yet).
    pub fn received(&self, participant_id: &str, kind: &str) -> ReceivedStats {
        lock(&self.shared.recv)
            .get(&(participant_id.to_owned(), kind.to_owned()))
            .cloned()
            .unwrap_or_default()
    }

    /// Everything received, keyed by (participant_id, kind). Tracks whose MID was not in any
    /// offer's `tracks` appear under participant `unknown-mid:<mid>`.
    pub fn received_all(&self) -> HashMap<(String, String), ReceivedStats> {
        lock(&self.shared.recv)
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Waits until at least `min_packets` arrived from `participant_id`'s `kind` track.
    pub async fn wait_received(
        &self,
        participant_id: &str,
        kind: &str,
        min_packets: u64,
        timeout: Duration,
    ) -> Result<ReceivedStats> {
        let deadline = Instant::now() + timeout;
        loop {
            let stats = self.received(participant_id, kind);
            if stats.packets >= min_packets {
                return Ok(stats);
            }
            if Instant::now() >= deadline {
                bail!(
                    "{} ({}): timed out after {timeout:?} waiting for {min_packets} {kind} \
                     packets from {participant_id}; have {stats:?}; connection {}; offered \
                     tracks {:?}; offer errors {:?}",
                    self.opts.name,
                    self.id,
                    self.pc.connection_state(),
                    self.offered_tracks(),
                    self.offer_errors()
                );
            }
            tokio::time::sleep(POLL_PERIOD).await;
        }
    }

    /// Asserts that both of `from`'s tracks arrive here (at least `min_packets` each within
    /// `timeout`), each carrying only `from`'s marker.
    pub async fn assert_receives_from(&self, from: &TestPeer, min_packets: u64, timeout: Duration) {
        for kind in ["audio", "video"] {
            let stats = self
                .wait_received(&from.id(), kind, min_packets, timeout)
                .await
                .unwrap_or_else(|e| {
                    panic!(
                        "{:?} <- {:?} {kind}: {e:#}",
                        self.opts.name,
                        from.options().name
                    )
                });
            assert!(
                stats.only_marker(from.options().marker),
                "{} got foreign payloads on {}'s {kind}: {stats:?}",
                self.opts.name,
                from.options().name
            );
        }
    }

    /// Waits until `participant_id`'s `kind` track has ended (see [`ReceivedStats::ended`]).
    pub async fn wait_ended(
        &self,
        participant_id: &str,
        kind: &str,
        timeout: Duration,
    ) -> Result<ReceivedStats> {
        let deadline = Instant::now() + timeout;
        loop {
            let stats = self.received(participant_id, kind);
            if stats.ended {
                return Ok(stats);
            }
            if Instant::now() >= deadline {
                bail!(
                    "timed out after {timeout:?} waiting for {participant_id}'s {kind} to end; \
                     have {stats:?}"
                );
            }
            tokio::time::sleep(POLL_PERIOD).await;
        }
    }

    /// Takes the first buffered (or next arriving) server message of type `type_name`
    /// (`"participant_joined"`, `"offer"`, `"error"`...). Offers are answered automatically
    /// whether or not they are taken here. Other messages stay buffered.
    pub async fn next_event(&self, type_name: &str, timeout: Duration) -> Result<Value> {
        self.shared
            .events
            .take(&format!("a {type_name:?} message"), timeout, |m| {
                msg_type(m) == Some(type_name)
            })
            .await
    }

    /// Takes the first message of type `type_name` for which `pred` holds, e.g. a
    /// `participant_left` for one id.
    pub async fn next_event_where<F>(
        &self,
        type_name: &str,
        timeout: Duration,
        pred: F,
    ) -> Result<Value>
    where
        F: Fn(&Value) -> bool,
    {
        self.shared
            .events
            .take(&format!("a matching {type_name:?} message"), timeout, |m| {
                msg_type(m) == Some(type_name) && pred(m)
            })
            .await
    }

    /// Takes the oldest buffered server message of any type.
    pub async fn next_message(&self, timeout: Duration) -> Result<Value> {
        self.shared
            .events
            .take("any message", timeout, |_| true)
            .await
    }

    /// Every server message received so far (bounded), across resumes.
    pub fn history(&self) -> Vec<Value> {
        self.shared.events.history()
    }

    /// Server messages not yet taken.
    pub fn pending(&self) -> Vec<Value> {
        self.shared.events.pending()
    }

    pub(crate) fn signaling(&self) -> Result<Arc<SignalingClient>> {
        self.shared
            .current_signaling()
            .context("this peer has no signaling connection")
    }

    /// From the next offer on, this peer's media takes the path through `via` (a path change:
    /// another proxy stands for another network). Takes effect with an ICE restart's offer.
    pub fn set_media_via(&self, via: std::net::SocketAddr) {
        *lock(&self.shared.media_via) = Some(via);
    }

    /// Sends `text` as one text frame on the current signaling socket.
    pub async fn send_raw(&self, text: &str) -> Result<()> {
        self.signaling()?.send_raw(text).await
    }

    /// Sends `msg` as JSON on the current signaling socket.
    pub async fn send_json(&self, msg: Value) -> Result<()> {
        self.signaling()?.send_json(&msg).await
    }

    /// Sends `media_state`.
    pub async fn send_media_state(&self, audio_muted: bool, video_off: bool) -> Result<()> {
        self.send_json(json!({
            "type": "media_state",
            "audio_muted": audio_muted,
            "video_off": video_off,
        }))
        .await
    }

    /// Sends `leave`, waits (bounded) for the server to close the socket, then closes the peer
    /// connection and stops publishing. The close code is then in [`close_code`](Self::close_code).
    pub async fn leave(&self) -> Result<()> {
        let sig = self.signaling()?;
        let sent = sig.send_json(&json!({"type": "leave"})).await;
        let closed = match &sent {
            Ok(()) => sig.wait_closed(LEAVE_CLOSE_TIMEOUT).await.map(|_| ()),
            Err(_) => Ok(()),
        };
        self.stop_media();
        let _ = self.pc.close().await;
        sent.context("sending leave")?;
        closed
    }

    /// Drops the signaling socket without `leave` and without a close frame. The peer
    /// connection and the media keep running (the server should mark this participant
    /// `reconnecting`); [`resume`](Self::resume) can take it back.
    pub fn close_abruptly(&self) {
        if let Some(sig) = lock(&self.shared.signaling).take() {
            sig.abort();
        }
    }

    /// Opens a new signaling socket and sends `resume` with the latest resume token; the peer
    /// connection carries on. Returns the `resumed` message (an `error` becomes an `Err`).
    pub async fn resume(&self) -> Result<Value> {
        let token = self.resume_token().context("no resume token")?;
        self.close_abruptly();
        let sig = Arc::new(
            SignalingClient::connect_inner(
                &self.opts.ws_url,
                Arc::clone(&self.shared.events),
                Some(self.offer_tx.clone()),
            )
            .await?,
        );
        *lock(&self.shared.signaling) = Some(Arc::clone(&sig));
        sig.send_json(&json!({"type": "resume", "v": 1, "resume_token": token}))
            .await
            .context("sending resume")?;
        let resumed = sig.expect_reply("resumed").await?;
        self.store_resume_token(&resumed);
        Ok(resumed)
    }

    /// The server's close code on the current signaling socket, once it closed it.
    pub fn close_code(&self) -> Option<u16> {
        self.shared.events.close_info().code
    }

    /// Details of how the current signaling socket ended, if it did.
    pub fn close_info(&self) -> CloseInfo {
        self.shared.events.close_info()
    }

    /// Waits until the server closes the signaling socket; returns its close code.
    pub async fn wait_closed(&self, timeout: Duration) -> Result<Option<u16>> {
        Ok(self.shared.events.wait_closed(timeout).await?.code)
    }

    /// Closes everything now: socket (without `leave`), media, peer connection, tasks.
    pub async fn close(&self) {
        self.close_abruptly();
        self.stop_media();
        self.abort_tasks();
        let _ = self.pc.close().await;
    }

    pub(crate) fn abort_tasks(&self) {
        self.worker.abort();
        for t in lock(&self.shared.tasks).drain(..) {
            t.abort();
        }
    }
}

impl Drop for TestPeer {
    fn drop(&mut self) {
        self.close_abruptly();
        self.stop_media();
        if let Some(publisher) = lock(&self.shared.screen).take() {
            publisher.abort();
        }
        self.abort_tasks();
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let pc = Arc::clone(&self.pc);
            handle.spawn(async move {
                let _ = pc.close().await;
            });
        }
    }
}
