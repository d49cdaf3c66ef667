//! Structured logs (tracing), text or JSON.
//!
//! Privacy by construction: the code logs ids (room, participant, invite, user) and error
//! codes, never tokens, names, IP addresses, patient references or SDP. str0m's own logs can
//! (and its ICE agent, target `is`) carry addresses at debug level, so their default level here
//! is `warn`. tests/privacy.rs runs a whole consultation and scans the logs.

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
