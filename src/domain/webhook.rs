//! Outgoing webhooks' vocabulary: the events an institution's own systems are told of, what an
//! event carries (ids, states, times and pseudonymous references, never names, tokens or
//! clinical text), an event's delivery state, which endpoint addresses are allowed, and the
//! retry schedule.
//!
//! The delivery itself (signing, posting, retrying) is `crate::webhooks`'; the outbox rows are
//! `storage`'s. An event is queued for each institution concerned, in the transaction of the
//! step it reports where that step is one transaction (`OutboxEvent`).

use std::net::IpAddr;

use serde_json::{Value, json};

use super::ids::{InstitutionId, WebhookEventId};

/// What happened. The names are the wire's `type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// A consultation request was sent (the receiving institution has received it).
    ReferralCreated,
    /// Accepted, the time still to agree.
    ReferralAccepted,
    /// One side proposed another time.
    ReferralCounterProposed,
    /// A time was agreed (on acceptance, or agreeing to a proposed time); the consultation's
    /// room exists from the first one.
    ReferralScheduled,
    ReferralDeclined,
    /// Passed to another specialist of the department, or back to the department.
    ReferralForwarded,
    /// The consultation began (the request is `in_consultation`).
    ConsultationStarted,
    /// The receiving side issued the request's report.
    ReferralReportIssued,
    ReferralClosed,
    ReferralCancelled,
    /// The consultation's room ended.
    ConsultationEnded,
    /// A note, diagnosis report or prescription was issued in the consultation.
    RecordIssued,
    /// A pharmacist reviewed, dispensed or rejected a prescription.
    PrescriptionReviewed,
    PrescriptionDispensed,
    PrescriptionRejected,
}

impl EventKind {
    pub const ALL: [EventKind; 15] = [
        EventKind::ReferralCreated,
        EventKind::ReferralAccepted,
        EventKind::ReferralCounterProposed,
        EventKind::ReferralScheduled,
        EventKind::ReferralDeclined,
        EventKind::ReferralForwarded,
        EventKind::ConsultationStarted,
        EventKind::ReferralReportIssued,
        EventKind::ReferralClosed,
        EventKind::ReferralCancelled,
        EventKind::ConsultationEnded,
        EventKind::RecordIssued,
        EventKind::PrescriptionReviewed,
        EventKind::PrescriptionDispensed,
        EventKind::PrescriptionRejected,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::ReferralCreated => "referral.created",
            EventKind::ReferralAccepted => "referral.accepted",
            EventKind::ReferralCounterProposed => "referral.counter_proposed",
            EventKind::ReferralScheduled => "referral.scheduled",
            EventKind::ReferralDeclined => "referral.declined",
            EventKind::ReferralForwarded => "referral.forwarded",
            EventKind::ConsultationStarted => "consultation.started",
            EventKind::ReferralReportIssued => "referral.report_issued",
            EventKind::ReferralClosed => "referral.closed",
            EventKind::ReferralCancelled => "referral.cancelled",
            EventKind::ConsultationEnded => "consultation.ended",
            EventKind::RecordIssued => "record.issued",
            EventKind::PrescriptionReviewed => "prescription.reviewed",
            EventKind::PrescriptionDispensed => "prescription.dispensed",
            EventKind::PrescriptionRejected => "prescription.rejected",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The event a referral step reports: by the step's name (`referral::Action::as_str`, or
    /// `create`) and the state it reached (an acceptance that agrees a time schedules).
    pub fn of_referral_step(action: &str, to_state: &str) -> Option<Self> {
        Some(match (action, to_state) {
            ("create", _) => EventKind::ReferralCreated,
            ("accept", "scheduled") => EventKind::ReferralScheduled,
            ("accept", _) => EventKind::ReferralAccepted,
            ("propose_time", _) => EventKind::ReferralCounterProposed,
            ("decline", _) => EventKind::ReferralDeclined,
            ("forward", _) => EventKind::ReferralForwarded,
            ("start", _) => EventKind::ConsultationStarted,
            ("issue_report", _) => EventKind::ReferralReportIssued,
            ("close", _) => EventKind::ReferralClosed,
            ("cancel", _) => EventKind::ReferralCancelled,
            _ => return None,
        })
    }
}

/// Where one institution's copy of an event stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryState {
    /// Not yet answered with a 2xx; attempted again after its backoff.
    Pending,
    /// Answered 2xx once (it may have been received more than once: at least once).
    Delivered,
    /// Given up after the last attempt; the consultation's later events go on.
    Failed,
}

