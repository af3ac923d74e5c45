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

/// Runs this test binary's `test` again as a child with `env`, and
/// returns whether it passed, with its output.
fn run_child(test: &str, env: &[(&str, &str)]) -> (bool, String) {
    let out = remex_tests::output_of(
        std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", test, "--nocapture", "--test-threads=1"])
            .envs(env.iter().copied()),
    );
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Leftover partial uploads in the host's cache.
fn partial_uploads(sshd: &Sshd) -> Vec<std::path::PathBuf> {
    let cache = sshd.home().join(".cache/remex");
    let mut found = Vec::new();
    for dir in std::fs::read_dir(&cache).into_iter().flatten().flatten() {
        for f in std::fs::read_dir(dir.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            if f.file_name().to_string_lossy().starts_with(".upload") {
                found.push(f.path());
            }
        }
    }
    found
}

/// The child of the damaged-upload tests: starts `spec` (through a local
/// relay with `REMEX_TEST_UPLOAD_VIA`) and says how it went.
async fn child(spec: &str) {
    let started = if std::env::var_os("REMEX_TEST_UPLOAD_VIA").is_some() {
        let group = remex::Group::new([
            "popen//id=relay".to_string(),
            format!("{spec}//via=relay//id=far"),
        ])
        .await;
        match group {
            Ok(group) => {
                let gw = group.by_id("far").unwrap();
                assert!(gw.uploaded_worker());
                let ch = gw.remote_call("echo", &7).unwrap();
                assert_eq!(ch.receive::<i64>().await.unwrap(), 7);
                group.terminate(std::time::Duration::from_secs(10)).await;
                Ok(())
            }
            Err(e) => Err(e),
        }
    } else {
        match makegateway(spec).await {
            Ok(gw) => {
                assert!(gw.uploaded_worker());
                let ch = gw.remote_call("echo", &7).unwrap();
                assert_eq!(ch.receive::<i64>().await.unwrap(), 7);
                gw.exit().await.unwrap();
                Ok(())
            }
            Err(e) => Err(e),
        }
    };
    match started {
        Ok(()) => println!("CHILD-STARTED"),
        Err(e) => println!("CHILD-FAILED {e}"),
    }
}

/// The damaged-upload test `test`, against a new user's sshd on `addr`,
/// directly or through a local relay (`via`): run again as a child whose
/// uploads the test hook damages (one byte flipped in the middle), every
/// time and then only the first time.
async fn a_damaged_upload_is_refused_then_sent_again(test: &str, addr: &str, via: bool) {
    // The child: this test again, with the hook on.
    if let Ok(spec) = std::env::var("REMEX_TEST_UPLOAD_SPEC") {
        child(&spec).await;
        return;
    }
    let sshd = Sshd::start_for_new_user(addr);
    let spec = sshd.spec("");
    let env = |corrupt: &'static str| {
        let mut env = vec![
            ("REMEX_TEST_UPLOAD_SPEC", spec.as_str()),
            ("REMEX_TEST_CORRUPT_UPLOAD", corrupt),
        ];
        if via {
            env.push(("REMEX_TEST_UPLOAD_VIA", "1"));
        }
        env
    };
    // Every upload damaged: the host checks size and SHA-256, refuses it,
    // keeps nothing, and the start fails naming it.
    let (ok, out) = run_child(test, &env("always"));
    assert!(ok, "{out}");
    assert!(
        out.contains("CHILD-FAILED") && out.contains("REMEX-UPLOAD"),
        "the host refuses a damaged upload: {out}"
    );
    assert!(cached_workers(&sshd).is_empty(), "nothing damaged is kept");
    assert!(
        partial_uploads(&sshd).is_empty(),
        "{:?}",
        partial_uploads(&sshd)
    );
    // The first upload damaged: the start sends it again and succeeds.
    let (ok, out) = run_child(test, &env("once"));
    assert!(ok && out.contains("CHILD-STARTED"), "{out}");
    assert_eq!(cached_workers(&sshd).len(), 1);
    assert!(partial_uploads(&sshd).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_upload_through_a_relay_is_sent_again() {
    a_damaged_upload_is_refused_then_sent_again(
        "a_damaged_upload_through_a_relay_is_sent_again",
        "127.0.0.5",
        true,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_upload_is_refused_by_the_host_and_sent_again() {
    a_damaged_upload_is_refused_then_sent_again(
        "a_damaged_upload_is_refused_by_the_host_and_sent_again",
        "127.0.0.4",
        false,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_without_zstd_get_the_worker_as_gzip_or_as_it_is() {
    // REMEX_UPLOAD_FORM in the host's environment stands for a host whose
    // zstd (and gzip) are missing.
    for form in ["gzip", "raw"] {
        let sshd = Sshd::start_for_new_user("127.0.0.6");
        let rc = sshd.home().join(".bashrc");
        let mut text = std::fs::read_to_string(&rc).unwrap();
        text.push_str(&format!("export REMEX_UPLOAD_FORM={form}\n"));
        std::fs::write(&rc, text).unwrap();
        let gw = makegateway(&sshd.spec("")).await.unwrap();
        assert!(gw.uploaded_worker(), "{form}");
        let ch = gw.remote_call("echo", form).unwrap();
        assert_eq!(ch.receive::<String>().await.unwrap(), form);
        gw.exit().await.unwrap();
        assert_eq!(cached_workers(&sshd).len(), 1, "{form}");
        assert!(partial_uploads(&sshd).is_empty(), "{form}");
    }
}
