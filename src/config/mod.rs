//! Configuration: one TOML file with every default written out (`huizhen config` prints it;
//! docs/huizhen.toml documents every key), overridable by environment variables.
//!
//! Precedence: built-in defaults < the TOML file (`--config`, optional) < environment variables
//! named `HUIZHEN_<SECTION>_<KEY>` (for example `HUIZHEN_MEDIA_UDP_BIND=0.0.0.0:40000`,
//! `HUIZHEN_LIMITS_MAX_PARTICIPANTS=8`). List values in the environment are comma separated.
//! `DATABASE_URL` is honoured when `storage.database_url` is not set otherwise.
//!
//! `[branding]` lives in its own file (`branding.rs`): besides the settings it owns the checks
//! of the institution's colour and names, and reads its logo once at start.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

// The institution's name, logo and accent colour for the web client.
pub mod branding;

pub use branding::{BrandingConfig, BrandingError};

/// Everything the server can be told. Every field has a default.
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub storage: StorageConfig,
    pub media: MediaConfig,
    pub limits: LimitsConfig,
    pub rooms: RoomsConfig,
    pub auth: AuthConfig,
    pub audit: AuditConfig,
    pub log: LogConfig,
    pub metrics: MetricsConfig,
    pub documents: DocumentsConfig,
    pub turn: TurnConfig,
    pub webhooks: WebhooksConfig,
    pub display: DisplayConfig,
    pub branding: BrandingConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// HTTPS + WSS listener (web client, API, signaling).
    pub listen: SocketAddr,
    /// Base URL put in invite links, e.g. "https://consult.example-hospital.cn". Empty: taken
    /// from the request's Host header.
    pub public_url: String,
    /// Extra origins allowed to open the signaling WebSocket. The server's own origin (the
    /// request's Host, or `public_url`) is always allowed.
    pub allowed_origins: Vec<String>,
    /// PEM certificate chain and private key. Empty: a self-signed development certificate is
    /// generated into `cert_dir` on first run.
    pub tls_cert: String,
    pub tls_key: String,
    pub cert_dir: PathBuf,
    /// Seconds that shutdown waits for connections to drain.
    pub shutdown_grace_s: u64,
    /// Seconds a new connection has to finish the TLS handshake.
    pub tls_handshake_timeout_s: u64,
    /// Seconds an HTTP/1.1 connection has to send a complete request head once it waits for
    /// one: after the handshake, and between keep-alive requests (hyper starts the clock when
    /// the connection starts waiting, so this is also how long an idle HTTP/1.1 connection is
    /// kept).
    pub header_read_timeout_s: u64,
    /// Seconds a connection may carry no byte in either direction while it waits on its client:
    /// before the first request, between HTTP/2 requests, while a request body is arriving
    /// and while a response is being written. Not while a handler is working, and never on
    /// an upgraded WebSocket (see `http::conn`).
    pub idle_timeout_s: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: "0.0.0.0:8443".parse().expect("static address"),
            public_url: String::new(),
            allowed_origins: Vec::new(),
            tls_cert: String::new(),
            tls_key: String::new(),
            cert_dir: PathBuf::from("certs"),
            shutdown_grace_s: 5,
            tls_handshake_timeout_s: 10,
            header_read_timeout_s: 20,
            idle_timeout_s: 60,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// Directory for the SQLite database and the signing key.
    pub data_dir: PathBuf,
    /// `sqlite://...` or `postgres://...`. Empty: `sqlite://<data_dir>/huizhen.db`.
    pub database_url: String,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("data"),
            database_url: String::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct MediaConfig {
    /// Media worker 0's UDP socket; worker N binds the port N above it (port 0: each worker a
    /// free port).
    pub udp_bind: SocketAddr,
    /// IP addresses announced to clients as ICE host candidates (with each worker's port). A server
    /// behind NAT must list its public IP here. Empty: every non-loopback IPv4 address of this
    /// host, or 127.0.0.1 when the socket is bound to loopback.
    pub announce: Vec<IpAddr>,
    /// Media worker threads, each with its own UDP port; rooms are spread over them.
    pub workers: usize,
    /// Receive and send buffer asked of the kernel for each media socket, in bytes (0: the
    /// system's defaults). Datagrams that arrive while a worker is busy wait there; the
    /// system's `net.core.rmem_max` / `wmem_max` cap it.
    pub socket_buffer_bytes: usize,
    /// Offer passive ICE-TCP candidates (RFC 6544, media framed as RFC 4571) besides UDP, for
    /// participants whose network lets no UDP through. Browsers prefer UDP when it works (a
    /// TCP candidate has a lower priority), so an unused listener costs one socket.
    pub tcp: bool,
    /// The ICE-TCP listener, one for every worker. Empty: `udp_bind`'s address and port, over
    /// TCP (with port 0, a free port). A deployment whose clients may only reach port 443 puts
    /// it there when HTTPS listens elsewhere (`0.0.0.0:443`).
    pub tcp_bind: String,
    /// The port announced in the TCP candidates, when a port mapping (a NAT, a load balancer)
    /// forwards another one to `tcp_bind`. 0: the bound port.
    pub tcp_announce_port: u16,
    /// ICE-TCP connections open at once, waiting for their first STUN request included; past
    /// it a new connection is closed at once.
    pub tcp_max_connections: usize,
    /// ICE-TCP connections open at once from one address (an IPv6 client's /64). A browser
    /// opens one per candidate pair it tries; a ward behind one NAT shares an address.
    pub tcp_max_connections_per_address: usize,
    /// Seconds a new ICE-TCP connection has to send its first frame, a STUN binding request
    /// naming one of our peer connections; otherwise it is closed.
    pub tcp_stun_timeout_s: u64,
    /// Seconds an ICE-TCP connection may receive nothing (browsers send a consent check every
    /// few seconds), or take to accept what is written to it, before it is closed.
    pub tcp_idle_timeout_s: u64,
    /// Simulcast for clients that ask for it (`publish.simulcast` in their join): their camera
    /// is received in three layers, and the video each of them is sent is chosen from an
    /// estimate of their own connection (audio only when even the lowest layer does not fit).
    /// On by default. Off: every camera in one layer, every participant sent it whatever their
    /// link, as for a client that does not ask. (It was off by default while a video paused on
    /// a young or application-limited estimate never came back, docs/SIMULCAST.md §9; a video
    /// now pauses only on evidence of congestion, §10.)
    pub simulcast: bool,
    /// Pre-call network checks over the media path running at once (`netcheck`): each is a
    /// peer connection that receives a waiting person's camera and microphone for a few
    /// seconds. Past it a check is refused and the client reports its signaling round trip
    /// alone.
    pub max_net_checks: usize,
    /// Seconds one network check may last before the server ends it (clients measure for
    /// about six once connected).
    pub net_check_seconds: u64,
}

/// Bounds on `media.max_net_checks`.
pub const MAX_NET_CHECKS: std::ops::RangeInclusive<usize> = 1..=10_000;

/// Bounds on `media.net_check_seconds`.
pub const NET_CHECK_SECONDS: std::ops::RangeInclusive<u64> = 5..=60;

/// Bounds on `media.socket_buffer_bytes` (other than 0).
pub const SOCKET_BUFFER_BYTES: std::ops::RangeInclusive<usize> = 65_536..=(256 << 20);

/// Bounds on `server.tls_handshake_timeout_s` and `server.header_read_timeout_s`.
pub const HANDSHAKE_AND_HEADER_TIMEOUT_S: std::ops::RangeInclusive<u64> = 1..=300;