impl DeliveryState {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => DeliveryState::Pending,
            "delivered" => DeliveryState::Delivered,
            "failed" => DeliveryState::Failed,
            _ => return None,
        })
    }
}

/// An event to queue for each of `recipients` (those with an enabled webhook get it), as the
/// service that took the step builds it. `data` holds ids, states, times and pseudonymous
/// references only.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxEvent {
    pub kind: EventKind,
    /// The consultation it belongs to (its events are delivered in order): the referral's id,
    /// or the room's when no referral opened the room.
    pub consultation: String,
    pub recipients: Vec<InstitutionId>,
    pub data: Value,
    /// Unix seconds.
    pub at: i64,
}

impl OutboxEvent {
    /// The exact body posted to `institution` (the same on every attempt): the event's id (the
    /// receiver's idempotency key), its type, when it happened, the consultation and the
    /// event's number in it for this institution, and the facts.
    pub fn body(&self, id: &WebhookEventId, institution: &InstitutionId, sequence: i64) -> String {
        json!({
            "id": id,
            "type": self.kind.as_str(),
            "created_at": self.at,
            "institution_id": institution,
            "consultation": {"id": self.consultation, "sequence": sequence},
            "data": self.data,
        })
        .to_string()
    }

    /// The recipients once each, in a fixed order (sorted), so that transactions queueing
    /// events take the institutions' rows in the same order and never wait in a circle.
    pub fn sorted_recipients(&self) -> Vec<InstitutionId> {
        let mut r = self.recipients.clone();
        r.sort();
        r.dedup();
        r
    }
}

/// What the deployment allows endpoints to be (`webhooks.*` in the configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AddressPolicy {
    /// `http://` to a loopback address or `localhost` (tests, a relay on the same host).
    pub allow_http_loopback: bool,
    /// Private networks (see [`AddressClass::Private`]): a hospital's own systems on its
    /// intranet.
    pub allow_private: bool,
}

/// How an address is treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressClass {
    Public,
    Loopback,
    /// The intranet: 10/8, 172.16/12, 192.168/16, 100.64/10 (carrier-grade NAT), 198.18/15
    /// (used inside networks for testing), fc00::/7.
    Private,
    /// Never: link-local (cloud metadata at 169.254.169.254 included), unspecified, multicast,
    /// broadcast, reserved (240/4, 0/8), IETF protocol assignments (192.0.0/24), documentation
    /// ranges, discard-only (100::/64), deprecated site-local (fec0::/10), IPv4-compatible
    /// IPv6, Teredo and local-use NAT64 64:ff9b:1::/48 (whose embedded IPv4 addresses cannot
    /// be found reliably: a local gateway could carry a request to the metadata service).
    Forbidden,
}

