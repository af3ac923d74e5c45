//! Each transition of a channel's state, and property tests of its
//! invariants over random event sequences.

use std::sync::Arc;

use proptest::prelude::*;

use super::*;

const W: u32 = 1000;

/// A callback stand-in: its identity is its allocation.
type Cb = Arc<&'static str>;
type M = ChanMachine<u32, Cb, Error>;

/// remex-core's error as far as a channel tells failures apart.
#[derive(Debug, Clone, PartialEq)]
enum Error {
    Remote { message: String },
    GatewayLost,
}

impl Failure for Error {
    fn is_remote(&self) -> bool {
        matches!(self, Error::Remote { .. })
    }
    fn is_loss(&self) -> bool {
        matches!(self, Error::GatewayLost)
    }
}

fn remote_error(message: &str) -> Error {
    Error::Remote {
        message: message.into(),
    }
}

fn lost() -> Error {
    Error::GatewayLost
}

fn item(m: &mut M) -> Option<(u32, usize)> {
    match m.receive() {
        Receive::Item(v, s) => Some((v, s)),
        _ => None,
    }
}

#[test]
fn a_sender_sends_while_its_credit_is_positive_and_overshoots_by_one_item_at_most() {
    let mut m = M::new(W);
    assert_eq!(m.reserve(600), Reserve::Granted);
    assert_eq!(m.reserve(600), Reserve::Granted, "400 bytes of credit left");
    assert_eq!(m.credit(), -200);
    assert_eq!(m.reserve(1), Reserve::NoCredit);
    m.on_credit(200);
    assert_eq!(m.reserve(1), Reserve::NoCredit, "credit is back at zero");
    m.on_credit(1);
    assert_eq!(m.reserve(10), Reserve::Granted);
}

#[test]
fn a_receiver_refuses_an_item_once_a_whole_window_is_outstanding() {
    let mut m = M::new(W);
    for i in 0..3 {
        assert!(matches!(m.on_data(i, 400), Ok(Delivery::Queued)));
    }
    // 1200 outstanding: the peer had no credit left for this one.
    assert_eq!(m.on_data(9, 1).unwrap_err(), Overrun { outstanding: 1200 });
    assert_eq!(m.queued(), (3, 1200), "the refused item is not kept");
}

#[test]
fn consumed_bytes_go_back_as_credit_a_quarter_window_at_a_time() {
    let mut m = M::new(W);
    for i in 0..4 {
        m.on_data(i, 100).unwrap();
    }
    let (_, s) = item(&mut m).unwrap();
    assert_eq!(m.on_consumed(s), 0, "100 < a quarter window");
    let (_, s) = item(&mut m).unwrap();
    assert_eq!(m.on_consumed(s), 0);
    let (_, s) = item(&mut m).unwrap();
    assert_eq!(m.on_consumed(s), 300, "250 reached: all of it goes back");
    assert_eq!(m.outstanding(), 100);
}

#[test]
fn no_credit_goes_back_to_a_peer_that_is_gone_or_after_closing_here() {
    let mut m = M::new(W);
    m.on_data(1, 500).unwrap();
    m.on_remote_end(Terminal::Eof, true);
    assert_eq!(m.on_consumed(500), 0);

    let mut m = M::new(W);
    m.on_data(1, 500).unwrap();
    m.close(false).unwrap();
    assert_eq!(m.on_consumed(500), 0);
}

#[test]
fn credit_beyond_u32_goes_back_in_several_messages() {
    let parts: Vec<u32> = credit_parts(u32::MAX as usize * 2 + 5).collect();
    assert_eq!(parts, [u32::MAX, u32::MAX, 5]);
    assert_eq!(credit_parts(0).count(), 0);
}

#[test]
fn items_queued_before_the_end_are_received_and_then_only_the_end() {
    let mut m = M::new(W);
    m.on_data(1, 10).unwrap();
    m.on_data(2, 10).unwrap();
    let end = m.on_remote_end(Terminal::Eof, true);
    assert!(end.finished, "the peer closed both ways");
    assert_eq!(item(&mut m), Some((1, 10)));
    assert_eq!(item(&mut m), Some((2, 10)));
    for _ in 0..3 {
        assert!(matches!(m.receive(), Receive::End(Terminal::Eof)));
    }
    assert!(matches!(m.wait_close(), WaitClose::Closed));
}

