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
        .task("bulk", |t: &Task| {
            // Sends `total` bytes in `chunk`-sized byte items, then their checksum.
            let (total, chunk): (u64, u64) = t.args()?;
            let mut sent = 0u64;
            let mut sum = 0u64;
            let mut i = 0u64;
            while sent < total {
                let n = chunk.min(total - sent) as usize;
                let data: Vec<u8> = (0..n).map(|k| ((i + k as u64) % 251) as u8).collect();
                sum = data
                    .iter()
                    .fold(sum, |s, b| s.wrapping_mul(31).wrapping_add(u64::from(*b)));
                i += n as u64;
                t.channel().send_value_blocking(Value::Bytes(data.into()))?;
                sent += n as u64;
            }
            Ok::<_, TaskError>(Value::Int(sum as i64))
        })
        .run()
}
