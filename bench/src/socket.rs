//! Rows (j), (k), (k'): `socket=` (the Noise session) against plain TCP,
//! and the cipher alone.

use super::*;

pub(crate) struct SocketRows {
    pub(crate) rtt: Paired,
    pub(crate) bulk: Paired,
    /// AES-256-GCM sealing as the session does it, MB/s, one per round.
    pub(crate) seal: Vec<f64>,
}

/// The session's cipher alone, in MB/s: a real handshake over an
/// in-memory pipe, then `total` bytes sealed into records on this thread
/// (the work each side of a bulk transfer adds to its kernel copy).
pub(crate) async fn seal_rate(total: usize, chunk: usize) -> f64 {
    use remex::core::transport::secure;
    let psk = secure::psk(b"bench");
    let (a, b) = tokio::io::duplex(4096);
    let (mut ar, mut aw) = tokio::io::split(a);
    let (mut br, mut bw) = tokio::io::split(b);
    let (client, _server) = tokio::join!(
        secure::initiate(&mut ar, &mut aw, &psk, secure::Use::Socket),
        secure::respond(&mut br, &mut bw, &psk, secure::Use::Socket)
    );
    let (_, writer) = secure::split(client.expect("handshake"), ar, aw, "bench");
    let (_, mut sealer) = writer.into_parts().expect("no output pending");
    let plain = vec![b'x'; chunk];
    let mut out = bytes::BytesMut::with_capacity(secure::Sealer::sealed_len(chunk));
    let t0 = Instant::now();
    for _ in 0..total / chunk {
        out.clear();
        sealer.seal(&plain, &mut out).expect("seal");
    }
    (total / chunk * chunk) as f64 / t0.elapsed().as_secs_f64() / 1e6
}

/// (j), (k): a `socket=` gateway to this program listening on loopback
/// (the encrypted session), beside the plain-TCP floor, round by round.
pub(crate) async fn socket_rows(c: &Counts) -> remex::Result<SocketRows> {
    let dir = std::env::temp_dir().join(format!("remex-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let secret = dir.join("secret");
    std::fs::write(
        &secret,
        format!("remex bench secret {:032x}", std::process::id()),
    )
    .expect("secret");
    std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .expect("secret mode");
    let mut listener = Command::new(std::env::current_exe().expect("own path"))
        .env(remex::core::transport::popen::WORKER_ENV, "1")
        .arg("--listen")
        .arg("127.0.0.1:0")
        .arg("--secret-file")
        .arg(&secret)
        .stdout(Stdio::piped())
        .spawn()
        .expect("the listener starts");
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(listener.stdout.take().unwrap()),
        &mut line,
    )
    .expect("the listener says where");
    let addr = line.trim().rsplit(' ').next().unwrap_or("").to_string();
    let spec = format!("socket={addr}//secret_file={}", secret.display());
    let result = async {
        let gw = makegateway(&spec).await?;
        let ch = gw.remote_call("echo_loop", &())?;
        let (mut echo_child, mut echo) = tcp_peer_start(&["echo"]);
        let mut echo_r = echo.try_clone().expect("the socket");
        remex_rtt(&ch, 200).await?;
        floor_rtt(&mut echo, &mut echo_r, 200);
        let mut rtt = Paired::default();
        for _ in 0..c.rounds {
            let r = remex_rtt(&ch, c.pings).await?;
            rtt.push(r, floor_rtt(&mut echo, &mut echo_r, c.pings));
        }
        drop((echo, echo_r));
        let _ = echo_child.wait();
        ch.close(None);
        let total = c.bulk_mb << 20;
        if c.profile_rounds > 0 {
            // `--socket-bulk-only`: (k)'s remex side alone, long enough
            // for a profiler attached to either process.
            eprintln!(
                "listener pid {} controller pid {}",
                listener.id(),
                std::process::id()
            );
            for _ in 0..c.profile_rounds {
                eprintln!("bulk {:.0} MB/s", remex_rate(&gw, total, c.chunk).await?);
            }
        }
        let mut bulk = Paired::default();
        let mut seal = Vec::new();
        for _ in 0..c.rounds {
            let r = remex_rate(&gw, total, c.chunk).await?;
            bulk.push(r, tcp_bandwidth(total, c.chunk));
            seal.push(seal_rate(total, c.chunk).await);
        }
        gw.exit().await?;
        Ok(SocketRows { rtt, bulk, seal })
    }
    .await;
    let _ = listener.kill();
    let _ = listener.wait();
    let _ = std::fs::remove_dir_all(&dir);
    result
}

pub(crate) fn print_socket_rows(s: &SocketRows) {
    println!(
        "| (j) socket= ping-pong round trip (Noise session), loopback | {:.1} us | {:.1} us (plain TCP) | | {:.2}x the floor | | <= 1.5x the floor |",
        median(s.rtt.remex.clone()),
        median(s.rtt.floor.clone()),
        s.rtt.ratio()
    );
    println!(
        "| (k) socket= bulk bytes (Noise session), loopback | {:.0} MB/s | {:.0} MB/s (plain TCP) | | {:.0}% of the floor | | >= 60% of the floor |",
        median(s.bulk.remex.clone()),
        median(s.bulk.floor.clone()),
        s.bulk.ratio() * 100.0
    );
    // Each side of an encrypted transfer does its floor's kernel copy and
    // one AES-GCM pass over every byte, on one core per side: per byte,
    // 1/floor + 1/seal, so the best share of the floor is seal/(seal+floor).
    let ceiling = median(
        s.seal
            .iter()
            .zip(&s.bulk.floor)
            .map(|(a, f)| a / (a + f))
            .collect(),
    );
    println!(
        "| (k') AES-256-GCM sealing alone (the session's cipher, one core) | {:.0} MB/s | | | ceiling for (k) on one core per side: {:.0}% of the floor; (k) reaches {:.0}% of it | | |",
        median(s.seal.clone()),
        ceiling * 100.0,
        s.bulk.ratio() / ceiling * 100.0
    );
}