/// Bounds on `server.idle_timeout_s`.
pub const IDLE_TIMEOUT_S: std::ops::RangeInclusive<u64> = 1..=3600;

/// Upper bound on `limits.max_http_connections`.
pub const MAX_HTTP_CONNECTIONS: usize = 1 << 20;

/// Bounds on `media.tcp_stun_timeout_s`.
pub const TCP_STUN_TIMEOUT_S: std::ops::RangeInclusive<u64> = 1..=60;

/// Bounds on `media.tcp_idle_timeout_s`.
pub const TCP_IDLE_TIMEOUT_S: std::ops::RangeInclusive<u64> = 1..=3600;

/// Upper bound on `media.tcp_max_connections`.
pub const MAX_TCP_MEDIA_CONNECTIONS: usize = 1 << 16;

/// Upper bound on `media.workers`: one per core is the useful most.
pub const MAX_MEDIA_WORKERS: usize = 256;

/// Upper bound on `limits.max_participants`. A room's task handles every join, leave and
/// signaling message of the room and each join is announced to everyone present, so a room's
/// signaling work grows with the square of its size; a thousand is well inside what one task
/// keeps up with (the training knee search in loadtests/ reaches past 500 in one lecture).
pub const MAX_ROOM_PARTICIPANTS: usize = 1000;

/// Default of `media.socket_buffer_bytes`: room for bursts of a few thousand packets while a
/// worker's turn runs (docs/BENCHMARKS.md, "Where the loss came from").
pub const DEFAULT_SOCKET_BUFFER_BYTES: usize = 4 << 20;

