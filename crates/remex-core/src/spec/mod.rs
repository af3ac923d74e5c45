//! Gateway specs in execnet's syntax: `key=value` pairs joined by `//`.
//!
//! `popen//id=w1//chdir=/tmp//env:LANG=C//worker=/opt/remex-worker`. A bare
//! key means true. `N*spec` stands for N gateways (see [`Spec::parse_many`]).
//! Unknown, duplicate and empty keys are errors that name the key and the
//! spec. The keys are one table (`keys.rs`, listed by [`keys`] and in
//! docs/specs.md).

use std::fmt;

mod keys;

/// How a gateway reaches its worker.
///
/// ```
/// # fn main() -> remex::Result<()> {
/// let spec = remex::Spec::parse("ssh=alice@host//port=2222")?;
/// assert_eq!(spec.transport, remex::Transport::Ssh { target: "alice@host".into() });
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Transport {
    /// A local child process.
    Popen,
    /// A worker over the system OpenSSH client: `ssh=[user@]host`.
    Ssh {
        /// `[user@]host`.
        target: String,
    },
    /// Any command whose stdin/stdout reach a worker: `cmd=COMMAND`.
    Cmd {
        /// The command line, run by `sh -c`.
        command: String,
    },
    /// A worker listening on TCP: `socket=host:port`.
    Socket {
        /// `host:port`.
        addr: String,
    },
    /// `ntasks` workers on Slurm, from one allocation: `slurm//ntasks=N`
    /// (see `docs/clusters.md`).
    Slurm(Box<SlurmOptions>),
}

/// The options of a `slurm` spec: what remex asks Slurm for.
///
/// ```
/// use remex::{Spec, Transport};
/// let spec = Spec::parse("slurm//ntasks=8//cpus_per_task=2//time=1:00:00").unwrap();
/// let Transport::Slurm(o) = &spec.transport else { unreachable!() };
/// assert_eq!((o.ntasks, o.cpus_per_task), (8, Some(2)));
/// assert_eq!(o.time.as_deref(), Some("1:00:00"));
/// assert!(!o.stdio, "workers dial back by default");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SlurmOptions {
    /// `ntasks=N`: the number of workers (default 1), one Slurm task each.
    pub ntasks: u32,
    /// `nodes=N` or `nodes=MIN-MAX`: the allocation's node count.
    pub nodes: Option<String>,
    /// `cpus_per_task=N`.
    pub cpus_per_task: Option<u32>,
    /// `partition=NAME`.
    pub partition: Option<String>,
    /// `time=LIMIT`: the allocation's time limit, in Slurm's format.
    pub time: Option<String>,
    /// `account=NAME`.
    pub account: Option<String>,
    /// `job_name=NAME` (default `remex`).
    pub job_name: Option<String>,
    /// `srun_args=...`: more arguments for srun, split as a shell would.
    pub srun_args: Vec<String>,
    /// `salloc_args=...`: more arguments for salloc, split as a shell
    /// would (outside an allocation only).
    pub salloc_args: Vec<String>,
    /// `alloc_timeout=SECS`: how long to wait for the allocation (default
    /// 300 s); Slurm's pending reason is logged while it waits and quoted
    /// if the wait times out.
    pub alloc_timeout: Option<std::time::Duration>,
    /// `listen=HOST[:PORT]`: the address the workers dial back to (default:
    /// this host's name, any port; the listener binds that address).
    pub listen: Option<String>,
    /// `stdio`: one srun per worker, the protocol over srun's stdio,
    /// instead of one step whose workers dial back (for nodes that cannot
    /// reach the controller; slower).
    pub stdio: bool,
}

