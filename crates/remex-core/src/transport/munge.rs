//! Binding a dial-back session to the cluster's own credential: MUNGE,
//! which every Slurm cluster with `AuthType=auth/munge` runs on every
//! node.
//!
//! The one-time secret of a start reaches every node in srun's
//! environment; whoever reads it there could dial the controller as a
//! worker of that start. So a worker that dials back also sends, in its
//! hello, a MUNGE credential whose payload is the session's handshake
//! hash (`munge -n -s HASH`), and the controller decodes it (`unmunge`):
//! it must come from this user (the same uid) in this MUNGE realm (the
//! cluster's key), and carry this very session's hash, so it cannot be
//! replayed into another session (MUNGE also refuses a credential
//! decoded twice). A holder of the secret who is not the job's user on a
//! node of the cluster cannot make one.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use super::secure::SessionHash;

/// How long `munge` or `unmunge` may take.
const BOUND: Duration = Duration::from_secs(5);

fn hex(hash: &SessionHash) -> String {
    hash.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether this host can decode credentials (`unmunge` runs, and
/// `munged` answers it).
pub(crate) async fn available() -> bool {
    let run = Command::new("unmunge")
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    matches!(tokio::time::timeout(BOUND, run).await, Ok(Ok(s)) if s.success())
}

/// A credential over `hash` from this host's `munge`, or `None` when it
/// has none (no MUNGE here: the controller then decides).
///
/// ```
/// # #[tokio::main] async fn main() {
/// let hash = [7u8; 32];
/// if let Some(c) = remex::core::transport::munge::credential(&hash).await {
///     assert!(c.starts_with("MUNGE:"), "{c}");
/// }
/// # }
/// ```
pub async fn credential(hash: &SessionHash) -> Option<String> {
    let run = Command::new("munge")
        .args(["-n", "-s", &hex(hash)])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output();
    match tokio::time::timeout(BOUND, run).await {
        Ok(Ok(out)) if out.status.success() => {
            let c = String::from_utf8_lossy(&out.stdout).trim().to_string();
            (!c.is_empty()).then_some(c)
        }
        _ => None,
    }
}

/// Checks that `credential` was made by this user, in this MUNGE realm,
/// over `hash`; says why not.
pub(crate) async fn verify(credential: &str, hash: &SessionHash) -> Result<(), String> {
    let mut child = Command::new("unmunge")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot run unmunge: {e}"))?;
    let mut stdin = child.stdin.take().expect("stdin is piped");
    let out = tokio::time::timeout(BOUND, async {
        // A credential is a line of base64; anything longer is not one.
        let c = &credential.as_bytes()[..credential.len().min(4096)];
        let _ = stdin.write_all(c).await;
        drop(stdin);
        child.wait_with_output().await
    })
    .await
    .map_err(|_| format!("unmunge gave no answer within {BOUND:?}"))?
    .map_err(|e| format!("unmunge: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!(
            "its MUNGE credential does not decode: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':').map(str::trim))
    };
    // "UID:             alice (1000)"
    let uid = field("UID")
        .and_then(|v| v.rsplit_once('(')?.1.strip_suffix(')')?.parse::<u32>().ok())
        .ok_or("its MUNGE credential names no uid")?;
    let me = rustix::process::getuid().as_raw();
    if uid != me {
        return Err(format!(
            "its MUNGE credential is uid {uid}'s, and this controller runs as uid {me}"
        ));
    }
    // The payload follows the metadata and a blank line.
    let payload = text.split_once("\n\n").map_or("", |(_, p)| p.trim());
    if payload != hex(hash) {
        return Err("its MUNGE credential was made for another session".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_credential_over_this_session_passes_and_one_over_another_does_not() {
        if !available().await || credential(&[0; 32]).await.is_none() {
            // Only where MUNGE runs (cargo xtask test starts it with the
            // Slurm it installs).
            eprintln!("skipped: no munge here");
            return;
        }
        let (ours, other) = ([1u8; 32], [2u8; 32]);
        let c = credential(&ours).await.unwrap();
        assert!(verify(&c, &ours).await.is_ok());
        // Decoded once: MUNGE refuses a replay.
        let e = verify(&c, &ours).await.unwrap_err();
        assert!(e.contains("does not decode"), "{e}");
        let c = credential(&ours).await.unwrap();
        let e = verify(&c, &other).await.unwrap_err();
        assert!(e.contains("another session"), "{e}");
        let e = verify("MUNGE:not-a-credential:", &ours).await.unwrap_err();
        assert!(e.contains("does not decode"), "{e}");
    }
}
