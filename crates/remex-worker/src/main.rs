//! The stock remex worker. Gateways start it; it is not meant to be run by
//! hand (`remex-worker --version` prints its version).

fn main() {
    if std::env::args().nth(1).as_deref() == Some("--version") {
        println!("remex-worker {}", remex_core::VERSION);
        return;
    }
    remex_worker::Worker::new().run()
}
