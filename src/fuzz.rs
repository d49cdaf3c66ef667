//! Entry points for fuzzing: each takes arbitrary bytes and drives one parser of untrusted
//! input the way the server does, with the server's limits. They must return, never panic,
//! never allocate past the limits, whatever the bytes.
//!
//! Two drivers call them: the coverage-guided targets in `fuzz/` (cargo-fuzz, libFuzzer;
//! `scripts/fuzz.sh`), and `tests/fuzz_corpus.rs`, which replays the committed corpus and the
//! regressions found in every test run. Keeping the bodies here (not in `fuzz/`) means both run
//! the same code, and the targets reach what the crate does not export.

use std::net::SocketAddr;
use std::time::Instant;

use crate::documents::{annotation, dicom, ecg, kind, render};
use crate::domain::ids::{ParticipantId, RoomId};
use crate::sfu::{Answer, PublishKinds, Sfu, SfuCommand, SfuEvent, TransportOptions};

mod audit;
mod media;
pub use audit::audit_trail;
pub use media::media_session;

/// A target: arbitrary bytes in, nothing out.
pub type Target = fn(&[u8]);

/// Every target, by the name its `fuzz/fuzz_targets/<name>.rs` and corpus directory carry.
pub const TARGETS: &[(&str, Target)] = &[
    ("signaling", signaling),
    ("upload_metadata", upload_metadata),
    ("content_kind", content_kind),
    ("dicom", dicom),
    ("ecg", ecg),
    ("pdf", pdf),
    ("annotation", annotation),
    ("keyframe", keyframe),
    ("stun", stun),
    ("sdp_answer", sdp_answer),
    ("red", red),
    ("media_session", media_session),
    ("audit_trail", audit_trail),
];

/// A client's signaling message (a WebSocket text frame).
pub fn signaling(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = crate::signaling::protocol::ClientMessage::parse(text);
    }
}

/// An upload's start (`POST …/uploads`): its JSON body, then, after a NUL byte, the content
/// whose kind the finished upload is checked for under the name given.
pub fn upload_metadata(data: &[u8]) {
    let (meta, content) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let Ok(begin) = serde_json::from_slice::<crate::documents::BeginUpload>(meta) else {
        return;
    };
    let _ = crate::documents::blob::Sha256Hex::parse(&begin.sha256.to_ascii_lowercase());
    if let Ok(name) = crate::documents::validate_name(&begin.name) {
        let _ = kind::detect(&name, content);
    }
}

/// Content sniffing under each name extension the server knows; the first byte picks it.
pub fn content_kind(data: &[u8]) {
    const NAMES: &[&str] = &[
        "x.pdf", "x.png", "x.jpg", "x.dcm", "x.csv", "x.json", "x.txt", "x",
    ];
    let Some((&pick, content)) = data.split_first() else {
        return;
    };
    let _ = kind::detect(NAMES[usize::from(pick) % NAMES.len()], content);
}

/// A DICOM file: its header read, then its frame windowed and encoded within a pixel budget.
pub fn dicom(data: &[u8]) {
    let _ = dicom::info(data);
    let _ = dicom::render_png(data, 1 << 18);
}

/// An ECG trace (CSV or JSON).
pub fn ecg(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = ecg::parse(text);
    }
}

/// A PDF: the file and page checks, then, for the first page that passes them, a render at a
/// small scale within the same limits.
pub fn pdf(data: &[u8]) {
    let limits = render::Limits {
        max_pixels: 1 << 18,
        max_stream_bytes: 1 << 20,
        max_page_bytes: 4 << 20,
    };
    let _ = render::render_bytes(data, &limits, 0.25);
}

/// An annotation's shape (a WebSocket message's `shape`).
pub fn annotation(data: &[u8]) {
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) {
        let _ = annotation::parse(value);
    }
}

