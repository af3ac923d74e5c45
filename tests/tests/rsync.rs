//! rsync to real workers, as execnet's test_rsync does it: two targets at
//! once, delete, permissions, read-only directories, symlinks, a file that
//! vanishes during the send, a second send that transfers nothing; and a
//! 1 GiB tree over a real ssh gateway with bounded controller memory.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use remex::rsync::RSync;

/// A fresh directory for one test, removed (after opening read-only
/// directories) on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let d = std::env::temp_dir().join(format!("remex-rsync-{name}-{}", std::process::id()));
        open_up(&d);
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Scratch(d)
    }

    fn join(&self, p: &str) -> PathBuf {
        self.0.join(p)
    }
}

fn open_up(p: &Path) {
    if let Ok(m) = std::fs::symlink_metadata(p) {
        if m.is_dir() {
            let _ = std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755));
            for e in std::fs::read_dir(p).into_iter().flatten().flatten() {
                open_up(&e.path());
            }
        }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        open_up(&self.0);
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn write(p: &Path, data: &str) {
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, data).unwrap();
}

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

fn mtime(p: &Path) -> SystemTime {
    std::fs::symlink_metadata(p).unwrap().modified().unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[tokio::test]
async fn two_targets_at_once_then_a_send_that_transfers_nothing() {
    let t = Scratch::new("two");
    let src = t.join("src");
    write(&src.join("a.txt"), "alpha");
    write(&src.join("sub/deeper/b.bin"), &"b".repeat(600_000));
    write(&src.join("empty"), "");
    std::fs::create_dir_all(src.join("emptydir")).unwrap();
    let (g1, g2) = (common::gateway().await, common::gateway().await);
    let (d1, d2) = (t.join("d1"), t.join("d2"));
    let reports = RSync::new(&src)
        .add_target(&g1, s(&d1))
        .add_target(&g2, s(&d2))
        .send()
        .await
        .unwrap();
    assert_eq!(reports.len(), 2);
    for (r, d) in reports.iter().zip([&d1, &d2]) {
        assert_eq!((r.files_sent, r.bytes_sent), (3, 600_005), "{r:?}");
        assert_eq!(std::fs::read_to_string(d.join("a.txt")).unwrap(), "alpha");
        assert_eq!(
            std::fs::read(d.join("sub/deeper/b.bin")).unwrap().len(),
            600_000
        );
        assert!(d.join("emptydir").is_dir());
        assert_eq!(mtime(&d.join("a.txt")), mtime(&src.join("a.txt")));
        assert_eq!(mtime(&d.join("sub")), mtime(&src.join("sub")));
    }
    assert_eq!(reports[0].gateway, g1.id());
    // Nothing changed: nothing is sent.
    let again = RSync::new(&src)
        .add_target(&g1, s(&d1))
        .add_target(&g2, s(&d2))
        .send()
        .await
        .unwrap();
    for r in &again {
        assert_eq!(
            (r.files_sent, r.bytes_sent, r.files_touched),
            (0, 0, 0),
            "{r:?}"
        );
        assert_eq!(r.files_unchanged, 3);
    }
    // Same contents, a new mtime: hashes compared, the mtime set, no data.
    let now = SystemTime::now() - Duration::from_secs(3600);
    std::fs::File::options()
        .write(true)
        .open(src.join("a.txt"))
        .unwrap()
        .set_modified(now)
        .unwrap();
    // Same size, other contents: sent.
    write(&src.join("sub/deeper/b.bin"), &"c".repeat(600_000));
    let r = &RSync::new(&src)
        .add_target(&g1, s(&d1))
        .send()
        .await
        .unwrap()[0];
    assert_eq!(
        (r.files_touched, r.files_sent, r.bytes_sent),
        (1, 1, 600_000),
        "{r:?}"
    );
    assert_eq!(mtime(&d1.join("a.txt")), now);
    assert_eq!(std::fs::read(d1.join("sub/deeper/b.bin")).unwrap()[0], b'c');
    g1.exit().await.unwrap();
    g2.exit().await.unwrap();
}

#[tokio::test]
async fn an_empty_destination_is_refused_before_anything_is_written() {
    let t = Scratch::new("empty-dest");
    let src = t.join("src");
    write(&src.join("f"), "x");
    // The worker's own directory, where an empty destination landed.
    let home = t.join("home");
    write(&home.join("mine"), "keep");
    let gw = remex::makegateway(&common::spec(&format!("//chdir={}", s(&home))))
        .await
        .unwrap();
    for dest in ["", " "] {
        let e = RSync::new(&src)
            .add_target(&gw, dest)
            .delete(true)
            .send()
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("its destination is empty"), "{e}");
    }
    assert!(
        !home.join("f").exists(),
        "the source landed in the worker's directory"
    );
    assert!(
        home.join("mine").exists(),
        "delete removed the worker's files"
    );
    // "." is the worker's directory, named on purpose.
    RSync::new(&src).add_target(&gw, ".").send().await.unwrap();
    assert!(home.join("f").exists());
    gw.exit().await.unwrap();
}

