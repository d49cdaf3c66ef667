//! The webrtc-rs side of a test peer: its peer connection, answering offers, reading
//! received tracks and publishing the synthetic media.

#![allow(dead_code)]

use super::*;

use webrtc::ice_transport::ice_server::RTCIceServer;
use webrtc::peer_connection::policy::ice_transport_policy::RTCIceTransportPolicy;

/// The `ice_servers` of a `joined` message as webrtc-rs's RTCIceServer list.
pub fn ice_servers_of(joined: &Value) -> Result<Vec<RTCIceServer>> {
    let list = joined
        .get("ice_servers")
        .and_then(Value::as_array)
        .context("joined without an ice_servers list")?;
    list.iter()
        .map(|s| {
            let text = |key: &str| {
                s.get(key)
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .with_context(|| format!("ice server without {key}"))
            };
            let urls = s
                .get("urls")
                .and_then(Value::as_array)
                .context("ice server without urls")?
                .iter()
                .map(|u| {
                    u.as_str()
                        .map(str::to_owned)
                        .context("a url that is not a string")
                })
                .collect::<Result<Vec<_>>>()?;
            Ok(RTCIceServer {
                urls,
                username: text("username")?,
                credential: text("credential")?,
            })
        })
        .collect()
}

/// A webrtc-rs peer connection restricted to IPv4 loopback UDP, default codecs (Opus, VP8,
/// H.264...) and default interceptors (NACK, RTCP reports), max-bundle.
pub(crate) async fn build_peer_connection() -> Result<Arc<RTCPeerConnection>> {
    build_peer_connection_with(Vec::new(), RTCIceTransportPolicy::All).await
}

/// [`build_peer_connection`] with ICE servers and a transport policy (`Relay`: only TURN relay
/// candidates, as a browser behind a firewall that lets no UDP through ends up with).
pub(crate) async fn build_peer_connection_with(
    ice_servers: Vec<RTCIceServer>,
    ice_transport_policy: RTCIceTransportPolicy,
) -> Result<Arc<RTCPeerConnection>> {
    build_peer_connection_full(ice_servers, ice_transport_policy, false).await
}

/// [`build_peer_connection_with`], and with `simulcast` the header extensions a simulcast
/// publisher needs (`simulcast.rs`).
pub(crate) async fn build_peer_connection_full(
    ice_servers: Vec<RTCIceServer>,
    ice_transport_policy: RTCIceTransportPolicy,
    simulcast: bool,
) -> Result<Arc<RTCPeerConnection>> {
    ensure_rustls_provider();
    let mut media = MediaEngine::default();
    media
        .register_default_codecs()
        .context("registering default codecs")?;
    if simulcast {
        register_simulcast_extensions(&mut media)?;
    }
    let registry = register_default_interceptors(Registry::new(), &mut media)
        .context("registering default interceptors")?;

    let mut settings = SettingEngine::default();
    settings.set_include_loopback_candidate(true);
    settings.set_ip_filter(Box::new(|ip: IpAddr| ip.is_loopback()));
    settings.set_network_types(vec![NetworkType::Udp4]);
    settings.set_ice_multicast_dns_mode(MulticastDnsMode::Disabled);

    let api = APIBuilder::new()
        .with_media_engine(media)
        .with_interceptor_registry(registry)
        .with_setting_engine(settings)
        .build();
    let config = RTCConfiguration {
        bundle_policy: RTCBundlePolicy::MaxBundle,
        ice_servers,
        ice_transport_policy,
        ..Default::default()
    };
    let pc = api
        .new_peer_connection(config)
        .await
        .context("creating the peer connection")?;
    Ok(Arc::new(pc))
}

/// Answers offers one at a time, in arrival order, for the life of the peer.
pub(crate) async fn offer_worker(
    pc: Arc<RTCPeerConnection>,
    shared: Arc<Shared>,
    mut offers: mpsc::Receiver<Value>,
) {
    while let Some(offer) = offers.recv().await {
        if let Err(e) = handle_offer(&pc, &shared, &offer).await {
            let text = format!("{e:#}");
            eprintln!("[test peer] failed to answer offer: {text}");
            shared.push_offer_error(text);
        }
    }
}

/// `sdp` with every UDP candidate's address replaced by `via` and every other candidate
/// removed, so that all of this peer's media takes the path through `via`.
pub(crate) fn candidates_via(sdp: &str, via: std::net::SocketAddr) -> String {
    let mut out = String::with_capacity(sdp.len());
    for line in sdp.split_inclusive('\n') {
        let body = line.trim_end_matches(['\r', '\n']);
        let Some(candidate) = body.strip_prefix("a=candidate:") else {
            out.push_str(line);
            continue;
        };
        // foundation component transport priority address port typ ...
        let mut fields: Vec<String> = candidate.split(' ').map(str::to_owned).collect();
        if fields.len() < 6 || !fields[2].eq_ignore_ascii_case("udp") {
            continue;
        }
        fields[4] = via.ip().to_string();
        fields[5] = via.port().to_string();
        out.push_str("a=candidate:");
        out.push_str(&fields.join(" "));
        out.push_str(&line[body.len()..]);
    }
    out
}