/// A parsed gateway spec.
///
/// ```
/// use remex::{Spec, Transport};
/// let spec = Spec::parse("popen//id=w1//env:LANG=C//nice=5").unwrap();
/// assert_eq!(spec.transport, Transport::Popen);
/// assert_eq!(spec.id.as_deref(), Some("w1"));
/// assert_eq!(spec.env, vec![("LANG".to_string(), "C".to_string())]);
/// assert_eq!(spec.nice, Some(5));
/// let err = Spec::parse("popen//colour=red").unwrap_err();
/// assert!(err.to_string().contains("unknown key 'colour'"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Spec {
    /// The text the spec was parsed from.
    pub raw: String,
    /// How the worker is reached.
    pub transport: Transport,
    /// `via=ID`: start the worker from another gateway's worker.
    pub via: Option<String>,
    /// `id=`: the gateway's id.
    pub id: Option<String>,
    /// `chdir=`: the worker's working directory.
    pub chdir: Option<String>,
    /// `env:NAME=value`: environment for the worker, in order.
    pub env: Vec<(String, String)>,
    /// `liveness=SECS` or `liveness=off`: whether and how fast a dead
    /// peer is noticed (see [`Liveness`] and [`Spec::liveness_bound`]).
    pub liveness: Liveness,
    /// `nice=`: niceness increment for the worker.
    pub nice: Option<i32>,
    /// `start_timeout=SECS`: how long the worker may take to answer the
    /// handshake (default 30 s; a cluster queue may need longer).
    pub start_timeout: Option<std::time::Duration>,
    /// `worker=`: path of the worker binary.
    pub worker: Option<String>,
    /// `port=`: ssh port.
    pub port: Option<u16>,
    /// `ssh_config=`: ssh configuration file.
    pub ssh_config: Option<String>,
    /// `secret_env=`: environment variable holding a socket secret.
    pub secret_env: Option<String>,
    /// `secret_file=`: file holding a socket secret.
    pub secret_file: Option<String>,
    /// `installvia=ID` (with `socket=`): start the listening worker through
    /// gateway `ID`, with a fresh secret handed to both ends over it.
    pub installvia: Option<String>,
    /// `script_max_operations=`, `script_max_string=`, `script_max_array=`,
    /// `script_max_map=`, `script_max_call_levels=`, `script_max_memory=`:
    /// limits for this gateway's scripts (sizes take K, M, G suffixes).
    pub script_limits: crate::wire::ScriptLimits,
}

/// How a gateway watches that its worker (and the way to it) is alive,
/// and how the worker watches its controller (`liveness=`).
///
/// With a bound, the controller probes the worker every quarter of it;
/// when nothing at all has arrived from the worker for half of it after a
/// probe (no answer, no data: a worker busy sending bulk still counts as
/// alive), the gateway is declared lost with a reason naming the host, its
/// channels end with that error and a local process (the ssh client, a
/// wrapper) is killed. The worker, told the bound in the handshake, ends
/// its session when it hears nothing from the controller for the whole
/// bound. So a stopped or hung worker, a dead host, a partition or a
/// connection left half-open ends within the bound on both sides.
///
/// ```
/// use remex::{Liveness, Spec};
/// use std::time::Duration;
/// let ssh = remex::Spec::parse("ssh=host").unwrap();
/// assert_eq!(ssh.liveness, Liveness::Default);
/// assert_eq!(ssh.liveness_bound(), Some(Spec::NETWORK_LIVENESS), "on over a network");
/// assert_eq!(remex::Spec::parse("popen").unwrap().liveness_bound(), None, "off for a local process");
/// let set = remex::Spec::parse("popen//liveness=2.5").unwrap();
/// assert_eq!(set.liveness_bound(), Some(Duration::from_millis(2500)));
/// let off = remex::Spec::parse("ssh=host//liveness=off").unwrap();
/// assert_eq!((off.liveness, off.liveness_bound()), (Liveness::Off, None));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Liveness {
    /// Not set: [`Spec::NETWORK_LIVENESS`] where the worker is reached over a
    /// network (`ssh=`, `socket=`, `slurm`), off for local processes and
    /// `cmd=` (whose wrapper may watch its own way).
    #[default]
    Default,
    /// `liveness=off`: never probe (a worker that stops is waited for).
    Off,
    /// `liveness=SECS`.
    Bound(std::time::Duration),
}

