//! The keys of a spec, in one table: each key's name, the form of its
//! value, the transports it applies to, what it does (one line), and how
//! its value is read. [`Spec::parse`](super::Spec::parse) looks keys up
//! here, the error for an unknown key lists them, a key given with a
//! transport it does not apply to is refused by the same table, and
//! docs/specs.md is checked against it (a test below).

use std::time::Duration;

use super::{note_secret_env, parse_size, transport_key, Liveness, SlurmOptions, Spec, Transport};

/// The transports a key applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Applies {
    /// It names the transport.
    Transport,
    /// Every transport.
    Any,
    /// All but slurm (whose workers Slurm starts).
    NotSlurm,
    Ssh,
    Socket,
    Slurm,
}

impl Applies {
    fn admits(self, t: &Transport) -> bool {
        match self {
            Applies::Transport | Applies::Any => true,
            Applies::NotSlurm => !matches!(t, Transport::Slurm(_)),
            Applies::Ssh => matches!(t, Transport::Ssh { .. }),
            Applies::Socket => matches!(t, Transport::Socket { .. }),
            Applies::Slurm => matches!(t, Transport::Slurm(_)),
        }
    }

    /// The error for `key` given with a transport it does not apply to.
    fn refusal(self, key: &str) -> String {
        match self {
            Applies::NotSlurm => {
                format!("{key}= does not apply to slurm: Slurm starts the workers")
            }
            Applies::Ssh if key == "port" => {
                "'port' applies to ssh= only (socket= takes host:port)".into()
            }
            Applies::Ssh => format!("'{key}' applies to ssh= only"),
            Applies::Socket => format!("'{key}' applies to socket= only"),
            Applies::Slurm => format!("'{key}' applies to slurm only"),
            Applies::Transport | Applies::Any => format!("'{key}' is refused here"),
        }
    }
}

/// A spec being read.
pub(crate) struct Parsing {
    pub(crate) spec: Spec,
    transport: Option<Transport>,
    slurm: SlurmOptions,
    /// The keys read, in order, with where they apply.
    seen: Vec<(String, Applies)>,
}

/// A key of a spec.
pub(crate) struct Key {
    /// As written before `=` (`env:NAME` stands for every `env:` key).
    pub(crate) name: &'static str,
    /// The form of its value (empty: it takes none).
    pub(crate) value: &'static str,
    pub(crate) applies: Applies,
    /// What it does.
    pub(crate) doc: &'static str,
    /// Reads `value` of key `key` into the spec.
    read: fn(&mut Parsing, &str, Option<&str>) -> Result<(), String>,
}

