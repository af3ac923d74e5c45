use remex::makegateway;

fn spec() -> String {
    format!("popen//worker={}", env!("CARGO_BIN_EXE_remex-test-worker"))
}

#[tokio::test]
async fn smoke() {
    let gw = makegateway(&spec()).await.unwrap();
    let ch = gw.remote_exec("channel.send(42)").unwrap();
    assert_eq!(ch.receive::<i64>().await.unwrap(), 42);
    let ch = gw.remote_call("square", &7).unwrap();
    assert_eq!(ch.receive::<i64>().await.unwrap(), 49);
    println!("{:?}", gw.rinfo());
    gw.exit().await.unwrap();
}
