//! The connection machine's rules, each alone, then any interleaving of
//! peer messages and local calls against a model of what a driver does.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU32, Ordering};

use proptest::prelude::*;

use super::*;
use crate::value::ChannelRef;

/// A channel as the tests see it: its id, how it was made, and how many
/// times the driver ended it.
#[derive(Debug)]
struct Stand {
    id: u32,
    fresh: Fresh,
    ends: AtomicU32,
}

type Machine = ConnMachine<Stand, &'static str, u32>;

/// Makes channels, and keeps every one it made.
#[derive(Default)]
struct Maker {
    made: Vec<Arc<Stand>>,
}

impl Maker {
    fn make(&mut self) -> impl FnMut(u32, Fresh) -> Arc<Stand> + '_ {
        |id, fresh| {
            let s = Arc::new(Stand {
                id,
                fresh,
                ends: AtomicU32::new(0),
            });
            self.made.push(s.clone());
            s
        }
    }
}

fn end(s: &Stand) {
    s.ends.fetch_add(1, Ordering::SeqCst);
}

fn call(channel: u32, args: Value) -> Message {
    Message::Exec {
        channel,
        request: ExecRequest::Call {
            name: "t".into(),
            args,
        },
    }
}

#[test]
fn a_message_for_a_removed_channel_reaches_nothing() {
    let mut m = Machine::new(1);
    let mut maker = Maker::default();
    let id = m.open(&mut maker.make()).chan.id;
    m.remove(id);
    for msg in [
        Message::Data {
            channel: id,
            value: 1.into(),
            size: 1,
        },
        Message::Close { channel: id },
        Message::CloseError {
            channel: id,
            error: "x".into(),
        },
        Message::LastMessage { channel: id },
        Message::Credit {
            channel: id,
            bytes: 9,
        },
    ] {
        assert!(
            matches!(m.route(msg, &mut maker.make()), Route::Dropped { channel } if channel == id)
        );
    }
}

#[test]
fn references_inside_an_item_or_a_call_are_registered_before_it_is_routed() {
    let mut m = Machine::new(1);
    let mut maker = Maker::default();
    let mine = m.open(&mut maker.make()).chan;
    let value = Value::List(vec![Value::Channel(ChannelRef(4)), 2.into()]);
    let routed = m.route(
        Message::Data {
            channel: mine.id,
            value,
            size: 5,
        },
        &mut maker.make(),
    );
    assert!(matches!(routed, Route::Deliver { chan, size: 5, .. } if Arc::ptr_eq(&chan, &mine)));
    assert!(m.get(4).is_some(), "the peer's channel in the item is live");
    let routed = m.route(call(6, Value::Channel(ChannelRef(8))), &mut maker.make());
    let Route::Exec { opened, .. } = routed else {
        panic!("an Exec runs")
    };
    assert_eq!((opened.chan.id, opened.lost), (6, None));
    assert!(m.get(6).is_some() && m.get(8).is_some());
}

#[test]
fn a_reference_to_an_ended_channel_of_ours_names_an_ended_one() {
    let mut m = Machine::new(1);
    let mut maker = Maker::default();
    let id = m.open(&mut maker.make()).chan.id;
    m.remove(id);
    maker.made.clear(); // nobody holds it any more
    let opened = m.for_ref(id, &mut maker.make());
    assert_eq!(opened.chan.fresh, Fresh::Ended);
    assert!(m.get(id).is_none(), "not registered again");
}

#[test]
fn the_first_loss_takes_every_channel_and_waiter_once() {
    let mut m = Machine::new(2);
    let mut maker = Maker::default();
    let a = m.open(&mut maker.make()).chan;
    let b = m.open(&mut maker.make()).chan;
    m.ask_status(7, 70).unwrap();
    let loss = m.lose("gone").expect("the first loss");
    let mut ids: Vec<u32> = loss.chans.iter().map(|c| c.id).collect();
    ids.sort();
    assert_eq!(ids, vec![a.id, b.id]);
    assert_eq!(loss.waiters, vec![70]);
    assert!(m.lose("again").is_none());
    assert_eq!(m.lost(), Some(&"gone"));
    assert_eq!(m.ask_status(8, 80), Err("gone"));
    let late = m.open(&mut maker.make());
    assert_eq!(late.lost, Some("gone"));
    assert!(m.get(late.chan.id).is_none(), "never registered");
    assert!(m.is_empty());
}

