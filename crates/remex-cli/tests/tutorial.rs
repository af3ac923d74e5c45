//! GNU parallel's tutorial walked line by line: each scene of
//! `parallel_tutorial.txt` runs in bash once with GNU parallel as
//! `parallel` and once with `remex run`, and their outputs are compared.
//! Prints the score; fails when it falls below what remex reached.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How a scene is compared.
#[derive(Debug, Clone, PartialEq)]
enum How {
    /// stdout as sorted lines, and the exit status.
    Sorted,
    /// stdout as it is, and the exit status.
    Exact,
    /// As `Exact`, decimal numbers (times) masked.
    Timed,
    /// Inside the model, needs ssh hosts.
    Remote,
    /// Outside remex's model, and why.
    Out(String),
}

#[derive(Debug)]
struct Scene {
    line: usize,
    how: How,
    /// What it prints depends on which of two running jobs ends first
    /// (in GNU parallel too): matched when one of up to 30 remex runs
    /// prints what one of up to 30 GNU parallel runs printed.
    racy: bool,
    text: String,
}

fn scenes() -> Vec<Scene> {
    let text = include_str!("parallel_tutorial.txt");
    let mut scenes: Vec<Scene> = Vec::new();
    for l in text.lines() {
        if let Some(head) = l.strip_prefix('@') {
            let (line, how) = head.split_once(' ').expect("@LINE HOW");
            let (how, racy) = match how.strip_suffix(" racy") {
                Some(h) => (h, true),
                None => (how, false),
            };
            let how = match how {
                "sorted" => How::Sorted,
                "exact" => How::Exact,
                "timed" => How::Timed,
                "remote" => How::Remote,
                other => How::Out(
                    other
                        .strip_prefix("out: ")
                        .unwrap_or_else(|| panic!("@{line}: unknown HOW {other:?}"))
                        .to_string(),
                ),
            };
            scenes.push(Scene {
                line: line.parse().expect("a line number"),
                how,
                racy,
                text: String::new(),
            });
        } else if let Some(s) = scenes.last_mut() {
            s.text.push_str(l);
            s.text.push('\n');
        }
    }
    scenes
}

/// The tutorial's files (its "Prerequisites"), those the scenes use
/// (`num1000000`, 6.9 MB, only for a scene that names it).
fn make_files(dir: &Path, scene: &str) {
    let lines = |n: usize| (1..=n).map(|i| format!("{i}\n")).collect::<String>();
    let files: [(&str, String); 9] = [
        ("abc-file", "A\nB\nC\n".into()),
        ("def-file", "D\nE\nF\n".into()),
        ("abc0-file", "A\0B\0C\0".into()),
        ("abc_-file", "A_B_C_".into()),
        ("tsv-file.tsv", "f1\tf2\nA\tB\nC\tD\n".into()),
        ("num8", lines(8)),
        ("num128", lines(128)),
        ("num30000", lines(30000)),
        ("num_%header", format!("%head1\n%head2\n{}", lines(10))),
    ];
    for (name, body) in files {
        std::fs::write(dir.join(name), body).unwrap();
    }
    if scene.contains("num1000000") {
        std::fs::write(dir.join("num1000000"), lines(1_000_000)).unwrap();
    }
}