#[test]
fn a_remote_error_replaces_an_end_of_file_but_nothing_replaces_an_error() {
    let mut m = M::new(W);
    m.on_remote_end(Terminal::Eof, false);
    m.on_remote_end(Terminal::Failed(remote_error("boom")), true);
    assert!(
        matches!(m.wait_close(), WaitClose::Failed(Error::Remote { message }) if message == "boom")
    );
    m.on_remote_end(Terminal::Eof, true);
    m.on_remote_end(Terminal::Failed(remote_error("later")), true);
    assert!(
        matches!(m.receive(), Receive::End(Terminal::Failed(Error::Remote { message })) if message == "boom")
    );

    // A lost connection after an end of file keeps the end of file.
    let mut m = M::new(W);
    m.on_remote_end(Terminal::Eof, true);
    m.on_remote_end(Terminal::Failed(lost()), true);
    assert!(matches!(m.wait_close(), WaitClose::Closed));
}

#[test]
fn after_the_peers_last_message_this_side_still_sends_until_it_closes() {
    let mut m = M::new(W);
    let end = m.on_remote_end(Terminal::Eof, false);
    assert!(!end.finished, "our direction is still open");
    assert_eq!(m.reserve(10), Reserve::Granted);
    assert_eq!(
        m.close(false),
        Some(LocalClose {
            send: true,
            finished: true
        })
    );
}

#[test]
fn a_local_close_is_sent_once_and_not_to_a_peer_that_is_gone() {
    let mut m = M::new(W);
    assert_eq!(
        m.close(true),
        Some(LocalClose {
            send: true,
            finished: false
        })
    );
    assert_eq!(m.close(true), None, "the last message was sent already");
    assert_eq!(m.reserve(1), Reserve::ClosedHere);
    assert_eq!(
        m.close(false),
        Some(LocalClose {
            send: true,
            finished: true
        })
    );
    assert_eq!(m.close(false), None);
    assert!(m.closed_here());

    let mut m = M::new(W);
    m.on_remote_end(Terminal::Failed(lost()), true);
    assert_eq!(
        m.close(false),
        Some(LocalClose {
            send: false,
            finished: true
        })
    );
}

#[test]
fn items_arriving_after_a_local_close_are_dropped() {
    let mut m = M::new(W);
    m.close(false).unwrap();
    assert!(matches!(m.on_data(1, 10), Ok(Delivery::Dropped)));
    assert_eq!(m.queued(), (0, 0));
    assert!(matches!(m.receive(), Receive::End(Terminal::Eof)));
}

#[test]
fn items_a_peer_sends_after_its_end_are_dropped() {
    let mut m = M::new(W);
    m.on_remote_end(Terminal::Eof, false);
    assert!(matches!(m.on_data(1, 10), Ok(Delivery::Dropped)));
    assert!(matches!(m.receive(), Receive::End(Terminal::Eof)));
}

#[test]
fn sending_to_a_lost_peer_names_the_loss() {
    let mut m = M::new(W);
    m.on_remote_end(Terminal::Failed(lost()), true);
    assert!(matches!(
        m.reserve(1),
        Reserve::PeerGone(Some(Error::GatewayLost))
    ));
    let mut m = M::new(W);
    m.on_remote_end(Terminal::Eof, true);
    assert_eq!(m.reserve(1), Reserve::PeerGone(None));
    assert_eq!(M::unpeered(W).reserve(1), Reserve::PeerGone(None));
}

