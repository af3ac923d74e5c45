//! The portable input path: where the direct reader (`conn::direct`,
//! Linux's epoll, timerfd and eventfd) is not built, a reader task on the
//! runtime reads every connection, as `socket=` over a `via` relay always
//! does. Waiting threads and tasks then wait for the reader's hand-off.
//!
//! Built on Linux too with the `portable` feature, so that its tests run
//! where the project's CI runs (`cargo xtask test` runs the channel and
//! gateway suites with it).

use std::io;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::Instant;

use event_listener::EventListener;

use super::spin::Quick;
use super::{Shared, Step};

/// The direct reader, which this build does not have: no value exists.
pub(crate) enum DirectReader {}

impl DirectReader {
    pub(crate) fn kick(&self) {
        match *self {}
    }

    pub(crate) fn stop(&self) {
        match *self {}
    }
}

/// See [`Shared::waiting`].
pub(crate) struct Waiting<'a>(std::marker::PhantomData<&'a ()>);

impl Shared {
    /// Without a direct reader a waiting thread always waits for the
    /// reader task.
    pub(crate) fn read_while_waiting<T>(
        self: &Arc<Self>,
        l: EventListener,
        _deadline: Option<Instant>,
        _recv: Option<&super::chan::ChanState>,
        _step: &mut dyn FnMut() -> Step<T>,
    ) -> Step<T> {
        Step::Wait(l)
    }

    /// Never polls: there is no input to poll here.
    pub(crate) fn spin_for(&self, _quick: &Quick) -> Option<std::time::Duration> {
        None
    }

    pub(crate) fn waited(&self, _quick: &Quick, _took: std::time::Duration) {}

    /// Nobody but the reader task reads.
    pub(crate) fn read_now(self: &Arc<Self>) -> Option<bool> {
        None
    }

    pub(crate) fn waiting(&self) -> Option<Waiting<'_>> {
        None
    }
}

/// The input as an async reader for the reader task: `fd` (a pipe or a
/// socket) made non-blocking and registered with the runtime.
pub(crate) fn async_input(fd: OwnedFd) -> io::Result<tokio::net::unix::pipe::Receiver> {
    let flags = rustix::fs::fcntl_getfl(&fd)?;
    rustix::fs::fcntl_setfl(&fd, flags | rustix::fs::OFlags::NONBLOCK)?;
    // A socket works as well as a pipe here: the receiver only reads.
    tokio::net::unix::pipe::Receiver::from_owned_fd_unchecked(fd)
}