/// Runs a scene in a fresh directory with `bin` first on PATH (then
/// `common`: the `ssh` that reaches the scene's hosts); (exit code,
/// stdout, stderr).
fn play(
    scene: &Scene,
    bin: &Path,
    common: &Path,
    user: &str,
    dir: &Path,
) -> (Option<i32>, String, String) {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir.join("tmp")).unwrap();
    make_files(dir, &scene.text);
    let script = scene
        .text
        .replace("/tmp/", &format!("{}/tmp/", dir.display()));
    let path = format!(
        "{}:{}:{}",
        bin.display(),
        common.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let child = Command::new("bash")
        .arg("-c")
        .arg(script)
        .current_dir(dir)
        .env("PATH", path)
        .env("HOME", dir)
        .env("SERVER1", "server1")
        .env("SERVER2", "server2")
        .env("USER", user)
        .env_remove("REMEX_WORKER_PATH")
        .env_remove("PARALLEL")
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("bash runs");
    // Bounded: a scene that hangs is killed (its whole group) after 60 s.
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let guard = std::thread::spawn(move || {
        if rx.recv_timeout(Duration::from_secs(60)).is_err() {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{pid}")])
                .status();
        }
    });
    let o = remex_tests::finished(child);
    let _ = tx.send(());
    guard.join().unwrap();
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

use std::os::unix::process::CommandExt;

/// What is compared of a scene's stdout.
fn normal(how: &How, out: &str) -> String {
    match how {
        How::Sorted | How::Remote => {
            let mut lines: Vec<&str> = out.lines().collect();
            lines.sort_unstable();
            lines.join("\n")
        }
        How::Timed => {
            // A joblog: lines in the order jobs ended, times masked.
            let re = regex::Regex::new(r"\d+\.\d+").unwrap();
            let masked = re.replace_all(out, "T");
            let mut lines: Vec<String> = masked
                .lines()
                .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
                .collect();
            lines.sort_unstable();
            lines.join("\n")
        }
        _ => out.to_string(),
    }
}

/// A directory holding `name`, a script that runs `program`.
fn shim(dir: &Path, program: &str) -> PathBuf {
    shim_named(dir, "parallel", program)
}

fn shim_named(dir: &Path, name: &str, program: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join(name);
    // bash: it passes exported functions on (dash drops them).
    std::fs::write(&path, format!("#!/bin/bash\nexec {program} \"$@\"\n")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    dir.to_path_buf()
}

/// The score remex reached on this walk (scenes matched, of those inside
/// its model); the test fails below it.
const REACHED: usize = 140;

/// A racy scene's runs at most, of each program, and the time they get.
/// Which of two jobs started together prints first, or whether a job
/// ends before a --halt kills it, is close to a coin toss in remex (its
/// workers get the two requests microseconds apart) where GNU parallel,
/// forking one job after the other, leans one way: measured over 12 runs
/// each, one remex run printed one of GNU's outputs with odds of 0.6-0.7
/// (@1143, @1521, @1549) down to 2 in 12 (@1568, whose remex outputs
/// spread over six orders), and in one walk three GNU runs of @1535 all
/// printed an output that remex printed in none of 30 runs but GNU
/// prints in one run of six. Three runs of each, as before, missed one
/// racy scene on about one walk in ten; runs of both, in turns, until one
/// of remex's outputs is one of GNU's, up to 30 each (or 60 s: @1143
/// takes 5 s a run), miss on far fewer.
const RACY_RUNS: usize = 30;
const RACY_TIME: Duration = Duration::from_secs(60);

#[test]
fn gnu_parallels_tutorial_walked_line_by_line() {
    let scenes = scenes();
    // GNU parallel's own path: the shim named `parallel` must not find
    // itself.
    let gnu = Command::new("sh")
        .args(["-c", "command -v parallel"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    let Some(gnu) = gnu else {
        eprintln!("GNU parallel is not installed here: the walk needs it (.ci/run installs it)");
        assert!(
            std::env::var_os("CI").is_none(),
            "under CI, GNU parallel must be installed"
        );
        return;
    };
    let root = std::env::temp_dir().join(format!("remex-tutorial-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let gnu_bin = shim(&root.join("gnu-bin"), &format!("{gnu} --will-cite"));
    let remex_bin = shim(
        &root.join("remex-bin"),
        &format!("{} run --no-bar", env!("CARGO_BIN_EXE_remex")),
    );
    // $SERVER1 and $SERVER2: two real sshds on loopback, reached by the
    // names server1 and server2 through an `ssh` on PATH that reads their
    // config (GNU parallel and remex both run `ssh`).
    // Logged in as fresh users (their homes under the sshds' own
    // directories), so that what the scenes leave on the hosts is gone
    // with them; a user's .bashrc quiet, as GNU parallel needs.
    let sshds = [
        remex_tests::Sshd::start_for_new_user("127.0.0.31"),
        remex_tests::Sshd::start_for_new_user("127.0.0.32"),
    ];
    for d in &sshds {
        std::fs::write(d.home().join(".bashrc"), "").unwrap();
    }
    let user = sshds[0].user.clone();
    let config: String = sshds
        .iter()
        .zip(["server1", "server2"])
        .map(|(d, name)| std::fs::read_to_string(d.alias_config(name)).unwrap())
        .collect();
    std::fs::create_dir_all(&root).unwrap();
    let config_path = root.join("ssh_config");
    std::fs::write(&config_path, config).unwrap();
    let common = shim_named(
        &root.join("common-bin"),
        "ssh",
        &format!("/usr/bin/ssh -F {}", config_path.display()),
    );
    let only: Option<usize> = std::env::var("REMEX_TUTORIAL_LINE")
        .ok()
        .and_then(|l| l.parse().ok());
    let (mut inside, mut matched, mut remote, mut out) = (0, 0, 0, 0);
    let mut differ = Vec::new();
    let mut broken = Vec::new();
    let t0 = Instant::now();
    for scene in &scenes {
        match &scene.how {
            How::Out(_) => {
                out += 1;
                continue;
            }
            How::Remote => {
                inside += 1;
                remote += 1;
            }
            _ => inside += 1,
        }
        if only.is_some_and(|l| l != scene.line) {
            continue;
        }
        // The same directory for both: what a scene prints of it (pwd)
        // is the same.
        let dir = root.join(scene.line.to_string());
        let (gc, gout, gerr) = play(scene, &gnu_bin, &common, &user, &dir);
        // A racy scene: it matches when one of up to RACY_RUNS remex
        // runs prints what one of up to RACY_RUNS GNU parallel runs
        // printed (run in turns, within RACY_TIME, only while none has).
        let tries = if scene.racy { RACY_RUNS } else { 1 };
        let racing = Instant::now();
        let mut variants = vec![(gc, normal(&scene.how, &gout))];
        let (mut rc, mut rout, mut rerr) = play(scene, &remex_bin, &common, &user, &dir);
        let mut tried = vec![(rc, normal(&scene.how, &rout))];
        let same = |tried: &[(Option<i32>, String)], variants: &[(Option<i32>, String)]| {
            tried.iter().any(|t| variants.contains(t))
        };
        while !same(&tried, &variants) && tried.len() < tries && racing.elapsed() < RACY_TIME {
            if variants.len() < tries {
                let (c, o, _) = play(scene, &gnu_bin, &common, &user, &dir);
                variants.push((c, normal(&scene.how, &o)));
                if same(&tried, &variants) {
                    break;
                }
            }
            (rc, rout, rerr) = play(scene, &remex_bin, &common, &user, &dir);
            tried.push((rc, normal(&scene.how, &rout)));
        }
        let both = format!(
            "@{} {:?}\n{}  parallel: exit {gc:?}\n{}{}  remex: exit {rc:?}\n{}{}",
            scene.line,
            scene.how,
            scene.text,
            indent(&gout),
            indent(&gerr),
            indent(&rout),
            indent(&rerr)
        );
        if std::env::var_os("REMEX_TUTORIAL_SHOW").is_some() {
            eprintln!("{both}");
        }
        if gerr.contains("parallel: Error:") {
            // Not a comparison: GNU parallel itself could not run it here.
            broken.push(format!("@{}: {}", scene.line, gerr.trim()));
        } else if same(&tried, &variants) {
            matched += 1;
        } else {
            differ.push(both);
        }
    }
    drop(sshds);
    let _ = std::fs::remove_dir_all(&root);
    for d in &differ {
        eprintln!("differs from GNU parallel: {d}");
    }
    for b in &broken {
        eprintln!("GNU parallel failed here (counted as not matching): {b}");
    }
    println!(
        "GNU parallel's tutorial: {} scenes; {out} outside remex's model, {inside} inside \
         ({remote} on two ssh hosts); remex gives parallel's output on \
         {matched} of {inside} ({}%) in {:.0?}",
        scenes.len(),
        matched * 100 / inside.max(1),
        t0.elapsed()
    );
    if std::env::var_os("CI").is_some() {
        assert!(
            broken.is_empty(),
            "GNU parallel must run every scene under CI: {broken:#?}"
        );
    }
    if only.is_none() {
        assert!(
            matched >= REACHED,
            "{matched} scenes match, fewer than the {REACHED} reached before"
        );
    }
}

/// `s` indented, its last 12 lines at most, each cut at 160 characters.
fn indent(s: &str) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(12)..]
        .iter()
        .map(|l| format!("    | {}\n", l.chars().take(160).collect::<String>()))
        .collect()
}