#[test]
fn a_callback_gets_the_queued_items_then_new_ones_then_the_endmarker_once() {
    let cb: Cb = Arc::new("cb");
    let mut m = M::new(W);
    m.on_data(1, 10).unwrap();
    m.on_data(2, 10).unwrap();
    let start = m.set_callback(&cb, Some(99)).unwrap();
    assert_eq!(start.queued, [(1, 10), (2, 10)]);
    assert_eq!(start.endmarker, None, "not ended yet");
    assert!(matches!(m.receive(), Receive::CallbackSet));
    assert_eq!(m.set_callback(&cb, None).unwrap_err(), CallbackAlreadySet);
    match m.on_data(3, 10) {
        Ok(Delivery::Callback(c, 3)) => assert!(Arc::ptr_eq(&c, &cb)),
        other => panic!("{other:?}"),
    }
    let end = m.on_remote_end(Terminal::Eof, true);
    let (c, marker) = end.endmarker.expect("the endmarker");
    assert!(Arc::ptr_eq(&c, &cb));
    assert_eq!(marker, 99);
    assert!(end.released.is_none());
    let again = m.on_remote_end(Terminal::Failed(remote_error("x")), true);
    assert!(again.endmarker.is_none() && again.released.is_none());
    assert!(
        m.has_callback(),
        "a released callback still refuses receives"
    );
    assert!(matches!(m.receive(), Receive::CallbackSet));
}

#[test]
fn a_callback_set_on_an_ended_channel_gets_everything_at_once_and_is_not_kept() {
    let cb: Cb = Arc::new("cb");
    let mut m = M::new(W);
    m.on_data(1, 10).unwrap();
    m.on_remote_end(Terminal::Eof, true);
    let start = m.set_callback(&cb, Some(99)).unwrap();
    assert_eq!(start.queued, [(1, 10)]);
    assert_eq!(start.endmarker, Some(99));
    assert_eq!(Arc::strong_count(&cb), 1, "the channel keeps no clone");
    assert!(m.on_remote_end(Terminal::Eof, true).endmarker.is_none());
}

/// The deadlock of 250ce04: a callback may hold its channel's last handle,
/// whose drop takes the channel's lock. The end hands the released
/// callback to the caller instead of dropping it inside.
#[test]
fn a_released_callback_is_handed_out_to_be_dropped_after_the_lock() {
    let cb: Cb = Arc::new("cb");
    let mut m = M::new(W);
    m.set_callback(&cb, None).unwrap();
    assert_eq!(Arc::strong_count(&cb), 2);
    let end = m.on_remote_end(Terminal::Eof, true);
    let released = end.released.expect("released, not dropped");
    assert!(Arc::ptr_eq(&released, &cb));
    drop(m);
    assert_eq!(
        Arc::strong_count(&cb),
        2,
        "the caller holds the only other clone"
    );
}

#[test]
fn a_reference_to_an_ended_channel_of_ours_reports_the_end() {
    let mut m = M::ended(W);
    assert!(matches!(m.receive(), Receive::End(Terminal::Eof)));
    assert_eq!(m.reserve(1), Reserve::ClosedHere);
    assert!(matches!(m.wait_close(), WaitClose::Closed));
    assert!(m.is_closed() && m.peer_gone());
}

#[test]
fn wait_close_waits_for_the_remote_end_unless_this_side_closed() {
    let mut m = M::new(W);
    assert!(matches!(m.wait_close(), WaitClose::Pending));
    m.close(true).unwrap();
    assert!(
        matches!(m.wait_close(), WaitClose::Pending),
        "a last message is not a close"
    );
    m.close(false).unwrap();
    assert!(matches!(m.wait_close(), WaitClose::Closed));
}

/// An event on one channel.
#[derive(Debug, Clone)]
enum Event {
    Data(usize),
    Receive,
    Credit(u32),
    RemoteEof { peer_gone: bool },
    RemoteError,
    Lost,
    Close { last_only: bool },
    SetCallback { marker: bool },
    Reserve(usize),
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        4 => (1usize..400).prop_map(Event::Data),
        4 => Just(Event::Receive),
        1 => (1u32..600).prop_map(Event::Credit),
        1 => any::<bool>().prop_map(|peer_gone| Event::RemoteEof { peer_gone }),
        1 => Just(Event::RemoteError),
        1 => Just(Event::Lost),
        1 => any::<bool>().prop_map(|last_only| Event::Close { last_only }),
        1 => any::<bool>().prop_map(|marker| Event::SetCallback { marker }),
        2 => (1usize..400).prop_map(Event::Reserve),
    ]
}

