//! The workers a command runs on: specs from `--tx` and `--txfile`, the
//! group they start, and the short names output is tagged with.

use std::collections::HashMap;
use std::path::PathBuf;

use remex::{Gateway, Group, Transport};

/// The specs from `--tx` and `--txfile` (one per line; blank lines and
/// `#` comments skipped); none given means one popen worker per CPU.
pub(crate) fn specs(tx: &[String], txfiles: &[PathBuf]) -> Result<Vec<String>, String> {
    let mut specs = tx.to_vec();
    for f in txfiles {
        let text = std::fs::read_to_string(f)
            .map_err(|e| format!("cannot read --txfile {}: {e}", f.display()))?;
        specs.extend(
            text.lines()
                .map(|l| l.split('#').next().unwrap_or("").trim())
                .filter(|l| !l.is_empty())
                .map(str::to_string),
        );
    }
    if specs.is_empty() {
        let n = std::thread::available_parallelism().map_or(1, |n| n.get());
        specs.push(format!("{n}*popen"));
    }
    Ok(specs)
}

/// Started workers.
pub(crate) struct Workers {
    pub(crate) group: Group,
    /// Gateway id -> the name output is tagged with.
    labels: HashMap<String, String>,
    /// The live dashboard, served while the workers are.
    _board: Option<remex::Dashboard>,
}

impl Workers {
    /// Starts a worker for each spec (`N*SPEC` for N), and the
    /// dashboard on `dashboard` (its address on stderr).
    pub(crate) async fn start(
        specs: &[String],
        dashboard: Option<&str>,
    ) -> Result<Workers, String> {
        let group = Group::new(specs.iter().map(String::as_str))
            .await
            .map_err(|e| e.to_string())?;
        let labels = labels(&group.gateways());
        let board = match dashboard {
            Some(addr) => {
                let b = group
                    .dashboard(addr)
                    .await
                    .map_err(|e| format!("--dashboard: {e}"))?;
                eprintln!("remex: dashboard at {}", b.url());
                Some(b)
            }
            None => None,
        };
        Ok(Workers {
            group,
            labels,
            _board: board,
        })
    }

    /// The name of gateway `id`: its `id=` if the spec sets one, else its
    /// host (`local` for popen), numbered when several share it.
    pub(crate) fn label(&self, id: &str) -> String {
        self.labels
            .get(id)
            .cloned()
            .unwrap_or_else(|| id.to_string())
    }
}

fn base(g: &Gateway) -> String {
    let spec = g.spec();
    if let Some(id) = &spec.id {
        return id.clone();
    }
    match &spec.transport {
        Transport::Popen => "local".into(),
        Transport::Ssh { target } => target.clone(),
        Transport::Cmd { command } => command
            .split_whitespace()
            .next()
            .unwrap_or("cmd")
            .to_string(),
        Transport::Socket { addr } => addr.clone(),
        // The node the task runs on.
        Transport::Slurm(_) => g
            .rinfo()
            .cluster
            .as_ref()
            .map_or_else(|| "slurm".into(), |c| c.node.clone()),
    }
}

fn labels(gateways: &[Gateway]) -> HashMap<String, String> {
    let bases: Vec<String> = gateways.iter().map(base).collect();
    let mut seen: HashMap<&str, usize> = HashMap::new();
    let mut out = HashMap::new();
    for (g, b) in gateways.iter().zip(&bases) {
        let shared = bases.iter().filter(|x| *x == b).count() > 1;
        let label = if shared {
            let k = seen.entry(b.as_str()).or_insert(0);
            *k += 1;
            format!("{b}#{k}")
        } else {
            b.clone()
        };
        out.insert(g.id().to_string(), label);
    }
    out
}