/// Every key, in the order the docs list them.
pub(crate) static KEYS: &[Key] = &[
    Key {
        name: "popen",
        value: "",
        applies: Applies::Transport,
        doc: "a local worker process",
        read: |p, _, v| {
            none(v, "'popen' takes no value")?;
            p.set_transport("popen", Transport::Popen)
        },
    },
    Key {
        name: "ssh",
        value: "[USER@]HOST",
        applies: Applies::Transport,
        doc: "a worker over the system OpenSSH client (uploaded on first contact)",
        read: |p, k, v| {
            let target = need(k, v)?;
            p.set_transport(k, Transport::Ssh { target })
        },
    },
    Key {
        name: "cmd",
        value: "COMMAND",
        applies: Applies::Transport,
        doc: "any command whose stdin and stdout reach a worker (run by sh -c)",
        read: |p, k, v| {
            let command = need(k, v)?;
            p.set_transport(k, Transport::Cmd { command })
        },
    },
    Key {
        name: "socket",
        value: "HOST:PORT",
        applies: Applies::Transport,
        doc: "a listening worker, over an encrypted and authenticated session",
        read: |p, k, v| {
            let addr = need(k, v)?;
            if !addr.contains(':') {
                return Err(format!("socket address {addr:?} needs host:port"));
            }
            p.set_transport(k, Transport::Socket { addr })
        },
    },
    Key {
        name: "slurm",
        value: "",
        applies: Applies::Transport,
        doc: "workers on Slurm, from one allocation (docs/clusters.md)",
        read: |p, _, v| {
            none(
                v,
                "'slurm' takes no value (slurm//ntasks=N//partition=P...)",
            )?;
            p.set_transport("slurm", Transport::Slurm(Box::default()))
        },
    },
    Key {
        name: "ntasks",
        value: "N",
        applies: Applies::Slurm,
        doc: "N workers, one Slurm task each (default 1)",
        read: |p, k, v| {
            p.slurm.ntasks = count(k, v)?;
            Ok(())
        },
    },
    Key {
        name: "nodes",
        value: "N",
        applies: Applies::Slurm,
        doc: "--nodes for the allocation and the step",
        read: |p, k, v| slurm_word(k, v).map(|w| p.slurm.nodes = Some(w)),
    },
    Key {
        name: "cpus_per_task",
        value: "N",
        applies: Applies::Slurm,
        doc: "--cpus-per-task for the allocation and the step",
        read: |p, k, v| {
            p.slurm.cpus_per_task = Some(count(k, v)?);
            Ok(())
        },
    },
    Key {
        name: "partition",
        value: "NAME",
        applies: Applies::Slurm,
        doc: "--partition of a new allocation",
        read: |p, k, v| slurm_word(k, v).map(|w| p.slurm.partition = Some(w)),
    },
    Key {
        name: "time",
        value: "LIMIT",
        applies: Applies::Slurm,
        doc: "--time of a new allocation",
        read: |p, k, v| slurm_word(k, v).map(|w| p.slurm.time = Some(w)),
    },
    Key {
        name: "account",
        value: "NAME",
        applies: Applies::Slurm,
        doc: "--account of a new allocation",
        read: |p, k, v| slurm_word(k, v).map(|w| p.slurm.account = Some(w)),
    },
    Key {
        name: "job_name",
        value: "NAME",
        applies: Applies::Slurm,
        doc: "--job-name of a new allocation (default remex)",
        read: |p, k, v| slurm_word(k, v).map(|w| p.slurm.job_name = Some(w)),
    },
    Key {
        name: "srun_args",
        value: "ARGS",
        applies: Applies::Slurm,
        doc: "more srun arguments (split as a shell would)",
        read: |p, k, v| words(k, v).map(|w| p.slurm.srun_args = w),
    },
    Key {
        name: "salloc_args",
        value: "ARGS",
        applies: Applies::Slurm,
        doc: "more salloc arguments (split as a shell would)",
        read: |p, k, v| words(k, v).map(|w| p.slurm.salloc_args = w),
    },
    Key {
        name: "alloc_timeout",
        value: "SECS",
        applies: Applies::Slurm,
        doc: "how long a new allocation may stay pending",
        read: |p, k, v| {
            p.slurm.alloc_timeout = Some(seconds(k, v)?);
            Ok(())
        },
    },
    Key {
        name: "listen",
        value: "ADDR",
        applies: Applies::Slurm,
        doc: "where the workers dial back (default: this host's address the nodes reach)",
        read: |p, k, v| slurm_word(k, v).map(|w| p.slurm.listen = Some(w)),
    },
    Key {
        name: "stdio",
        value: "",
        applies: Applies::Slurm,
        doc: "the workers talk over srun's stdio instead of dialing back",
        read: |p, _, v| {
            none(v, "'stdio' takes no value")?;
            p.slurm.stdio = true;
            Ok(())
        },
    },
    Key {
        name: "via",
        value: "ID",
        applies: Applies::NotSlurm,
        doc: "started by gateway ID's worker, its frames relayed (in a Group)",
        read: |p, k, v| need(k, v).map(|x| p.spec.via = Some(x)),
    },
    Key {
        name: "id",
        value: "ID",
        applies: Applies::Any,
        doc: "the gateway's id (default gwN)",
        read: |p, k, v| need(k, v).map(|x| p.spec.id = Some(x)),
    },
    Key {
        name: "chdir",
        value: "DIR",
        applies: Applies::Any,
        doc: "the worker's directory (made if missing)",
        read: |p, k, v| need(k, v).map(|x| p.spec.chdir = Some(x)),
    },
    Key {
        name: "env:NAME",
        value: "VALUE",
        applies: Applies::Any,
        doc: "a variable of the worker's environment (an empty value too)",
        read: |p, k, v| {
            let name = &k[4..];
            if name.is_empty() || name.contains('\0') {
                return Err(format!("'{k}' needs a variable name (env:NAME=value)"));
            }
            let v = v.ok_or_else(|| format!("key '{k}' needs a value ({k}=...)"))?;
            p.spec.env.push((name.to_string(), v.to_string()));
            Ok(())
        },
    },
    Key {
        name: "nice",
        value: "N",
        applies: Applies::Any,
        doc: "the worker's niceness",
        read: |p, k, v| {
            let v = need(k, v)?;
            p.spec.nice = Some(
                v.parse()
                    .map_err(|_| format!("nice={v:?} is not an integer"))?,
            );
            Ok(())
        },
    },
    Key {
        name: "worker",
        value: "PATH",
        applies: Applies::Any,
        doc: "the worker binary to start (self: the running program)",
        read: |p, k, v| need(k, v).map(|x| p.spec.worker = Some(x)),
    },
    Key {
        name: "port",
        value: "N",
        applies: Applies::Ssh,
        doc: "the ssh port",
        read: |p, k, v| {
            let v = need(k, v)?;
            p.spec.port = Some(
                v.parse()
                    .map_err(|_| format!("port={v:?} is not a port number"))?,
            );
            Ok(())
        },
    },
    Key {
        name: "ssh_config",
        value: "PATH",
        applies: Applies::Ssh,
        doc: "an ssh client configuration file (ssh -F)",
        read: |p, k, v| need(k, v).map(|x| p.spec.ssh_config = Some(x)),
    },
    Key {
        name: "secret_env",
        value: "NAME",
        applies: Applies::Socket,
        doc: "the variable holding the session's secret (scrubbed from every child)",
        read: |p, k, v| {
            let name = need(k, v)?;
            note_secret_env(&name);
            p.spec.secret_env = Some(name);
            Ok(())
        },
    },
    Key {
        name: "secret_file",
        value: "PATH",
        applies: Applies::Socket,
        doc: "the file holding the session's secret (mode 600)",
        read: |p, k, v| need(k, v).map(|x| p.spec.secret_file = Some(x)),
    },
    Key {
        name: "installvia",
        value: "ID",
        applies: Applies::Socket,
        doc: "gateway ID's worker starts the listener with a fresh secret (in a Group)",
        read: |p, k, v| need(k, v).map(|x| p.spec.installvia = Some(x)),
    },
    Key {
        name: "liveness",
        value: "SECS",
        applies: Applies::Any,
        doc: "a worker silent this long is lost (it is probed; liveness=off: never)",
        read: |p, k, v| {
            let v = need(k, v)?;
            p.spec.liveness = if v == "off" {
                Liveness::Off
            } else {
                let secs: f64 = v
                    .parse()
                    .ok()
                    .filter(|s: &f64| s.is_finite() && *s >= 0.05 && *s <= 86_400.0)
                    .ok_or_else(|| {
                        format!("liveness={v:?} must be seconds between 0.05 and 86400, or off")
                    })?;
                Liveness::Bound(Duration::from_secs_f64(secs))
            };
            Ok(())
        },
    },
    Key {
        name: "start_timeout",
        value: "SECS",
        applies: Applies::Any,
        doc: "how long the worker has to answer the handshake",
        read: |p, k, v| {
            p.spec.start_timeout = Some(seconds(k, v)?);
            Ok(())
        },
    },
    Key {
        name: "script_max_operations",
        value: "N",
        applies: Applies::Any,
        doc: "operations a script may run (docs/scripts.md)",
        read: |p, k, v| whole(k, v).map(|n| p.spec.script_limits.max_operations = Some(n)),
    },
    Key {
        name: "script_max_string",
        value: "SIZE",
        applies: Applies::Any,
        doc: "the longest string a script may build",
        read: |p, k, v| size(k, v).map(|n| p.spec.script_limits.max_string_size = Some(n)),
    },
    Key {
        name: "script_max_array",
        value: "N",
        applies: Applies::Any,
        doc: "the longest array a script may build",
        read: |p, k, v| whole(k, v).map(|n| p.spec.script_limits.max_array_size = Some(n)),
    },
    Key {
        name: "script_max_map",
        value: "N",
        applies: Applies::Any,
        doc: "the largest map a script may build",
        read: |p, k, v| whole(k, v).map(|n| p.spec.script_limits.max_map_size = Some(n)),
    },
    Key {
        name: "script_max_call_levels",
        value: "N",
        applies: Applies::Any,
        doc: "how deep a script's calls may nest",
        read: |p, k, v| whole(k, v).map(|n| p.spec.script_limits.max_call_levels = Some(n)),
    },
    Key {
        name: "script_max_memory",
        value: "SIZE",
        applies: Applies::Any,
        doc: "the memory a script's values may hold",
        read: |p, k, v| size(k, v).map(|n| p.spec.script_limits.max_memory = Some(n)),
    },
];

