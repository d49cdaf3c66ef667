//! Wall-clock time as the rest of the server records it: Unix seconds in tokens and expiries,
//! Unix milliseconds in rows and the audit trail. Durations and deadlines use `Instant`, which
//! callers pass in where a test needs to control it (the SFU core never reads the clock).

/// Current Unix time in seconds.
pub fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Current Unix time in milliseconds.
pub fn now_unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