proptest! {
    /// Whatever the peer and the application do: memory stays bounded by
    /// the window plus one item, credit never falls below minus one item,
    /// nothing is received after the end, a callback sees nothing after
    /// its endmarker, and the endmarker goes out at most once, and exactly
    /// once if the channel ends after it was set.
    #[test]
    fn a_channels_invariants_hold_over_any_event_sequence(
        events in proptest::collection::vec(event(), 0..80)
    ) {
        let cb: Cb = Arc::new("cb");
        let mut m = M::new(W);
        let mut next = 0u32;
        let mut received_end = false;
        let mut markers = 0;
        let mut marker_set = false;
        let mut callback_after_marker = false;
        let mut ended = false;
        for e in events {
            match e {
                Event::Data(size) => {
                    next += 1;
                    match m.on_data(next, size) {
                        Ok(Delivery::Callback(..)) => callback_after_marker |= markers > 0,
                        Ok(_) => {}
                        Err(Overrun { outstanding }) => {
                            prop_assert!(outstanding >= W as usize);
                        }
                    }
                }
                Event::Receive => match m.receive() {
                    Receive::Item(_, size) => {
                        prop_assert!(!received_end, "an item after the end");
                        m.on_consumed(size);
                    }
                    Receive::End(_) => received_end = true,
                    Receive::Empty => prop_assert!(!received_end),
                    Receive::CallbackSet => {}
                },
                Event::Credit(b) => m.on_credit(b),
                Event::RemoteEof { peer_gone } => {
                    markers += usize::from(m.on_remote_end(Terminal::Eof, peer_gone).endmarker.is_some());
                    ended = true;
                }
                Event::RemoteError => {
                    markers += usize::from(m.on_remote_end(Terminal::Failed(remote_error("e")), true).endmarker.is_some());
                    ended = true;
                }
                Event::Lost => {
                    markers += usize::from(m.on_remote_end(Terminal::Failed(lost()), true).endmarker.is_some());
                    ended = true;
                }
                Event::Close { last_only } => {
                    m.close(last_only);
                }
                Event::SetCallback { marker } => {
                    if let Ok(start) = m.set_callback(&cb, marker.then_some(0)) {
                        marker_set = marker;
                        markers += usize::from(start.endmarker.is_some());
                    }
                }
                Event::Reserve(size) => {
                    let before = m.credit();
                    if m.reserve(size) == Reserve::Granted {
                        prop_assert!(before > 0, "granted without credit");
                    }
                }
            }
            prop_assert!(m.outstanding() < W as usize + 400, "memory beyond the window plus one item");
            prop_assert!(m.credit() > -400, "credit below minus one item");
            prop_assert!(m.queued().1 <= m.outstanding());
        }
        prop_assert!(markers <= 1, "the endmarker went out {markers} times");
        prop_assert!(!callback_after_marker, "an item reached the callback after its endmarker");
        if marker_set && ended {
            prop_assert_eq!(markers, 1, "the channel ended but its endmarker never went out");
        }
    }

    /// A sender and a receiver following the rules: the receiver never
    /// sees an overrun, and once it has taken every item the sender can
    /// send again (no deadlock between credit and consumption).
    #[test]
    fn a_sender_and_a_receiver_never_overrun_nor_stall(
        steps in proptest::collection::vec((any::<bool>(), 1usize..900), 0..200)
    ) {
        let mut tx = M::new(W);
        let mut rx = M::new(W);
        for (send, size) in steps {
            if send {
                if tx.reserve(size) == Reserve::Granted {
                    prop_assert!(rx.on_data(0, size).is_ok(), "a compliant sender overran the window");
                }
            } else if let Some((_, s)) = item(&mut rx) {
                for part in credit_parts(rx.on_consumed(s)) {
                    tx.on_credit(part);
                }
            }
        }
        while let Some((_, s)) = item(&mut rx) {
            for part in credit_parts(rx.on_consumed(s)) {
                tx.on_credit(part);
            }
        }
        prop_assert!(tx.credit() > 0, "the receiver took everything and the sender is still blocked");
        prop_assert_eq!(tx.reserve(1), Reserve::Granted);
    }
}
