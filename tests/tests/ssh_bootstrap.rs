//! Zero-install over ssh: a host without the worker gets it uploaded over
//! the same connection, cached by content, reused next time.

use std::os::unix::fs::MetadataExt;

use remex::{makegateway, Error};
use remex_tests::Sshd;

fn cached_workers(sshd: &Sshd) -> Vec<std::path::PathBuf> {
    let cache = sshd.home().join(".cache/remex");
    std::fs::read_dir(&cache)
        .map(|d| {
            d.flatten()
                .map(|e| e.path().join("remex-worker"))
                .filter(|p| p.is_file())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_connect_uploads_the_second_reuses_the_cache() {
    let sshd = Sshd::start_for_new_user("127.0.0.2");
    assert!(cached_workers(&sshd).is_empty());
    // The user's .bashrc prints text before the worker starts.
    let gw = match makegateway(&sshd.spec("")).await {
        Ok(gw) => gw,
        Err(e) => panic!("{e}\nsshd log:\n{}", sshd.log()),
    };
    assert!(
        gw.uploaded_worker(),
        "a fresh host gets the worker uploaded"
    );
    let ch = gw.remote_call("echo", "over a fresh host").unwrap();
    assert_eq!(ch.receive::<String>().await.unwrap(), "over a fresh host");
    assert_eq!(gw.rinfo().cwd, sshd.home().display().to_string());
    let cached = cached_workers(&sshd);
    assert_eq!(cached.len(), 1, "one content-addressed copy: {cached:?}");
    let inode = std::fs::metadata(&cached[0]).unwrap().ino();
    gw.exit().await.unwrap();

    let again = makegateway(&sshd.spec("")).await.unwrap();
    assert!(!again.uploaded_worker(), "the cached worker is reused");
    assert_eq!(
        std::fs::metadata(&cached[0]).unwrap().ino(),
        inode,
        "the cache was not rewritten"
    );
    assert_eq!(
        again
            .remote_call("echo", &5)
            .unwrap()
            .receive::<i64>()
            .await
            .unwrap(),
        5
    );
    again.exit().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_controllers_bootstrapping_at_once_both_succeed() {
    let sshd = Sshd::start_for_new_user("127.0.0.3");
    let spec = sshd.spec("");
    let (a, b) = tokio::join!(makegateway(&spec), makegateway(&spec));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert!(a.uploaded_worker() || b.uploaded_worker());
    assert_eq!(
        a.remote_call("echo", &1)
            .unwrap()
            .receive::<i64>()
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        b.remote_call("echo", &2)
            .unwrap()
            .receive::<i64>()
            .await
            .unwrap(),
        2
    );
    assert_eq!(cached_workers(&sshd).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_of_another_platform_is_a_clear_error() {
    let sshd = Sshd::start_for_new_user("127.0.0.2");
    // This host's uname says it is something else.
    let bin = sshd.home().join("fakebin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::write(
        bin.join("uname"),
        "#!/bin/sh\ncase \"$1\" in -s) echo Plan9;; *) echo mips;; esac\n",
    )
    .unwrap();
    std::process::Command::new("chmod")
        .arg("-R")
        .arg("a+rx")
        .arg(&bin)
        .status()
        .unwrap();
    let rc = sshd.home().join(".bashrc");
    let mut text = std::fs::read_to_string(&rc).unwrap();
    text.push_str(&format!("export PATH={}:$PATH\n", bin.display()));
    std::fs::write(&rc, text).unwrap();
    let err = makegateway(&sshd.spec("")).await.unwrap_err();
    assert!(matches!(&err, Error::WorkerMissing { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("plan9-mips") && text.contains("worker=PATH"),
        "{text}"
    );
}
