//! Structured logs (tracing), text or JSON.
//!
//! Privacy by construction: the code logs ids (room, participant, invite, user) and error
//! codes, never tokens, names, IP addresses, patient references or SDP. str0m's own logs can
//! (and its ICE agent, target `is`) carry addresses at debug level, so their default level here
//! is `warn`. tests/privacy.rs runs a whole consultation and scans the logs.
//!
//! A panic is logged through the same path, by where it happened and on which thread, without
//! its message: a message is whatever the panicking code formatted (an address, a name, a
//! fragment of SDP may be in it), and the media workers contain panics and go on
//! (`sfu/containment.rs`), so such a message would otherwise reach the log in clear.

use tracing_subscriber::EnvFilter;

use crate::config::LogConfig;

/// Installs the global subscriber; a second call (tests starting several servers) is a no-op.
pub fn init(cfg: &LogConfig) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&cfg.filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(true);
    let _ = if cfg.format == "json" {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

/// Replaces the default panic hook (which prints the message to stderr) with one that logs the
/// location and the thread only. Set once per process, by the server's `main` (tests keep the
/// default hook: a failing assertion's message is what they need).
pub fn install_panic_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            let at = info
                .location()
                .map(|l| format!("{}:{}", l.file(), l.line()))
                .unwrap_or_default();
            let thread = std::thread::current();
            tracing::error!(
                location = %at,
                thread = thread.name().unwrap_or("unnamed"),
                "panic (its message is not logged: it may carry personal data)"
            );
        }));
    });
}
