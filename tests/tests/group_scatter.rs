//! scatter: data placed on workers once, used by tasks through references.

mod common;

use std::time::Duration;

use remex::{gather, Errors, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_run_where_the_scattered_data_is() {
    let g = common::group(3).await;
    let data: Vec<Vec<i64>> = (0..6).map(|i| (0..i * 100).collect()).collect();
    let refs = g.scatter(data.clone(), false).await.unwrap();
    let pids: Vec<(String, u32)> = g
        .gateways()
        .iter()
        .map(|gw| (gw.id().to_string(), gw.rinfo().pid))
        .collect();
    for (i, r) in refs.iter().enumerate() {
        let holders = r.holders();
        assert_eq!(holders.len(), 1, "round-robin places each value once");
        assert_eq!(holders[0], pids[i % 3].0);
        let (pid, len): (u32, usize) = g.submit("pid_and_len", r).unwrap().await.unwrap();
        assert_eq!(pid, pids[i % 3].1, "task {i} ran away from its data");
        assert_eq!(len, data[i].len());
    }
    let back = gather(refs, Errors::Raise).await.unwrap().value;
    assert_eq!(
        back,
        data.iter()
            .map(|d| remex::to_value(d).unwrap())
            .collect::<Vec<Value>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcast_places_the_value_on_every_worker() {
    let g = common::group(3).await;
    let r = g.scatter(vec!["shared"], true).await.unwrap().remove(0);
    let mut holders = r.holders();
    holders.sort();
    assert_eq!(holders, vec!["gw0", "gw1", "gw2"]);
    let outs = gather(
        (0..9)
            .map(|_| g.submit::<String>("echo", &r).unwrap())
            .collect::<Vec<_>>(),
        Errors::Raise,
    )
    .await
    .unwrap();
    assert!(outs.value.iter().all(|v| v == "shared"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_the_only_holder_is_a_clear_error() {
    let g = common::group(2).await;
    let r = g.scatter(vec![42], false).await.unwrap().remove(0);
    let holder = g.by_id(&r.holders()[0]).unwrap();
    holder.kill().await.unwrap();
    let err = g
        .submit::<remex::Value>("echo", &r)
        .unwrap()
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("is lost: no live worker holds it"),
        "{err}"
    );
    assert!(
        matches!(&err, remex::Error::DataLost { holders, .. } if *holders == holder.id()),
        "{err:?}"
    );
    let err = gather(r, Errors::Raise).await.unwrap_err();
    assert!(err.to_string().contains("is lost"), "{err}");
    // Other work goes on.
    assert_eq!(g.submit::<i64>("square", &5).unwrap().await.unwrap(), 25);
    g.terminate(Duration::from_secs(1)).await;
}
