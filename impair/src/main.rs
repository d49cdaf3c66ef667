//! `huizhen-impair`: the impairment proxy as a program. Settings come from flags and can be
//! changed while it runs by typing commands on standard input (see `help`).

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use tokio::io::{AsyncBufReadExt, BufReader};

use huizhen_impair::profile::parse_duration;
use huizhen_impair::relay::{DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_CLIENTS};
use huizhen_impair::tcp::DEFAULT_RTO;
use huizhen_impair::{
    Direction, Handle, Profile, Proxy, ProxyConfig, Stats, TcpProxy, TcpProxyConfig,
};

/// Longest blackout a command may ask for.
const MAX_BLACKOUT: Duration = Duration::from_secs(3600);

/// A seeded UDP impairment proxy: clients send to --listen, the proxy relays to --upstream
/// from a socket per client and relays the answers back, impairing each direction. With --tcp,
/// a TCP proxy: each connection to --listen is relayed to --upstream; loss becomes a
/// retransmission's delay (--rto-ms) and a blackout a stall, as on a real TCP path.
///
/// A profile is a comma-separated list: loss=10%, ge=TO_BAD/TO_GOOD[/LOSS_GOOD/LOSS_BAD]
/// (bursty loss), delay=20ms, jitter=30ms, reorder, dup=1%, rate=300kbit, queue=32000 (bytes,
/// in front of the rate cap), down (blackout), clean (reset).
#[derive(Debug, Parser)]
#[command(name = "huizhen-impair", version)]
struct Args {
    /// Where clients send (e.g. the address huizhen announces as its media candidate).
    #[arg(long)]
    listen: SocketAddr,
    /// The huizhen media socket (media.udp_bind) the proxy relays to.
    #[arg(long)]
    upstream: SocketAddr,
    /// Seed of every random decision: the same seed and arrivals give the same decisions.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Profile of both directions.
    #[arg(long, default_value = "")]
    both: String,
    /// Profile of the uplink (client → server), applied after --both.
    #[arg(long, default_value = "")]
    up: String,
    /// Profile of the downlink (server → client), applied after --both.
    #[arg(long, default_value = "")]
    down: String,
    /// Most clients (source addresses; with --tcp, connections) relayed at once.
    #[arg(long, default_value_t = DEFAULT_MAX_CLIENTS)]
    max_clients: usize,
    /// Seconds after which a silent client is forgotten.
    #[arg(long, default_value_t = DEFAULT_IDLE_TIMEOUT.as_secs())]
    idle_timeout_s: u64,
    /// Print the counters every this many seconds (0: only on `stats`).
    #[arg(long, default_value_t = 0)]
    report_s: u64,
    /// Relay TCP connections (ICE-TCP, TURN over TCP) instead of UDP datagrams.
    #[arg(long)]
    tcp: bool,
    /// With --tcp: the delay a lost segment adds (one retransmission), in milliseconds.
    #[arg(long, default_value_t = DEFAULT_RTO.as_millis() as u64)]
    rto_ms: u64,
}

const HELP: &str = "commands:
  up SPEC | down SPEC | both SPEC   apply SPEC on top of a direction's profile (clean resets)
  blackout DURATION                 drop everything both ways for DURATION (e.g. 3s)
  show                              print the profiles
  stats                             print the counters
  help";

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("huizhen-impair: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let both: Profile = args.both.parse()?;
    let uplink = both.with_spec(&args.up)?;
    let downlink = both.with_spec(&args.down)?;
    // Either proxy; only its handle is used below (the proxy itself is kept to keep it running).
    let (_running, handle, local): (Box<dyn std::any::Any>, Handle, SocketAddr) = if args.tcp {
        let mut config = TcpProxyConfig::new(args.listen, args.upstream);
        config.seed = args.seed;
        config.uplink = uplink;
        config.downlink = downlink;
        config.max_connections = args.max_clients;
        config.rto = Duration::from_millis(args.rto_ms);
        let proxy = TcpProxy::start(config).await?;
        let (handle, local) = (proxy.handle().clone(), proxy.local_addr());
        (Box::new(proxy), handle, local)
    } else {
        let mut config = ProxyConfig::new(args.listen, args.upstream);
        config.seed = args.seed;
        config.uplink = uplink;
        config.downlink = downlink;
        config.max_clients = args.max_clients;
        config.idle_timeout = Duration::from_secs(args.idle_timeout_s.max(1));
        let proxy = Proxy::start(config).await?;
        let (handle, local) = (proxy.handle().clone(), proxy.local_addr());
        (Box::new(proxy), handle, local)
    };
    println!(
        "relaying {} {} -> {} (seed {}); type help for commands",
        if args.tcp { "tcp" } else { "udp" },
        local,
        args.upstream,
        args.seed
    );
    show(&handle);
    if args.report_s > 0 {
        let h = handle.clone();
        let period = Duration::from_secs(args.report_s);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.tick().await;
            loop {
                tick.tick().await;
                print_stats(&h.stats());
            }
        });
    }
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Some(line) = lines.next_line().await? {
        command(&handle, line.trim());
    }
    // Standard input closed (run in the background): keep relaying until stopped.
    std::future::pending::<()>().await;
    Ok(())
}

fn command(handle: &Handle, line: &str) {
    let (verb, rest) = line.split_once(' ').unwrap_or((line, ""));
    let rest = rest.trim();
    let result = match verb {
        "" => return,
        "up" => handle
            .apply(Some(Direction::Uplink), rest)
            .map_err(|e| e.to_string()),
        "down" => handle
            .apply(Some(Direction::Downlink), rest)
            .map_err(|e| e.to_string()),
        "both" => handle.apply(None, rest).map_err(|e| e.to_string()),
        "blackout" => parse_duration("blackout", rest, MAX_BLACKOUT)
            .map(|d| {
                handle.blackout(d);
            })
            .map_err(|e| e.to_string()),
        "show" => Ok(()),
        "stats" => {
            print_stats(&handle.stats());
            return;
        }
        "help" => {
            println!("{HELP}");
            return;
        }
        other => Err(format!("unknown command {other:?}; type help")),
    };
    match result {
        Ok(()) => show(handle),
        Err(e) => println!("error: {e}"),
    }
}

fn show(handle: &Handle) {
    println!(
        "up: {}\ndown: {}",
        handle.profile(Direction::Uplink),
        handle.profile(Direction::Downlink)
    );
}

fn print_stats(s: &Stats) {
    println!(
        "clients {} (refused datagrams {})",
        s.clients, s.refused_datagrams
    );
    for (name, d) in [("up", s.uplink), ("down", s.downlink)] {
        println!(
            "{name}: received {} sent {} ({} bytes) duplicated {} lost: random {} queue {} blackout {} overflow {}",
            d.received,
            d.sent,
            d.sent_bytes,
            d.duplicated,
            d.lost_random,
            d.lost_queue,
            d.lost_blackout,
            d.lost_overflow
        );
    }
}
