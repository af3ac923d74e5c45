//! Gateway specs in execnet's syntax: `key=value` pairs joined by `//`.
//!
//! `popen//id=w1//chdir=/tmp//env:LANG=C//worker=/opt/remex-worker`. A bare
//! key means true. `N*spec` stands for N gateways (see [`Spec::parse_many`]).
//! Unknown, duplicate and empty keys are errors that name the key and the
//! spec.
//!
//! Over 500 lines: about 100 are tests and 90 documentation; the code is
//! under 400.

use std::fmt;

/// How a gateway reaches its worker.
///
/// ```
/// # fn main() -> remex::Result<()> {
/// let spec = remex::Spec::parse("ssh=alice@host//port=2222")?;
/// assert_eq!(spec.transport, remex::Transport::Ssh { target: "alice@host".into() });
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
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
}

/// A parsed gateway spec.
///
/// ```
/// use remex::core::{Spec, Transport};
/// let spec = Spec::parse("popen//id=w1//env:LANG=C//nice=5").unwrap();
/// assert_eq!(spec.transport, Transport::Popen);
/// assert_eq!(spec.id.as_deref(), Some("w1"));
/// assert_eq!(spec.env, vec![("LANG".to_string(), "C".to_string())]);
/// assert_eq!(spec.nice, Some(5));
/// let err = Spec::parse("popen//colour=red").unwrap_err();
/// assert!(err.to_string().contains("unknown key 'colour'"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
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
    /// `liveness=SECS`: the worker must answer a status probe within
    /// this bound, else the gateway is declared lost and its worker killed
    /// (a stopped or hung worker).
    pub liveness: Option<std::time::Duration>,
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

const KEYS: &[&str] = &[
    "popen",
    "ssh",
    "cmd",
    "socket",
    "via",
    "id",
    "chdir",
    "env:NAME",
    "nice",
    "worker",
    "port",
    "ssh_config",
    "secret_env",
    "secret_file",
    "installvia",
    "liveness",
    "start_timeout",
    "script_max_operations",
    "script_max_string",
    "script_max_array",
    "script_max_map",
    "script_max_call_levels",
    "script_max_memory",
];

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

/// Most gateways one `N*spec` may ask for.
///
/// ```
/// let too_many = format!("{}*popen", remex::core::spec::MAX_MULTIPLIER + 1);
/// assert!(remex::Spec::parse_many(&too_many).is_err());
/// ```
pub const MAX_MULTIPLIER: usize = 4096;

