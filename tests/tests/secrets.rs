//! Shared secrets (`socket=`): weak ones and ones others may read are
//! refused on both ends, naming where they came from, and a controller's
//! `secret_env=` variable reaches no process it starts.

use std::process::Command;

use remex::makegateway;
use remex_tests::Listener;

const WORKER: &str = env!("CARGO_BIN_EXE_remex-test-worker");

fn write(dir: &std::path::Path, name: &str, text: &str, mode: u32) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(mode)).unwrap();
    path
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("remex-secrets-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The secrets every end must refuse, with what the error must say.
fn weak(dir: &std::path::Path) -> Vec<(std::path::PathBuf, &'static str)> {
    vec![
        (write(dir, "empty", "", 0o600), "empty"),
        (write(dir, "newline", "\n", 0o600), "empty"),
        (
            write(dir, "short-hex", "deadbeefdeadbeef\n", 0o600),
            "hex digits",
        ),
        (write(dir, "short", "hunter2\n", 0o600), "characters"),
        (write(dir, "repeated", &"a".repeat(40), 0o600), "repeated"),
        (
            write(
                dir,
                "readable",
                "a perfectly long and random secret text\n",
                0o644,
            ),
            "chmod 600",
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_controller_refuses_a_weak_or_readable_secret_file_and_names_it() {
    let l = Listener::start(WORKER, "weak-client");
    let dir = temp_dir("client");
    for (path, says) in weak(&dir) {
        let spec = format!("socket={}//secret_file={}", l.addr, path.display());
        let e = makegateway(&spec).await.unwrap_err().to_string();
        assert!(
            e.contains(&path.display().to_string()) && e.contains(says),
            "{}: {e}",
            path.display()
        );
    }
    // The listener never saw a handshake from any of them.
    assert!(
        l.lines().iter().all(|l| !l.contains("refused")),
        "{:?}",
        l.lines()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_listener_refuses_a_weak_or_readable_secret_and_names_it() {
    let dir = temp_dir("listener");
    for (path, says) in weak(&dir) {
        let out = remex_tests::output_of(
            Command::new(WORKER)
                .args(["--listen", "127.0.0.1:0", "--secret-file"])
                .arg(&path),
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{}: {err}", path.display());
        assert!(
            err.contains(&path.display().to_string()) && err.contains(says),
            "{}: {err}",
            path.display()
        );
        assert!(
            out.stdout.is_empty(),
            "it listened: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    // An empty variable, too.
    let out = remex_tests::output_of(
        Command::new(WORKER)
            .args(["--listen", "127.0.0.1:0"])
            .env("REMEX_SECRET", ""),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("REMEX_SECRET") && err.contains("empty"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_secret_env_variable_reaches_no_worker_nor_wrapper() {
    // A controller process with the secret in its environment, as a user
    // runs one; its group has a socket= gateway naming the variable, a
    // popen worker and a cmd= wrapper.
    let l = Listener::start(WORKER, "scrub");
    let dir = temp_dir("scrub");
    let seen = dir.join("wrapper-saw");
    let var = "REMEX_TEST_SCRUBBED_SECRET";
    let out = remex_tests::output_of(
        Command::new(env!("CARGO_BIN_EXE_remex-test-controller"))
            .args([
                "env-of",
                var,
                &format!("socket={}//secret_env={var}//id=sock", l.addr),
                &format!("popen//worker={WORKER}//id=local"),
                &format!(
                    "cmd=sh -c 'printf %s \"${{{var}-unset}}\" > {}; exec {WORKER}'//id=wrapped",
                    seen.display()
                ),
            ])
            .env(var, remex_tests::LISTENER_SECRET),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("DONE"),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for id in ["local", "wrapped"] {
        assert!(
            stdout.contains(&format!("ENV {id} unset")),
            "{id} saw the secret: {stdout}"
        );
    }
    assert_eq!(
        std::fs::read_to_string(&seen).unwrap(),
        "unset",
        "the wrapper saw it"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