/// An RTP payload checked for the start of a keyframe; the first byte picks the codec.
pub fn keyframe(data: &[u8]) {
    use crate::sfu::VideoCodec;
    let Some((&pick, payload)) = data.split_first() else {
        return;
    };
    let codec = if pick & 1 == 0 {
        VideoCodec::Vp8
    } else {
        VideoCodec::H264
    };
    let _ = crate::sfu::starts_keyframe(codec, payload);
}

/// A RED (redundant audio) packet from a publisher, taken apart for a subscriber without RED.
/// The first byte: which earlier packets did not arrive; the next two: the sequence number (low
/// bits; the extended number starts near zero, where subtraction could underflow); the next
/// four: the RTP time (wraps); then the payload. The tracker sees the arrivals the first byte
/// describes. What comes back must be consistent: a suffix of the payload as the primary, and
/// rebuilt packets before this one, missing ones only, each once, oldest first.
pub fn red(data: &[u8]) {
    use crate::sfu::red::{Arrival, MAX_DEPTH, RedTracker, unwrap};
    let (Some(&missing), Some(seq), Some(ts)) = (data.first(), data.get(1..3), data.get(3..7))
    else {
        return;
    };
    let seq = u64::from(u16::from_be_bytes([seq[0], seq[1]]));
    let ts = u32::from_be_bytes([ts[0], ts[1], ts[2], ts[3]]);
    let payload = &data[7..];
    let mut tracker = RedTracker::default();
    for d in (1..=MAX_DEPTH).rev() {
        if missing & (1 << (d - 1)) == 0
            && let Some(earlier) = seq.checked_sub(d)
        {
            tracker.arrive(earlier);
        }
    }
    let Arrival::New { missing } = tracker.arrive(seq) else {
        return;
    };
    let Ok(u) = unwrap(
        payload,
        seq,
        ts,
        str0m::media::Pt::new_with_value(111),
        missing,
    ) else {
        return;
    };
    assert!(
        payload.ends_with(u.primary),
        "the primary is the payload's end"
    );
    let mut last = None;
    for r in &u.rebuilt {
        assert!(
            r.seq < seq && seq - r.seq <= MAX_DEPTH,
            "rebuilt out of reach"
        );
        assert!(
            missing & (1 << (seq - r.seq - 1)) != 0,
            "rebuilt one that arrived"
        );
        assert!(last < Some(r.seq), "rebuilt twice or out of order");
        last = Some(r.seq);
        tracker.rebuilt(r.seq);
        assert_eq!(
            tracker.arrive(r.seq),
            Arrival::Seen,
            "a rebuilt packet is not sent again"
        );
    }
}

/// A datagram's STUN username, which routes it to a transport.
pub fn stun(data: &[u8]) {
    let _ = crate::sfu::local_ufrag(data);
}

/// A client's SDP answer to the server's offer, applied to a new transport of a real `Sfu`;
/// then the remaining bytes, in chunks of at most 1,500, as datagrams from the client's address;
/// then an ICE restart is asked for and its offer answered with the same text (the datagrams
/// again after it), then the transport is removed, and the `Sfu` must hold nothing of it.
///
/// One `Sfu` per thread serves every input: building one generates its DTLS certificate, which
/// cost more than everything else together (43 inputs a second instead of thousands). Reusing
/// it also checks what a fresh one could not: that removing a transport leaves no route, room or
/// address behind, whatever the answer and the datagrams did (the media worker lives for days).
pub fn sdp_answer(data: &[u8]) {
    thread_local! {
        static SFU: std::cell::RefCell<Option<Sfu>> = const { std::cell::RefCell::new(None) };
    }
    let (sdp, datagrams) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let Ok(sdp) = std::str::from_utf8(sdp) else {
        return;
    };
    let server: SocketAddr = "127.0.0.1:3478".parse().expect("address");
    let client: SocketAddr = "127.0.0.1:40000".parse().expect("address");
    SFU.with_borrow_mut(|slot| {
        let now = Instant::now();
        let sfu = slot.get_or_insert_with(|| Sfu::new(&[server], now));
        let participant = ParticipantId::generate();
        sfu.handle_command(
            now,
            SfuCommand::AddTransport {
                room: RoomId::generate(),
                participant: participant.clone(),
                publish: PublishKinds {
                    audio: true,
                    video: true,
                },
                subscribe: true,
                options: TransportOptions::default(),
            },
        );
        let feed = |sfu: &mut Sfu| {
            for datagram in datagrams.chunks(1500) {
                sfu.handle_receive(now, client, datagram);
            }
        };
        if answer_latest_offer(sfu, now, &participant, sdp) {
            feed(sfu);
            // An ICE restart answered with the same text: the retired ufrag and addresses
            // must go from the routes, and the new ones with the transport.
            sfu.handle_command(
                now,
                SfuCommand::RestartIce {
                    participant: participant.clone(),
                },
            );
            if answer_latest_offer(sfu, now, &participant, sdp) {
                feed(sfu);
            }
        }
        sfu.handle_command(now, SfuCommand::RemoveTransport { participant });
        while sfu.poll_event().is_some() {}
        while sfu.poll_transmit().is_some() {}
        assert!(
            sfu.holds_nothing(),
            "a removed transport left state behind in the Sfu"
        );
    });
}

