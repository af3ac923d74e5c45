//! Flow control: a fast sender and a receiver that does not read keep both
//! processes' memory bounded, and everything arrives intact later.

mod common;

use std::time::{Duration, Instant};

use remex::Value;
use remex_tests::{bulk_chunk, rss_bytes};

const GIB: u64 = 1 << 30;
const CHUNK: usize = 64 * 1024;
/// The bound stated in docs/architecture.md: window plus one message.
const QUEUE_BOUND: usize = remex::core::conn::DEFAULT_WINDOW as usize + CHUNK;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gib_to_a_receiver_that_does_not_read_keeps_memory_bounded_and_arrives_intact() {
    let gw = common::gateway().await;
    let worker_pid = gw.rinfo().pid;
    let me = std::process::id();
    let controller_before = rss_bytes(me).unwrap();
    let ch = gw.remote_call("bulk", &(GIB, CHUNK as u64)).unwrap();

    // Wait (bounded) until the window is used up: the sender must now stall.
    let deadline = Instant::now() + Duration::from_secs(20);
    while ch.queued().1 + CHUNK <= remex::core::conn::DEFAULT_WINDOW as usize {
        assert!(
            Instant::now() < deadline,
            "the window never filled: {:?}",
            ch.queued()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Observe for a while: the queue must not grow past the bound, and
    // neither process may grow by more than a few windows.
    let mut worker_max = 0;
    let mut controller_max = 0;
    for _ in 0..20 {
        let (_, bytes) = ch.queued();
        assert!(
            bytes <= QUEUE_BOUND,
            "queued {bytes} bytes, bound {QUEUE_BOUND}"
        );
        worker_max = worker_max.max(rss_bytes(worker_pid).unwrap());
        controller_max = controller_max.max(rss_bytes(me).unwrap());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        worker_max < 64 << 20,
        "worker RSS {} MiB while stalled",
        worker_max >> 20
    );
    let growth = controller_max.saturating_sub(controller_before);
    assert!(
        growth < 64 << 20,
        "controller grew {} MiB while stalled",
        growth >> 20
    );

    // Now read everything and check each chunk.
    let expected_chunks = GIB / CHUNK as u64;
    let template = bulk_chunk(0, CHUNK);
    let mut received = 0u64;
    for index in 0..expected_chunks {
        let v = ch.receive::<remex::Value>().await.unwrap();
        let Value::Bytes(b) = v else {
            panic!("chunk {index} is {}", v.describe())
        };
        assert_eq!(b.len(), CHUNK);
        assert_eq!(
            u64::from_le_bytes(b[..8].try_into().unwrap()),
            index,
            "chunk out of order"
        );
        assert!(b[8..] == template[8..], "chunk {index} corrupted");
        received += b.len() as u64;
    }
    assert_eq!(received, GIB);
    assert_eq!(ch.receive::<u64>().await.unwrap(), expected_chunks);
    ch.waitclose(Some(Duration::from_secs(10))).await.unwrap();
    eprintln!(
        "stalled: worker RSS {} MiB, controller growth {} MiB, queue bound {} KiB",
        worker_max >> 20,
        growth >> 20,
        QUEUE_BOUND >> 10
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_messages_are_chunked_not_rejected() {
    let gw = common::gateway().await;
    // 5 MiB in one item: five frames of the 1 MiB maximum on the wire.
    let big: Vec<u8> = (0..5 << 20).map(remex_tests::pattern_byte).collect();
    let ch = gw
        .remote_call("echo", &Value::Bytes(big.clone().into()))
        .unwrap();
    assert_eq!(
        ch.receive::<remex::Value>().await.unwrap(),
        Value::Bytes(big.into())
    );
    let text = "x".repeat(3 << 20);
    let ch = gw.remote_call("echo", &text).unwrap();
    assert_eq!(ch.receive::<String>().await.unwrap(), text);
}