/// The class of an address. IPv6 forms that carry an IPv4 address (IPv4-translated, NAT64
/// 64:ff9b::/96, 6to4 2002::/16) are judged by that IPv4 address: a gateway or relay would
/// otherwise carry a request to 10.0.0.1 or 169.254.169.254 that the policy refuses in IPv4.
/// Their loopback is forbidden, not loopback: it is not this host, and `http` to it would
/// cross a network in clear.
pub fn classify(ip: IpAddr) -> AddressClass {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v4(v4: std::net::Ipv4Addr) -> AddressClass {
    let o = v4.octets();
    if v4.is_loopback() {
        AddressClass::Loopback
    } else if v4.is_link_local()
        || v4.is_unspecified()
        || v4.is_multicast()
        || v4.is_broadcast()
        || v4.is_documentation()
        || o[0] == 0
        || o[0] >= 240
        || (o[0] == 192 && o[1] == 0 && o[2] == 0)
    {
        AddressClass::Forbidden
    } else if v4.is_private()
        || (o[0] == 100 && (o[1] & 0xc0) == 64)
        || (o[0] == 198 && (o[1] & 0xfe) == 18)
    {
        AddressClass::Private
    } else {
        AddressClass::Public
    }
}

fn classify_v6(v6: std::net::Ipv6Addr) -> AddressClass {
    let s = v6.segments();
    let embedded = |hi: u16, lo: u16| match classify_v4(std::net::Ipv4Addr::new(
        (hi >> 8) as u8,
        hi as u8,
        (lo >> 8) as u8,
        lo as u8,
    )) {
        AddressClass::Loopback => AddressClass::Forbidden,
        class => class,
    };
    // ::ffff:a.b.c.d (mapped) is the IPv4 address itself to the socket layer.
    if let Some(v4) = v6.to_ipv4_mapped() {
        return classify_v4(v4);
    }
    if v6.is_loopback() {
        return AddressClass::Loopback;
    }
    if v6.is_unspecified()
        || v6.is_multicast()
        || v6.is_unicast_link_local()
        // ::a.b.c.d, IPv4-compatible (deprecated): nothing legitimate uses it any more.
        || s[..6] == [0; 6]
        // fec0::/10, site-local (deprecated).
        || (s[0] & 0xffc0) == 0xfec0
        // 100::/64, discard-only.
        || s[..4] == [0x100, 0, 0, 0]
        // 2001::/32, Teredo; 2001:db8::/32, documentation.
        || (s[0] == 0x2001 && (s[1] == 0 || s[1] == 0xdb8))
    {
        return AddressClass::Forbidden;
    }
    // ::ffff:0:a.b.c.d, IPv4-translated (SIIT).
    if s[..4] == [0; 4] && s[4] == 0xffff && s[5] == 0 {
        return embedded(s[6], s[7]);
    }
    // 64:ff9b::/96, the well-known NAT64 prefix: a gateway forwards to the embedded address.
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return embedded(s[6], s[7]);
    }
    // 64:ff9b:1::/48, local-use NAT64 (RFC 8215): its prefixes may be of several lengths,
    // so where the IPv4 address sits is not known; never.
    if s[0] == 0x64 && s[1] == 0xff9b && s[2] == 1 {
        return AddressClass::Forbidden;
    }
    // 2002::/16, 6to4: a relay forwards to the IPv4 address in bits 16 to 48.
    if s[0] == 0x2002 {
        return embedded(s[1], s[2]);
    }
    if v6.is_unique_local() {
        AddressClass::Private
    } else {
        AddressClass::Public
    }
}

impl AddressPolicy {
    /// Whether a connection to `ip` is allowed (checked on every address a name resolves to,
    /// at each attempt, so a name that later points inside is refused then).
    pub fn allows(self, ip: IpAddr) -> bool {
        match classify(ip) {
            AddressClass::Public => true,
            AddressClass::Loopback => self.allow_http_loopback,
            AddressClass::Private => self.allow_private,
            AddressClass::Forbidden => false,
        }
    }
}

/// The longest endpoint URL.
pub const MAX_URL_CHARS: usize = 2048;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UrlError {
    #[error("the URL is not valid")]
    Malformed,
    #[error("the URL is longer than {MAX_URL_CHARS} characters")]
    TooLong,
    #[error("the URL must use https (http only to loopback, where the server allows it)")]
    NotHttps,
    #[error("the URL must not carry a user name or password")]
    Credentials,
    #[error("the URL must not have a fragment (#...)")]
    Fragment,
    #[error("that address is not allowed for webhooks")]
    AddressNotAllowed,
}

impl UrlError {
    pub fn code(&self) -> &'static str {
        match self {
            UrlError::Malformed => "bad_url",
            UrlError::TooLong => "url_too_long",
            UrlError::NotHttps => "url_not_https",
            UrlError::Credentials => "url_credentials",
            UrlError::Fragment => "url_fragment",
            UrlError::AddressNotAllowed => "url_address_not_allowed",
        }
    }
}

