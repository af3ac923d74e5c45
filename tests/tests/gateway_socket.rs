//! `socket=`: workers listening on TCP, admitting only clients that prove
//! the shared secret.

use std::io::{Read, Write};
use std::time::Duration;

use remex::{makegateway, Error};
use remex_tests::Listener;

const WORKER: &str = env!("CARGO_BIN_EXE_remex-test-worker");

/// A listening test worker, its secret in a file of its own.
fn listener(name: &str) -> Listener {
    Listener::start(WORKER, name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_right_secret_opens_sessions_and_never_appears_on_a_command_line() {
    let l = listener("ok");
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", l.child.id())).unwrap();
    assert!(
        !String::from_utf8_lossy(&cmdline).contains("battery"),
        "the secret is on the command line"
    );
    let a = makegateway(&l.spec("secret")).await.unwrap();
    let b = makegateway(&l.spec("secret")).await.unwrap();
    assert_eq!(a.rinfo().pid, l.child.id());
    let ch = a
        .remote_exec("channel.send(channel.receive() * 2)")
        .unwrap();
    ch.send(&21).await.unwrap();
    assert_eq!(ch.receive::<i64>().await.unwrap(), 42);
    assert_eq!(
        b.remote_call("square", &9)
            .unwrap()
            .receive::<i64>()
            .await
            .unwrap(),
        81
    );
    a.exit().await.unwrap();
    // Ending one session leaves the listener and the other session serving.
    assert_eq!(
        b.remote_call("square", &3)
            .unwrap()
            .receive::<i64>()
            .await
            .unwrap(),
        9
    );
    assert!(makegateway(&l.spec("secret")).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_secret_is_refused_and_logged() {
    let l = listener("wrong");
    let err = makegateway(&l.spec("wrong")).await.unwrap_err();
    assert!(matches!(&err, Error::SecretRefused { .. }), "{err}");
    assert!(l.logged("refused"), "the listener logs the refusal");
    assert!(
        makegateway(&l.spec("secret")).await.is_ok(),
        "the listener still serves"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_idle_clients_are_refused_without_blocking_others() {
    let l = listener("garbage");
    let addr = l.addr.clone();
    // An idle client that never answers, and one that speaks garbage.
    let _idle = std::net::TcpStream::connect(&addr).unwrap();
    let mut garbage = std::net::TcpStream::connect(&addr).unwrap();
    garbage.write_all(&[0x5a; 64]).unwrap();
    let mut reply = Vec::new();
    garbage
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let _ = garbage.read_to_end(&mut reply);
    assert!(
        String::from_utf8_lossy(&reply).contains("REMEX-AUTH-REFUSED"),
        "{reply:?}"
    );
    assert!(l.logged("refused"));
    // Meanwhile a real client is served at once.
    let gw = tokio::time::timeout(Duration::from_secs(3), makegateway(&l.spec("secret")))
        .await
        .expect("the listener answers while an idle client waits")
        .unwrap();
    assert_eq!(
        gw.remote_call("echo", "hi")
            .unwrap()
            .receive::<String>()
            .await
            .unwrap(),
        "hi"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_spec_without_a_secret_is_a_clear_error() {
    let err = makegateway("socket=127.0.0.1:9").await.unwrap_err();
    assert!(
        err.to_string()
            .contains("needs secret_env=NAME or secret_file=PATH"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_secret_can_come_from_the_environment_and_setup_keys_apply() {
    let l = listener("env");
    // A variable name no other test uses: setting it cannot race.
    std::env::set_var(
        "REMEX_TEST_SOCKET_SECRET_7f3a",
        "correct horse battery staple",
    );
    let spec = format!(
        "socket={}//secret_env=REMEX_TEST_SOCKET_SECRET_7f3a//chdir=/tmp//env:OVER=socket",
        l.addr
    );
    let gw = makegateway(&spec).await.unwrap();
    assert_eq!(gw.rinfo().cwd, "/tmp");
    let ch = gw.remote_call("shell", "echo $OVER").unwrap();
    assert_eq!(ch.receive::<String>().await.unwrap(), "socket");
}

/// Sessions on one listener each get their own `env:` and `chdir=`, in
/// what they run (shell commands, scripts' env() and cwd(), relative
/// paths), and the listener's own process is left as it was: one
/// client's setup never reaches another's worker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_on_one_listener_keep_their_environment_and_directory_apart() {
    let mut l = listener("apart");
    let base = std::env::temp_dir().join(format!("remex-apart-{}", std::process::id()));
    let (a_dir, b_dir) = (base.join("a"), base.join("b"));
    let a = makegateway(&format!(
        "{}//env:WHO=alice//chdir={}",
        l.spec("secret"),
        a_dir.display()
    ))
    .await
    .unwrap();
    let b = makegateway(&format!(
        "{}//env:WHO=bob//chdir={}",
        l.spec("secret"),
        b_dir.display()
    ))
    .await
    .unwrap();
    assert_eq!(a.rinfo().cwd, a_dir.display().to_string());
    assert_eq!(b.rinfo().cwd, b_dir.display().to_string());
    for (gw, who, dir) in [(&a, "alice", &a_dir), (&b, "bob", &b_dir)] {
        let said: String = gw
            .remote_call("shell", "echo $WHO $(pwd)")
            .unwrap()
            .receive()
            .await
            .unwrap();
        assert_eq!(said, format!("{who} {}", dir.display()));
        let seen: Vec<String> = gw
            .remote_exec(
                "write_file(\"mine\", env(\"WHO\")); channel.send([env(\"WHO\"), cwd(), read_file(\"mine\")])",
            )
            .unwrap()
            .receive()
            .await
            .unwrap();
        assert_eq!(
            seen,
            [who.to_string(), dir.display().to_string(), who.to_string()]
        );
        assert_eq!(std::fs::read_to_string(dir.join("mine")).unwrap(), who);
    }
    // The listener's process: neither variable, nor either directory.
    let pid = l.child.id();
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    assert!(
        !String::from_utf8_lossy(&environ).contains("WHO="),
        "a session's env: reached the listener's process"
    );
    let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).unwrap();
    assert!(
        !cwd.starts_with(&base),
        "a session's chdir= moved the listener: {cwd:?}"
    );
    // nice= goes to the session's commands, not to the listener.
    let niceness = |pid: u32| -> i64 { remex_tests::proc_stat(pid)[16].parse().unwrap() };
    let before = niceness(pid);
    let niced = makegateway(&format!("{}//nice=5", l.spec("secret")))
        .await
        .unwrap();
    let said: String = niced
        .remote_call("shell", "nice")
        .unwrap()
        .receive()
        .await
        .unwrap();
    assert_eq!(said, (before + 5).to_string(), "the session's command");
    assert_eq!(niceness(pid), before, "the listener itself was reniced");
    assert!(l.alive());
    let _ = std::fs::remove_dir_all(&base);
}
