//! Helpers shared by the cross-crate integration tests: process checks
//! against the operating system.

use std::time::{Duration, Instant};

/// Whether a process is gone (no such pid, or a zombie nobody has reaped
/// yet: it runs no code any more).
pub fn process_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        // The state follows the command name in parentheses.
        Ok(stat) => stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.trim_start().starts_with(['Z', 'X']))
            .unwrap_or(false),
    }
}

/// Waits until `pid` is gone or `within` has passed; returns whether it is
/// gone.
pub fn wait_gone(pid: u32, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if process_gone(pid) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Pids of the live children of `pid`, from /proc.
pub fn children_of(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            let Some(p) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            if let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) {
                if let Some((_, rest)) = stat.rsplit_once(')') {
                    let fields: Vec<&str> = rest.split_whitespace().collect();
                    if fields.get(1).and_then(|s| s.parse::<u32>().ok()) == Some(pid)
                        && !process_gone(p)
                    {
                        out.push(p);
                    }
                }
            }
        }
    }
    out
}

/// Byte `k` of the deterministic bulk-transfer pattern.
pub fn pattern_byte(k: usize) -> u8 {
    ((k * 7 + 13) % 251) as u8
}

/// Chunk `index` of a bulk transfer: the pattern with the chunk's index in
/// its first 8 bytes (little endian), so that loss, duplication and
/// reordering are all visible.
pub fn bulk_chunk(index: u64, len: usize) -> Vec<u8> {
    let mut v: Vec<u8> = (0..len).map(pattern_byte).collect();
    let n = len.min(8);
    v[..n].copy_from_slice(&index.to_le_bytes()[..n]);
    v
}

/// Resident memory of a process in bytes, from /proc.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
