//! Shared helpers for the integration tests.
#![allow(dead_code, unreachable_pub)]

use remex::{makegateway, Gateway, Group};

/// A spec for the test worker, with extra `//key=value` parts.
pub fn spec(extra: &str) -> String {
    format!(
        "popen//worker={}{extra}",
        env!("CARGO_BIN_EXE_remex-test-worker")
    )
}

/// A gateway to a fresh test worker.
pub async fn gateway() -> Gateway {
    makegateway(&spec(""))
        .await
        .expect("the test worker starts")
}

/// A group of `n` test workers.
pub async fn group(n: usize) -> Group {
    Group::new([format!("{n}*{}", spec(""))])
        .await
        .expect("the test workers start")
}

/// Starts a `sleep 1000` child of the worker; returns its pid.
pub async fn spawn_sleeper(gw: &Gateway) -> u32 {
    gw.remote_call("spawn_sleeper", &())
        .unwrap()
        .receive()
        .await
        .unwrap()
}