/// Answers, with `sdp`, the latest offer the `Sfu` made to `participant` (its events drained);
/// false when it made none.
fn answer_latest_offer(
    sfu: &mut Sfu,
    now: Instant,
    participant: &ParticipantId,
    sdp: &str,
) -> bool {
    let mut offer_id = None;
    while let Some(event) = sfu.poll_event() {
        if let SfuEvent::Offer { offer, .. } = event {
            offer_id = Some(offer.offer_id);
        }
    }
    let Some(offer_id) = offer_id else {
        return false;
    };
    sfu.handle_command(
        now,
        SfuCommand::Answer {
            participant: participant.clone(),
            offer_id,
            answer: Answer::parse(sdp),
        },
    );
    true
}

/// Where coverage-guided fuzzing starts for `target`: small valid inputs of each shape the
/// target takes (`tests/fuzz_corpus.rs` writes them to `fuzz/corpus/<target>/` with
/// `HUIZHEN_WRITE_CORPUS=1`, and replays them with mutations in every test run).
pub fn seeds(target: &str) -> Vec<Vec<u8>> {
    let text = |items: &[&str]| items.iter().map(|s| s.as_bytes().to_vec()).collect();
    match target {
        "signaling" => text(&[
            r#"{"type":"join","v":1,"token":"hz1.eyJr.sig","name":"Dr. Wang","publish":{"audio":true,"video":true}}"#,
            r#"{"type":"resume","v":1,"resume_token":"hz1.eyJr.sig"}"#,
            r#"{"type":"answer","offer_id":1,"sdp":"v=0\r\n"}"#,
            r#"{"type":"media_state","audio_muted":true,"video_off":false}"#,
            r#"{"type":"ping","id":7}"#,
            r#"{"type":"chat","text":"血压 150/95, 复查"}"#,
            r#"{"type":"follow","document_id":"doc_abcdefghijklmnop","page":2,"zoom":1.5,"center":[0.5,0.5],"pointer":null}"#,
            r##"{"type":"annotate","document_id":"doc_abcdefghijklmnop","page":1,"shape":{"type":"circle","center":[0.2,0.3],"radius":0.1,"color":"#ff0000"}}"##,
            r#"{"type":"admit"}"#,
            r#"{"type":"decline","participant_id":"p_abcdefghijklmnop","reason":"请到门诊"}"#,
            r#"{"type":"waiting_message","text":"The doctor is running late"}"#,
            r#"{"type":"lock","locked":true}"#,
            r#"{"type":"precall","camera":true,"microphone":false,"connection":"poor","rtt_ms":420}"#,
            r#"{"type":"precall","camera":true,"microphone":true,"connection":"fair","media_path":"connected","media_rtt_ms":38,"loss_permille":12,"up_kbps":1450,"up_sent_kbps":900,"down_kbps":820,"down_estimate_kbps":3100,"down_loss_permille":3,"down_jitter_ms":9}"#,
            r#"{"type":"net_check"}"#,
            r#"{"type":"net_check_answer","offer_id":1,"sdp":"v=0\r\n"}"#,
            r#"{"type":"net_check_stop"}"#,
            r#"{"type":"huddle","active":true}"#,
            r#"{"type":"hold","participant_id":"p_abcdefghijklmnop","audio":true,"video":false}"#,
            r#"{"type":"consent","purpose":"recording","given":true}"#,
            r#"{"type":"end_room"}"#,
        ]),
        "upload_metadata" => vec![
            [
                &br#"{"name":"ECG 2026-12-01.csv","size":40,"sha256":"E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855","visibility":"clinicians"}"#[..],
                b"\0",
                b"# sample_rate_hz=250\nI,II\n0.1,0.2\n",
            ]
            .concat(),
            [
                r#"{"name":"报告.pdf","size":9,"sha256":"00","visibility":"everyone"}"#.as_bytes(),
                b"\0%PDF-1.4\n",
            ]
            .concat(),
        ],
        "content_kind" => vec![
            [&[0u8][..], b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"].concat(),
            [&[1u8][..], b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0"].concat(),
            [&[2u8][..], b"\xff\xd8\xff\xe0\0\x10JFIF\0"].concat(),
            [&[3u8][..], &dicom::sample(4, 4)].concat(),
            [&[4u8][..], b"I,II,III\n0.1,0.2,0.3\n"].concat(),
            [&[6u8][..], "转诊信".as_bytes()].concat(),
        ],
        "dicom" => vec![dicom::sample(6, 5), dicom::sample(1, 1)],
        "ecg" => text(&[
            "# sample_rate_hz=250\nI,II\n0.1,0.2\n0.3,0.4\n",
            r#"{"sample_rate_hz": 500, "leads": {"II": [0, 0.5, 1.0]}}"#,
        ]),
        "pdf" => vec![small_pdf()],
        "annotation" => text(&[
            r#"{"type":"arrow","from":[0.1,0.1],"to":[0.5,0.5]}"#,
            r##"{"type":"circle","center":[0.2,0.3],"radius":0.1,"color":"#00ff00"}"##,
            r#"{"type":"freehand","points":[[0.1,0.1],[0.2,0.25],[0.3,0.2]]}"#,
            r#"{"type":"text","at":[0.5,0.5],"text":"ST 段抬高"}"#,
        ]),
        "keyframe" => vec![
            // VP8: start of partition, key frame (P bit clear).
            vec![0, 0x10, 0x00, 0x9d, 0x01, 0x2a],
            // H.264: an IDR NAL unit, then a STAP-A holding SPS, PPS, IDR, then FU-A.
            vec![1, 0x65, 0x88],
            vec![1, 0x78, 0, 2, 0x67, 0x42, 0, 2, 0x68, 0xce, 0, 2, 0x65, 0x88],
            vec![1, 0x7c, 0x85, 0x88],
        ],
        "stun" => vec![stun_binding_request()],
        "sdp_answer" => vec![[SDP_ANSWER.as_bytes(), b"\0", &stun_binding_request()].concat()],
        // One level of redundancy (libwebrtc's), one lost before it; three levels, all lost.
        "red" => vec![
            [&[0b1, 0x12, 0x34, 0, 1, 0x2c, 0x00][..], &[0x80 | 111, 0x0f, 0x00, 3, 111], b"oldnew"]
                .concat(),
            [
                &[0b111, 0, 9, 0xff, 0xff, 0xff, 0xf0][..],
                &[0x80 | 111, 0x2d, 0x00, 1, 0x80 | 111, 0x1e, 0x00, 1],
                &[0x80 | 111, 0x0f, 0x00, 1, 111],
                b"321p",
            ]
            .concat(),
        ],
        "media_session" => media::seeds(),
        "audit_trail" => audit::seeds(),
        _ => Vec::new(),
    }
}

/// A one-page PDF drawing a rectangle and a line of text.
fn small_pdf() -> Vec<u8> {
    let content = b"q 0 0 1 rg 20 20 100 50 re f Q BT /F1 12 Tf 20 80 Td (ECG) Tj ET";
    let objects: Vec<Vec<u8>> = vec![
        b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_vec(),
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 100] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>".to_vec(),
        [format!("<< /Length {} >>\nstream\n", content.len()).as_bytes(), content, b"\nendstream"].concat(),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".to_vec(),
    ];
    render::pdf_of_objects(&objects, "")
}

/// A STUN binding request with a USERNAME attribute `srvr:clnt` (RFC 8489; no integrity).
fn stun_binding_request() -> Vec<u8> {
    let username = b"srvr:clnt";
    let mut v = vec![0x00, 0x01, 0x00, 0x10, 0x21, 0x12, 0xa4, 0x42];
    v.extend_from_slice(&[7; 12]);
    v.extend_from_slice(&[0x00, 0x06, 0x00, username.len() as u8]);
    v.extend_from_slice(username);
    v.extend_from_slice(&[0, 0, 0]);
    v
}

/// The shape of a browser's answer for one audio and one video line.
const SDP_ANSWER: &str = "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
a=group:BUNDLE 0 1\r\na=msid-semantic: WMS\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=rtcp:9 IN IP4 0.0.0.0\r\n\
a=ice-ufrag:clnt\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=ice-options:trickle\r\n\
a=fingerprint:sha-256 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF\r\n\
a=setup:active\r\na=mid:0\r\na=sendrecv\r\na=rtcp-mux\r\na=rtpmap:111 opus/48000/2\r\n\
a=fmtp:111 minptime=10;useinbandfec=1\r\na=ssrc:1111 cname:abc\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=rtcp:9 IN IP4 0.0.0.0\r\n\
a=ice-ufrag:clnt\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=ice-options:trickle\r\n\
a=fingerprint:sha-256 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF\r\n\
a=setup:active\r\na=mid:1\r\na=sendrecv\r\na=rtcp-mux\r\na=rtpmap:96 VP8/90000\r\n\
a=rtcp-fb:96 nack\r\na=rtcp-fb:96 nack pli\r\na=ssrc:2222 cname:abc\r\n";

#[cfg(test)]
mod tests {
    use super::*;

    /// The seeds reach past the first refusal: fuzzing starts from inputs the server takes.
    #[test]
    fn seeds_are_accepted_inputs() {
        for s in seeds("signaling") {
            let text = std::str::from_utf8(&s).unwrap();
            assert!(
                crate::signaling::protocol::ClientMessage::parse(text).is_ok(),
                "{text}"
            );
        }
        for s in seeds("annotation") {
            let v = serde_json::from_slice(&s).unwrap();
            assert!(annotation::parse(v).is_ok());
        }
        for s in seeds("ecg") {
            assert!(ecg::parse(std::str::from_utf8(&s).unwrap()).is_ok());
        }
        for s in seeds("dicom") {
            assert!(dicom::render_png(&s, 1 << 18).is_ok());
        }
        let limits = render::Limits {
            max_pixels: 1 << 18,
            max_stream_bytes: 1 << 20,
            max_page_bytes: 4 << 20,
        };
        let png = render::render_bytes(&seeds("pdf")[0], &limits, 0.25).unwrap();
        assert!(png.starts_with(b"\x89PNG"));
        assert_eq!(
            crate::sfu::local_ufrag(&seeds("stun")[0]),
            Some("srvr"),
            "the USERNAME's first half is ours"
        );
        let answer = Answer::parse(SDP_ANSWER);
        assert!(format!("{answer:?}").contains("Ok"), "{answer:?}");
    }
}
