//! The floors the rows are measured against: a child of this program
//! speaking over plain pipes or loopback TCP with blocking I/O, and
//! this program spawned doing nothing (`--one-byte`).

use super::*;

/// The pipe peer: `echo` answers every 8-byte message; `source N CHUNK`
/// writes N bytes.
pub(crate) fn pipe_peer(mode: &str, args: &[String]) -> ! {
    serve_peer(
        mode,
        args,
        std::io::stdin().lock(),
        std::io::stdout().lock(),
    )
}

/// What a floor peer does on `r`/`w`: `echo` answers every 8-byte
/// message; `source N CHUNK` writes N bytes in CHUNK-byte writes.
pub(crate) fn serve_peer(mode: &str, args: &[String], mut r: impl Read, mut w: impl Write) -> ! {
    match mode {
        "echo" => {
            let mut b = [0u8; 8];
            while r.read_exact(&mut b).is_ok() {
                if w.write_all(&b).and_then(|_| w.flush()).is_err() {
                    break;
                }
            }
        }
        _ => {
            let total: usize = args[0].parse().unwrap_or(0);
            let chunk: usize = args[1].parse().unwrap_or(1);
            let data = vec![b'x'; chunk];
            for _ in 0..total / chunk {
                if w.write_all(&data).is_err() {
                    break;
                }
            }
        }
    }
    std::process::exit(0)
}

pub(crate) fn grow_pipe(fd: std::os::fd::RawFd) {
    // SAFETY: fcntl on an fd we own.
    unsafe {
        libc::fcntl(fd, libc::F_SETPIPE_SZ, 1 << 20);
    }
}

/// The plain-TCP peer: connects to `addr`, then `echo` answers every
/// 8-byte message; `source N CHUNK` writes N bytes. Unencrypted, with
/// TCP_NODELAY as remex's sockets: the floor of `socket=`.
pub(crate) fn tcp_peer(mode: &str, args: &[String]) -> ! {
    let s = std::net::TcpStream::connect(&args[0]).expect("the bench listens");
    let _ = s.set_nodelay(true);
    let r = s.try_clone().expect("the socket");
    serve_peer(mode, &args[1..], r, s)
}

/// A plain-TCP peer process connected to us.
pub(crate) fn tcp_peer_start(args: &[&str]) -> (std::process::Child, std::net::TcpStream) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("loopback");
    let addr = l.local_addr().unwrap().to_string();
    let mut a = vec!["--tcp-peer", args[0], &addr];
    a.extend_from_slice(&args[1..]);
    let child = Command::new(std::env::current_exe().expect("own path"))
        .args(&a)
        .spawn()
        .expect("tcp peer starts");
    let (s, _) = l.accept().expect("the peer connects");
    let _ = s.set_nodelay(true);
    (child, s)
}

/// Mean floor round trip in microseconds over `n` 8-byte pings to an
/// echo peer.
pub(crate) fn floor_rtt(w: &mut impl Write, r: &mut impl Read, n: usize) -> f64 {
    let mut b = [0u8; 8];
    let t0 = Instant::now();
    for i in 0..n as u64 {
        w.write_all(&i.to_le_bytes()).unwrap();
        r.read_exact(&mut b).unwrap();
    }
    t0.elapsed().as_secs_f64() / n as f64 * 1e6
}

/// Floor bandwidth in MB/s: reads `r` to its end in `chunk`-byte reads.
pub(crate) fn floor_rate(r: &mut impl Read, chunk: usize) -> f64 {
    let mut buf = vec![0u8; chunk];
    let t0 = Instant::now();
    let mut got = 0;
    loop {
        let n = r.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        got += n;
    }
    got as f64 / t0.elapsed().as_secs_f64() / 1e6
}

/// Plain-TCP bandwidth in MB/s from a peer process writing `total` bytes.
pub(crate) fn tcp_bandwidth(total: usize, chunk: usize) -> f64 {
    let (mut child, mut s) = tcp_peer_start(&["source", &total.to_string(), &chunk.to_string()]);
    let bw = floor_rate(&mut s, chunk);
    child.wait().unwrap();
    bw
}

/// The raw pipe peer for round trips: a child process echoing 8-byte
/// messages over plain pipes with blocking I/O.
pub(crate) struct PipeEcho {
    pub(crate) child: std::process::Child,
    pub(crate) w: std::process::ChildStdin,
    pub(crate) r: std::process::ChildStdout,
}

impl PipeEcho {
    pub(crate) fn start() -> PipeEcho {
        let mut child = Command::new(std::env::current_exe().expect("own path"))
            .args(["--pipe-peer", "echo"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("pipe peer starts");
        let w = child.stdin.take().unwrap();
        let r = child.stdout.take().unwrap();
        PipeEcho { child, w, r }
    }

    /// Mean round trip in microseconds over `n` pings.
    pub(crate) fn rtt(&mut self, n: usize) -> f64 {
        floor_rtt(&mut self.w, &mut self.r, n)
    }

    pub(crate) fn stop(self) {
        drop(self.w);
        let mut child = self.child;
        child.wait().unwrap();
    }
}

/// Raw pipe bandwidth in MB/s: a child writes `total` bytes in `chunk`
/// writes; with `big`, the pipe has 1 MiB of buffer like remex's pipes.
pub(crate) fn pipe_bandwidth(total: usize, chunk: usize, big: bool) -> f64 {
    let mut child = Command::new(std::env::current_exe().expect("own path"))
        .args([
            "--pipe-peer",
            "source",
            &total.to_string(),
            &chunk.to_string(),
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut r = child.stdout.take().unwrap();
    if big {
        grow_pipe(std::os::fd::AsRawFd::as_raw_fd(&r));
    }
    let bw = floor_rate(&mut r, chunk);
    child.wait().unwrap();
    bw
}

/// One row measured against its floor, round by round.
#[derive(Default)]
pub(crate) struct Paired {
    pub(crate) remex: Vec<f64>,
    pub(crate) floor: Vec<f64>,
}

impl Paired {
    pub(crate) fn push(&mut self, remex: f64, floor: f64) {
        self.remex.push(remex);
        self.floor.push(floor);
    }
    /// Median of the per-round ratios remex / floor.
    pub(crate) fn ratio(&self) -> f64 {
        median(
            self.remex
                .iter()
                .zip(&self.floor)
                .map(|(r, f)| r / f)
                .collect(),
        )
    }
}

/// The floor of a start: `n` copies of this program spawned at once, each
/// writing one byte and exiting at once (`--one-byte`, before anything
/// else), until every byte is in; ms.
pub(crate) fn spawn_floor_ms(n: usize) -> f64 {
    use std::io::Read;
    let exe = std::env::current_exe().expect("own path");
    let t0 = Instant::now();
    let children: Vec<_> = (0..n)
        .map(|_| {
            Command::new(&exe)
                .arg("--one-byte")
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .spawn()
                .expect("spawn")
        })
        .collect();
    let mut children: Vec<_> = children
        .into_iter()
        .map(|mut c| {
            let mut b = [0u8; 1];
            c.stdout
                .as_mut()
                .expect("piped")
                .read_exact(&mut b)
                .expect("a byte");
            c
        })
        .collect();
    let took = t0.elapsed().as_secs_f64() * 1e3;
    for c in &mut children {
        let _ = c.wait();
    }
    took
}
