//! A group whose start fails part-way leaves no worker behind. Its own test
//! binary, so that no other test's workers are children of this process.

mod common;

use remex::Group;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_start_names_its_spec_and_leaves_no_orphan() {
    let before = remex_tests::children_of(std::process::id());
    let err = Group::new([
        format!("3*{}", common::spec("")),
        "popen//worker=/no/such/worker".to_string(),
    ])
    .await
    .unwrap_err();
    assert!(err.to_string().contains("/no/such/worker"), "{err}");
    let after = remex_tests::children_of(std::process::id());
    let new: Vec<_> = after.iter().filter(|p| !before.contains(p)).collect();
    assert!(
        new.is_empty(),
        "workers left after a failed group start: {new:?}"
    );
}
