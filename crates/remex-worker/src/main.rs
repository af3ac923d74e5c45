//! The stock remex worker. Gateways start it; by hand it runs only as a
//! listener (`remex-worker --listen ADDR`, see `remex-worker --help`).

fn main() {
    remex_worker::Worker::new().run()
}