impl Default for MediaConfig {
    fn default() -> Self {
        Self {
            udp_bind: "0.0.0.0:40000".parse().expect("static address"),
            announce: Vec::new(),
            workers: 1,
            socket_buffer_bytes: DEFAULT_SOCKET_BUFFER_BYTES,
            tcp: true,
            tcp_bind: String::new(),
            tcp_announce_port: 0,
            tcp_max_connections: 1000,
            tcp_max_connections_per_address: 32,
            tcp_stun_timeout_s: 5,
            tcp_idle_timeout_s: 30,
            simulcast: true,
            max_net_checks: 32,
            net_check_seconds: 15,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Largest signaling message accepted, in bytes.
    pub max_message_bytes: usize,
    /// Sustained signaling messages per second per connection, and the burst allowed above it.
    pub messages_per_second: u32,
    pub message_burst: u32,
    /// Participants present at once in one room (2 to [`MAX_ROOM_PARTICIPANTS`]). A consultation
    /// is a handful; a training lecture (one presenter, an audience of doctors) may be hundreds.
    pub max_participants: usize,
    /// Rooms live at once on this server.
    pub max_rooms: usize,
    /// Signaling connections open at once.
    pub max_connections: usize,
    /// Connections open at once on the HTTPS listener, whatever they carry (TLS handshakes,
    /// API requests, signaling WebSockets); past it a new connection is closed at once. Lowered
    /// at start to what the open-file limit leaves room for.
    pub max_http_connections: usize,
    /// Connections open at once from one client address (an IPv6 client's /64), within
    /// `max_http_connections`. A whole ward may share one address behind a NAT; behind a
    /// reverse proxy every client has the proxy's address, so set it to `max_http_connections`.
    pub max_connections_per_address: usize,
    /// Largest HTTP API request body, in bytes.
    pub max_api_body_bytes: usize,
    /// Requests a minute from one client address (an IPv6 client's /64) to what anyone may
    /// call without a session: the join page's invitation check, short-code redemption, the
    /// patient's outcome page and its PDF. A minute's worth may come at once. 0 turns the
    /// limit off (behind a reverse proxy every client has the proxy's address).
    pub public_requests_per_minute: u32,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_message_bytes: 64 * 1024,
            messages_per_second: 20,
            message_burst: 40,
            max_participants: 16,
            max_rooms: 1000,
            max_connections: 10_000,
            max_http_connections: 12_000,
            max_connections_per_address: 500,
            max_api_body_bytes: 64 * 1024,
            public_requests_per_minute: 120,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RoomsConfig {
    /// Seconds a participant whose signaling dropped stays in the room, resumable.
    pub resume_window_s: u64,
    /// Seconds a participant has to send `join` after opening the WebSocket.
    pub join_timeout_s: u64,
    /// Seconds one write to a signaling client may wait for it to read: a client that stops
    /// reading is disconnected after it (resumable, like any dropped connection).
    pub write_timeout_s: u64,
    /// Default and maximum invite lifetime, in minutes.
    pub invite_default_minutes: u64,
    pub invite_max_minutes: u64,
    // Invitations to a consultation with a time slot, and their short codes.
    /// Minutes before the slot starts that its invitations open.
    pub invite_open_before_minutes: u64,
    /// Minutes after the slot ends that its invitations close.
    pub invite_close_after_minutes: u64,
    /// Failed code redemptions allowed from one address (an IPv6 /64) in 15 minutes.
    pub code_failures_per_address: usize,
    /// Failed redemptions of one code value, from any address, in 15 minutes.
    pub code_failures_per_code: usize,
    /// Days after the consultation ended (or, while it has not, after the link was made) that
    /// a patient's invitation opens their outcome page; 0 turns the page off.
    pub outcome_days: u64,
}

/// The highest `limits.public_requests_per_minute` (above it, use 0: no limit).
pub const MAX_PUBLIC_REQUESTS_PER_MINUTE: u32 = 100_000;

/// The longest `rooms.write_timeout_s`: a client that reads nothing for longer is gone.
pub const MAX_WRITE_TIMEOUT_S: u64 = 300;

/// The most minutes an invitation may open before its slot, or close after it.
pub const MAX_INVITE_MARGIN_MINUTES: u64 = 24 * 60;

impl Default for RoomsConfig {
    fn default() -> Self {
        Self {
            resume_window_s: 30,
            join_timeout_s: 10,
            write_timeout_s: 20,
            invite_default_minutes: 240,
            invite_max_minutes: 7 * 24 * 60,
            invite_open_before_minutes: 30,
            invite_close_after_minutes: 60,
            code_failures_per_address: 10,
            code_failures_per_code: 5,
            outcome_days: 30,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// File holding the token signing key. Empty: `<data_dir>/signing.key`, created on first run.
    pub signing_key_file: String,
    /// Absolute lifetime of a clinician's sign-in, in hours: renewals never extend a session
    /// past it.
    pub session_hours: u64,
    /// Seconds a clinician's session may go without renewal before it ends (the console renews
    /// while it is being used). Also the lifetime of each session token.
    pub session_idle_s: u64,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            signing_key_file: String::new(),
            session_hours: 12,
            session_idle_s: 30 * 60,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AuditConfig {
    /// File holding the key the audit chain's hashes and anchors are keyed with (HMAC-SHA256).
    /// Empty: `<data_dir>/audit.key`, created on first run. Never in the database: someone who
    /// can write the database but not read this file cannot rewrite the trail unnoticed. It may
    /// live on another volume; losing it leaves the trail unverifiable.
    pub key_file: String,
    /// Append-only file the chain's head is anchored to. Empty: `<data_dir>/audit-anchors.jsonl`.
    pub anchor_file: String,
    /// Seconds between anchors (written only when the head moved; also at start and at
    /// shutdown).
    pub anchor_interval_s: u64,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            key_file: String::new(),
            anchor_file: String::new(),
            anchor_interval_s: 300,
        }
    }
}

/// Bounds on `audit.anchor_interval_s`.
pub const ANCHOR_INTERVAL_S: std::ops::RangeInclusive<u64> = 1..=86_400;

/// Bounds on `auth.session_hours`.
pub const SESSION_HOURS: std::ops::RangeInclusive<u64> = 1..=720;

/// Bounds on `auth.session_idle_s`.
pub const SESSION_IDLE_S: std::ops::RangeInclusive<u64> = 1..=86_400;

/// The longest `rooms.outcome_days`: a patient's link opens their outcome page for a year at
/// most after the consultation.
pub const MAX_OUTCOME_DAYS: u64 = 366;

/// TURN relays for participants whose network lets no UDP through to the media port: each
/// participant is given short-lived credentials for them (`auth::TurnServers`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TurnConfig {
    /// TURN server URIs (RFC 7065): `turn:host[:port][?transport=udp|tcp]` or
    /// `turns:host[:port][?transport=tcp|udp]` (TLS or DTLS). Empty: no TURN.
    pub urls: Vec<String>,
    /// File holding the secret shared with the TURN servers (coturn's `static-auth-secret`).
    /// Required when `urls` is set; never created, never logged.
    pub secret_file: String,
    /// Seconds a participant's credentials stay valid after they are handed out (with
    /// `joined`, `resumed` and on admission).
    pub credential_lifetime_s: u64,
}

impl Default for TurnConfig {
    fn default() -> Self {
        Self {
            urls: Vec::new(),
            secret_file: String::new(),
            credential_lifetime_s: 3600,
        }
    }
}

/// Institutions' outgoing webhooks (`crate::webhooks`): which endpoints are allowed, and the
/// delivery's limits.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct WebhooksConfig {
    /// Allow `http://` endpoints on loopback (127.0.0.0/8, ::1, localhost): tests, or a relay
    /// on the same host. Off: https only, and loopback refused.
    pub allow_http_loopback: bool,
    /// Allow endpoints on private networks (10/8, 172.16/12, 192.168/16, 100.64/10, fc00::/7),
    /// such as a hospital's own systems on its intranet. Link-local (cloud metadata),
    /// unspecified and multicast addresses are never allowed.
    pub allow_private_networks: bool,
    /// Seconds one attempt may take, connection and answer included.
    pub timeout_s: u64,
    /// The most bytes of an answer read (the rest is discarded unread).
    pub max_response_bytes: usize,
    /// The most attempts under way at once, over all institutions.
    pub concurrency: usize,
    /// Attempts before an event is given up (marked failed).
    pub max_attempts: u32,
    /// The wait after the first failed attempt, doubled after each (with jitter).
    pub backoff_base_ms: u64,
    /// The longest wait between two attempts.
    pub backoff_max_s: u64,
    /// Events that may wait for one institution; past it new events are not queued for it
    /// (counted as dropped, audited, and a gap in the consultation's sequence).
    pub max_pending_per_institution: u64,
    /// How often the outbox is read for events due (besides being woken by new events).
    pub poll_interval_ms: u64,
    /// A PEM file of one or more certificates (a hospital's internal CA, or several) that
    /// endpoints' certificates may also be issued by, besides the public roots; read and
    /// checked at start (see `webhooks::roots`). Empty: the public roots only.
    pub ca_file: String,
}

impl Default for WebhooksConfig {
    fn default() -> Self {
        Self {
            allow_http_loopback: false,
            allow_private_networks: false,
            timeout_s: 10,
            max_response_bytes: 4096,
            concurrency: 8,
            max_attempts: 12,
            backoff_base_ms: 2000,
            backoff_max_s: 3600,
            max_pending_per_institution: 10_000,
            poll_interval_ms: 1000,
            ca_file: String::new(),
        }
    }
}

/// Bounds on `turn.credential_lifetime_s`: a minute to a day.
pub const TURN_CREDENTIAL_LIFETIME_S: std::ops::RangeInclusive<u64> = 60..=86_400;

/// The most TURN URIs handed to each participant.
pub const MAX_TURN_URLS: usize = 16;

/// Why a TURN URI was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TurnUrlError {
    #[error("must start with turn: or turns:")]
    Scheme,
    #[error("has no host")]
    NoHost,
    #[error("has a host that is not an IP address or a DNS name")]
    Host,
    #[error("has a port that is not 1 to 65535")]
    Port,
    #[error("may only have ?transport=udp or ?transport=tcp after the address")]
    Query,
}

/// Checks a TURN URI against RFC 7065's grammar: `turn:` or `turns:`, a host (IPv4, `[IPv6]`
/// or a DNS name), an optional port and an optional `?transport=udp|tcp`. No user information,
/// path or other query: browsers refuse those.
pub fn check_turn_url(url: &str) -> Result<(), TurnUrlError> {
    let rest = url
        .strip_prefix("turn:")
        .or_else(|| url.strip_prefix("turns:"))
        .ok_or(TurnUrlError::Scheme)?;
    let (address, query) = match rest.split_once('?') {
        Some((a, q)) => (a, Some(q)),
        None => (rest, None),
    };
    if let Some(q) = query
        && !matches!(q, "transport=udp" | "transport=tcp")
    {
        return Err(TurnUrlError::Query);
    }
    let (host, port) = if let Some(v6) = address.strip_prefix('[') {
        let (ip, after) = v6.split_once(']').ok_or(TurnUrlError::Host)?;
        ip.parse::<std::net::Ipv6Addr>()
            .map_err(|_| TurnUrlError::Host)?;
        match after {
            "" => (ip, None),
            p => (ip, Some(p.strip_prefix(':').ok_or(TurnUrlError::Host)?)),
        }
    } else {
        match address.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (address, None),
        }
    };
    if host.is_empty() {
        return Err(TurnUrlError::NoHost);
    }
    if !address.starts_with('[') {
        let dns_label = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        };
        if host.len() > 253 || !host.split('.').all(dns_label) {
            return Err(TurnUrlError::Host);
        }
    }
    if let Some(p) = port
        && !(p.bytes().all(|b| b.is_ascii_digit()) && p.parse::<u16>().is_ok_and(|p| p != 0))
    {
        return Err(TurnUrlError::Port);
    }
    Ok(())
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// tracing filter, e.g. "info" or "huizhen=debug,str0m=warn". `RUST_LOG` wins if set.
    pub filter: String,
    /// "text" or "json".
    pub format: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            filter: "info,str0m=warn,is=warn,sqlx=warn".into(),
            format: "text".into(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// Plain-HTTP listener for Prometheus (`GET /metrics`). Empty: no metrics listener. Keep it
    /// on loopback or a private interface: it is not authenticated.
    pub listen: String,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:9464".into(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct DocumentsConfig {
    /// Largest document accepted, in bytes (then `too_large`, HTTP 413).
    pub max_upload_bytes: u64,
    /// Largest upload chunk (one HTTP request body), in bytes.
    pub max_chunk_bytes: usize,
    /// Documents shared in one room, by everyone together (an upload under way holds its
    /// place from its start).
    pub max_per_room: usize,
    /// Of `max_per_room`, the documents that participants who are not clinicians (patients)
    /// may share together; the other places are kept for doctors and specialists. Less than
    /// `max_per_room`; 0: only clinicians share.
    pub max_per_room_non_clinicians: usize,
    /// Documents one person (one invite, whatever their role) may share in a room, uploads
    /// under way included.
    pub max_documents_per_person: usize,
    /// Bytes one person may share in a room, uploads under way counted at their declared size.
    /// At least `max_upload_bytes`.
    pub max_bytes_per_person: u64,
    /// Uploads one person may have open at once in a room; also the files one account may be
    /// sending whole at once (a consultation request's attachments).
    pub max_open_uploads: usize,
    /// Hours an unfinished upload is kept for resuming before it is discarded.
    pub upload_expiry_hours: u64,
    /// Renders (PDF pages, DICOM frames and headers, ECG strips) running at once, server-wide.
    pub render_concurrency: usize,
    /// Seconds a render waits for its turn before it is refused (`render_busy`, HTTP 503).
    pub render_wait_s: u64,
    /// Pixels in one rendered PDF page image (each side is also at most 4096).
    pub max_page_pixels: u64,
    /// Pixels in one rendered DICOM frame; a larger frame is shown shrunk to fit.
    pub max_dicom_pixels: u64,
    /// Bytes one PDF stream may decompress to (then `too_large_to_render`, HTTP 422).
    pub max_inflated_stream_bytes: u64,
    /// Bytes one PDF page's decompressed streams and images may take together (the same).
    pub max_inflated_page_bytes: u64,
    /// Documents attached to one consultation request (uploaded or taken from the patient's
    /// earlier consultations). They all become documents of the request's room, so the limit
    /// in force is the least of this, `max_documents_per_person` and `max_per_room`.
    pub max_referral_documents: usize,
    /// Bytes attached to one consultation request together; the limit in force is the lesser
    /// of this and `max_bytes_per_person`. One attachment is at most `max_upload_bytes`.
    pub max_referral_bytes: u64,
}

