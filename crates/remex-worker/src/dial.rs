//! A worker that dials its controller: how `slurm` gateways' workers reach
//! the controller that started them (see `docs/clusters.md`).
//!
//! The engine (srun) starts the worker with [`DIAL_ENV`] (`host:port` of
//! the controller's listener) and [`DIAL_SECRET_ENV`] (a one-time secret)
//! in its environment. The worker removes both from its environment,
//! connects, runs the secure handshake of
//! `remex::core::transport::secure` as its initiator (both ends prove the
//! secret; nothing is served to a listener that does not), and then serves
//! that one controller as a stdio worker would: it answers the
//! controller's hello with its own (which names its Slurm job, step, node
//! and task), and exits when the controller terminates it or goes away.

use std::sync::Arc;
use std::time::Duration;

use remex_core::transport::secure::{self, HandshakeError};
use remex_core::transport::socket::DirectParts;
use tokio::net::TcpStream;

use crate::Worker;

pub(crate) use remex_core::transport::dial::{DIAL_ENV, DIAL_SECRET_ENV, DIAL_WITHIN_ENV};
/// The bound on connecting, the secure handshake and the hellos, unless
/// [`DIAL_WITHIN_ENV`] gives the controller's.
const DIAL_DEADLINE: Duration = Duration::from_secs(30);

fn fail(what: String) -> ! {
    crate::exit::fail(what)
}

/// Why a dial failed: worth another try (the connection was refused or
/// cut), or not (the secret, or a peer that is not the controller).
enum Dial {
    Again(String),
    Final(String),
}

/// One connection to the controller, its handshake and the hellos.
async fn try_dial(addr: &str, psk: &[u8; 32]) -> Result<(DirectParts, crate::serve::Terms), Dial> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| Dial::Again(format!("cannot connect to the controller at {addr}: {e}")))?;
    let _ = stream.set_nodelay(true);
    let (mut r, mut w) = stream.into_split();
    let session = secure::initiate(&mut r, &mut w, psk, secure::Use::DialBack)
        .await
        .map_err(|e| match e {
            HandshakeError::Refused => Dial::Final(format!("{addr} refused this worker's secret")),
            HandshakeError::Unproven => Dial::Final(format!(
                "{addr} did not prove the secret: not the controller that started this worker"
            )),
            HandshakeError::Io(e) => {
                Dial::Again(format!("the secure handshake with {addr} failed: {e}"))
            }
            other => Dial::Final(format!("the secure handshake with {addr} failed: {other}")),
        })?;
    let hash = session.hash();
    let (mut r, mut w) = secure::split(session, r, w, addr);
    // The job user's MUNGE credential over this session, where the node
    // has MUNGE: the controller then knows the session is no stranger's.
    let credential = remex_core::transport::munge::credential(&hash).await;
    let (leftover, terms) = crate::listen::hellos(&mut r, &mut w, true, credential)
        .await
        .map_err(Dial::Final)?;
    let parts = DirectParts::new(r, w, leftover)
        .map_err(|e| Dial::Final(format!("taking over the session: {e}")))?;
    Ok((parts, terms))
}

/// Dials `addr` and serves the controller there until it terminates this
/// worker or goes away.
pub(crate) fn dial(worker: Worker, addr: String) -> ! {
    let secret = zeroize::Zeroizing::new(std::env::var(DIAL_SECRET_ENV).unwrap_or_default());
    // How long the controller waits for this start; ours too.
    let within = std::env::var(DIAL_WITHIN_ENV)
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .map_or(DIAL_DEADLINE, Duration::from_secs_f64);
    // Neither tasks nor their children inherit them.
    for name in [DIAL_SECRET_ENV, DIAL_ENV, DIAL_WITHIN_ENV] {
        crate::place::forget(name);
    }
    if secret.is_empty() {
        fail(format!(
            "{DIAL_ENV} is set but {DIAL_SECRET_ENV} is not: no secret to dial with"
        ))
    }
    if let Err(e) = remex_core::transport::secret::check(secret.as_bytes(), DIAL_SECRET_ENV) {
        fail(e)
    }
    crate::not_dumpable();
    let psk = secure::psk(secret.as_bytes());
    drop(secret);
    crate::init_tracing();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(4096)
        .thread_name("remex-worker")
        .enable_all()
        .build()
        .unwrap_or_else(|e| fail(format!("cannot start the runtime: {e}")));
    let _engines = worker.scripts.engines_until_exit();
    let ended = rt.block_on(async move {
        // A connection refused or reset (a listener not up yet, a busy
        // one, a network that drops a SYN) is tried again, 100 ms to 2 s
        // apart, until the controller's own bound for the start.
        let mut last = String::new();
        let connect = async {
            let mut pause = Duration::from_millis(100);
            loop {
                match try_dial(&addr, &psk).await {
                    Ok(x) => return Ok(x),
                    Err(Dial::Final(e)) => return Err(e),
                    Err(Dial::Again(e)) => {
                        last = e;
                        tokio::time::sleep(pause).await;
                        pause = (pause * 2).min(Duration::from_secs(2));
                    }
                }
            }
        };
        let (p, terms) = match tokio::time::timeout(within, connect).await {
            Ok(Ok(x)) => x,
            Ok(Err(e)) => fail(e),
            Err(_) if !last.is_empty() => fail(format!("{last} (tried for {within:?})")),
            Err(_) => fail(format!(
                "no session with the controller at {addr} within {within:?}"
            )),
        };
        if let Some(bound) = terms.liveness {
            // A paused session still learns of a dead controller host.
            let _ = remex_core::transport::socket::keep_alive(&p.writer, bound);
        }
        // The process serves this one controller: its events are records.
        let terms = crate::serve::Terms {
            records: true,
            ..terms
        };
        crate::serve::session(Arc::new(worker), terms, move |config, handlers| {
            remex_core::conn::Connection::spawn_direct_secure(
                config, handlers, p.input, p.writer, p.leftover, p.opener, p.sealer,
            )
        })
        .await
    });
    crate::exit::after_session(ended)
}
