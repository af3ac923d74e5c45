//! A program that starts itself as its worker (`worker=self`) but forgets
//! to call `remex::serve_if_worker`: the fork-bomb guard's test subject.
//! Each process appends its pid to the file named by `REMEX_TEST_PIDS`;
//! past 5 processes it stops at once, so a missing guard shows as a
//! failed test, not a fork bomb.
//!
//! ```text
//! remex-test-forgetful gateway    makegateway("popen//worker=self")
//! remex-test-forgetful group      Group::new(["3*popen//worker=self"])
//! remex-test-forgetful plain      makegateway("popen")
//! ```
//! Prints `ERROR <Display of the error>` or `STARTED`, and exits 0.

use std::io::Write;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let pids = std::env::var("REMEX_TEST_PIDS").expect("REMEX_TEST_PIDS names a file");
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&pids)
        .expect("the pid file");
    // One write of the whole line: appends of one write each are atomic,
    // while `writeln!` may write the digits and the newline apart, and
    // the 3 workers' lines then interleave (an empty line in CI).
    f.write_all(format!("{}\n", std::process::id()).as_bytes())
        .expect("the pid file");
    drop(f);
    let seen = std::fs::read_to_string(&pids).unwrap_or_default();
    if seen.lines().count() > 5 {
        eprintln!("remex-test-forgetful: more than 5 generations: no guard");
        std::process::exit(3);
    }
    let role = std::env::args().nth(1).unwrap_or_default();
    let result = match role.as_str() {
        "group" => remex::Group::new(["3*popen//worker=self"])
            .await
            .map(|_| ()),
        "plain" => remex::makegateway("popen").await.map(|_| ()),
        _ => remex::makegateway("popen//worker=self").await.map(|_| ()),
    };
    match result {
        Ok(()) => println!("STARTED"),
        Err(e) => println!("ERROR {e}"),
    }
}
