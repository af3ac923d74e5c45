//! Scripts that do real work (docs/scripts.md): the worker's tasks, files,
//! processes, the environment, time and JSON from `remote_exec`; named
//! arguments; a worker's own script functions; and resource limits that
//! stop a runaway script while the worker keeps serving.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use remex::{Gateway, Value};
use serde::Serialize;

const T: Option<Duration> = Some(Duration::from_secs(60));

/// Runs `source` and returns the one value it sends.
async fn eval<R: serde::de::DeserializeOwned + 'static>(gw: &Gateway, source: &str) -> R {
    let ch = gw.remote_exec(source).unwrap();
    match remex::with_timeout("the script's answer", T, ch.receive::<R>()).await {
        Ok(v) => v,
        Err(e) => panic!("script failed: {e}\n{source}"),
    }
}

/// Runs `source` and returns the error it ends with.
async fn fails(gw: &Gateway, source: &str) -> String {
    let ch = gw.remote_exec(source).unwrap();
    match ch.waitclose(T).await {
        Ok(()) => panic!("the script succeeded:\n{source}"),
        Err(e) => e.to_string(),
    }
}

fn tempdir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("remex-scripts-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[tokio::test]
async fn scripts_call_the_workers_tasks_and_read_their_streams() {
    let gw = common::gateway().await;
    assert_eq!(
        eval::<i64>(&gw, r#"channel.send(call_task("square", 7))"#).await,
        49
    );
    // A task that streams: its items, then its result, as for remote_call.
    let v: Value = eval(&gw, r#"channel.send(call_task("count_to", 3))"#).await;
    assert_eq!(
        v,
        Value::List(vec![1.into(), 2.into(), 3.into(), "done".into()])
    );
    let v: Vec<Value> = eval(
        &gw,
        r#"let got = []; for x in stream_task("count_to", 4) { got.push(x) } channel.send(got)"#,
    )
    .await;
    assert_eq!(v.len(), 5);
    assert_eq!(v[4], Value::from("done"));
    // The built-in shell task, its lines as they come.
    let lines: Vec<String> = eval(
        &gw,
        r#"let got = []; for l in stream_task("shell", "printf 'a\nb\n'") { got.push(l) } channel.send(got)"#,
    )
    .await;
    assert_eq!(lines, vec!["a", "b"]);
    let names: Vec<String> = eval(&gw, "channel.send(tasks())").await;
    assert!(names.contains(&"square".to_string()), "{names:?}");
    // Failures reach the script, which can catch them or fail with them.
    let e = fails(&gw, r#"call_task("no_such_task", 1)"#).await;
    assert!(e.contains("no task named 'no_such_task'"), "{e}");
    let e = fails(&gw, r#"call_task("__relay", ["sh"])"#).await;
    assert!(e.contains("internal to the worker"), "{e}");
    let e = fails(
        &gw,
        r#"let n = 0; for x in stream_task("fail", "broken on purpose") { n += 1 }"#,
    )
    .await;
    assert!(e.contains("broken on purpose"), "{e}");
    let caught: String = eval(
        &gw,
        r#"try { call_task("fail", "oops") } catch (e) { channel.send(`caught: ${e}`) }"#,
    )
    .await;
    assert!(caught.contains("oops"), "{caught}");
    gw.exit().await.unwrap();
}

#[tokio::test]
async fn leaving_a_stream_early_stops_its_task() {
    let gw = common::gateway().await;
    let dir = tempdir("stream-stop");
    let marker = dir.join("count");
    // The task counts until its channel closes, then writes how far it got;
    // the script waits (bounded) for that file.
    let source = r#"
        for x in stream_task("count_forever", marker) { if x == 5 { break } }
        let waited = 0;
        while !exists(marker) && waited < 500 { sleep(0.01); waited += 1; }
        channel.send(read_file(marker))
    "#;
    let args = BTreeMap::from([("marker", marker.display().to_string())]);
    let ch = gw.remote_exec_with(source, &args).unwrap();
    let sent: String = remex::with_timeout("the count", T, ch.receive())
        .await
        .unwrap();
    let sent: usize = sent.parse().unwrap();
    // What it sent: the items taken, the bounded buffer, one in hand.
    assert!(
        (6..=6 + 16 + 2).contains(&sent),
        "the task sent {sent} items"
    );
    gw.exit().await.unwrap();
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn scripts_read_and_write_files_and_the_environment() {
    let dir = tempdir("files");
    let gw = remex::makegateway(&common::spec(&format!(
        "//chdir={}//env:REMEX_SCRIPT_TEST=xyz",
        dir.display()
    )))
    .await
    .unwrap();
    let source = r#"
        mkdir("sub/deeper");
        write_file("sub/a.txt", "hello");
        append_file("sub/a.txt", ", world");
        write_file("sub/b.bin", blob(3, 7));
        let md = metadata("sub/a.txt");
        copy_file("sub/a.txt", "sub/c.txt");
        rename("sub/c.txt", "sub/d.txt");
        let out = #{
            text: read_file("sub/a.txt"),
            bytes: read_blob("sub/b.bin"),
            names: list_dir("sub"),
            size: md.size,
            is_file: md.is_file,
            dir_is_dir: metadata("sub/deeper").is_dir,
            exists: exists("sub/d.txt"),
            missing: exists("sub/nope"),
            joined: join_path("sub", "a.txt"),
            env: env("REMEX_SCRIPT_TEST"),
            unset: env("REMEX_SCRIPT_UNSET_VAR"),
            all_env_has_it: env().contains("REMEX_SCRIPT_TEST"),
            cwd: cwd(),
        };
        remove_file("sub/d.txt");
        remove_dir_all("sub/deeper");
        out.after = list_dir("sub");
        channel.send(out)
    "#;
    #[derive(serde::Deserialize, Debug)]
    struct Out {
        text: String,
        bytes: Vec<u8>,
        names: Vec<String>,
        size: i64,
        is_file: bool,
        dir_is_dir: bool,
        exists: bool,
        missing: bool,
        joined: String,
        env: String,
        unset: Option<String>,
        all_env_has_it: bool,
        cwd: String,
        after: Vec<String>,
    }
    let out: Out = eval(&gw, source).await;
    assert_eq!(out.text, "hello, world");
    assert_eq!(out.bytes, vec![7, 7, 7]);
    assert_eq!(out.names, vec!["a.txt", "b.bin", "d.txt", "deeper"]);
    assert_eq!(out.size, 12);
    assert!(out.is_file && out.dir_is_dir && out.exists && !out.missing);
    assert_eq!(out.joined, "sub/a.txt");
    assert_eq!(out.env, "xyz");
    assert_eq!(out.unset, None);
    assert!(out.all_env_has_it);
    assert_eq!(
        std::fs::canonicalize(&out.cwd).unwrap(),
        std::fs::canonicalize(&dir).unwrap()
    );
    assert_eq!(out.after, vec!["a.txt", "b.bin"]);
    assert_eq!(
        std::fs::read_to_string(dir.join("sub/a.txt")).unwrap(),
        "hello, world"
    );
    // Errors name the path and the cause.
    let e = fails(&gw, r#"read_file("no/such/file")"#).await;
    assert!(
        e.contains("\"no/such/file\"") && e.contains("No such file"),
        "{e}"
    );
    std::fs::write(dir.join("bin"), [0xff, 0xfe]).unwrap();
    let e = fails(&gw, r#"read_file("bin")"#).await;
    assert!(e.contains("not UTF-8") && e.contains("read_blob"), "{e}");
    gw.exit().await.unwrap();
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn scripts_run_processes() {
    let gw = common::gateway().await;
    #[derive(serde::Deserialize, Debug)]
    struct Run {
        status: Option<i64>,
        success: bool,
        stdout: String,
        stderr: String,
        timed_out: bool,
    }
    let r: Run = eval(
        &gw,
        r#"channel.send(run("echo out; echo err >&2; exit 3"))"#,
    )
    .await;
    assert_eq!(
        (r.status, r.success, r.stdout.as_str(), r.stderr.as_str()),
        (Some(3), false, "out\n", "err\n")
    );
    let r: Run = eval(&gw, r#"channel.send(run(["printf", "%s|", "a b", "c"]))"#).await;
    assert_eq!((r.stdout.as_str(), r.success), ("a b|c|", true));
    let r: Run = eval(
        &gw,
        r#"channel.send(run("cat; echo $GREETING; pwd", #{stdin: "in ", env: #{GREETING: "hi"}, cwd: "/"}))"#,
    )
    .await;
    assert_eq!(r.stdout, "in hi\n/\n");
    let started = Instant::now();
    let r: Run = eval(&gw, r#"channel.send(run("sleep 30", #{timeout: 0.2}))"#).await;
    assert!(r.timed_out && !r.success, "{r:?}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the timeout ended it"
    );
    let lines: Vec<String> = eval(
        &gw,
        r#"let got = []; for l in lines("printf 'x\ny\nz'") { got.push(l) } channel.send(got)"#,
    )
    .await;
    assert_eq!(lines, vec!["x", "y", "z"]);
    let e = fails(
        &gw,
        r#"let n = 0; for l in lines("echo one; exit 4") { n += 1 }"#,
    )
    .await;
    assert!(e.contains("failed") && e.contains('4'), "{e}");
    let e = fails(&gw, r#"run(42)"#).await;
    assert!(e.contains("a command is a string"), "{e}");
    let e = fails(&gw, r#"run("true", #{colour: 1})"#).await;
    assert!(e.contains("unknown process option 'colour'"), "{e}");
    let e = fails(&gw, r#"run(["/no/such/program"])"#).await;
    assert!(
        e.contains("cannot run") && e.contains("/no/such/program"),
        "{e}"
    );
    gw.exit().await.unwrap();
}

#[tokio::test]
async fn scripts_have_time_json_and_the_workers_description() {
    let gw = common::gateway().await;
    #[derive(serde::Deserialize, Debug)]
    struct Out {
        now: f64,
        slept: f64,
        json: String,
        decoded: BTreeMap<String, Value>,
        pid: i64,
        host: String,
        info_pid: i64,
        info_platform: String,
    }
    let out: Out = eval(
        &gw,
        r#"
        let t0 = monotonic();
        sleep(0.05);
        channel.send(#{
            now: now(),
            slept: monotonic() - t0,
            json: json_encode(#{a: [1, 2.5, "x", true, ()]}),
            decoded: json_decode(`{"list": [1, null, "s"], "n": 3}`),
            pid: pid(),
            host: hostname(),
            info_pid: worker_info().pid,
            info_platform: worker_info().platform,
        })
        "#,
    )
    .await;
    let wall = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!((wall - out.now).abs() < 60.0, "{} vs {wall}", out.now);
    assert!(out.slept >= 0.05, "{}", out.slept);
    assert_eq!(out.json, r#"{"a":[1,2.5,"x",true,null]}"#);
    assert_eq!(
        out.decoded["list"],
        Value::List(vec![1.into(), Value::Unit, "s".into()])
    );
    assert_eq!(out.decoded["n"], Value::Int(3));
    let pid: u32 = gw.remote_call("pid", &()).unwrap().receive().await.unwrap();
    assert_eq!((out.pid, out.info_pid), (i64::from(pid), i64::from(pid)));
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_eq!(out.host, host.trim());
    assert!(out.info_platform.starts_with(std::env::consts::OS));
    let e = fails(&gw, "json_decode(`{broken`)").await;
    assert!(e.contains("json_decode"), "{e}");
    gw.exit().await.unwrap();
}

#[tokio::test]
async fn remote_exec_with_binds_named_arguments() {
    #[derive(Serialize)]
    struct Args {
        name: String,
        weights: Vec<f64>,
        opts: BTreeMap<String, i64>,
    }
    let gw = common::gateway().await;
    let args = Args {
        name: "w".into(),
        weights: vec![0.5, 1.5],
        opts: BTreeMap::from([("depth".to_string(), 3)]),
    };
    let ch = gw
        .remote_exec_with(
            "channel.send(`${name}:${weights[0] + weights[1]}:${opts.depth}`)",
            &args,
        )
        .unwrap();
    assert_eq!(ch.receive::<String>().await.unwrap(), "w:2.0:3");
    // Shapes without names are refused before anything is sent.
    let e = gw.remote_exec_with("x", &vec![1, 2]).unwrap_err();
    assert!(e.to_string().contains("named fields"), "{e}");
    let e = gw
        .remote_exec_with("x", &BTreeMap::from([("not an identifier", 1)]))
        .unwrap_err();
    assert!(e.to_string().contains("not a script identifier"), "{e}");
    // Each gateway of a group gets the same arguments.
    let group = common::group(2).await;
    let got = group
        .remote_exec_with("channel.send(n + 1)", &BTreeMap::from([("n", 41)]))
        .unwrap()
        .receive_each::<i64>()
        .await
        .unwrap();
    assert_eq!(got, vec![42, 42]);
    group.terminate(Duration::from_secs(10)).await;
    gw.exit().await.unwrap();
}

#[tokio::test]
async fn a_custom_worker_adds_script_functions() {
    let gw = common::gateway().await;
    assert_eq!(eval::<i64>(&gw, "channel.send(triple(14))").await, 42);
    assert_eq!(eval::<i64>(&gw, "channel.send(checked_half(8))").await, 4);
    let e = fails(&gw, "checked_half(3)").await;
    assert!(e.contains("3 is odd"), "{e}");
    gw.exit().await.unwrap();
}

/// Fails `source` against a limit; returns the error and how long it took.
async fn stopped(gw: &Gateway, source: &str) -> (String, Duration) {
    let started = Instant::now();
    let e = fails(gw, source).await;
    (e, started.elapsed())
}

#[tokio::test]
async fn runaway_scripts_stop_at_the_default_memory_limit_and_the_worker_serves_on() {
    let gw = common::gateway().await;
    let pid: u32 = gw.remote_call("pid", &()).unwrap().receive().await.unwrap();
    // Doubling a string (reached 1.09 GB in 2.7 s without limits).
    let (e, took) = stopped(&gw, r#"let s = "x"; loop { s += s; }"#).await;
    assert!(e.contains("script_max_memory=67108864"), "{e}");
    eprintln!("string doubling stopped after {took:?}");
    // Pushing to an array (reached 1.78 GB in 44 s without limits).
    let (e, took) = stopped(&gw, "let a = []; loop { a.push(1); }").await;
    assert!(e.contains("script_max_memory=67108864"), "{e}");
    eprintln!("array push stopped after {took:?}");
    // What they held is released.
    let rss = remex_tests::rss_bytes(pid).unwrap();
    assert!(rss < 160 << 20, "the worker holds {} MiB", rss >> 20);
    // The worker and its other channels are unharmed.
    assert_eq!(eval::<i64>(&gw, "channel.send(6 * 7)").await, 42);
    gw.exit().await.unwrap();
}

#[tokio::test]
async fn a_spec_sets_the_limits_of_its_scripts() {
    let gw = remex::makegateway(&common::spec(
        "//script_max_operations=200000//script_max_call_levels=5//script_max_map=3//script_max_string=1K",
    ))
    .await
    .unwrap();
    let (e, _) = stopped(&gw, "loop { }").await;
    assert!(e.contains("script_max_operations=200000"), "{e}");
    let (e, _) = stopped(&gw, "fn f(n) { f(n + 1) } f(0)").await;
    assert!(e.contains("script_max_call_levels=5"), "{e}");
    let (e, _) = stopped(&gw, "let m = #{a: 1, b: 2, c: 3}; m.d = 4;").await;
    assert!(e.contains("script_max_map=3"), "{e}");
    // The library's outputs are bounded by the same limits.
    let (e, _) = stopped(&gw, r#"run("head -c 5000 /dev/zero")"#).await;
    assert!(e.contains("script_max_string=1024"), "{e}");
    // Within the limits, scripts run as usual.
    assert_eq!(
        eval::<i64>(
            &gw,
            "fn f(n) { if n == 0 { 0 } else { 1 + f(n - 1) } } channel.send(f(3))"
        )
        .await,
        3
    );
    gw.exit().await.unwrap();
}

#[tokio::test]
async fn scripts_are_stopped_when_the_workers_memory_grows_past_the_limit() {
    let gw = remex::makegateway(&common::spec("//script_max_memory=64M"))
        .await
        .unwrap();
    let pid: u32 = gw.remote_call("pid", &()).unwrap().receive().await.unwrap();
    // 12 strings of 8 MB in separate variables: no one value is large.
    let mut source: String = (0..12)
        .map(|i| format!("let s{i} = \"\"; s{i}.pad(8000000, \"x\");\n"))
        .collect();
    source.push_str("loop { }");
    let (e, took) = stopped(&gw, &source).await;
    assert!(e.contains("script_max_memory=67108864"), "{e}");
    eprintln!("the memory limit stopped the script after {took:?}");
    // Its memory is given back, and the worker serves on.
    let rss = remex_tests::rss_bytes(pid).unwrap();
    assert!(rss < 200 << 20, "the worker holds {} MiB", rss >> 20);
    assert_eq!(eval::<i64>(&gw, "channel.send(1)").await, 1);
    // A library call cannot make one value past the limit either.
    let (e, _) = stopped(&gw, r#"run("head -c 100000000 /dev/zero")"#).await;
    assert!(e.contains("script_max_memory=67108864"), "{e}");
    gw.exit().await.unwrap();
}

#[tokio::test]
async fn a_call_to_a_missing_function_lists_the_close_matches() {
    let gw = common::gateway().await;
    // A typo of a library function: its signature is offered.
    let e = fails(&gw, "channel.send(hostnme())").await;
    assert!(e.contains("hostnme"), "{e}");
    assert!(e.contains("close matches: hostname()"), "{e}");
    // The right name with the wrong arguments: the ones it takes.
    let e = fails(&gw, r#"channel.send(call_task(1, 2, 3))"#).await;
    assert!(
        e.contains("close matches: call_task(_: string), call_task(_: string, _: Dynamic)"),
        "{e}"
    );
    // The worker's own functions and the script's count too.
    let e = fails(
        &gw,
        "fn halve(x) { x / 2 } channel.send(halv(4) + tripel(1))",
    )
    .await;
    assert!(e.contains("halve(x)"), "{e}");
    // Nothing close: no list.
    let e = fails(&gw, "channel.send(zzqxv_unlike_anything())").await;
    assert!(
        e.contains("zzqxv_unlike_anything") && !e.contains("close matches"),
        "{e}"
    );
    gw.exit().await.unwrap();
}