#[test]
fn a_status_reply_answers_only_what_was_asked_once() {
    let mut m = Machine::new(1);
    let mut maker = Maker::default();
    let status = RemoteStatus::default();
    m.ask_status(1, 10).unwrap();
    m.ask_status(2, 20).unwrap();
    assert_eq!(m.forget_status(2), Some(20));
    let reply = |id| Message::StatusReply { id, status };
    assert!(matches!(
        m.route(reply(1), &mut maker.make()),
        Route::StatusAnswered { waiter: 10, .. }
    ));
    for id in [1, 2, 3] {
        assert!(matches!(
            m.route(reply(id), &mut maker.make()),
            Route::Dropped { channel: 0 }
        ));
    }
    assert_eq!(m.status_pending(), 0);
}

/// What happens next: a peer message or a local call. `pick` chooses
/// among the channels known so far (and ids never used).
#[derive(Debug, Clone)]
enum Op {
    Open,
    PeerExec { with_ref: bool },
    PeerData { pick: usize, with_ref: bool },
    PeerClose(usize),
    PeerCloseError(usize),
    PeerLastMessage(usize),
    PeerCredit(usize),
    LocalEnd(usize),
    AskStatus,
    Forget(usize),
    Reply(usize),
    PeerStatusRequest,
    Lose,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => Just(Op::Open),
        2 => any::<bool>().prop_map(|with_ref| Op::PeerExec { with_ref }),
        4 => (any::<usize>(), any::<bool>()).prop_map(|(pick, with_ref)| Op::PeerData { pick, with_ref }),
        2 => any::<usize>().prop_map(Op::PeerClose),
        1 => any::<usize>().prop_map(Op::PeerCloseError),
        1 => any::<usize>().prop_map(Op::PeerLastMessage),
        1 => any::<usize>().prop_map(Op::PeerCredit),
        2 => any::<usize>().prop_map(Op::LocalEnd),
        1 => Just(Op::AskStatus),
        1 => any::<usize>().prop_map(Op::Forget),
        2 => any::<usize>().prop_map(Op::Reply),
        1 => Just(Op::PeerStatusRequest),
        1 => Just(Op::Lose),
    ]
}

/// The driver's side of the model: what it believes is live, the status
/// requests it asked, and the ids it has seen.
struct Model {
    m: Machine,
    maker: Maker,
    /// Live channels as the driver sees them (registered, not removed).
    live: BTreeSet<u32>,
    /// Every id used, live or not, and a few never used.
    ids: Vec<u32>,
    next_peer: u32,
    asked: HashMap<u32, u32>,
    next_status: u32,
    lost: bool,
}

impl Model {
    fn new() -> Model {
        Model {
            m: Machine::new(1),
            maker: Maker::default(),
            live: BTreeSet::new(),
            ids: vec![999, 1000],
            next_peer: 2,
            asked: HashMap::new(),
            next_status: 1,
            lost: false,
        }
    }

    fn pick(&self, i: usize) -> u32 {
        self.ids[i % self.ids.len()]
    }

    fn peer_id(&mut self) -> u32 {
        let id = self.next_peer;
        self.next_peer += 2;
        self.ids.push(id);
        id
    }

    /// A channel the machine made: registered (and live for the driver)
    /// unless lost, in which case the driver ends it at once.
    fn opened(&mut self, o: Opened<Stand, &'static str>) {
        match o.lost {
            None => {
                if o.chan.fresh == Fresh::Live {
                    self.live.insert(o.chan.id);
                }
            }
            Some(why) => {
                assert!(self.lost, "lost only after the loss: {why}");
                end(&o.chan);
            }
        }
    }