/// A spec string that cannot be parsed.
///
/// ```
/// let e: remex::SpecError = remex::Spec::parse("popen//nice=high").unwrap_err();
/// assert_eq!(e.spec, "popen//nice=high");
/// assert!(e.to_string().contains("nice"), "{e}");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid gateway spec {spec:?}: {message}")]
pub struct SpecError {
    /// The spec as given.
    pub spec: String,
    /// What is wrong with it.
    pub message: String,
}

/// A count (`1000`) or a size with a binary suffix (`64K`, `16M`, `1G`,
/// also `16MiB`, `16MB`).
fn parse_size(v: &str) -> Option<u64> {
    let t = v.trim();
    let t = t
        .strip_suffix("iB")
        .or_else(|| t.strip_suffix('B'))
        .unwrap_or(t);
    let (num, shift) = match t.char_indices().last()? {
        (i, 'K' | 'k') => (&t[..i], 10),
        (i, 'M' | 'm') => (&t[..i], 20),
        (i, 'G' | 'g') => (&t[..i], 30),
        _ => (t, 0),
    };
    num.parse::<u64>().ok()?.checked_mul(1 << shift)
}

/// The table of keys and the engine's bounds for specs.
impl Spec {
    /// Every key a spec may hold, as `key` or `key=VALUE` (the value's form),
    /// with what it does: the table `Spec::parse` reads by (docs/specs.md
    /// lists the same).
    ///
    /// ```
    /// let keys: Vec<(String, &str)> = remex::Spec::keys().collect();
    /// assert!(keys.iter().any(|(k, _)| k == "ntasks=N"));
    /// assert!(keys.iter().any(|(k, _)| k == "popen"));
    /// ```
    pub fn keys() -> impl Iterator<Item = (String, &'static str)> {
        keys::KEYS.iter().map(|k| {
            let written = if k.value.is_empty() {
                k.name.to_string()
            } else {
                format!("{}={}", k.name, k.value)
            };
            (written, k.doc)
        })
    }

    /// The liveness bound of gateways whose worker is reached over a network
    /// (`ssh=`, `socket=`, `slurm`) when the spec does not set `liveness=`:
    /// a dead host, a cut network or a connection left half-open is noticed
    /// within it, on both ends.
    ///
    /// ```
    /// assert_eq!(remex::Spec::NETWORK_LIVENESS.as_secs(), 10);
    /// ```
    pub const NETWORK_LIVENESS: std::time::Duration = std::time::Duration::from_secs(10);

    /// Most gateways one `N*spec` may ask for.
    ///
    /// ```
    /// let too_many = format!("{}*popen", remex::Spec::MAX_MULTIPLIER + 1);
    /// assert!(remex::Spec::parse_many(&too_many).is_err());
    /// ```
    pub const MAX_MULTIPLIER: usize = 4096;
}

/// The variables `secret_env=` specs of this process name: no command the
/// engine starts inherits them (`transport::secret::scrub`).
static ENV_NAMES: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// Notes that the environment variable `name` holds a secret (a spec's
/// `secret_env=`, noted when the spec is parsed).
fn note_secret_env(name: &str) {
    let mut names = ENV_NAMES.lock().unwrap_or_else(|e| e.into_inner());
    if !names.iter().any(|n| n == name) {
        names.push(name.to_string());
    }
}