/// An endpoint URL that passed the rules: https (or http to loopback where allowed), a host,
/// no credentials, no fragment, and, for a literal address, one the policy allows. A host
/// name is checked again at every attempt, against what it resolves to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookUrl(String);

impl WebhookUrl {
    pub fn parse(s: &str, policy: AddressPolicy) -> Result<Self, UrlError> {
        let s = s.trim();
        if s.chars().count() > MAX_URL_CHARS {
            return Err(UrlError::TooLong);
        }
        if s.contains('#') {
            return Err(UrlError::Fragment);
        }
        if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(UrlError::Malformed);
        }
        let uri: http::Uri = s.parse().map_err(|_| UrlError::Malformed)?;
        let authority = uri.authority().ok_or(UrlError::Malformed)?;
        if authority.as_str().contains('@') {
            return Err(UrlError::Credentials);
        }
        let host = authority.host();
        if host.is_empty() {
            return Err(UrlError::Malformed);
        }
        let literal = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .ok();
        let loopback = match literal {
            Some(ip) => classify(ip) == AddressClass::Loopback,
            None => host.eq_ignore_ascii_case("localhost"),
        };
        match uri.scheme_str() {
            Some("https") => {}
            Some("http") if loopback && policy.allow_http_loopback => {}
            _ => return Err(UrlError::NotHttps),
        }
        if let Some(ip) = literal
            && !policy.allows(ip)
        {
            return Err(UrlError::AddressNotAllowed);
        }
        if loopback && !policy.allow_http_loopback {
            return Err(UrlError::AddressNotAllowed);
        }
        Ok(Self(s.to_owned()))
    }

    /// A URL stored earlier (checked when it was set; checked again against the policy in
    /// force before each attempt).
    pub fn from_stored(s: String) -> Self {
        Self(s)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The host alone, for the audit trail and logs (a path or query may hold the
    /// receiver's own tokens).
    pub fn host(&self) -> String {
        self.0
            .parse::<http::Uri>()
            .ok()
            .and_then(|u| u.host().map(str::to_owned))
            .unwrap_or_default()
    }
}

/// How long to wait before attempt `attempt + 1`, after `attempt` (1-based) failed: the base
/// doubled each time, capped at `max_ms`, then scaled by a jitter in [0.5, 1.0] (`jitter` is
/// drawn uniformly from [0, 1)), so that many events failing together do not come back
/// together.
pub fn backoff_ms(attempt: u32, base_ms: u64, max_ms: u64, jitter: f64) -> u64 {
    let exp = attempt.saturating_sub(1).min(40);
    let raw = base_ms.saturating_mul(1u64 << exp).min(max_ms);
    let factor = 0.5 + 0.5 * jitter.clamp(0.0, 1.0);
    ((raw as f64) * factor).round() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPEN: AddressPolicy = AddressPolicy {
        allow_http_loopback: true,
        allow_private: false,
    };
    const STRICT: AddressPolicy = AddressPolicy {
        allow_http_loopback: false,
        allow_private: false,
    };

    #[test]
    fn urls() {
        assert!(WebhookUrl::parse("https://his.example.org/hooks/huizhen?k=1", STRICT).is_ok());
        let err = |s: &str, p| WebhookUrl::parse(s, p).unwrap_err();
        assert_eq!(err("http://his.example.org/", STRICT), UrlError::NotHttps);
        assert_eq!(err("http://his.example.org/", OPEN), UrlError::NotHttps);
        assert_eq!(err("ftp://his.example.org/", OPEN), UrlError::NotHttps);
        assert_eq!(
            err("https://user:pw@his.example.org/", STRICT),
            UrlError::Credentials
        );
        assert_eq!(
            err("https://his.example.org/#x", STRICT),
            UrlError::Fragment
        );
        assert_eq!(err("his.example.org", STRICT), UrlError::NotHttps);
        assert_eq!(err("https:///path", STRICT), UrlError::Malformed);
        assert_eq!(err("https://a b/", STRICT), UrlError::Malformed);
        let long = format!("https://h.example/{}", "a".repeat(MAX_URL_CHARS));
        assert_eq!(err(&long, STRICT), UrlError::TooLong);
        // Loopback: only where the server allows it, and then http too.
        assert_eq!(
            err("http://127.0.0.1:8080/h", STRICT),
            UrlError::NotHttps,
            "http to loopback refused by default"
        );
        assert_eq!(
            err("https://127.0.0.1/h", STRICT),
            UrlError::AddressNotAllowed
        );
        assert_eq!(
            err("https://localhost/h", STRICT),
            UrlError::AddressNotAllowed
        );
        assert!(WebhookUrl::parse("http://127.0.0.1:8080/h", OPEN).is_ok());
        assert!(WebhookUrl::parse("http://[::1]:8080/h", OPEN).is_ok());
        assert!(WebhookUrl::parse("http://localhost:8080/h", OPEN).is_ok());
        // Never: cloud metadata, unspecified, link-local v6, mapped forms of them.
        for bad in [
            "https://169.254.169.254/latest/meta-data",
            "https://0.0.0.0/",
            "https://[fe80::1]/",
            "https://[::ffff:169.254.169.254]/",
            "https://224.0.0.1/",
        ] {
            assert_eq!(err(bad, OPEN), UrlError::AddressNotAllowed, "{bad}");
        }
        // Private networks: the deployment decides.
        assert_eq!(
            err("https://10.1.2.3/h", STRICT),
            UrlError::AddressNotAllowed
        );
        let intranet = AddressPolicy {
            allow_private: true,
            ..STRICT
        };
        assert!(WebhookUrl::parse("https://10.1.2.3/h", intranet).is_ok());
        assert!(WebhookUrl::parse("https://[fd00::5]/h", intranet).is_ok());
        assert!(WebhookUrl::parse("https://100.64.0.1/h", intranet).is_ok());
        assert_eq!(
            WebhookUrl::parse("https://his.example.org:8443/a/b?token=x", STRICT)
                .unwrap()
                .host(),
            "his.example.org"
        );
    }

    #[test]
    fn address_classes() {
        let c = |s: &str| classify(s.parse().unwrap());
        assert_eq!(c("8.8.8.8"), AddressClass::Public);
        assert_eq!(c("127.0.0.2"), AddressClass::Loopback);
        assert_eq!(c("::1"), AddressClass::Loopback);
        assert_eq!(c("::ffff:127.0.0.1"), AddressClass::Loopback);
        assert_eq!(c("192.168.1.1"), AddressClass::Private);
        assert_eq!(c("172.31.0.1"), AddressClass::Private);
        assert_eq!(c("172.32.0.1"), AddressClass::Public);
        assert_eq!(c("169.254.169.254"), AddressClass::Forbidden);
        assert_eq!(c("255.255.255.255"), AddressClass::Forbidden);
        assert_eq!(c("2606:4700::1111"), AddressClass::Public);
        // Reserved, special-purpose and documentation ranges.
        assert_eq!(c("240.0.0.1"), AddressClass::Forbidden);
        assert_eq!(c("250.1.2.3"), AddressClass::Forbidden);
        assert_eq!(c("192.0.0.170"), AddressClass::Forbidden);
        assert_eq!(c("192.0.2.1"), AddressClass::Forbidden);
        assert_eq!(c("203.0.113.9"), AddressClass::Forbidden);
        assert_eq!(c("198.18.0.1"), AddressClass::Private);
        assert_eq!(c("198.19.255.254"), AddressClass::Private);
        assert_eq!(c("198.20.0.1"), AddressClass::Public);
        assert_eq!(c("100.64.0.1"), AddressClass::Private);
        assert_eq!(c("2001:db8::1"), AddressClass::Forbidden);
        assert_eq!(c("2001:0:4136:e378::1"), AddressClass::Forbidden);
        assert_eq!(c("fec0::1"), AddressClass::Forbidden);
        assert_eq!(c("100::1"), AddressClass::Forbidden);
        assert_eq!(c("fd00::1"), AddressClass::Private);
        // IPv6 that carries IPv4: judged by the IPv4 address inside.
        assert_eq!(c("::127.0.0.1"), AddressClass::Forbidden);
        assert_eq!(c("::8.8.8.8"), AddressClass::Forbidden);
        assert_eq!(c("64:ff9b::127.0.0.1"), AddressClass::Forbidden);
        assert_eq!(c("64:ff9b::a9fe:a9fe"), AddressClass::Forbidden);
        assert_eq!(c("64:ff9b::10.0.0.1"), AddressClass::Private);
        assert_eq!(c("64:ff9b::8.8.8.8"), AddressClass::Public);
        assert_eq!(c("64:ff9b:1::8.8.8.8"), AddressClass::Forbidden);
        assert_eq!(c("64:ff9b:1::a9fe:a9fe"), AddressClass::Forbidden);
        assert_eq!(c("2002:7f00:1::1"), AddressClass::Forbidden);
        assert_eq!(c("2002:a9fe:a9fe::1"), AddressClass::Forbidden);
        assert_eq!(c("2002:c0a8:101::1"), AddressClass::Private);
        assert_eq!(c("2002:808:808::1"), AddressClass::Public);
        assert_eq!(c("::ffff:0:169.254.169.254"), AddressClass::Forbidden);
        assert_eq!(c("::ffff:0:10.1.1.1"), AddressClass::Private);
        // None of these is let through by the strictest policy, and the intranet ones only
        // with private networks allowed.
        let strict = AddressPolicy {
            allow_http_loopback: false,
            allow_private: false,
        };
        let intranet = AddressPolicy {
            allow_http_loopback: false,
            allow_private: true,
        };
        for a in [
            "64:ff9b::127.0.0.1",
            "2002:a9fe:a9fe::1",
            "::10.0.0.1",
            "240.0.0.1",
        ] {
            assert!(!strict.allows(a.parse().unwrap()), "{a}");
            assert!(!intranet.allows(a.parse().unwrap()), "{a}");
        }
        assert!(!strict.allows("64:ff9b::10.0.0.1".parse().unwrap()));
        assert!(intranet.allows("64:ff9b::10.0.0.1".parse().unwrap()));
    }

    #[test]
    fn backoff_doubles_to_its_cap_with_jitter_below_it() {
        // Without jitter's lower half (jitter → 1): the schedule itself.
        let top: Vec<u64> = (1..=8).map(|a| backoff_ms(a, 100, 5_000, 1.0)).collect();
        assert_eq!(top, [100, 200, 400, 800, 1600, 3200, 5000, 5000]);
        // The least it can be is half of that.
        let low: Vec<u64> = (1..=4).map(|a| backoff_ms(a, 100, 5_000, 0.0)).collect();
        assert_eq!(low, [50, 100, 200, 400]);
        for a in 1..=64 {
            for j in [0.0, 0.3, 0.999] {
                let d = backoff_ms(a, 1000, 3_600_000, j);
                assert!((500..=3_600_000).contains(&d), "{a} {j} {d}");
            }
        }
        // Absurd attempts and jitter stay bounded.
        assert_eq!(backoff_ms(u32::MAX, u64::MAX, 10, 7.0), 10);
    }

    #[test]
    fn event_names_and_steps() {
        for k in EventKind::ALL {
            assert_eq!(EventKind::parse(k.as_str()), Some(k));
        }
        assert_eq!(
            EventKind::of_referral_step("accept", "scheduled"),
            Some(EventKind::ReferralScheduled)
        );
        assert_eq!(
            EventKind::of_referral_step("accept", "accepted"),
            Some(EventKind::ReferralAccepted)
        );
        assert_eq!(EventKind::of_referral_step("nonsense", "x"), None);
        let id = WebhookEventId::generate();
        let ins = InstitutionId::generate();
        let e = OutboxEvent {
            kind: EventKind::ReferralCreated,
            consultation: "ref_0123456789abcdef".into(),
            recipients: vec![ins.clone(), ins.clone()],
            data: json!({"state": "requested"}),
            at: 5,
        };
        assert_eq!(e.sorted_recipients(), std::slice::from_ref(&ins));
        let body: Value = serde_json::from_str(&e.body(&id, &ins, 3)).unwrap();
        assert_eq!(body["type"], "referral.created");
        assert_eq!(body["consultation"]["sequence"], 3);
        assert_eq!(body["id"], id.as_str());
    }
}