#[tokio::test]
async fn delete_removes_what_the_source_lacks_and_only_then() {
    let t = Scratch::new("delete");
    let src = t.join("src");
    write(&src.join("keep"), "k");
    write(&src.join("gone"), "g");
    write(&src.join("dir/inner"), "i");
    let gw = common::gateway().await;
    let dst = t.join("dst");
    RSync::new(&src)
        .add_target(&gw, s(&dst))
        .send()
        .await
        .unwrap();
    std::fs::remove_file(src.join("gone")).unwrap();
    std::fs::remove_dir_all(src.join("dir")).unwrap();
    // Without delete the extra entries stay.
    RSync::new(&src)
        .add_target(&gw, s(&dst))
        .send()
        .await
        .unwrap();
    assert!(dst.join("gone").exists() && dst.join("dir/inner").exists());
    let r = &RSync::new(&src)
        .add_target(&gw, s(&dst))
        .delete(true)
        .send()
        .await
        .unwrap()[0];
    assert_eq!(r.deleted, 2, "{r:?}");
    assert!(!dst.join("gone").exists() && !dst.join("dir").exists());
    assert!(dst.join("keep").exists());
    gw.exit().await.unwrap();
}

#[tokio::test]
async fn modes_and_read_only_directories_are_kept() {
    let t = Scratch::new("modes");
    let src = t.join("src");
    write(&src.join("run.sh"), "#!/bin/sh\necho hi\n");
    std::fs::set_permissions(src.join("run.sh"), std::fs::Permissions::from_mode(0o751)).unwrap();
    write(&src.join("ro/data"), "d");
    std::fs::set_permissions(src.join("ro/data"), std::fs::Permissions::from_mode(0o444)).unwrap();
    std::fs::set_permissions(src.join("ro"), std::fs::Permissions::from_mode(0o555)).unwrap();
    let gw = common::gateway().await;
    let dst = t.join("dst");
    RSync::new(&src)
        .add_target(&gw, s(&dst))
        .send()
        .await
        .unwrap();
    assert_eq!(mode(&dst.join("run.sh")), 0o751);
    assert_eq!(mode(&dst.join("ro")), 0o555);
    assert_eq!(mode(&dst.join("ro/data")), 0o444);
    // A change inside a read-only directory still arrives, and the
    // directory stays read-only.
    std::fs::set_permissions(src.join("ro"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(src.join("ro/data"), std::fs::Permissions::from_mode(0o644)).unwrap();
    write(&src.join("ro/data"), "changed");
    write(&src.join("ro/new"), "n");
    std::fs::set_permissions(src.join("ro"), std::fs::Permissions::from_mode(0o555)).unwrap();
    let r = &RSync::new(&src)
        .add_target(&gw, s(&dst))
        .send()
        .await
        .unwrap()[0];
    assert_eq!(r.files_sent, 2, "{r:?}");
    assert_eq!(
        std::fs::read_to_string(dst.join("ro/data")).unwrap(),
        "changed"
    );
    assert_eq!(mode(&dst.join("ro")), 0o555);
    assert_eq!(mode(&dst.join("ro/data")), 0o644);
    gw.exit().await.unwrap();
}

#[tokio::test]
async fn links_into_the_tree_are_repointed_and_others_kept() {
    let t = Scratch::new("links");
    let src = t.join("src");
    write(&src.join("sub/target.txt"), "t");
    let abs_inside = src.canonicalize().unwrap().join("sub/target.txt");
    std::os::unix::fs::symlink(&abs_inside, src.join("abs_in")).unwrap();
    std::os::unix::fs::symlink("sub/target.txt", src.join("rel_in")).unwrap();
    std::os::unix::fs::symlink("/etc/hostname", src.join("abs_out")).unwrap();
    std::os::unix::fs::symlink("nowhere", src.join("dangling")).unwrap();
    let gw = common::gateway().await;
    let dst = t.join("dst");
    let r = &RSync::new(&src)
        .add_target(&gw, s(&dst))
        .send()
        .await
        .unwrap()[0];
    assert_eq!(r.links_made, 4, "{r:?}");
    let link = |n: &str| std::fs::read_link(dst.join(n)).unwrap();
    assert_eq!(link("abs_in"), dst.join("sub/target.txt"));
    assert_eq!(std::fs::read_to_string(dst.join("abs_in")).unwrap(), "t");
    assert_eq!(link("rel_in"), PathBuf::from("sub/target.txt"));
    assert_eq!(link("abs_out"), PathBuf::from("/etc/hostname"));
    assert_eq!(link("dangling"), PathBuf::from("nowhere"));
    // Unchanged links are left alone the second time.
    let r = &RSync::new(&src)
        .add_target(&gw, s(&dst))
        .send()
        .await
        .unwrap()[0];
    assert_eq!(r.links_made, 0, "{r:?}");
    gw.exit().await.unwrap();
}

#[tokio::test]
async fn a_file_that_vanishes_during_the_send_is_reported_not_fatal() {
    let t = Scratch::new("vanish");
    let src = t.join("src");
    write(&src.join("a"), "first");
    // Large, so it is opened when its turn comes (small files are read
    // ahead).
    write(&src.join("b"), &"second".repeat(200_000));
    write(&src.join("c"), "third");
    let gw = common::gateway().await;
    let dst = t.join("dst");
    let doomed = src.join("b");
    // Files are sent in order: after "a", "b" goes away.
    let r = &RSync::new(&src)
        .add_target(&gw, s(&dst))
        .on_progress(move |p| {
            if p.path == "a" {
                std::fs::remove_file(&doomed).unwrap();
            }
        })
        .send()
        .await
        .unwrap()[0];
    assert_eq!(r.files_sent, 2, "{r:?}");
    assert_eq!(r.vanished.len(), 1, "{r:?}");
    assert_eq!(r.vanished[0].0, "b");
    assert!(r.vanished[0].1.contains("No such file"), "{r:?}");
    assert!(!dst.join("b").exists());
    assert_eq!(std::fs::read_to_string(dst.join("c")).unwrap(), "third");
    // No temporary file is left behind.
    let names: Vec<String> = std::fs::read_dir(&dst)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    gw.exit().await.unwrap();
}

#[tokio::test]
async fn a_filter_decides_what_is_sent_and_bad_sources_are_named() {
    let t = Scratch::new("filter");
    let src = t.join("src");
    write(&src.join("keep.txt"), "k");
    write(&src.join("skip.tmp"), "s");
    write(&src.join("cache/x"), "x");
    let gw = common::gateway().await;
    let dst = t.join("dst");
    RSync::new(&src)
        .add_target(&gw, s(&dst))
        .filter(|p| p.extension().is_none_or(|e| e != "tmp") && p != Path::new("cache"))
        .send()
        .await
        .unwrap();
    assert!(dst.join("keep.txt").exists());
    assert!(!dst.join("skip.tmp").exists() && !dst.join("cache").exists());
    let e = RSync::new(t.join("missing"))
        .add_target(&gw, s(&dst))
        .send()
        .await
        .unwrap_err();
    assert!(e.to_string().contains("missing"), "{e}");
    // A destination the worker cannot write: the worker's error, named.
    let e = RSync::new(&src)
        .add_target(&gw, "/proc/remex-cannot-write-here")
        .send()
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("/proc/remex-cannot-write-here"),
        "{e}"
    );
    // The worker serves on.
    let r = &RSync::new(&src)
        .add_target(&gw, s(&t.join("dst2")))
        .send()
        .await
        .unwrap()[0];
    assert_eq!(r.files_sent, 3);
    gw.exit().await.unwrap();
}

#[test]
fn a_gibibyte_over_ssh_with_bounded_controller_memory() {
    let t = Scratch::new("ssh");
    let src = t.join("src");
    std::fs::create_dir_all(&src).unwrap();
    // 16 files of 64 MiB, each of its own byte.
    for i in 0..16u8 {
        let data = vec![b'a' + i; 64 << 20];
        std::fs::write(src.join(format!("f{i:02}")), &data).unwrap();
    }
    let sshd = remex_tests::Sshd::start("127.0.0.6");
    let spec = sshd.spec(&format!(
        "//worker={}",
        env!("CARGO_BIN_EXE_remex-test-worker")
    ));
    let me = std::process::id();
    let before = remex_tests::rss_bytes(me).unwrap();
    let dst = t.join("dst");
    let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let p = peak.clone();
    let started = Instant::now();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let reports = rt.block_on(async {
        let gw = remex::makegateway(&spec).await.unwrap();
        let r = RSync::new(&src)
            .add_target(&gw, s(&dst))
            .on_progress(move |_| {
                let now = remex_tests::rss_bytes(me).unwrap_or(0);
                p.fetch_max(now, std::sync::atomic::Ordering::Relaxed);
            })
            .send()
            .await
            .unwrap();
        gw.exit().await.unwrap();
        r
    });
    let took = started.elapsed();
    assert_eq!(reports[0].bytes_sent, 1 << 30);
    for i in 0..16u8 {
        let got = std::fs::read(dst.join(format!("f{i:02}"))).unwrap();
        assert!(
            got.len() == 64 << 20 && got.iter().all(|b| *b == b'a' + i),
            "f{i:02}"
        );
    }
    let grew = peak
        .load(std::sync::atomic::Ordering::Relaxed)
        .saturating_sub(before);
    eprintln!(
        "1 GiB over ssh in {took:?} ({:.0} MB/s); controller grew by {} MiB at most",
        (1u64 << 30) as f64 / took.as_secs_f64() / 1e6,
        grew >> 20
    );
    assert!(grew < 64 << 20, "the controller grew by {} MiB", grew >> 20);
}