/// The variables noted by [`note_secret_env`].
pub(crate) fn secret_env_names() -> Vec<String> {
    ENV_NAMES.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

impl Spec {
    /// Whether the worker is reached over a network (`ssh=`, `socket=`,
    /// `slurm`), where hosts die and links break without a word.
    ///
    /// ```
    /// assert!(remex::Spec::parse("socket=h:1").unwrap().crosses_network());
    /// assert!(!remex::Spec::parse("popen").unwrap().crosses_network());
    /// ```
    pub fn crosses_network(&self) -> bool {
        matches!(
            self.transport,
            Transport::Ssh { .. } | Transport::Socket { .. } | Transport::Slurm(_)
        )
    }

    /// The liveness bound in force (see [`Liveness`]): the spec's, else
    /// [`Spec::NETWORK_LIVENESS`] over a network, else none.
    ///
    /// ```
    /// let spec = remex::Spec::parse("slurm//ntasks=2").unwrap();
    /// assert_eq!(spec.liveness_bound(), Some(remex::Spec::NETWORK_LIVENESS));
    /// ```
    pub fn liveness_bound(&self) -> Option<std::time::Duration> {
        match self.liveness {
            Liveness::Off => None,
            Liveness::Bound(d) => Some(d),
            Liveness::Default => self.crosses_network().then_some(Spec::NETWORK_LIVENESS),
        }
    }

    /// Parses one spec (no `N*` prefix).
    ///
    /// ```
    /// # fn main() -> remex::Result<()> {
    /// let spec = remex::Spec::parse("popen//id=w1//chdir=/tmp")?;
    /// assert_eq!(spec.id.as_deref(), Some("w1"));
    /// assert_eq!(spec.chdir.as_deref(), Some("/tmp"));
    /// // A count belongs to Spec::parse_many (and Group::new).
    /// assert!(remex::Spec::parse("2*popen").is_err());
    /// # Ok(()) }
    /// ```
    pub fn parse(text: &str) -> Result<Spec, SpecError> {
        let err = |message: String| SpecError {
            spec: text.to_string(),
            message,
        };
        if text.trim().is_empty() {
            return Err(err("the spec is empty".into()));
        }
        let mut parsing = keys::Parsing::new(text);
        let mut seen: Vec<&str> = Vec::new();
        for part in text.split("//") {
            if part.is_empty() {
                return Err(err("empty element between '//' separators".into()));
            }
            let (key, value) = match part.split_once('=') {
                Some((k, v)) => (k, Some(v)),
                None => (part, None),
            };
            if seen.contains(&key) {
                return Err(err(format!("duplicate key '{key}'")));
            }
            seen.push(key);
            parsing.read(key, value).map_err(err)?;
        }
        parsing.finish().map_err(err)
    }

    /// How many gateways (workers) this spec starts: `ntasks` for a
    /// `slurm` spec, one for the others.
    ///
    /// ```
    /// assert_eq!(remex::Spec::parse("slurm//ntasks=16").unwrap().workers(), 16);
    /// assert_eq!(remex::Spec::parse("popen").unwrap().workers(), 1);
    /// ```
    pub fn workers(&self) -> usize {
        match &self.transport {
            Transport::Slurm(o) => o.ntasks as usize,
            _ => 1,
        }
    }

    /// Parses a spec that may start with `N*`, returning N specs.
    ///
    /// ```
    /// let specs = remex::Spec::parse_many("3*popen").unwrap();
    /// assert_eq!(specs.len(), 3);
    /// assert!(remex::Spec::parse_many("0*popen").is_err());
    /// ```
    pub fn parse_many(text: &str) -> Result<Vec<Spec>, SpecError> {
        let err = |message: String| SpecError {
            spec: text.to_string(),
            message,
        };
        let (n, rest) = match text.split_once('*') {
            Some((n, rest)) if !n.contains("//") && !n.contains('=') => {
                let n: usize = n
                    .trim()
                    .parse()
                    .map_err(|_| err(format!("{n:?} before '*' is not a count")))?;
                if n == 0 || n > Spec::MAX_MULTIPLIER {
                    return Err(err(format!(
                        "count {n} must be between 1 and {}",
                        Spec::MAX_MULTIPLIER
                    )));
                }
                (n, rest)
            }
            _ => (1, text),
        };
        let spec = Spec::parse(rest)?;
        if n > 1 && matches!(spec.transport, Transport::Slurm(_)) {
            return Err(err(format!(
                "a slurm spec counts its workers with ntasks={n} (one allocation for all): drop '{n}*'"
            )));
        }
        if n > 1 && spec.id.is_some() {
            return Err(err(
                "id= cannot be used with a count: the ids would repeat".into()
            ));
        }
        Ok(vec![spec; n])
    }
}

/// The message for an unknown key: a count outside a group, a likely
/// misspelling, or the list of known keys.
fn unknown_key(key: &str) -> String {
    if let Some((n, _)) = key.split_once('*') {
        if !n.is_empty() && n.trim().chars().all(|c| c.is_ascii_digit()) {
            return format!(
                "'{key}' asks for {n} gateways, and a count works only where several can start \
                 (Group::new, Group::makegateway); makegateway starts one: drop '{n}*'"
            );
        }
    }
    let names: Vec<&str> = keys::KEYS.iter().map(|k| k.name).collect();
    let closest = names
        .iter()
        .map(|k| (strsim::damerau_levenshtein(key, k), *k))
        .min();
    match closest {
        Some((d, k)) if d <= 2 && d < key.len() => {
            format!("unknown key '{key}': did you mean '{k}'?")
        }
        _ => format!("unknown key '{key}' (known keys: {})", names.join(", ")),
    }
}

fn transport_key(t: &Transport) -> &'static str {
    match t {
        Transport::Popen => "popen",
        Transport::Ssh { .. } => "ssh",
        Transport::Cmd { .. } => "cmd",
        Transport::Socket { .. } => "socket",
        Transport::Slurm(_) => "slurm",
    }
}