pub(crate) async fn handle_offer(
    pc: &RTCPeerConnection,
    shared: &Shared,
    offer: &Value,
) -> Result<()> {
    let offer_id = offer
        .get("offer_id")
        .and_then(Value::as_u64)
        .with_context(|| format!("offer without numeric offer_id: {offer}"))?;
    let sdp = offer
        .get("sdp")
        .and_then(Value::as_str)
        .with_context(|| format!("offer {offer_id} without sdp"))?
        .to_owned();
    let tracks = parse_offer_tracks(offer).with_context(|| format!("offer {offer_id}"))?;
    shared.apply_offer_tracks(tracks, &stopped_mids(&sdp));
    let via = *lock(&shared.media_via);
    let sdp = match via {
        Some(via) => candidates_via(&sdp, via),
        None => sdp,
    };

    let desc = RTCSessionDescription::offer(sdp)
        .with_context(|| format!("offer {offer_id}: parsing SDP"))?;
    pc.set_remote_description(desc)
        .await
        .with_context(|| format!("offer {offer_id}: set_remote_description"))?;
    let answer = pc
        .create_answer(None)
        .await
        .with_context(|| format!("offer {offer_id}: create_answer"))?;
    let mut gathered = pc.gathering_complete_promise().await;
    pc.set_local_description(answer)
        .await
        .with_context(|| format!("offer {offer_id}: set_local_description"))?;
    // The server is ICE-lite and needs no candidates; waiting briefly just puts ours in the SDP.
    let _ = tokio::time::timeout(GATHER_TIMEOUT, gathered.recv()).await;
    let local = pc
        .local_description()
        .await
        .with_context(|| format!("offer {offer_id}: no local description"))?;

    let sig = shared
        .current_signaling()
        .with_context(|| format!("offer {offer_id}: no signaling connection to answer on"))?;
    // webrtc-rs writes a simulcast m-line's rid lines twice (see `simulcast.rs`).
    let answer_sdp = if shared.simulcast.load(Ordering::Relaxed) {
        dedupe_simulcast_lines(&local.sdp)
    } else {
        local.sdp
    };
    sig.send_json(&json!({"type": "answer", "offer_id": offer_id, "sdp": answer_sdp}))
        .await
        .with_context(|| format!("offer {offer_id}: sending answer"))?;
    shared.answered.send_modify(|v| *v = (*v).max(offer_id));
    Ok(())
}

pub(crate) async fn read_track(track: Arc<TrackRemote>, key: TrackKey, shared: Arc<Shared>) {
    let reason = loop {
        match track.read_rtp().await {
            Ok((pkt, _attrs)) => shared.record_packet(&key, &pkt.payload),
            Err(e) => break e.to_string(),
        }
    };
    shared.reader_ended(&key, reason);
}

/// Reads and discards RTCP arriving for a receiver (keeps the interceptors fed).
pub(crate) async fn drain_receiver_rtcp(receiver: Arc<RTCRtpReceiver>) {
    while receiver.read_rtcp().await.is_ok() {}
}

/// Reads RTCP arriving for a sender (lets the NACK responder and reports work) and counts it.
pub(crate) async fn drain_sender_rtcp(sender: Arc<RTCRtpSender>, shared: Arc<Shared>, video: bool) {
    while let Ok((pkts, _attrs)) = sender.read_rtcp().await {
        shared.record_rtcp(video, &pkts);
    }
}

/// A start value that differs between runs (RTP sequence numbers and timestamps).
pub(crate) fn start_value(marker: u8) -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    nanos ^ (u32::from(marker) << 24)
}

pub(crate) async fn write_packet(
    track: &TrackLocalStaticRTP,
    pkt: &webrtc::rtp::packet::Packet,
    shared: &Shared,
    video: bool,
) {
    match track.write_rtp(pkt).await {
        Ok(0) => {} // not bound yet (negotiation or connection pending)
        Ok(_) => {
            let counter = if video {
                &shared.sent_video
            } else {
                &shared.sent_audio
            };
            counter.fetch_add(1, Ordering::Relaxed);
        }
        Err(_) => {
            shared.send_errors.fetch_add(1, Ordering::Relaxed);
        }
    }
}

pub(crate) async fn publish_audio(
    track: Arc<TrackLocalStaticRTP>,
    marker: u8,
    shared: Arc<Shared>,
) {
    let start = start_value(marker);
    let mut seq = start as u16;
    let mut timestamp = start.rotate_left(7);
    let mut counter: u32 = 0;
    let mut ticker = tokio::time::interval(Duration::from_millis(20));
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        counter = counter.wrapping_add(1);
        let pkt = webrtc::rtp::packet::Packet {
            header: webrtc::rtp::header::Header {
                version: 2,
                marker: counter == 1,
                sequence_number: seq,
                timestamp,
                ..Default::default()
            },
            payload: audio_payload(marker, counter),
        };
        write_packet(&track, &pkt, &shared, false).await;
        seq = seq.wrapping_add(1);
        timestamp = timestamp.wrapping_add(960);
    }
}

pub(crate) async fn publish_video(
    track: Arc<TrackLocalStaticRTP>,
    marker: u8,
    h264: bool,
    shared: Arc<Shared>,
) {
    let start = start_value(marker).rotate_left(13);
    let mut seq = start as u16;
    let mut timestamp = start.rotate_left(5);
    let mut counter: u32 = 0;
    let mut ticker = tokio::time::interval(Duration::from_micros(66_667));
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        for first in [true, false] {
            counter = counter.wrapping_add(1);
            let pkt = webrtc::rtp::packet::Packet {
                header: webrtc::rtp::header::Header {
                    version: 2,
                    marker: !first, // last packet of the frame
                    sequence_number: seq,
                    timestamp,
                    ..Default::default()
                },
                payload: if h264 {
                    h264_payload(marker, counter, first)
                } else {
                    video_payload(marker, counter, first)
                },
            };
            write_packet(&track, &pkt, &shared, true).await;
            seq = seq.wrapping_add(1);
        }
        timestamp = timestamp.wrapping_add(6000);
    }
}
