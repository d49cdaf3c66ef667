//! CPU time from /proc, for the workers' and the process's CPU counters (Linux; 0 elsewhere).

/// USER_HZ, the unit of CPU times in /proc: 100 on every Linux architecture we run on.
const CLOCK_TICKS_PER_SECOND: f64 = 100.0;

/// User + system CPU time from a /proc `stat` file (`/proc/self/stat` for the process,
/// `/proc/thread-self/stat` for the calling thread); 0 where there is none.
pub fn cpu_seconds(stat_path: &str) -> f64 {
    let stat = std::fs::read_to_string(stat_path).unwrap_or_default();
    // The command name (field 2) may contain spaces: count from its closing parenthesis.
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0.0;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    // utime and stime are fields 14 and 15: indexes 11 and 12 after the command name.
    (ticks(11) + ticks(12)) as f64 / CLOCK_TICKS_PER_SECOND
}