impl fmt::Display for Spec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

impl std::str::FromStr for Spec {
    type Err = SpecError;
    fn from_str(s: &str) -> Result<Spec, SpecError> {
        Spec::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(s: &str) -> String {
        Spec::parse_many(s).unwrap_err().to_string()
    }

    #[test]
    fn execnet_style_specs_parse() {
        let s = Spec::parse(
            "ssh=alice@host//port=2222//ssh_config=/etc/cfg//id=a//chdir=work//worker=/w",
        )
        .unwrap();
        assert_eq!(
            s.transport,
            Transport::Ssh {
                target: "alice@host".into()
            }
        );
        assert_eq!(
            (s.port, s.ssh_config.as_deref(), s.chdir.as_deref()),
            (Some(2222), Some("/etc/cfg"), Some("work"))
        );
        let s = Spec::parse("cmd=kubectl exec -i pod -- remex-worker//env:A=//env:B=x=y").unwrap();
        assert_eq!(
            s.transport,
            Transport::Cmd {
                command: "kubectl exec -i pod -- remex-worker".into()
            }
        );
        assert_eq!(
            s.env,
            vec![("A".into(), "".into()), ("B".into(), "x=y".into())]
        );
        assert_eq!(
            Spec::parse("popen//via=gw0").unwrap().via.as_deref(),
            Some("gw0")
        );
    }

    #[test]
    fn script_limits_parse_counts_and_sizes() {
        let s = Spec::parse(
            "popen//script_max_operations=0//script_max_array=10//script_max_map=20//script_max_call_levels=8//script_max_string=64K//script_max_memory=1GiB",
        )
        .unwrap();
        let l = s.script_limits;
        assert_eq!(
            (
                l.max_operations,
                l.max_array_size,
                l.max_map_size,
                l.max_call_levels
            ),
            (Some(0), Some(10), Some(20), Some(8))
        );
        assert_eq!(l.max_string_size, Some(64 << 10));
        assert_eq!(l.max_memory, Some(1 << 30));
        assert_eq!(parse_size("512"), Some(512));
        assert_eq!(parse_size("3MB"), Some(3 << 20));
        assert_eq!(parse_size("99999999999G"), None, "overflow refused");
        assert!(msg("popen//script_max_string=lots").contains("not a size"));
        assert!(msg("popen//script_max_operations=-1").contains("not a count"));
        assert!(
            msg("popen//script_max_operation=5").contains("did you mean 'script_max_operations'?")
        );
    }

    #[test]
    fn malformed_specs_name_what_is_wrong() {
        assert!(msg("popen//foo=1").contains("unknown key 'foo'"));
        assert!(msg("popen//chidr=/tmp").contains("did you mean 'chdir'?"));
        assert!(msg("popen//secret_fle=x").contains("did you mean 'secret_file'?"));
        let count = Spec::parse("4*popen").unwrap_err().to_string();
        assert!(count.contains("asks for 4 gateways"), "{count}");
        assert!(count.contains("Group::new"), "{count}");
        assert!(msg("popen//id=a//id=b").contains("duplicate key 'id'"));
        assert!(msg("popen//id=").contains("'id' has an empty value"));
        assert!(msg("popen//id").contains("'id' needs a value"));
        assert!(msg("popen////id=a").contains("empty element"));
        assert!(msg("").contains("empty"));
        assert!(msg("id=a").contains("no transport"));
        assert!(msg("popen//ssh=h").contains("more than one transport"));
        assert!(msg("popen//nice=high").contains("not an integer"));
        assert!(msg("popen//start_timeout=soon").contains("must be seconds"));
        assert_eq!(
            Spec::parse("popen//start_timeout=600")
                .unwrap()
                .start_timeout,
            Some(std::time::Duration::from_secs(600))
        );
        assert!(msg("popen//port=22").contains("ssh= only"));
        assert!(msg("x*popen").contains("not a count"));
        assert!(msg("0*popen").contains("between 1"));
        assert!(msg("99999*popen").contains("between 1"));
        assert!(msg("2*popen//id=a").contains("ids would repeat"));
        assert!(msg("socket=nohost").contains("host:port"));
        assert!(msg("popen//env:=x").contains("variable name"));
    }

    #[test]
    fn slurm_specs_parse_and_their_mistakes_are_named() {
        let s = Spec::parse(
            "slurm//ntasks=16//cpus_per_task=2//partition=p//time=1:00:00//account=a//job_name=j//srun_args=--mem-per-cpu=1G --gres 'gpu:1'//alloc_timeout=60//listen=10.0.0.1:7000",
        )
        .unwrap();
        let Transport::Slurm(o) = &s.transport else {
            panic!("{s:?}")
        };
        assert_eq!(s.workers(), 16);
        assert_eq!(o.srun_args, ["--mem-per-cpu=1G", "--gres", "gpu:1"]);
        assert_eq!(
            (
                o.partition.as_deref(),
                o.account.as_deref(),
                o.job_name.as_deref()
            ),
            (Some("p"), Some("a"), Some("j"))
        );
        assert_eq!(o.alloc_timeout, Some(std::time::Duration::from_secs(60)));
        assert_eq!(o.listen.as_deref(), Some("10.0.0.1:7000"));
        let d = Spec::parse("slurm").unwrap();
        assert_eq!(d.workers(), 1);
        assert!(msg("slurm//ntasks=0").contains("count from 1"));
        assert!(msg("slurm//ntasks=many").contains("count from 1"));
        assert!(msg("popen//ntasks=4").contains("'ntasks' applies to slurm only"));
        assert!(msg("4*slurm").contains("ntasks=4"));
        assert!(msg("slurm//partition=-p").contains("may not start with '-'"));
        assert!(msg("slurm//srun_args='open").contains("unbalanced quotes"));
        assert!(msg("slurm//stdio//listen=h").contains("drop one"));
        assert!(msg("slurm//via=gw0").contains("Slurm starts the workers"));
        assert!(msg("slurm=x").contains("takes no value"));
        assert!(msg("slurm//ntask=2").contains("did you mean 'ntasks'?"));
    }
}
