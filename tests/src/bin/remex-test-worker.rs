//! A custom worker for the integration tests: the stock built-ins plus
//! tasks that misbehave on purpose.

use std::io::Write;

use remex::worker::{Task, TaskError, Worker};
use remex::Value;

fn main() {
    Worker::new()
        .task("square", |t: &Task| {
            let x: i64 = t.args()?;
            Ok::<_, TaskError>(x * x)
        })
        .task("fail", |t: &Task| {
            Err::<(), _>(TaskError(format!(
                "failed on purpose: {}",
                t.args::<String>()?
            )))
        })
        .task("panic", |_t: &Task| -> Result<(), TaskError> {
            panic!("panicked on purpose")
        })
        .task("log_inside", |t: &Task| {
            // An event inside a task, with a field: a structured record.
            let text: String = t.args()?;
            tracing::info!(target: "remex_test_worker::logs", step = 5, "{text}");
            Ok::<_, TaskError>(text)
        })
        .task("log_flood", |t: &Task| {
            // More events than the worker sends in a second, then one in
            // the next second (which also carries the count dropped).
            let n: u64 = t.args()?;
            for i in 0..n {
                tracing::info!(target: "remex_test_worker::logs", i, "flood");
            }
            std::thread::sleep(std::time::Duration::from_millis(1100));
            tracing::info!(target: "remex_test_worker::logs", "after the flood");
            Ok::<_, TaskError>(())
        })
        .task("log_warning", |t: &Task| {
            // A worker's own log line, through its tracing subscriber.
            tracing::warn!(target: "remex_test_worker::logs", "{}", t.args::<String>()?);
            Ok::<_, TaskError>(())
        })
        .task("stdout_noise", |t: &Task| {
            // Raw writes to fds 1 and 2 must not reach the protocol stream.
            print!("noise on stdout\n\x00\x01garbage");
            std::io::stdout().flush().ok();
            eprintln!("noise on stderr");
            t.channel().send_blocking(&"after noise")?;
            Ok::<_, TaskError>(())
        })
        .task("spawn_sleeper", |_t: &Task| {
            let child = std::process::Command::new("sleep")
                .arg("1000")
                .spawn()
                .map_err(|e| TaskError(e.to_string()))?;
            let pid = child.id();
            std::mem::forget(child);
            Ok::<_, TaskError>(pid)
        })
        .task("stubborn_child", |_t: &Task| {
            // A child that ignores SIGTERM; only SIGKILL ends it.
            let child = std::process::Command::new("sh")
                .args(["-c", "trap '' TERM; while :; do sleep 1; done"])
                .spawn()
                .map_err(|e| TaskError(e.to_string()))?;
            let pid = child.id();
            std::mem::forget(child);
            Ok::<_, TaskError>(pid)
        })
        .task("slow_echo", |t: &Task| {
            // [milliseconds, value]: returns value after a while.
            let (ms, v): (u64, Value) = t.args()?;
            std::thread::sleep(std::time::Duration::from_millis(ms));
            Ok::<_, TaskError>(v)
        })
        .task("pid_and_len", |t: &Task| {
            // Where the task ran, and the length of the list it was given.
            let data: Vec<Value> = t.args()?;
            Ok::<_, TaskError>((std::process::id(), data.len()))
        })
        .task("late_receive", |t: &Task| {
            // [ms, channel]: waits, then receives one item from the channel.
            let (ms, r): (u64, remex::ChannelRef) = t.args()?;
            std::thread::sleep(std::time::Duration::from_millis(ms));
            let ch = t.channel().attach(r);
            Ok::<_, TaskError>(
                ch.receive_blocking::<remex::Value>(Some(std::time::Duration::from_secs(10)))?,
            )
        })
        .task("echo_then_sleep", |t: &Task| {
            // [n, ms]: echoes n items, then works (sleeps) without reading.
            let (n, ms): (u32, u64) = t.args()?;
            for _ in 0..n {
                let v = t.channel().receive_blocking::<remex::Value>(None)?;
                t.channel().send_value_blocking(v)?;
            }
            std::thread::sleep(std::time::Duration::from_millis(ms));
            Ok::<_, TaskError>(())
        })
        .task("count_calls", |_t: &Task| {
            // How many times this task has run in this worker.
            static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
            Ok::<_, TaskError>(CALLS.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1)
        })
        .task("die_once", |t: &Task| {
            // [marker path]: the first run anywhere creates the marker and
            // kills its worker; later runs return "survived".
            let marker: String = t.args()?;
            if std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&marker)
                .is_ok()
            {
                // SAFETY: the worker kills itself, on purpose.
                unsafe {
                    libc::kill(libc::getpid(), libc::SIGKILL);
                }
            }
            Ok::<_, TaskError>("survived")
        })
        .task("suicide", |_t: &Task| -> Result<(), TaskError> {
            // SAFETY: the worker kills itself, on purpose.
            unsafe {
                libc::kill(libc::getpid(), libc::SIGKILL);
            }
            Ok(())
        })
        .task("bulk", |t: &Task| {
            // Sends `total` bytes as `chunk`-sized byte items (see
            // `remex_tests::bulk_chunk`), then the number of chunks.
            let (total, chunk): (u64, u64) = t.args()?;
            let template = remex_tests::bulk_chunk(0, chunk as usize);
            let (mut sent, mut index) = (0u64, 0u64);
            while sent < total {
                let n = chunk.min(total - sent) as usize;
                let mut data = template[..n].to_vec();
                let k = n.min(8);
                data[..k].copy_from_slice(&index.to_le_bytes()[..k]);
                t.channel().send_value_blocking(Value::Bytes(data.into()))?;
                sent += n as u64;
                index += 1;
            }
            Ok::<_, TaskError>(index)
        })
        // Writes `n` bytes to stderr without a newline, then "\nflood over".
        .task("stderr_flood", |t: &Task| {
            let n: u64 = t.args()?;
            let chunk = vec![b'x'; 1 << 16];
            let mut err = std::io::stderr().lock();
            let mut left = n;
            while left > 0 {
                let k = left.min(chunk.len() as u64) as usize;
                err.write_all(&chunk[..k])
                    .map_err(|e| TaskError(e.to_string()))?;
                left -= k as u64;
            }
            err.write_all(b"\nflood over\n")
                .map_err(|e| TaskError(e.to_string()))?;
            Ok::<_, TaskError>(())
        })
        // Streams `n` numbers, then returns "done".
        .task("count_to", |t: &Task| {
            let n: i64 = t.args()?;
            for i in 1..=n {
                t.channel().send_blocking(&i)?;
            }
            Ok::<_, TaskError>("done")
        })
        // Streams numbers until its channel closes; writes how many it sent
        // to the file named by its argument when it stops.
        .task("count_forever", |t: &Task| {
            let path: String = t.args()?;
            let mut i = 0i64;
            while t.channel().send_blocking(&i).is_ok() {
                i += 1;
            }
            // Written whole, then renamed into place: a reader that sees
            // the file sees the count (a plain write can be seen empty).
            let part = format!("{path}.part");
            std::fs::write(&part, i.to_string()).map_err(|e| TaskError(e.to_string()))?;
            std::fs::rename(&part, &path).map_err(|e| TaskError(e.to_string()))?;
            Ok::<_, TaskError>(())
        })
        // The channel as files on the task's side: reads lines (which may
        // span items) and writes each back in upper case, until the
        // controller closes its writing half.
        .task("upper_lines", |t: &Task| {
            use std::io::BufRead;
            let mut out = std::io::BufWriter::new(t.channel().writer());
            for line in t.channel().reader().lines() {
                let line = line.map_err(|e| TaskError(e.to_string()))?;
                writeln!(out, "{}", line.to_uppercase()).map_err(|e| TaskError(e.to_string()))?;
            }
            out.flush().map_err(|e| TaskError(e.to_string()))?;
            Ok::<_, TaskError>(())
        })
        // Reads the channel as a byte stream to its end; returns the byte
        // count and an FNV-1a hash of the bytes.
        .task("hash_stream", |t: &Task| {
            use std::io::Read;
            let mut r = t.channel().reader();
            let (mut n, mut h) = (0u64, 0xcbf29ce484222325u64);
            let mut buf = vec![0u8; 1 << 16];
            loop {
                let k = r.read(&mut buf).map_err(|e| TaskError(e.to_string()))?;
                if k == 0 {
                    break;
                }
                n += k as u64;
                h = remex_tests::fnv1a(h, &buf[..k]);
            }
            Ok::<_, TaskError>((n, h))
        })
        .script_fn("triple", |x: i64| x * 3)
        .script_fn(
            "checked_half",
            |x: i64| -> Result<i64, Box<remex::worker::rhai::EvalAltResult>> {
                if x % 2 != 0 {
                    return Err(format!("{x} is odd").into());
                }
                Ok(x / 2)
            },
        )
        .run()
}