    /// The machine's answer for a message on channel `id`: to a live
    /// channel (the same one) if and only if the driver holds it live.
    fn check_live(&self, id: u32, chan: Option<&Arc<Stand>>) {
        match chan {
            Some(c) => {
                assert_eq!(c.id, id);
                assert!(self.live.contains(&id), "routed to {id}, not live");
                assert_eq!(c.ends.load(Ordering::SeqCst), 0, "{id} ended already");
            }
            None => assert!(!self.live.contains(&id), "live {id} dropped"),
        }
    }

    fn apply(&mut self, op: Op) {
        let live_before = self.live.clone();
        match op {
            Op::Open => {
                let o = self.m.open(&mut self.maker.make());
                assert_eq!(o.chan.id % 2, 1, "the controller's parity");
                assert!(!self.ids.contains(&o.chan.id), "an id used twice");
                self.ids.push(o.chan.id);
                self.opened(o);
            }
            Op::PeerExec { with_ref } => {
                let id = self.peer_id();
                let args = if with_ref {
                    Value::Channel(ChannelRef(self.peer_id()))
                } else {
                    Value::Unit
                };
                let refd = with_ref.then(|| self.next_peer - 2);
                let routed = self.m.route(call(id, args), &mut self.maker.make());
                match routed {
                    Route::Exec { opened, .. } => {
                        assert!(!self.lost, "a call run on a lost connection");
                        assert_eq!(opened.chan.id, id);
                        self.opened(opened);
                    }
                    Route::Dropped { channel } => {
                        assert!(self.lost, "a call dropped");
                        assert_eq!(channel, id);
                    }
                    other => panic!("an Exec routed as {other:?}"),
                }
                if let Some(r) = refd {
                    assert_eq!(self.m.get(r).is_some(), !self.lost);
                    if !self.lost {
                        self.live.insert(r);
                    }
                }
            }
            Op::PeerData { pick, with_ref } => {
                let id = self.pick(pick);
                let refd = with_ref.then(|| self.peer_id());
                let value = refd.map_or(Value::Int(1), |r| Value::Channel(ChannelRef(r)));
                let routed = self.m.route(
                    Message::Data {
                        channel: id,
                        value,
                        size: 3,
                    },
                    &mut self.maker.make(),
                );
                if let Some(r) = refd {
                    assert_eq!(self.m.get(r).is_some(), !self.lost);
                    if !self.lost {
                        self.live.insert(r);
                    }
                }
                match routed {
                    Route::Deliver { chan, size, .. } => {
                        assert_eq!(size, 3);
                        self.check_live(id, Some(&chan));
                    }
                    Route::Dropped { channel } => {
                        assert_eq!(channel, id);
                        self.check_live(id, None);
                    }
                    other => panic!("data routed as {other:?}"),
                }
            }
            Op::PeerClose(p) | Op::PeerCloseError(p) | Op::PeerLastMessage(p) => {
                let id = self.pick(p);
                let (msg, want) = match op {
                    Op::PeerClose(_) => (Message::Close { channel: id }, End::Closed),
                    Op::PeerCloseError(_) => (
                        Message::CloseError {
                            channel: id,
                            error: "boom".into(),
                        },
                        End::Failed("boom".into()),
                    ),
                    _ => (Message::LastMessage { channel: id }, End::LastMessage),
                };
                let routed = self.m.route(msg, &mut self.maker.make());
                match routed {
                    Route::Ended { chan, how } => {
                        self.check_live(id, Some(&chan));
                        assert_eq!(how, want);
                        // Ended both ways: the driver ends and removes it
                        // (a last message leaves it live: it still sends).
                        if how != End::LastMessage {
                            end(&chan);
                            self.m.remove(id);
                            self.live.remove(&id);
                        }
                    }
                    Route::Dropped { channel } => {
                        assert_eq!(channel, id);
                        self.check_live(id, None);
                    }
                    other => panic!("an end routed as {other:?}"),
                }
            }
            Op::PeerCredit(p) => {
                let id = self.pick(p);
                let routed = self.m.route(
                    Message::Credit {
                        channel: id,
                        bytes: 5,
                    },
                    &mut self.maker.make(),
                );
                match routed {
                    Route::Credit { chan, bytes } => {
                        assert_eq!(bytes, 5);
                        self.check_live(id, Some(&chan));
                    }
                    Route::Dropped { .. } => self.check_live(id, None),
                    other => panic!("credit routed as {other:?}"),
                }
            }
            Op::LocalEnd(p) => {
                let id = self.pick(p);
                if let Some(chan) = self.m.get(id) {
                    self.check_live(id, Some(&chan));
                    end(&chan);
                    self.m.remove(id);
                    self.live.remove(&id);
                }
            }
            Op::AskStatus => {
                let id = self.next_status;
                self.next_status += 1;
                match self.m.ask_status(id, id * 10) {
                    Ok(()) => {
                        assert!(!self.lost);
                        self.asked.insert(id, id * 10);
                    }
                    Err(_) => assert!(self.lost),
                }
            }
            Op::Forget(p) => {
                let id = (p % (self.next_status as usize + 1)) as u32;
                assert_eq!(self.m.forget_status(id), self.asked.remove(&id));
            }
            Op::Reply(p) => {
                let id = (p % (self.next_status as usize + 1)) as u32;
                let reply = Message::StatusReply {
                    id,
                    status: RemoteStatus::default(),
                };
                let routed = self.m.route(reply, &mut self.maker.make());
                match routed {
                    Route::StatusAnswered { waiter, .. } => {
                        assert_eq!(
                            Some(waiter),
                            self.asked.remove(&id),
                            "answered twice or unasked"
                        )
                    }
                    Route::Dropped { channel: 0 } => assert!(!self.asked.contains_key(&id)),
                    other => panic!("a reply routed as {other:?}"),
                }
            }
            Op::PeerStatusRequest => {
                let routed = self
                    .m
                    .route(Message::StatusRequest { id: 3 }, &mut self.maker.make());
                match routed {
                    Route::StatusRequest { id: 3, numchannels } => {
                        assert_eq!(numchannels as usize, self.live.len())
                    }
                    Route::Dropped { channel: 0 } => assert!(self.lost),
                    other => panic!("a status request routed as {other:?}"),
                }
            }
            Op::Lose => match self.m.lose("lost") {
                Some(loss) => {
                    assert!(!self.lost, "lost twice");
                    self.lost = true;
                    let taken: BTreeSet<u32> = loss.chans.iter().map(|c| c.id).collect();
                    assert_eq!(taken.len(), loss.chans.len(), "a channel taken twice");
                    assert_eq!(taken, self.live, "every live channel, and only those");
                    for c in &loss.chans {
                        end(c);
                    }
                    let mut waiters = loss.waiters;
                    waiters.sort();
                    let mut asked: Vec<u32> = self.asked.drain().map(|(_, w)| w).collect();
                    asked.sort();
                    assert_eq!(waiters, asked);
                    self.live.clear();
                }
                None => assert!(self.lost),
            },
        }
        assert_eq!(self.m.len(), self.live.len(), "after {live_before:?}");
        assert_eq!(self.m.status_pending(), self.asked.len());
    }

    /// Every channel ended at most once; after a loss, every live-made
    /// channel exactly once.
    fn check_ends(&self) {
        for c in &self.maker.made {
            let ends = c.ends.load(Ordering::SeqCst);
            assert!(ends <= 1, "channel {} ended {ends} times", c.id);
            if self.lost && c.fresh == Fresh::Live {
                assert_eq!(ends, 1, "channel {} never ended after the loss", c.id);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Any interleaving of peer messages and local calls, then the loss:
    /// nothing is routed to a channel that is not live, every channel
    /// ends exactly once, a status reply answers only what was asked.
    #[test]
    fn every_channel_ends_exactly_once_whatever_the_order(
        ops in proptest::collection::vec(op(), 0..120),
        lose_at_end in any::<bool>(),
    ) {
        let mut model = Model::new();
        for op in ops {
            model.apply(op);
            model.check_ends();
        }
        if lose_at_end {
            model.apply(Op::Lose);
            model.apply(Op::Open);
            model.apply(Op::PeerExec { with_ref: true });
            model.check_ends();
        }
    }
}
