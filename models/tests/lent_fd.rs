//! The writer's fd lent to senders. Mirrors `remex-core`'s
//! `conn::output`: `OutBuf::direct_out` holds the writer's raw fd while
//! the writer task lives; a sender writes to it directly
//! (`OutBuf::try_direct`) only under the output lock, and the writer task
//! takes it back under that lock (`Lent`'s drop, also when the task is
//! cancelled) before the writer, and so the fd, is closed. A sender
//! therefore never writes to a closed descriptor, or to one the process
//! reused for something else.

use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use loom::sync::Mutex;
use remex_models::{check, spawn_on};

/// A descriptor: open until closed; a write to a closed one is the bug
/// (in the process, a write to whatever reused its number).
struct Fd {
    open: AtomicBool,
    written: AtomicUsize,
}

/// The output buffer's part of the protocol.
struct OutBuf {
    direct_out: Option<Arc<Fd>>,
}

/// `OutBuf::try_direct`: writes if the fd is lent (under the lock).
fn send(out: &Mutex<OutBuf>) {
    let o = out.lock().unwrap();
    if let Some(fd) = &o.direct_out {
        assert!(
            fd.open.load(Ordering::SeqCst),
            "a direct write to a closed fd"
        );
        fd.written.fetch_add(1, Ordering::SeqCst);
    }
}

/// The writer task ends: `Lent`'s drop takes the fd back under the lock,
/// then the writer is dropped (the fd closed). `take_back_first: false`
/// is the broken order.
fn writer_ends(out: &Mutex<OutBuf>, fd: &Fd, take_back_first: bool) {
    if take_back_first {
        out.lock().unwrap().direct_out = None;
        fd.open.store(false, Ordering::SeqCst);
    } else {
        fd.open.store(false, Ordering::SeqCst);
        out.lock().unwrap().direct_out = None;
    }
}

fn model(take_back_first: bool) {
    check(move || {
        let fd = Arc::new(Fd {
            open: AtomicBool::new(true),
            written: AtomicUsize::new(0),
        });
        let out = Arc::new(Mutex::new(OutBuf {
            direct_out: Some(fd.clone()),
        }));
        let senders: Vec<_> = (0..2).map(|_| spawn_on(&out, send)).collect();
        writer_ends(&out, &fd, take_back_first);
        for s in senders {
            s.join().unwrap();
        }
        // Whatever the order, nothing is lent after the end.
        assert!(out.lock().unwrap().direct_out.is_none());
        assert!(fd.written.load(Ordering::SeqCst) <= 2);
    });
}

#[test]
fn a_sender_never_writes_to_the_fd_after_the_writer_closed_it() {
    model(true);
}

#[test]
#[should_panic(expected = "a direct write to a closed fd")]
fn closing_before_taking_the_fd_back_lets_a_sender_write_to_it() {
    model(false);
}