/// The entry of `key` (every `env:` key is `env:NAME`'s).
pub(crate) fn find(key: &str) -> Option<&'static Key> {
    if key.starts_with("env:") {
        return KEYS.iter().find(|k| k.name == "env:NAME");
    }
    KEYS.iter().find(|k| k.name == key)
}

impl Parsing {
    pub(crate) fn new(text: &str) -> Parsing {
        Parsing {
            spec: Spec {
                raw: text.to_string(),
                transport: Transport::Popen,
                via: None,
                id: None,
                chdir: None,
                env: Vec::new(),
                nice: None,
                start_timeout: None,
                liveness: Liveness::Default,
                worker: None,
                port: None,
                ssh_config: None,
                secret_env: None,
                secret_file: None,
                installvia: None,
                script_limits: Default::default(),
            },
            transport: None,
            slurm: SlurmOptions {
                ntasks: 1,
                ..SlurmOptions::default()
            },
            seen: Vec::new(),
        }
    }

    /// Reads one element, `key` or `key=value`.
    pub(crate) fn read(&mut self, key: &str, value: Option<&str>) -> Result<(), String> {
        let k = find(key).ok_or_else(|| super::unknown_key(key))?;
        (k.read)(self, key, value)?;
        self.seen.push((key.to_string(), k.applies));
        Ok(())
    }