impl Default for DocumentsConfig {
    fn default() -> Self {
        Self {
            max_upload_bytes: 128 * 1024 * 1024,
            max_chunk_bytes: 4 * 1024 * 1024,
            max_per_room: 200,
            max_per_room_non_clinicians: 100,
            max_documents_per_person: 50,
            max_bytes_per_person: 1 << 30,
            max_open_uploads: 4,
            upload_expiry_hours: 24,
            render_concurrency: 2,
            render_wait_s: 10,
            max_page_pixels: 8 << 20,
            max_dicom_pixels: 24 << 20,
            max_inflated_stream_bytes: 64 << 20,
            max_inflated_page_bytes: 256 << 20,
            max_referral_documents: 20,
            max_referral_bytes: 256 << 20,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct DisplayConfig {
    /// The institution's time zone, an IANA name such as "Asia/Shanghai": every time in the
    /// PDFs is printed in it, and the web client shows times in it rather than in the browser's.
    /// Empty: the server's own zone (`TZ`, else `/etc/localtime`, else UTC). Looked up in the
    /// time-zone database built into the binary.
    pub time_zone: String,
}

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {source}")]
    Parse {
        path: PathBuf,
        source: toml::de::Error,
    },
    #[error("invalid value in environment variable {var}: {reason}")]
    Env { var: String, reason: String },
    #[error("invalid configuration: {0}")]
    Invalid(String),
    /// `[branding]`: its message names the key.
    #[error(transparent)]
    Branding(#[from] BrandingError),
}

impl Config {
    /// Defaults, then the file (if any), then the process environment.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let mut config = match path {
            Some(path) => Self::from_file(path)?,
            None => Self::default(),
        };
        config.apply_env(std::env::vars())?;
        // The conventional variable, for deployments that already set it.
        if config.storage.database_url.is_empty()
            && let Ok(url) = std::env::var("DATABASE_URL")
        {
            config.storage.database_url = url;
        }
        config.validate()?;
        Ok(config)
    }

    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.to_owned(),
            source,
        })
    }

    /// The defaults as a commented TOML document.
    pub fn default_toml() -> String {
        let body = toml::to_string_pretty(&Self::default()).expect("defaults serialize");
        format!(
            "# huizhen configuration: every key with its default.\n\
             # Override any key with HUIZHEN_<SECTION>_<KEY>, e.g. HUIZHEN_SERVER_LISTEN.\n\n{body}"
        )
    }

    /// Applies `HUIZHEN_<SECTION>_<KEY>` variables. Works on the TOML value tree so every key of
    /// every section is overridable without a hand-written list.
    pub fn apply_env(
        &mut self,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<(), ConfigError> {
        let mut tree = toml::Value::try_from(&*self).expect("config serializes");
        let mut changed = false;
        for (var, raw) in vars {
            let Some(rest) = var.strip_prefix("HUIZHEN_") else {
                continue;
            };
            let rest = rest.to_ascii_lowercase();
            let table = tree.as_table_mut().expect("config is a table");
            let Some((section, key)) = table
                .keys()
                .find_map(|s| rest.strip_prefix(&format!("{s}_")).map(|k| (s.clone(), k)))
            else {
                continue;
            };
            let section_table = table
                .get_mut(&section)
                .and_then(|v| v.as_table_mut())
                .expect("sections are tables");
            let Some(current) = section_table.get(key) else {
                return Err(ConfigError::Env {
                    var,
                    reason: format!("no key `{key}` in section [{section}]"),
                });
            };
            let value = env_value(current, &raw).map_err(|reason| ConfigError::Env {
                var: var.clone(),
                reason,
            })?;
            section_table.insert(key.to_owned(), value);
            changed = true;
        }
        if changed {
            *self = tree
                .try_into()
                .map_err(|e: toml::de::Error| ConfigError::Env {
                    var: "HUIZHEN_*".into(),
                    reason: e.to_string(),
                })?;
        }
        Ok(())
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let l = &self.limits;
        let bad = |m: &str| Err(ConfigError::Invalid(m.to_owned()));
        if l.max_message_bytes < 1024 {
            return bad("limits.max_message_bytes must be at least 1024");
        }
        if l.messages_per_second == 0 || l.message_burst == 0 {
            return bad("limits.messages_per_second and limits.message_burst must be positive");
        }
        if l.max_participants < 2 || l.max_participants > MAX_ROOM_PARTICIPANTS {
            return Err(ConfigError::Invalid(format!(
                "limits.max_participants must be between 2 and {MAX_ROOM_PARTICIPANTS}"
            )));
        }
        let d = &self.documents;
        if d.max_chunk_bytes < 64 * 1024 || d.max_upload_bytes == 0 || d.max_per_room == 0 {
            return bad(
                "documents.max_chunk_bytes must be at least 65536; max_upload_bytes and max_per_room positive",
            );
        }
        if d.max_per_room_non_clinicians >= d.max_per_room {
            return bad(
                "documents.max_per_room_non_clinicians must be less than max_per_room (the rest is kept for clinicians)",
            );
        }
        if d.max_documents_per_person == 0 || d.max_open_uploads == 0 {
            return bad("documents.max_documents_per_person and max_open_uploads must be positive");
        }
        if d.max_bytes_per_person < d.max_upload_bytes {
            return bad("documents.max_bytes_per_person must be at least max_upload_bytes");
        }
        if d.max_referral_documents == 0 || d.max_referral_bytes == 0 {
            return bad("documents.max_referral_documents and max_referral_bytes must be positive");
        }
        if d.render_concurrency == 0
            || d.max_page_pixels < 1 << 20
            || d.max_dicom_pixels < 1 << 20
            || d.max_inflated_stream_bytes < 1 << 20
            || d.max_inflated_page_bytes < d.max_inflated_stream_bytes
        {
            return bad(
                "documents.render_concurrency must be positive; max_page_pixels, max_dicom_pixels and max_inflated_stream_bytes at least 1048576; max_inflated_page_bytes at least max_inflated_stream_bytes",
            );
        }
        if l.max_rooms == 0 || l.max_connections == 0 {
            return bad("limits.max_rooms and limits.max_connections must be positive");
        }
        if l.max_http_connections == 0 || l.max_http_connections > MAX_HTTP_CONNECTIONS {
            return bad(&format!(
                "limits.max_http_connections must be between 1 and {MAX_HTTP_CONNECTIONS}"
            ));
        }
        if l.max_connections_per_address == 0
            || l.max_connections_per_address > l.max_http_connections
        {
            return bad(
                "limits.max_connections_per_address must be between 1 and limits.max_http_connections",
            );
        }
        if l.public_requests_per_minute > MAX_PUBLIC_REQUESTS_PER_MINUTE {
            return bad(&format!(
                "limits.public_requests_per_minute must be at most {MAX_PUBLIC_REQUESTS_PER_MINUTE} (0 turns it off)"
            ));
        }
        let s = &self.server;
        for (key, value) in [
            ("tls_handshake_timeout_s", s.tls_handshake_timeout_s),
            ("header_read_timeout_s", s.header_read_timeout_s),
        ] {
            if !HANDSHAKE_AND_HEADER_TIMEOUT_S.contains(&value) {
                return bad(&format!(
                    "server.{key} must be between {} and {}",
                    HANDSHAKE_AND_HEADER_TIMEOUT_S.start(),
                    HANDSHAKE_AND_HEADER_TIMEOUT_S.end()
                ));
            }
        }
        if !IDLE_TIMEOUT_S.contains(&s.idle_timeout_s) {
            return bad(&format!(
                "server.idle_timeout_s must be between {} and {}",
                IDLE_TIMEOUT_S.start(),
                IDLE_TIMEOUT_S.end()
            ));
        }
        let m = &self.media;
        if m.workers == 0 || m.workers > MAX_MEDIA_WORKERS {
            return bad(&format!(
                "media.workers must be between 1 and {MAX_MEDIA_WORKERS}"
            ));
        }
        if m.socket_buffer_bytes != 0 && !SOCKET_BUFFER_BYTES.contains(&m.socket_buffer_bytes) {
            return bad(&format!(
                "media.socket_buffer_bytes must be 0 (the system's default) or between {} and {}",
                SOCKET_BUFFER_BYTES.start(),
                SOCKET_BUFFER_BYTES.end()
            ));
        }
        if m.udp_bind.port() != 0 && usize::from(m.udp_bind.port()) + m.workers - 1 > 65535 {
            return bad("media.udp_bind's port + media.workers - 1 must be a UDP port (<= 65535)");
        }
        if !m.tcp_bind.is_empty() && m.tcp_bind.parse::<SocketAddr>().is_err() {
            return bad("media.tcp_bind must be empty or an address like 0.0.0.0:443");
        }
        if m.tcp_max_connections == 0 || m.tcp_max_connections > MAX_TCP_MEDIA_CONNECTIONS {
            return bad(&format!(
                "media.tcp_max_connections must be between 1 and {MAX_TCP_MEDIA_CONNECTIONS}"
            ));
        }
        if m.tcp_max_connections_per_address == 0
            || m.tcp_max_connections_per_address > m.tcp_max_connections
        {
            return bad(
                "media.tcp_max_connections_per_address must be between 1 and media.tcp_max_connections",
            );
        }
        for (key, value, range) in [
            (
                "tcp_stun_timeout_s",
                m.tcp_stun_timeout_s,
                TCP_STUN_TIMEOUT_S,
            ),
            (
                "tcp_idle_timeout_s",
                m.tcp_idle_timeout_s,
                TCP_IDLE_TIMEOUT_S,
            ),
            ("net_check_seconds", m.net_check_seconds, NET_CHECK_SECONDS),
        ] {
            if !range.contains(&value) {
                return bad(&format!(
                    "media.{key} must be between {} and {}",
                    range.start(),
                    range.end()
                ));
            }
        }
        if !MAX_NET_CHECKS.contains(&m.max_net_checks) {
            return bad(&format!(
                "media.max_net_checks must be between {} and {}",
                MAX_NET_CHECKS.start(),
                MAX_NET_CHECKS.end()
            ));
        }
        if self.server.tls_cert.is_empty() != self.server.tls_key.is_empty() {
            return bad("server.tls_cert and server.tls_key must be set together");
        }
        if !self.metrics.listen.is_empty() && self.metrics.listen.parse::<SocketAddr>().is_err() {
            return bad("metrics.listen must be empty or an address like 127.0.0.1:9464");
        }
        let a = &self.auth;
        if !SESSION_HOURS.contains(&a.session_hours) {
            return bad(&format!(
                "auth.session_hours must be between {} and {}",
                SESSION_HOURS.start(),
                SESSION_HOURS.end()
            ));
        }
        if !SESSION_IDLE_S.contains(&a.session_idle_s) {
            return bad(&format!(
                "auth.session_idle_s must be between {} and {}",
                SESSION_IDLE_S.start(),
                SESSION_IDLE_S.end()
            ));
        }
        if !ANCHOR_INTERVAL_S.contains(&self.audit.anchor_interval_s) {
            return bad(&format!(
                "audit.anchor_interval_s must be between {} and {}",
                ANCHOR_INTERVAL_S.start(),
                ANCHOR_INTERVAL_S.end()
            ));
        }
        // Invitations: windows around a slot, and the short codes' throttle.
        let r = &self.rooms;
        if r.invite_open_before_minutes > MAX_INVITE_MARGIN_MINUTES
            || r.invite_close_after_minutes > MAX_INVITE_MARGIN_MINUTES
        {
            return bad(&format!(
                "rooms.invite_open_before_minutes and invite_close_after_minutes must be at most {MAX_INVITE_MARGIN_MINUTES}"
            ));
        }
        if r.write_timeout_s == 0 || r.write_timeout_s > MAX_WRITE_TIMEOUT_S {
            return bad(&format!(
                "rooms.write_timeout_s must be between 1 and {MAX_WRITE_TIMEOUT_S}"
            ));
        }
        if r.code_failures_per_address == 0 || r.code_failures_per_code == 0 {
            return bad(
                "rooms.code_failures_per_address and code_failures_per_code must be positive",
            );
        }
        // The patient's outcome page.
        if self.rooms.outcome_days > MAX_OUTCOME_DAYS {
            return bad(&format!(
                "rooms.outcome_days must be between 0 and {MAX_OUTCOME_DAYS}"
            ));
        }
        let t = &self.turn;
        if t.urls.len() > MAX_TURN_URLS {
            return bad(&format!("turn.urls may list at most {MAX_TURN_URLS} URIs"));
        }
        for url in &t.urls {
            if let Err(e) = check_turn_url(url) {
                return Err(ConfigError::Invalid(format!("turn.urls: {url:?} {e}")));
            }
        }
        if !t.urls.is_empty() && t.secret_file.is_empty() {
            return bad("turn.secret_file must be set when turn.urls is");
        }
        if !TURN_CREDENTIAL_LIFETIME_S.contains(&t.credential_lifetime_s) {
            return bad(&format!(
                "turn.credential_lifetime_s must be between {} and {}",
                TURN_CREDENTIAL_LIFETIME_S.start(),
                TURN_CREDENTIAL_LIFETIME_S.end()
            ));
        }
        let w = &self.webhooks;
        if !(1..=120).contains(&w.timeout_s)
            || !(1..=1_048_576).contains(&w.max_response_bytes)
            || !(1..=256).contains(&w.concurrency)
            || !(1..=100).contains(&w.max_attempts)
            || !(10..=3_600_000).contains(&w.backoff_base_ms)
            || !(1..=86_400).contains(&w.backoff_max_s)
            || !(1..=10_000_000).contains(&w.max_pending_per_institution)
            || !(10..=60_000).contains(&w.poll_interval_ms)
        {
            return bad(
                "webhooks: timeout_s 1..120, max_response_bytes 1..1048576, concurrency 1..256, max_attempts 1..100, backoff_base_ms 10..3600000, backoff_max_s 1..86400, max_pending_per_institution 1..10000000, poll_interval_ms 10..60000",
            );
        }
        if !matches!(self.log.format.as_str(), "text" | "json") {
            return bad("log.format must be \"text\" or \"json\"");
        }
        // The same lookup as `domain::time_zone::DisplayZone::configured`, which the edge uses
        // (config and domain are one layer and do not import each other).
        let tz = self.display.time_zone.trim();
        if !tz.is_empty() && (tz.len() > 64 || jiff::tz::TimeZone::get(tz).is_err()) {
            return Err(ConfigError::Invalid(format!(
                "display.time_zone: unknown time zone {:?}: give an IANA name such as \"Asia/Shanghai\" or \"UTC\", or leave it empty for the server's own",
                tz.chars().take(64).collect::<String>()
            )));
        }
        // The logo is read at start (`BrandingConfig::load`), not here.
        self.branding.check()?;
        Ok(())
    }

    pub fn database_url(&self) -> String {
        if self.storage.database_url.is_empty() {
            format!(
                "sqlite://{}?mode=rwc",
                self.storage.data_dir.join("huizhen.db").display()
            )
        } else {
            self.storage.database_url.clone()
        }
    }

    pub fn signing_key_path(&self) -> PathBuf {
        if self.auth.signing_key_file.is_empty() {
            self.storage.data_dir.join("signing.key")
        } else {
            PathBuf::from(&self.auth.signing_key_file)
        }
    }

    pub fn audit_key_path(&self) -> PathBuf {
        if self.audit.key_file.is_empty() {
            self.storage.data_dir.join("audit.key")
        } else {
            PathBuf::from(&self.audit.key_file)
        }
    }

    pub fn audit_anchor_path(&self) -> PathBuf {
        if self.audit.anchor_file.is_empty() {
            self.storage.data_dir.join("audit-anchors.jsonl")
        } else {
            PathBuf::from(&self.audit.anchor_file)
        }
    }
}

