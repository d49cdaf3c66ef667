//! The ICE-TCP listener's thread: admits connections under the caps, waits for each one's
//! first STUN request within the deadline, and hands the connection to the worker its ufrag
//! names. It never touches a peer connection.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use super::framing::{FrameError, read_frame};
use super::{Admission, CloseReason, Slot, TcpLimits, TcpStats};
use crate::media::{MediaError, WorkerMsg};
use crate::sfu::{local_ufrag, worker_of_ufrag};

/// How long accepting pauses after the kernel refuses a connection (`EMFILE`, `ENFILE`): the
/// error would otherwise repeat at once, in a busy loop.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// A connection whose first STUN request named a worker, on its way to that worker.
#[derive(Debug)]
pub(crate) struct Accepted {
    pub stream: std::net::TcpStream,
    pub peer: SocketAddr,
    /// The STUN request, for the worker to route and answer.
    pub first: Vec<u8>,
    pub slot: Slot,
}

/// Starts the listener's thread, which runs until `stop` says true; joining it waits for its
/// connections still waiting for a STUN request to be closed.
pub(crate) fn spawn(
    listener: std::net::TcpListener,
    workers: Vec<mpsc::Sender<WorkerMsg>>,
    limits: TcpLimits,
    stats: Arc<TcpStats>,
    stop: watch::Receiver<bool>,
) -> Result<std::thread::JoinHandle<()>, MediaError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(MediaError::Spawn)?;
    let admission = Admission::new(
        limits.max_connections,
        limits.max_connections_per_address,
        stats.clone(),
    );
    std::thread::Builder::new()
        .name("media-tcp".into())
        .spawn(move || {
            runtime.block_on(async move {
                match TcpListener::from_std(listener) {
                    Ok(listener) => {
                        accept_loop(listener, workers, admission, limits, stats, stop).await
                    }
                    Err(e) => tracing::error!(error = %e, "ICE-TCP listener unusable"),
                }
            })
        })
        .map_err(MediaError::Spawn)
}

async fn accept_loop(
    listener: TcpListener,
    workers: Vec<mpsc::Sender<WorkerMsg>>,
    admission: Arc<Admission>,
    limits: TcpLimits,
    stats: Arc<TcpStats>,
    mut stop: watch::Receiver<bool>,
) {
    let workers = Arc::new(workers);
    let mut pending = JoinSet::new();
    loop {
        // Reap what has finished, so the set holds only connections still waiting.
        while pending.try_join_next().is_some() {}
        tokio::select! {
            _ = stop.wait_for(|stop| *stop) => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    // Refused at once, before a byte is read (the slot is the only cost).
                    let Ok(slot) = admission.admit(peer.ip()) else {
                        tracing::debug!("ICE-TCP connection refused: cap reached");
                        continue;
                    };
                    stats.accepted.fetch_add(1, Ordering::Relaxed);
                    let _ = stream.set_nodelay(true);
                    pending.spawn(first_request(
                        stream,
                        peer,
                        slot,
                        workers.clone(),
                        limits.stun_timeout,
                        stats.clone(),
                    ));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "ICE-TCP accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
        }
    }
    // Connections not handed over yet are closed (their slots with them).
    while pending.try_join_next().is_some() {}
    let waiting = pending.len() as u64;
    pending.shutdown().await;
    for _ in 0..waiting {
        stats.closed(CloseReason::Shutdown);
    }
}

/// Waits for the connection's first frame, checks that it is a STUN request naming a worker,
/// and hands it over; otherwise the connection is closed (dropped).
async fn first_request(
    mut stream: TcpStream,
    peer: SocketAddr,
    slot: Slot,
    workers: Arc<Vec<mpsc::Sender<WorkerMsg>>>,
    deadline: Duration,
    stats: Arc<TcpStats>,
) {
    let mut first = Vec::new();
    let reason = match tokio::time::timeout(deadline, read_frame(&mut stream, &mut first)).await {
        Err(_) => CloseReason::StunDeadline,
        Ok(Err(FrameError::BadLength(_))) => CloseReason::BadFrame,
        Ok(Err(FrameError::Io(_))) => CloseReason::Peer,
        Ok(Ok(())) => {
            let worker = local_ufrag(&first)
                .and_then(worker_of_ufrag)
                .and_then(|w| workers.get(usize::from(w)));
            match worker {
                None => CloseReason::NotIce,
                Some(worker) => {
                    // Read exactly one frame so far, so nothing is left behind in a buffer.
                    let Ok(stream) = stream.into_std() else {
                        stats.closed(CloseReason::Peer);
                        return;
                    };
                    stats.routed.fetch_add(1, Ordering::Relaxed);
                    let accepted = Accepted {
                        stream,
                        peer,
                        first,
                        slot,
                    };
                    if worker.send(WorkerMsg::Tcp(accepted)).await.is_err() {
                        stats.closed(CloseReason::Shutdown);
                    }
                    return;
                }
            }
        }
    };
    tracing::debug!(
        reason = reason.as_str(),
        "ICE-TCP connection closed before routing"
    );
    stats.closed(reason);
}