    fn set_transport(&mut self, key: &str, new: Transport) -> Result<(), String> {
        if let Some(old) = &self.transport {
            return Err(format!(
                "more than one transport: '{}' and '{key}'",
                transport_key(old)
            ));
        }
        self.transport = Some(new);
        Ok(())
    }

    /// The spec, once every element is read: a transport, every key one
    /// that applies to it, and the keys that exclude each other apart.
    pub(crate) fn finish(self) -> Result<Spec, String> {
        let Parsing {
            mut spec,
            transport,
            slurm,
            seen,
        } = self;
        spec.transport =
            transport.ok_or("no transport: add one of popen, ssh=, cmd=, socket=, slurm")?;
        if let Some((key, applies)) = seen.iter().find(|(_, a)| !a.admits(&spec.transport)) {
            return Err(applies.refusal(key));
        }
        if let Transport::Slurm(options) = &mut spec.transport {
            if slurm.stdio && slurm.listen.is_some() {
                return Err(
                    "'listen' is where workers dial back, and 'stdio' workers do not: drop one"
                        .into(),
                );
            }
            **options = slurm;
        }
        if spec.installvia.is_some() {
            if spec.secret_env.is_some() || spec.secret_file.is_some() {
                return Err(
                    "installvia= makes a fresh secret: drop secret_env= and secret_file=".into(),
                );
            }
            if spec.via.is_some() {
                return Err("installvia= and via= cannot be combined".into());
            }
        }
        Ok(spec)
    }
}

/// The value of `key`, which needs one.
fn need(key: &str, v: Option<&str>) -> Result<String, String> {
    match v {
        None => Err(format!("key '{key}' needs a value ({key}=...)")),
        Some("") => Err(format!("key '{key}' has an empty value")),
        Some(v) => Ok(v.to_string()),
    }
}