/// Parses an environment string into the same TOML type as the key's current value.
fn env_value(current: &toml::Value, raw: &str) -> Result<toml::Value, String> {
    use toml::Value;
    Ok(match current {
        Value::String(_) => Value::String(raw.to_owned()),
        Value::Integer(_) => Value::Integer(raw.trim().parse().map_err(|_| "expected an integer")?),
        Value::Boolean(_) => {
            Value::Boolean(raw.trim().parse().map_err(|_| "expected true or false")?)
        }
        Value::Float(_) => Value::Float(raw.trim().parse().map_err(|_| "expected a number")?),
        Value::Array(_) => Value::Array(
            raw.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| Value::String(s.to_owned()))
                .collect(),
        ),
        _ => return Err("this key cannot be set from the environment".into()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_toml_round_trips() {
        let text = Config::default_toml();
        let parsed: Config = toml::from_str(&text).unwrap();
        assert_eq!(parsed, Config::default());
    }

    #[test]
    fn env_overrides_keys_with_underscores_and_lists() {
        let mut c = Config::default();
        c.apply_env([
            (
                "HUIZHEN_LIMITS_MAX_PARTICIPANTS".to_string(),
                "8".to_string(),
            ),
            (
                "HUIZHEN_MEDIA_ANNOUNCE".to_string(),
                "203.0.113.7, 127.0.0.1".to_string(),
            ),
            (
                "HUIZHEN_SERVER_LISTEN".to_string(),
                "127.0.0.1:9000".to_string(),
            ),
            ("PATH".to_string(), "/bin".to_string()),
        ])
        .unwrap();
        assert_eq!(c.limits.max_participants, 8);
        assert_eq!(c.media.announce.len(), 2);
        assert_eq!(c.server.listen.port(), 9000);
    }

    #[test]
    fn env_errors_are_typed() {
        let mut c = Config::default();
        let err = c
            .apply_env([("HUIZHEN_LIMITS_MAX_PARTICIPANTS".into(), "many".into())])
            .unwrap_err();
        assert!(matches!(err, ConfigError::Env { .. }));
        let err = c
            .apply_env([("HUIZHEN_LIMITS_NO_SUCH_KEY".into(), "1".into())])
            .unwrap_err();
        assert!(err.to_string().contains("no_such_key"));
    }

    #[test]
    fn invitation_windows_and_code_limits_are_checked() {
        let mut c = Config::default();
        c.rooms.invite_open_before_minutes = MAX_INVITE_MARGIN_MINUTES;
        c.rooms.invite_close_after_minutes = 0;
        assert!(c.validate().is_ok());
        c.rooms.invite_open_before_minutes = MAX_INVITE_MARGIN_MINUTES + 1;
        assert!(matches!(c.validate(), Err(ConfigError::Invalid(m)) if m.contains("invite_")));
        c.rooms.invite_open_before_minutes = 30;
        for bad in [0, MAX_WRITE_TIMEOUT_S + 1] {
            c.rooms.write_timeout_s = bad;
            assert!(
                matches!(c.validate(), Err(ConfigError::Invalid(m)) if m.contains("write_timeout_s"))
            );
        }
        c.rooms.write_timeout_s = 20;
        c.rooms.code_failures_per_code = 0;
        assert!(
            matches!(c.validate(), Err(ConfigError::Invalid(m)) if m.contains("code_failures"))
        );
    }

    #[test]
    fn branding_is_checked_with_the_rest_and_set_from_the_environment() {
        let mut c = Config::default();
        c.apply_env([("HUIZHEN_BRANDING_ACCENT".into(), "#1a7f37".into())])
            .unwrap();
        assert_eq!(c.branding.accent, "#1a7f37");
        assert!(c.validate().is_ok());
        c.branding.accent = "#fffbe6".into();
        assert!(matches!(
            c.validate(),
            Err(ConfigError::Branding(BrandingError::AccentContrast { .. }))
        ));
        c.branding.accent = "blue".into();
        let message = c.validate().unwrap_err().to_string();
        assert!(
            message.contains("branding.accent") && message.contains("#rrggbb"),
            "{message}"
        );
    }

    #[test]
    fn the_documented_reference_file_is_the_defaults() {
        let text = include_str!("../../docs/huizhen.toml");
        let parsed: Config = toml::from_str(text).unwrap();
        assert_eq!(parsed, Config::default());
    }

    #[test]
    fn media_workers_must_fit_the_port_range() {
        let mut c = Config::default();
        c.media.workers = 16;
        assert!(c.validate().is_ok());
        for (port, workers) in [(40000, 0), (40000, MAX_MEDIA_WORKERS + 1), (65530, 7)] {
            c.media.udp_bind.set_port(port);
            c.media.workers = workers;
            assert!(
                matches!(c.validate(), Err(ConfigError::Invalid(m)) if m.contains("media.")),
                "port {port}, {workers} workers"
            );
        }
        // Ephemeral ports: any number of workers within the bound.
        c.media.udp_bind.set_port(0);
        c.media.workers = MAX_MEDIA_WORKERS;
        assert!(c.validate().is_ok());
    }

    #[test]
    fn media_tcp_settings_are_checked() {
        let ok = Config::default();
        assert!(ok.media.tcp, "ICE-TCP is offered by default");
        ok.validate().unwrap();
        type Change = fn(&mut Config);
        let cases: [(&str, Change); 9] = [
            ("tcp_bind", |c| c.media.tcp_bind = "443".into()),
            ("tcp_max_connections", |c| c.media.tcp_max_connections = 0),
            ("tcp_max_connections_per_address", |c| {
                c.media.tcp_max_connections_per_address = 0
            }),
            ("tcp_max_connections_per_address", |c| {
                c.media.tcp_max_connections_per_address = c.media.tcp_max_connections + 1
            }),
            ("tcp_stun_timeout_s", |c| c.media.tcp_stun_timeout_s = 0),
            ("tcp_stun_timeout_s", |c| c.media.tcp_stun_timeout_s = 61),
            ("tcp_idle_timeout_s", |c| c.media.tcp_idle_timeout_s = 0),
            ("net_check_seconds", |c| c.media.net_check_seconds = 4),
            ("max_net_checks", |c| c.media.max_net_checks = 0),
        ];
        for (key, change) in cases {
            let mut c = Config::default();
            change(&mut c);
            assert!(
                matches!(c.validate(), Err(ConfigError::Invalid(m)) if m.contains(key)),
                "{key}"
            );
        }
        let mut c = Config::default();
        c.apply_env([(
            "HUIZHEN_MEDIA_TCP_BIND".to_string(),
            "0.0.0.0:443".to_string(),
        )])
        .unwrap();
        assert_eq!(c.media.tcp_bind, "0.0.0.0:443");
        c.validate().unwrap();
    }

    #[test]
    fn simulcast_is_on_by_default_and_may_be_turned_off() {
        assert!(Config::default().media.simulcast);
        let mut c = Config::default();
        c.apply_env([("HUIZHEN_MEDIA_SIMULCAST".to_string(), "false".to_string())])
            .unwrap();
        assert!(!c.media.simulcast);
        let from_file: Config = toml::from_str("[media]\nsimulcast = false\n").unwrap();
        assert!(!from_file.media.simulcast);
    }

    #[test]
    fn media_socket_buffers_are_0_or_within_bounds() {
        let mut c = Config::default();
        for (bytes, ok) in [
            (0, true),
            (65_536, true),
            (4 << 20, true),
            (256 << 20, true),
            (65_535, false),
            ((256 << 20) + 1, false),
        ] {
            c.media.socket_buffer_bytes = bytes;
            assert_eq!(c.validate().is_ok(), ok, "{bytes}");
        }
    }

    #[test]
    fn a_room_holds_2_to_a_thousand() {
        let mut c = Config::default();
        for ok in [2, 16, 500, MAX_ROOM_PARTICIPANTS] {
            c.limits.max_participants = ok;
            assert!(c.validate().is_ok(), "{ok}");
        }
        for bad in [0, 1, MAX_ROOM_PARTICIPANTS + 1] {
            c.limits.max_participants = bad;
            assert!(
                matches!(c.validate(), Err(ConfigError::Invalid(m)) if m.contains("max_participants")),
                "{bad}"
            );
        }
    }

    #[test]
    fn connection_deadlines_and_caps_are_within_bounds() {
        let c = Config::default();
        assert!(c.validate().is_ok());
        let invalid = |change: &dyn Fn(&mut Config), key: &str| {
            let mut c = Config::default();
            change(&mut c);
            assert!(
                matches!(c.validate(), Err(ConfigError::Invalid(m)) if m.contains(key)),
                "{key}"
            );
        };
        invalid(
            &|c| c.server.tls_handshake_timeout_s = 0,
            "tls_handshake_timeout_s",
        );
        invalid(
            &|c| c.server.tls_handshake_timeout_s = 301,
            "tls_handshake_timeout_s",
        );
        invalid(
            &|c| c.server.header_read_timeout_s = 0,
            "header_read_timeout_s",
        );
        invalid(&|c| c.server.idle_timeout_s = 0, "idle_timeout_s");
        invalid(&|c| c.server.idle_timeout_s = 3601, "idle_timeout_s");
        invalid(
            &|c| c.limits.max_http_connections = 0,
            "max_http_connections",
        );
        invalid(
            &|c| c.limits.max_http_connections = MAX_HTTP_CONNECTIONS + 1,
            "max_http_connections",
        );
        invalid(
            &|c| c.limits.max_connections_per_address = 0,
            "max_connections_per_address",
        );
        invalid(
            &|c| c.limits.max_connections_per_address = c.limits.max_http_connections + 1,
            "max_connections_per_address",
        );
        invalid(
            &|c| c.limits.public_requests_per_minute = MAX_PUBLIC_REQUESTS_PER_MINUTE + 1,
            "public_requests_per_minute",
        );
        // Behind a reverse proxy: one address may use the whole cap, and the public request
        // rate is turned off.
        let mut c = Config::default();
        c.limits.public_requests_per_minute = 0;
        c.limits.max_connections_per_address = c.limits.max_http_connections;
        c.server.idle_timeout_s = 3600;
        assert!(c.validate().is_ok());
        // And from the environment, like every key.
        c.apply_env([
            ("HUIZHEN_SERVER_IDLE_TIMEOUT_S".into(), "5".into()),
            (
                "HUIZHEN_LIMITS_MAX_CONNECTIONS_PER_ADDRESS".into(),
                "3".into(),
            ),
        ])
        .unwrap();
        assert_eq!(
            (
                c.server.idle_timeout_s,
                c.limits.max_connections_per_address
            ),
            (5, 3)
        );
    }

    /// Every change in `bad` makes the documents section invalid, with a message naming it.
    fn each_refused(bad: &[fn(&mut DocumentsConfig)]) {
        for (i, tweak) in bad.iter().enumerate() {
            let mut c = Config::default();
            tweak(&mut c.documents);
            assert!(
                matches!(c.validate(), Err(ConfigError::Invalid(m)) if m.contains("documents.")),
                "{i}"
            );
        }
    }

    #[test]
    fn referral_attachment_limits_are_positive() {
        let bad: [fn(&mut DocumentsConfig); 2] = [
            |d| d.max_referral_documents = 0,
            |d| d.max_referral_bytes = 0,
        ];
        each_refused(&bad);
        // Larger than a person's limits is allowed: the lesser applies.
        let mut c = Config::default();
        c.documents.max_documents_per_person = 2;
        assert!(c.validate().is_ok());
    }

    #[test]
    fn render_limits_are_checked() {
        let bad: [fn(&mut DocumentsConfig); 5] = [
            |d| d.render_concurrency = 0,
            |d| d.max_page_pixels = 1000,
            |d| d.max_dicom_pixels = 1000,
            |d| d.max_inflated_stream_bytes = 1000,
            |d| d.max_inflated_page_bytes = d.max_inflated_stream_bytes - 1,
        ];
        each_refused(&bad);
        let mut c = Config::default();
        c.apply_env([("HUIZHEN_DOCUMENTS_RENDER_CONCURRENCY".into(), "8".into())])
            .unwrap();
        assert_eq!(c.documents.render_concurrency, 8);
        assert!(c.validate().is_ok());
    }

    #[test]
    fn document_quotas_are_checked() {
        let bad: [fn(&mut DocumentsConfig); 5] = [
            |d| d.max_per_room_non_clinicians = d.max_per_room,
            |d| d.max_per_room = 1,
            |d| d.max_documents_per_person = 0,
            |d| d.max_open_uploads = 0,
            |d| d.max_bytes_per_person = d.max_upload_bytes - 1,
        ];
        each_refused(&bad);
        let mut c = Config::default();
        c.documents.max_per_room_non_clinicians = 0;
        assert!(c.validate().is_ok(), "a room where only clinicians share");
        c.apply_env([(
            "HUIZHEN_DOCUMENTS_MAX_BYTES_PER_PERSON".into(),
            "268435456".into(),
        )])
        .unwrap();
        assert_eq!(c.documents.max_bytes_per_person, 256 << 20);
        assert!(c.validate().is_ok());
    }

    #[test]
    fn session_lifetimes_are_within_bounds() {
        let mut c = Config::default();
        assert_eq!((c.auth.session_hours, c.auth.session_idle_s), (12, 1800));
        for (hours, idle, ok) in [
            (1, 1, true),
            (720, 86_400, true),
            (0, 1800, false),
            (721, 1800, false),
            (12, 0, false),
            (12, 86_401, false),
        ] {
            c.auth.session_hours = hours;
            c.auth.session_idle_s = idle;
            assert_eq!(c.validate().is_ok(), ok, "{hours} h, {idle} s");
        }
    }

    #[test]
    fn audit_files_and_anchor_interval() {
        let mut c = Config::default();
        c.storage.data_dir = PathBuf::from("/srv/hz");
        assert_eq!(c.audit_key_path(), PathBuf::from("/srv/hz/audit.key"));
        assert_eq!(
            c.audit_anchor_path(),
            PathBuf::from("/srv/hz/audit-anchors.jsonl")
        );
        c.apply_env([
            ("HUIZHEN_AUDIT_KEY_FILE".into(), "/keys/audit.key".into()),
            (
                "HUIZHEN_AUDIT_ANCHOR_FILE".into(),
                "/witness/a.jsonl".into(),
            ),
            ("HUIZHEN_AUDIT_ANCHOR_INTERVAL_S".into(), "60".into()),
        ])
        .unwrap();
        assert_eq!(c.audit_key_path(), PathBuf::from("/keys/audit.key"));
        assert_eq!(c.audit_anchor_path(), PathBuf::from("/witness/a.jsonl"));
        assert!(c.validate().is_ok());
        for (interval, ok) in [(0, false), (1, true), (86_400, true), (86_401, false)] {
            c.audit.anchor_interval_s = interval;
            assert_eq!(c.validate().is_ok(), ok, "{interval}");
        }
    }

    #[test]
    fn outcome_days_are_0_to_a_year() {
        let mut c = Config::default();
        assert_eq!(c.rooms.outcome_days, 30);
        c.apply_env([("HUIZHEN_ROOMS_OUTCOME_DAYS".into(), "0".into())])
            .unwrap();
        assert_eq!(c.rooms.outcome_days, 0);
        assert!(c.validate().is_ok());
        c.rooms.outcome_days = MAX_OUTCOME_DAYS;
        assert!(c.validate().is_ok());
        c.rooms.outcome_days = MAX_OUTCOME_DAYS + 1;
        assert!(c.validate().is_err());
    }

    #[test]
    fn turn_urls_secret_and_lifetime() {
        let mut c = Config::default();
        c.apply_env([
            (
                "HUIZHEN_TURN_URLS".into(),
                "turn:turn.example.org?transport=udp, turns:203.0.113.7:5349?transport=tcp, turn:[2001:db8::1]:3478"
                    .into(),
            ),
            ("HUIZHEN_TURN_SECRET_FILE".into(), "/keys/turn.secret".into()),
            ("HUIZHEN_TURN_CREDENTIAL_LIFETIME_S".into(), "600".into()),
        ])
        .unwrap();
        assert_eq!(c.turn.urls.len(), 3);
        assert_eq!(c.turn.secret_file, "/keys/turn.secret");
        assert_eq!(c.turn.credential_lifetime_s, 600);
        assert!(c.validate().is_ok());

        for (lifetime, ok) in [(59, false), (60, true), (86_400, true), (86_401, false)] {
            c.turn.credential_lifetime_s = lifetime;
            assert_eq!(c.validate().is_ok(), ok, "{lifetime}");
        }
        c.turn.credential_lifetime_s = 3600;
        c.turn.secret_file.clear();
        assert!(matches!(c.validate(), Err(ConfigError::Invalid(m)) if m.contains("secret_file")));
        c.turn.urls.clear();
        assert!(c.validate().is_ok());
        c.turn.urls = vec!["turn:a.example".into(); MAX_TURN_URLS + 1];
        c.turn.secret_file = "/keys/turn.secret".into();
        assert!(c.validate().is_err());
    }

    #[test]
    fn turn_urls_follow_rfc_7065() {
        for good in [
            "turn:turn.example.org",
            "turn:turn.example.org:3478",
            "turn:192.0.2.1:3478?transport=udp",
            "turn:192.0.2.1?transport=tcp",
            "turns:turn.example.org:5349?transport=tcp",
            "turns:turn.example.org?transport=udp",
            "turn:[2001:db8::1]",
            "turn:[::1]:3478?transport=udp",
        ] {
            assert_eq!(check_turn_url(good), Ok(()), "{good}");
        }
        for (bad, why) in [
            ("stun:stun.example.org", TurnUrlError::Scheme),
            ("https://turn.example.org", TurnUrlError::Scheme),
            ("turn:", TurnUrlError::NoHost),
            ("turn::3478", TurnUrlError::NoHost),
            ("turn:user@turn.example.org", TurnUrlError::Host),
            ("turn:turn.example.org/path", TurnUrlError::Host),
            ("turn:-bad-.example", TurnUrlError::Host),
            ("turn:[2001:db8::zz]", TurnUrlError::Host),
            ("turn:[::1]3478", TurnUrlError::Host),
            ("turn:turn.example.org:0", TurnUrlError::Port),
            ("turn:turn.example.org:65536", TurnUrlError::Port),
            ("turn:turn.example.org:+1", TurnUrlError::Port),
            ("turn:turn.example.org?transport=tls", TurnUrlError::Query),
            (
                "turn:turn.example.org?transport=udp&x=1",
                TurnUrlError::Query,
            ),
        ] {
            assert_eq!(check_turn_url(bad), Err(why), "{bad}");
        }
    }

    #[test]
    fn unknown_file_keys_are_rejected() {
        assert!(toml::from_str::<Config>("[server]\nlisten_typo = 1\n").is_err());
    }

    #[test]
    fn the_display_time_zone_is_an_iana_name_or_empty() {
        let mut c = Config::default();
        assert_eq!(c.display.time_zone, "");
        assert!(c.validate().is_ok());
        for ok in ["Asia/Shanghai", "UTC", "Asia/Hong_Kong", " Europe/Berlin "] {
            c.display.time_zone = ok.into();
            assert!(c.validate().is_ok(), "{ok}");
        }
        for bad in ["Asia/Shanghal", "Beijing", "UTC+8x", &"A".repeat(200)] {
            c.display.time_zone = bad.into();
            assert!(
                matches!(c.validate(), Err(ConfigError::Invalid(m)) if m.contains("display.time_zone")),
                "{bad}"
            );
        }
        // From the environment as from the file.
        let mut c = Config::default();
        c.apply_env([("HUIZHEN_DISPLAY_TIME_ZONE".into(), "Asia/Shanghai".into())])
            .unwrap();
        assert_eq!(c.display.time_zone, "Asia/Shanghai");
        let parsed: Config = toml::from_str("[display]\ntime_zone = \"Mars/Base\"\n").unwrap();
        assert!(parsed.validate().is_err());
        assert!(toml::from_str::<Config>("[display]\nzone = \"UTC\"\n").is_err());
    }
}
