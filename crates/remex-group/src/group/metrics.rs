//! [`Group::metrics`]: the pool's counters as Prometheus text
//! ([`crate::metrics`]).

use super::Group;

impl Group {
    /// The group's metrics in the Prometheus text format: tasks submitted,
    /// finished by outcome, re-run after a lost worker and their durations
    /// (a histogram) by task name, workers alive and lost. Serve it from an
    /// HTTP endpoint of your program for Prometheus to scrape.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> remex::Result<()> {
    /// let group = remex::Group::new(["2*popen"]).await?;
    /// let _: i64 = group.submit("echo", &1)?.await?;
    /// let text = group.metrics();
    /// assert!(text.contains("remex_tasks_submitted_total{task=\"echo\"} 1"));
    /// assert!(text.contains("remex_workers 2"));
    /// group.terminate(std::time::Duration::from_secs(5)).await;
    /// # Ok(()) }
    /// ```
    pub fn metrics(&self) -> String {
        crate::metrics::render(&self.pool().metrics, &self.gateways())
    }
}