impl Spec {
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
        let mut transport: Option<Transport> = None;
        let mut spec = Spec {
            raw: text.to_string(),
            transport: Transport::Popen,
            via: None,
            id: None,
            chdir: None,
            env: Vec::new(),
            nice: None,
            start_timeout: None,
            liveness: None,
            worker: None,
            port: None,
            ssh_config: None,
            secret_env: None,
            secret_file: None,
            installvia: None,
            script_limits: Default::default(),
        };
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
            let need = |v: Option<&str>| -> Result<String, SpecError> {
                match v {
                    None => Err(err(format!("key '{key}' needs a value ({key}=...)"))),
                    Some("") => Err(err(format!("key '{key}' has an empty value"))),
                    Some(v) => Ok(v.to_string()),
                }
            };
            let set_transport =
                |t: &mut Option<Transport>, new: Transport| -> Result<(), SpecError> {
                    if let Some(old) = t {
                        return Err(err(format!(
                            "more than one transport: '{}' and '{key}'",
                            transport_key(old)
                        )));
                    }
                    *t = Some(new);
                    Ok(())
                };
            match key {
                "popen" => {
                    if value.is_some_and(|v| !v.is_empty()) {
                        return Err(err("'popen' takes no value".into()));
                    }
                    set_transport(&mut transport, Transport::Popen)?;
                }
                "ssh" => set_transport(
                    &mut transport,
                    Transport::Ssh {
                        target: need(value)?,
                    },
                )?,
                "cmd" => set_transport(
                    &mut transport,
                    Transport::Cmd {
                        command: need(value)?,
                    },
                )?,
                "socket" => {
                    let addr = need(value)?;
                    if !addr.contains(':') {
                        return Err(err(format!("socket address {addr:?} needs host:port")));
                    }
                    set_transport(&mut transport, Transport::Socket { addr })?
                }
                "via" => spec.via = Some(need(value)?),
                "id" => spec.id = Some(need(value)?),
                "chdir" => spec.chdir = Some(need(value)?),
                "worker" => spec.worker = Some(need(value)?),
                "ssh_config" => spec.ssh_config = Some(need(value)?),
                "secret_env" => spec.secret_env = Some(need(value)?),
                "secret_file" => spec.secret_file = Some(need(value)?),
                "installvia" => spec.installvia = Some(need(value)?),
                "liveness" => {
                    let v = need(value)?;
                    let secs: f64 = v
                        .parse()
                        .ok()
                        .filter(|s: &f64| s.is_finite() && *s >= 0.05 && *s <= 86_400.0)
                        .ok_or_else(|| {
                            err(format!(
                                "liveness={v:?} must be seconds between 0.05 and 86400"
                            ))
                        })?;
                    spec.liveness = Some(std::time::Duration::from_secs_f64(secs));
                }
                "start_timeout" => {
                    let v = need(value)?;
                    let secs: f64 = v
                        .parse()
                        .ok()
                        .filter(|s: &f64| s.is_finite() && *s > 0.0 && *s <= 7.0 * 86_400.0)
                        .ok_or_else(|| {
                            err(format!(
                                "start_timeout={v:?} must be seconds, more than 0 and at most a week"
                            ))
                        })?;
                    spec.start_timeout = Some(std::time::Duration::from_secs_f64(secs));
                }
                "nice" => {
                    let v = need(value)?;
                    spec.nice = Some(
                        v.parse()
                            .map_err(|_| err(format!("nice={v:?} is not an integer")))?,
                    );
                }
                "port" => {
                    let v = need(value)?;
                    spec.port = Some(
                        v.parse()
                            .map_err(|_| err(format!("port={v:?} is not a port number")))?,
                    );
                }
                "script_max_operations"
                | "script_max_array"
                | "script_max_map"
                | "script_max_call_levels" => {
                    let v = need(value)?;
                    let n = v.parse::<u64>().ok().ok_or_else(|| {
                        err(format!("{key}={v:?} is not a count (a whole number)"))
                    })?;
                    let l = &mut spec.script_limits;
                    *match key {
                        "script_max_operations" => &mut l.max_operations,
                        "script_max_array" => &mut l.max_array_size,
                        "script_max_map" => &mut l.max_map_size,
                        _ => &mut l.max_call_levels,
                    } = Some(n);
                }
                "script_max_string" | "script_max_memory" => {
                    let v = need(value)?;
                    let n = parse_size(&v).ok_or_else(|| {
                        err(format!(
                            "{key}={v:?} is not a size (bytes, or with K, M, G: 16M)"
                        ))
                    })?;
                    let l = &mut spec.script_limits;
                    *if key == "script_max_string" {
                        &mut l.max_string_size
                    } else {
                        &mut l.max_memory
                    } = Some(n);
                }
                k if k.starts_with("env:") => {
                    let name = &k[4..];
                    if name.is_empty() || name.contains('\0') {
                        return Err(err(format!("'{k}' needs a variable name (env:NAME=value)")));
                    }
                    // An empty value is a legitimate environment value.
                    let v =
                        value.ok_or_else(|| err(format!("key '{k}' needs a value ({k}=...)")))?;
                    spec.env.push((name.to_string(), v.to_string()));
                }
                other => return Err(err(unknown_key(other))),
            }
        }
        spec.transport = transport
            .ok_or_else(|| err("no transport: add one of popen, ssh=, cmd=, socket=".into()))?;
        let is_ssh = matches!(spec.transport, Transport::Ssh { .. });
        let is_socket = matches!(spec.transport, Transport::Socket { .. });
        if spec.port.is_some() && !is_ssh {
            return Err(err(
                "'port' applies to ssh= only (socket= takes host:port)".into()
            ));
        }
        if spec.ssh_config.is_some() && !is_ssh {
            return Err(err("'ssh_config' applies to ssh= only".into()));
        }
        if (spec.secret_env.is_some() || spec.secret_file.is_some()) && !is_socket {
            return Err(err(
                "'secret_env' and 'secret_file' apply to socket= only".into()
            ));
        }
        if spec.installvia.is_some() && !is_socket {
            return Err(err("'installvia' applies to socket= only".into()));
        }
        if spec.installvia.is_some() && (spec.secret_env.is_some() || spec.secret_file.is_some()) {
            return Err(err(
                "installvia= makes a fresh secret: drop secret_env= and secret_file=".into(),
            ));
        }
        if spec.installvia.is_some() && spec.via.is_some() {
            return Err(err("installvia= and via= cannot be combined".into()));
        }
        Ok(spec)
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
                if n == 0 || n > MAX_MULTIPLIER {
                    return Err(err(format!(
                        "count {n} must be between 1 and {MAX_MULTIPLIER}"
                    )));
                }
                (n, rest)
            }
            _ => (1, text),
        };
        let spec = Spec::parse(rest)?;
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
    let closest = KEYS
        .iter()
        .map(|k| (strsim::damerau_levenshtein(key, k), *k))
        .min();
    match closest {
        Some((d, k)) if d <= 2 && d < key.len() => {
            format!("unknown key '{key}': did you mean '{k}'?")
        }
        _ => format!("unknown key '{key}' (known keys: {})", KEYS.join(", ")),
    }
}

fn transport_key(t: &Transport) -> &'static str {
    match t {
        Transport::Popen => "popen",
        Transport::Ssh { .. } => "ssh",
        Transport::Cmd { .. } => "cmd",
        Transport::Socket { .. } => "socket",
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
}