/// A key that takes no value (`key` or `key=`).
fn none(v: Option<&str>, refusal: &str) -> Result<(), String> {
    match v {
        Some(v) if !v.is_empty() => Err(refusal.into()),
        _ => Ok(()),
    }
}

/// A count from 1 to [`MAX_MULTIPLIER`].
fn count(key: &str, v: Option<&str>) -> Result<u32, String> {
    let v = need(key, v)?;
    v.parse::<u32>()
        .ok()
        .filter(|n| *n >= 1 && *n as usize <= Spec::MAX_MULTIPLIER)
        .ok_or_else(|| {
            format!(
                "{key}={v:?} must be a count from 1 to {}",
                Spec::MAX_MULTIPLIER
            )
        })
}

/// A whole number.
fn whole(key: &str, v: Option<&str>) -> Result<u64, String> {
    let v = need(key, v)?;
    v.parse::<u64>()
        .map_err(|_| format!("{key}={v:?} is not a count (a whole number)"))
}

/// A size: bytes, or with K, M, G.
fn size(key: &str, v: Option<&str>) -> Result<u64, String> {
    let v = need(key, v)?;
    parse_size(&v).ok_or_else(|| format!("{key}={v:?} is not a size (bytes, or with K, M, G: 16M)"))
}

/// Seconds, more than 0 and at most a week.
fn seconds(key: &str, v: Option<&str>) -> Result<Duration, String> {
    let v = need(key, v)?;
    v.parse()
        .ok()
        .filter(|s: &f64| s.is_finite() && *s > 0.0 && *s <= 7.0 * 86_400.0)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| format!("{key}={v:?} must be seconds, more than 0 and at most a week"))
}

/// A word for one of srun's or salloc's options: no leading '-', no
/// spaces (which would smuggle in other options).
fn slurm_word(key: &str, v: Option<&str>) -> Result<String, String> {
    let v = need(key, v)?;
    if v.starts_with('-') || v.chars().any(char::is_whitespace) {
        return Err(format!(
            "{key}={v:?}: a value may not start with '-' nor hold spaces (srun_args= takes free arguments)"
        ));
    }
    Ok(v)
}

/// Arguments split as a shell would.
fn words(key: &str, v: Option<&str>) -> Result<Vec<String>, String> {
    let v = need(key, v)?;
    shlex::split(&v)
        .ok_or_else(|| format!("{key}={v:?}: unbalanced quotes or a trailing backslash"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// docs/specs.md lists every key of the table, with its value's form,
    /// where it applies and its line, and no other.
    #[test]
    fn the_docs_list_every_key_as_the_table_says() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/specs.md");
        let Ok(doc) = std::fs::read_to_string(path) else {
            // Outside the repository (a packaged crate): nothing to check.
            return;
        };
        let rows: Vec<&str> = doc.lines().filter(|l| l.starts_with("| `")).collect();
        for k in KEYS {
            let row = table_row(k);
            assert!(
                rows.contains(&row.as_str()),
                "docs/specs.md lacks the row\n{row}\n(make it from spec/keys.rs)"
            );
        }
        assert_eq!(
            rows.len(),
            KEYS.len(),
            "docs/specs.md has rows for keys the table lacks"
        );
    }

    fn table_row(k: &Key) -> String {
        let written = if k.value.is_empty() {
            k.name.to_string()
        } else {
            format!("{}={}", k.name, k.value)
        };
        let applies = match k.applies {
            Applies::Transport => "(the transport)",
            Applies::Any => "all",
            Applies::NotSlurm => "all but slurm",
            Applies::Ssh => "ssh",
            Applies::Socket => "socket",
            Applies::Slurm => "slurm",
        };
        format!("| `{written}` | {applies} | {} |", k.doc)
    }

    #[test]
    fn every_key_is_found_and_env_keys_by_their_prefix() {
        for k in KEYS {
            if k.name != "env:NAME" {
                assert!(std::ptr::eq(find(k.name).expect("found"), k));
            }
        }
        assert_eq!(find("env:LANG").map(|k| k.name), Some("env:NAME"));
        assert!(find("nosuch").is_none());
    }
}
