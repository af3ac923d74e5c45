//! `via=ID`: a gateway whose worker is started by another gateway's worker,
//! which relays its byte stream on one channel (see the worker's `__relay`).
//!
//! The relay channel is joined to an in-memory duplex stream, and the
//! controller runs the usual handshake and engine over that stream. When
//! the relay dies, its channel ends, the stream ends, and every channel of
//! the gateway behind it gets its end (and endmarker).

use bytes::BytesMut;
use tokio::io::{DuplexStream, ReadHalf, WriteHalf};

use super::{exchange_hellos, worker_info, HelloError, HANDSHAKE_TIMEOUT};
use crate::error::{Error, Result};
use crate::spec::Spec;
use crate::value::Value;
use crate::wire::WorkerInfo;

/// The gateway a relayed worker is started through (a
/// [`Gateway`](crate::Gateway)).
pub(crate) trait Relay {
    /// Its id, for errors.
    fn relay_id(&self) -> &str;
    /// Asks its worker to start `what` (a spec, or a command's argv): the
    /// started worker's byte stream, joined to an in-memory stream.
    fn open(&self, what: &Value) -> Result<DuplexStream>;
    /// Why its connection was lost, when asked (a relayed stream ends
    /// when it is).
    fn relay_lost(&self) -> LostWhy;
}

/// The spec as the relay sees it: without `via=` and `id=`.
fn target_spec(spec: &Spec) -> String {
    spec.raw
        .split("//")
        .filter(|p| !p.starts_with("via=") && !p.starts_with("id="))
        .collect::<Vec<_>>()
        .join("//")
}

pub(crate) struct Relayed {
    pub(crate) reader: ReadHalf<DuplexStream>,
    pub(crate) writer: WriteHalf<DuplexStream>,
    pub(crate) leftover: BytesMut,
    pub(crate) info: WorkerInfo,
    /// The ssh bootstrap uploaded the worker.
    pub(crate) uploaded: bool,
    /// The stream ends when the relay's channel does: a lost relay (its
    /// host gone) explains it.
    pub(crate) eof_reason: super::parts::EofReason,
}

/// Tells why a connection was lost, if it was.
pub(crate) type LostWhy = std::sync::Arc<dyn Fn() -> Option<String> + Send + Sync>;

/// Starts the target through `relay` and runs the handshake with it. An
/// `ssh=` target is reached by an ssh client the relay runs on its host
/// (the relay's host's ssh configuration, keys and known hosts apply),
/// with the zero-install bootstrap run from here through the relayed
/// stream: a host behind the relay gets this controller's worker, as a
/// host reached directly does.
pub(crate) async fn connect(id: &str, spec: &Spec, relay: &impl Relay) -> Result<Relayed> {
    if let crate::Transport::Ssh { target } = &spec.transport {
        super::ssh::prepare_upload(spec).await?;
        let (cmd, upload) = super::ssh::command(spec, target, None)?;
        let cmd = cmd.as_std();
        let argv: Vec<String> = std::iter::once(cmd.get_program())
            .chain(cmd.get_args())
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let argv = Value::List(argv.into_iter().map(Value::Str).collect());
        return match start(id, spec, relay, argv.clone(), Some(upload.clone())).await {
            // An upload that arrived damaged (the host checked its size
            // and SHA-256 and kept nothing) is sent once more.
            Err(e) if upload.is_some() && super::ssh::upload_refused(&e) => {
                tracing::warn!(gateway = %id, "the worker upload arrived damaged ({e}); sending it again");
                start(id, spec, relay, argv, Some(upload)).await
            }
            r => r,
        };
    }
    connect_to(id, spec, relay, &target_spec(spec)).await
}

/// As [`connect`], with the spec the relay starts given apart (`popen`
/// behind an ssh connection's relay, for an `ssh=` gateway).
pub(crate) async fn connect_to(
    id: &str,
    spec: &Spec,
    relay: &impl Relay,
    target: &str,
) -> Result<Relayed> {
    start(id, spec, relay, Value::from(target), None).await
}

/// Asks `relay` to start `what` (a spec, or a command's argv) and runs
/// the bootstrap (for ssh) and the handshake through it.
async fn start(
    id: &str,
    spec: &Spec,
    relay: &impl Relay,
    what: Value,
    bootstrap: Option<Option<super::ssh::Upload>>,
) -> Result<Relayed> {
    let near = relay.open(&what)?;
    let (mut r, mut w) = tokio::io::split(near);
    let mut leftover = BytesMut::new();
    let within = spec.start_timeout.unwrap_or(HANDSHAKE_TIMEOUT);
    let mut uploaded = false;
    let handshake = async {
        if let Some(upload) = &bootstrap {
            uploaded = super::await_ready(&mut w, &mut r, &mut leftover, upload.as_ref())
                .await
                .map_err(HelloError::Handshake)?;
        }
        exchange_hellos(&mut r, &mut w, &mut leftover, spec, id).await
    };
    let hello = tokio::time::timeout(within, handshake)
        .await
        .map_err(|_| Error::Start {
            spec: spec.raw.clone(),
            detail: format!(
            "no handshake through relay {} within {within:?} (start_timeout=SECS sets the bound)",
            relay.relay_id()
        ),
        })?
        .map_err(|e| match e {
            HelloError::Handshake(source) => Error::Handshake {
                spec: spec.raw.clone(),
                pid: None,
                source,
                detail: format!("; through relay {}", relay.relay_id()),
            },
            HelloError::Io(e) => {
                Error::os(format!("the stream through relay {}", relay.relay_id()), e)
            }
        })?;
    let (relay_id, relay_lost) = (relay.relay_id().to_string(), relay.relay_lost());
    let eof_reason: super::parts::EofReason = std::sync::Arc::new(move || {
        let said = match relay_lost() {
            Some(e) => format!("the stream through relay {relay_id} ended: {e}"),
            None => format!("the stream through relay {relay_id} ended"),
        };
        Box::pin(async move { said })
    });
    Ok(Relayed {
        reader: r,
        writer: w,
        leftover,
        info: worker_info(spec, hello)?,
        uploaded,
        eof_reason,
    })
}

impl From<Relayed> for super::parts::Parts {
    fn from(r: Relayed) -> super::parts::Parts {
        super::parts::Parts {
            info: r.info,
            streams: super::parts::Streams::Relayed {
                reader: r.reader,
                writer: r.writer,
                leftover: r.leftover,
            },
            process: None,
            uploaded: r.uploaded,
            stderr: None,
            eof_reason: Some(r.eof_reason),
        }
    }
}
