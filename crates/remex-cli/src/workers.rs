//! The workers a command runs on: specs from `--tx` and `--txfile`, the
//! group they start, and the short names output is tagged with.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::PathBuf;

use remex::{Gateway, Group, Transport};

use crate::cli::WorkerArgs;

/// Runs `req` (the built-in `run` task) on `gw` in a call of its own,
/// to its outcome.
pub(crate) async fn run_on(
    gw: &Gateway,
    req: &remex::worker::CommandRequest,
) -> remex::Result<remex::worker::CommandOutcome> {
    gw.remote_call("run", req)?.receive().await
}

/// Whether no worker is named (no `--tx`, `--txfile`, `-S`,
/// `--sshloginfile`): then the jobs run on this machine.
pub(crate) fn none_named(w: &WorkerArgs) -> bool {
    w.tx.is_empty() && w.txfile.is_empty() && w.sshlogin.is_empty() && w.sshloginfile.is_empty()
}

/// The specs from `--tx`, `--txfile` (one per line; blank lines and
/// `#` comments skipped), `-S` and `--sshloginfile`; none given means one
/// popen worker per CPU.
pub(crate) fn specs(w: &WorkerArgs) -> Result<Vec<String>, String> {
    specs_and_groups(w).map(|(specs, _)| specs)
}

/// [`specs`], with the host groups of the sshlogins (`-S @g/host`).
pub(crate) fn specs_and_groups(w: &WorkerArgs) -> Result<(Vec<String>, HostGroups), String> {
    let mut specs = w.tx.to_vec();
    for f in &w.txfile {
        let text = std::fs::read_to_string(f)
            .map_err(|e| format!("cannot read --txfile {}: {e}", f.display()))?;
        specs.extend(
            text.lines()
                .map(|l| l.split('#').next().unwrap_or("").trim())
                .filter(|l| !l.is_empty())
                .map(str::to_string),
        );
    }
    if let Some(cmd) = &w.ssh {
        let is_ssh = cmd.split('/').next_back() == Some("ssh");
        if !is_ssh {
            return Err(format!(
                "--ssh {cmd:?}: remex runs ssh itself (options go in ~/.ssh/config or //ssh_config=); \
                 to reach workers through another command use --tx cmd=..."
            ));
        }
    }
    let logins = sshlogins(&w.sshlogin, &w.sshloginfile)?;
    specs.extend(logins.specs);
    if specs.is_empty() {
        let n = std::thread::available_parallelism().map_or(1, |n| n.get());
        specs.push(local_workers(n));
    }
    Ok((specs, logins.groups))
}

/// `n` workers on this machine, as GNU parallel's `:` (their jobs see
/// `$PARALLEL_SSHLOGIN` and `$PARALLEL_SSHHOST` as `:`).
pub(crate) fn local_workers(n: usize) -> String {
    format!("{n}*popen{}", login_env(":", ":"))
}

/// The environment GNU parallel gives the jobs of an sshlogin: its
/// `$PARALLEL_SSHLOGIN` (the login as written, without the count) and
/// `$PARALLEL_SSHHOST` (the host), as worker variables of the spec (what
/// `--plus`'s `{sshlogin}` and `{host}` stand for). None for a value a
/// spec cannot hold (`//` in it).
fn login_env(login: &str, host: &str) -> String {
    if login.contains("//") || host.contains("//") {
        return String::new();
    }
    format!("//env:PARALLEL_SSHLOGIN={login}//env:PARALLEL_SSHHOST={host}")
}

/// `text` without the variables [`login_env`] adds to specs: an error
/// names the spec as the user wrote it (`-S host`: `ssh=host`).
pub(crate) fn without_login_env(text: &str) -> String {
    let mut out = text.to_string();
    for name in ["//env:PARALLEL_SSHLOGIN=", "//env:PARALLEL_SSHHOST="] {
        while let Some(i) = out.find(name) {
            let rest = &out[i + name.len()..];
            // The value ends at the next setting or the spec's quote.
            let end = [rest.find("//"), rest.find('"')]
                .into_iter()
                .flatten()
                .min()
                .unwrap_or(rest.len());
            out.replace_range(i..i + name.len() + end, "");
        }
    }
    out
}

/// GNU parallel's sshlogins, as specs, with their host groups.
#[derive(Debug, Default)]
pub(crate) struct Logins {
    /// The workers' specs (`N*SPEC` for N).
    pub(crate) specs: Vec<String>,
    /// The specs of logins written without a count (`host`, not
    /// `4/host`): their job slots are -j of the host's CPUs
    /// ([`Workers::fill_hosts`]).
    pub(crate) uncounted: HashSet<String>,
    /// The host groups of each spec (without its count) that has some.
    pub(crate) groups: HostGroups,
}

/// The host groups of workers (`-S @g1+g2/host`), by their spec.
#[derive(Debug, Default, Clone)]
pub(crate) struct HostGroups(HashMap<String, BTreeSet<String>>);

impl HostGroups {
    /// Whether gateway `g` is in one of `groups`.
    pub(crate) fn serves(&self, g: &Gateway, groups: &BTreeSet<String>) -> bool {
        self.0
            .get(&g.spec().raw)
            .is_some_and(|mine| !mine.is_disjoint(groups))
    }
}

/// An sshloginfile's text, found as GNU parallel finds it: `..` is
/// ~/.parallel/sshloginfile (or $XDG_CONFIG_HOME/parallel/sshloginfile),
/// `.` /etc/parallel/sshloginfile, `-` stdin; another name is looked for
/// here, then in ~/.parallel.
pub(crate) fn read_sshloginfile(f: &std::path::Path) -> Result<String, String> {
    // ~/.parallel/NAME.
    let dot = |name: &std::path::Path| {
        std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".parallel").join(name))
    };
    let path = match f.to_str() {
        Some("-") => {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
                .map_err(|e| format!("cannot read the sshlogins on stdin (--slf -): {e}"))?;
            return Ok(text);
        }
        // ~/.parallel's, else $XDG_CONFIG_HOME's when only it is there.
        Some("..") => {
            let home = dot(std::path::Path::new("sshloginfile"));
            let xdg = std::env::var_os("XDG_CONFIG_HOME")
                .map(|x| PathBuf::from(x).join("parallel/sshloginfile"));
            match (home, xdg) {
                (Some(h), _) if h.is_file() => h,
                (_, Some(x)) if x.is_file() => x,
                (Some(h), _) => h,
                (None, _) => {
                    return Err("--slf ..: no $HOME to find ~/.parallel/sshloginfile in".into())
                }
            }
        }
        Some(".") => PathBuf::from("/etc/parallel/sshloginfile"),
        _ if !f.exists() && f.components().count() == 1 => dot(f)
            .filter(|p| p.is_file())
            .unwrap_or_else(|| f.to_path_buf()),
        _ => f.to_path_buf(),
    };
    std::fs::read_to_string(&path).map_err(|e| {
        let found = if path == f {
            String::new()
        } else {
            format!(" ({})", path.display())
        };
        format!("cannot read --sshloginfile {}{found}: {e}", f.display())
    })
}

/// GNU parallel's sshlogins (`-S`, `--sshloginfile`) as specs: `:` is
/// this machine (`popen`), `HOST` and `USER@HOST` are `ssh=`, `N/...`
/// makes N workers, and an ssh command before the host (`/usr/bin/ssh
/// host`) is dropped (remex runs ssh itself). `@g1+g2/LOGIN` puts the
/// login in host groups g1 and g2 (for `--hostgroups`); `@g1` alone
/// selects: only logins in a selected group are used.
pub(crate) fn sshlogins(items: &[String], files: &[PathBuf]) -> Result<Logins, String> {
    // GNU parallel's special names: `-S ..` is `--slf ..`, `-S -` is
    // `--slf -`.
    let mut files: Vec<PathBuf> = files.to_vec();
    let mut logins: Vec<String> = Vec::new();
    for item in items {
        match item.trim() {
            ".." | "-" => files.push(PathBuf::from(item.trim())),
            _ => logins.push(item.clone()),
        }
    }
    for f in &files {
        let text = read_sshloginfile(f)?;
        logins.extend(
            text.lines()
                .filter(|l| !l.trim_start().starts_with('#'))
                .map(str::to_string),
        );
    }
    let mut found: Vec<(String, BTreeSet<String>, bool)> = Vec::new();
    let mut selected = BTreeSet::new();
    for item in logins.iter().flat_map(|l| l.split([',', '\n'])) {
        let item = item.trim();
        if item.is_empty() {
            continue;
        }
        let whole = item;
        let (groups, item) = match item.strip_prefix('@') {
            Some(g) => match g.split_once('/') {
                Some((g, login)) => (g, login),
                None => {
                    selected.extend(g.split('+').filter(|g| !g.is_empty()).map(str::to_string));
                    continue;
                }
            },
            None => ("", item),
        };
        let groups: BTreeSet<String> = groups
            .split('+')
            .filter(|g| !g.is_empty())
            .map(str::to_string)
            .collect();
        if item.is_empty() {
            return Err(format!("sshlogin {whole:?}: no host after the host groups"));
        }
        let (count, rest, counted) = match item.split_once('/') {
            Some((n, rest)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => {
                let n: usize =
                    n.parse().ok().filter(|n| *n >= 1).ok_or_else(|| {
                        format!("sshlogin {item:?}: the count before / is from 1")
                    })?;
                (n, rest, true)
            }
            _ => (1, item, false),
        };
        // `4//usr/bin/ssh -p 2222 user@host`: the ssh command, its
        // options, then the host.
        let words: Vec<&str> = rest.split_whitespace().collect();
        let Some((host, command)) = words.split_last() else {
            return Err(format!("sshlogin {whole:?}: no host after the count"));
        };
        if host.starts_with('-') {
            return Err(format!("sshlogin {whole:?}: no host after the ssh command"));
        }
        let (named_user, at) = match host.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, *host),
        };
        if named_user.is_some_and(|u| u.contains(':')) {
            return Err(format!(
                "sshlogin {whole:?}: a password in an sshlogin (GNU parallel's sshpass) is not offered: log in with a key (ssh-copy-id)"
            ));
        }
        let ssh = SshOptions::of(command).map_err(|e| format!("sshlogin {whole:?}: {e}"))?;
        let spec = if *host == ":" {
            format!("popen{}", login_env(":", ":"))
        } else {
            // GNU parallel's $PARALLEL_SSHHOST: without the user and port.
            let (target, port, bare) = match ipv6(at) {
                Some((addr, port)) => (addr, port, addr),
                None => (at, None, at.split_once(':').map_or(at, |(h, _)| h)),
            };
            let port = match (port, ssh.port) {
                (Some(_), Some(_)) => {
                    return Err(format!(
                        "sshlogin {whole:?}: two ports (ssh's -p and the address's)"
                    ))
                }
                (Some(p), None) => {
                    Some(port_of(p).map_err(|e| format!("sshlogin {whole:?}: {e}"))?)
                }
                (None, p) => p,
            };
            // user@host wins over ssh's -l, as in ssh.
            let target = match named_user.map(str::to_string).or(ssh.user) {
                Some(u) => format!("{u}@{target}"),
                None => target.to_string(),
            };
            let mut spec = format!("ssh={target}");
            if let Some(p) = port {
                spec.push_str(&format!("//port={p}"));
            }
            if let Some(f) = &ssh.config {
                spec.push_str(&format!("//ssh_config={f}"));
            }
            spec.push_str(&login_env(rest.trim(), bare));
            spec
        };
        found.push((
            if count > 1 {
                format!("{count}*{spec}")
            } else {
                spec
            },
            groups,
            counted,
        ));
    }
    let mut out = Logins::default();
    for (spec, groups, counted) in found {
        if !selected.is_empty() && groups.is_disjoint(&selected) {
            continue;
        }
        if !counted {
            out.uncounted.insert(spec.clone());
        }
        if !groups.is_empty() {
            let bare = spec.split_once('*').map_or(spec.as_str(), |(_, s)| s);
            out.groups
                .0
                .entry(bare.to_string())
                .or_default()
                .extend(groups);
        }
        out.specs.push(spec);
    }
    if out.specs.is_empty() && !selected.is_empty() {
        return Err(format!(
            "no sshlogin is in the host groups selected ({})",
            selected.into_iter().collect::<Vec<_>>().join(", ")
        ));
    }
    Ok(out)
}

/// An IPv6 address in an sshlogin and its port, in GNU parallel's forms
/// (`[::1]:2222`, `::1p2222`, `::1#2222`, or `::1` without one); `None`
/// for a host that is no IPv6 address.
fn ipv6(host: &str) -> Option<(&str, Option<&str>)> {
    if let Some(inner) = host.strip_prefix('[') {
        let (addr, rest) = inner.split_once(']')?;
        return Some((addr, rest.strip_prefix(':')));
    }
    if host.matches(':').count() < 2 {
        return None;
    }
    match host.rfind(['p', '#']) {
        Some(i) => Some((&host[..i], Some(&host[i + 1..]))),
        None => Some((host, None)),
    }
}

/// `p` as a port (1 to 65535), or an error naming it.
fn port_of(p: &str) -> Result<u16, String> {
    p.parse::<u16>()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| format!("{p:?} is not a port"))
}

/// What the ssh command of an sshlogin (`ssh -p 2222 -l USER -F FILE`,
/// GNU parallel's form) says: remex runs ssh itself, so it takes `-p`,
/// `-l` and `-F` and refuses any other option, naming it (never dropped:
/// a port dropped would reach another sshd).
#[derive(Default)]
struct SshOptions {
    port: Option<u16>,
    user: Option<String>,
    config: Option<String>,
}

impl SshOptions {
    fn of(command: &[&str]) -> Result<SshOptions, String> {
        let mut ssh = SshOptions::default();
        let Some((program, options)) = command.split_first() else {
            return Ok(ssh);
        };
        if program.rsplit('/').next() != Some("ssh") {
            return Err(format!(
                "remex runs ssh itself, not {program:?}: to reach workers through another command use --tx cmd=..."
            ));
        }
        let mut words = options.iter();
        while let Some(w) = words.next() {
            let (flag, attached) = match w.strip_prefix('-') {
                Some(f) if f.len() > 1 && matches!(&f[..1], "p" | "l" | "F") => {
                    (&f[..1], Some(&f[1..]))
                }
                Some(f) => (f, None),
                None => ("", None),
            };
            let mut value = || {
                attached
                    .or_else(|| words.next().copied())
                    .ok_or_else(|| format!("ssh's -{flag} needs a value"))
            };
            match flag {
            "p" => ssh.port = Some(port_of(value()?).map_err(|e| format!("ssh's -p {e}"))?),
            "F" => ssh.config = Some(value()?.to_string()),
            "l" => ssh.user = Some(value()?.to_string()),
            _ => {
                return Err(format!(
                    "remex runs ssh itself and takes -p PORT, -l USER and -F FILE from an sshlogin, not {w:?}: put it in ~/.ssh/config (or a file given with -F)"
                ))
            }
        }
        }
        Ok(ssh)
    }
}

/// The logins of `w` written without a count (see [`Logins::uncounted`]).
pub(crate) fn uncounted_logins(w: &WorkerArgs) -> HashSet<String> {
    sshlogins(&w.sshlogin, &w.sshloginfile)
        .map(|l| l.uncounted)
        .unwrap_or_default()
}

/// The command that prints a host's CPUs (GNU parallel counts CPU threads
/// for -j N%).
const CPUS: &str = "nproc 2>/dev/null || getconf _NPROCESSORS_ONLN";

/// The workers of every spec that can start them (`--filter-hosts`): each
/// spec that cannot is left out, with its error on stderr; none at all is
/// an error. A `via=` spec starts once its relay has (and is left out
/// with it).
async fn filtered(specs: &[String]) -> Result<Group, String> {
    let group = Group::empty();
    let mut pending: Vec<(&str, Vec<remex::Spec>)> = Vec::new();
    for s in specs {
        let parsed = remex::Spec::parse_many(s).map_err(|e| e.to_string())?;
        pending.push((s, parsed));
    }
    let mut left_out = Vec::new();
    while !pending.is_empty() {
        let known = group.ids();
        let (ready, waiting): (Vec<_>, Vec<_>) = pending.into_iter().partition(|(_, parsed)| {
            parsed.iter().all(|p| {
                p.via
                    .as_ref()
                    .or(p.installvia.as_ref())
                    .is_none_or(|v| known.contains(v))
            })
        });
        if ready.is_empty() {
            // Their relays were left out (or never named).
            for (s, _) in waiting {
                eprintln!(
                    "remex: {s}: its relay is not among the workers that started (--filter-hosts leaves it out)"
                );
                left_out.push(s);
            }
            break;
        }
        pending = waiting;
        let started =
            futures::future::join_all(ready.iter().map(|(s, _)| group.makegateways(s))).await;
        for ((s, _), r) in ready.iter().zip(started) {
            if let Err(e) = r {
                eprintln!(
                    "remex: {} (--filter-hosts leaves it out)",
                    without_login_env(&e.to_string())
                );
                left_out.push(s);
            }
        }
    }
    if group.is_empty() {
        return Err(format!(
            "--filter-hosts: no worker could start ({} left out)",
            left_out.len()
        ));
    }
    Ok(group)
}

/// Started workers.
pub(crate) struct Workers {
    pub(crate) group: Group,
    /// Gateway id -> the name output is tagged with (more come when the
    /// --sshloginfile adds workers).
    labels: std::cell::RefCell<HashMap<String, String>>,
    /// Gateway id -> its host as GNU parallel names it ([`gnu_host`]).
    hosts: std::cell::RefCell<HashMap<String, String>>,
    /// The live dashboard, served while the workers are.
    _board: Option<remex::Dashboard>,
}

impl Workers {
    /// Starts a worker for each spec (`N*SPEC` for N), all or none unless
    /// `--filter-hosts`, and the dashboard `--dashboard` asks for (its
    /// address on stderr).
    pub(crate) async fn start(specs: &[String], args: &WorkerArgs) -> Result<Workers, String> {
        let group = if args.filter_hosts {
            filtered(specs).await?
        } else {
            Group::new(specs.iter().map(String::as_str))
                .await
                .map_err(|e| without_login_env(&e.to_string()))?
        };
        let dashboard = args.dashboard.as_deref();
        crate::interrupt::ends(&group);
        let gateways = group.gateways();
        let labels = labels(&gateways);
        let hosts = gateways
            .iter()
            .map(|g| (g.id().to_string(), gnu_host(g)))
            .collect();
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
            labels: std::cell::RefCell::new(labels),
            hosts: std::cell::RefCell::new(hosts),
            _board: board,
        })
    }

    /// The host column of a joblog for gateway `id`, as GNU parallel
    /// writes it ([`gnu_host`]).
    pub(crate) fn joblog_host(&self, id: &str) -> String {
        match self.hosts.borrow().get(id) {
            Some(h) => h.clone(),
            None => self.label(id),
        }
    }

    /// One gateway per computer, with the name GNU parallel's `--onall`
    /// tags its output with (`:` for this machine, else the host): the
    /// workers of one spec on one host (`N*SPEC`, `-S 2/host`, `-S
    /// host,host`) count once, as GNU parallel runs an sshlogin once.
    pub(crate) fn one_per_host(&self) -> Vec<(Gateway, String)> {
        let mut seen: HashSet<(String, String)> = HashSet::new();
        let mut out = Vec::new();
        for g in self.group.gateways() {
            let host = base(&g);
            if seen.insert((g.spec().raw.clone(), host)) {
                let name = gnu_host(&g);
                out.push((g, name));
            }
        }
        out
    }

    /// GNU parallel's job slots for the sshlogins written without a count
    /// (`specs`: `-S host`, a line `host` of an --sshloginfile): `jobs` (100%
    /// when not given) of the host's CPUs, asked through its worker, as
    /// that many workers there (each of one slot; the first is there
    /// already), never more than the `jobs_to_run` when known. A host
    /// whose CPUs cannot be told keeps one. Returns each such spec's count
    /// of workers.
    pub(crate) async fn fill_hosts(
        &self,
        specs: &HashSet<String>,
        jobs: Option<crate::slots::Jobs>,
        jobs_to_run: Option<u64>,
    ) -> HashMap<String, usize> {
        let most = jobs_to_run.map_or(crate::slots::MOST_PER_WORKER, |n| {
            (n as usize).clamp(1, crate::slots::MOST_PER_WORKER)
        });
        if most == 1 {
            // One job: nothing to ask.
            return HashMap::new();
        }
        let gateways = self.group.gateways();
        let asks = specs.iter().filter_map(|spec| {
            let gw = gateways.iter().find(|g| &g.spec().raw == spec)?.clone();
            Some(async move {
                let req = remex::worker::CommandRequest::new(CPUS);
                let cpus = run_on(&gw, &req)
                    .await
                    .ok()
                    .and_then(|o| {
                        String::from_utf8_lossy(&o.stdout)
                            .trim()
                            .parse::<usize>()
                            .ok()
                    })
                    .filter(|n| *n > 0);
                let want = cpus
                    .and_then(|c| jobs.unwrap_or(crate::slots::Jobs::Percent(100)).resolve(c))
                    .unwrap_or(1)
                    .clamp(1, most);
                let started = match want {
                    1 => Ok(()),
                    n => self
                        .group
                        .makegateways(&format!("{}*{spec}", n - 1))
                        .await
                        .map(|_| ())
                        .map_err(|e| without_login_env(&e.to_string())),
                };
                match started {
                    Ok(()) => (spec.clone(), want),
                    Err(e) => {
                        eprintln!(
                            "remex: {}: one job slot, not {want}: {e}",
                            self.label(gw.id())
                        );
                        (spec.clone(), 1)
                    }
                }
            })
        });
        let counts = futures::future::join_all(asks).await.into_iter().collect();
        self.note(&self.group.gateways());
        counts
    }

    /// The name of gateway `id`: its `id=` if the spec sets one, else its
    /// host (`local` for popen), numbered when several share it.
    pub(crate) fn label(&self, id: &str) -> String {
        self.labels
            .borrow()
            .get(id)
            .cloned()
            .unwrap_or_else(|| id.to_string())
    }

    /// Names the workers of `gateways` that have no name yet (added while
    /// jobs run); those named keep their names.
    pub(crate) fn note(&self, gateways: &[Gateway]) {
        let mut labels = self.labels.borrow_mut();
        for (id, label) in self::labels(gateways) {
            labels.entry(id).or_insert(label);
        }
        let mut hosts = self.hosts.borrow_mut();
        for g in gateways {
            hosts
                .entry(g.id().to_string())
                .or_insert_with(|| gnu_host(g));
        }
    }
}

/// A worker's host as GNU parallel names it in `--onall`'s tags and the
/// job log: the sshlogin as written, without its count (`root@host`,
/// `ssh -p 2222 host`; `:` for this machine), else `:` for a popen worker
/// without an `id=`, else its [`base`] name.
fn gnu_host(g: &Gateway) -> String {
    let spec = g.spec();
    if let Some((_, login)) = spec.env.iter().find(|(k, _)| k == "PARALLEL_SSHLOGIN") {
        return login.clone();
    }
    match (&spec.id, &spec.transport) {
        (None, Transport::Popen) => ":".into(),
        _ => base(g),
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
        // A transport of a later remex: its host name.
        _ => g.rinfo().host.clone(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sshlogins_become_specs() {
        let s = |v: &[&str]| {
            sshlogins(&v.iter().map(|x| x.to_string()).collect::<Vec<_>>(), &[]).map(|l| l.specs)
        };
        let env = |login: &str, host: &str| {
            format!("//env:PARALLEL_SSHLOGIN={login}//env:PARALLEL_SSHHOST={host}")
        };
        assert_eq!(s(&[":"]).unwrap(), [format!("popen{}", env(":", ":"))]);
        assert_eq!(
            s(&["a,b@c:22", "4/d\n2//usr/bin/ssh e@f"]).unwrap(),
            [
                format!("ssh=a{}", env("a", "a")),
                format!("ssh=b@c:22{}", env("b@c:22", "c")),
                format!("4*ssh=d{}", env("d", "d")),
                format!("2*ssh=e@f{}", env("/usr/bin/ssh e@f", "f")),
            ]
        );
        assert_eq!(
            s(&["/usr/bin/ssh host"]).unwrap(),
            [format!("ssh=host{}", env("/usr/bin/ssh host", "host"))]
        );
        // The ssh command's port, user and configuration file are kept
        // (GNU parallel's `ssh -p 2222 server` line); any other option is
        // refused, naming it, never dropped.
        assert_eq!(
            s(&["ssh -p 2222 -l u -F /c server", "/usr/bin/ssh -p2222 v@w"]).unwrap(),
            [
                format!(
                    "ssh=u@server//port=2222//ssh_config=/c{}",
                    env("ssh -p 2222 -l u -F /c server", "server")
                ),
                format!("ssh=v@w//port=2222{}", env("/usr/bin/ssh -p2222 v@w", "w")),
            ]
        );
        for (bad, says) in [
            ("ssh -i key host", "not \"-i\""),
            ("ssh -p x host", "-p \"x\" is not a port"),
            ("ssh -p", "no host after the ssh command"),
            ("ssh -l u -p host", "-p needs a value"),
            ("autossh host", "not \"autossh\""),
            ("u:secret@host", "a password in an sshlogin"),
        ] {
            let e = s(&[bad]).unwrap_err();
            assert!(e.contains(says) && e.contains(bad), "{bad}: {e}");
        }
        // IPv6 addresses and their ports, in GNU parallel's three forms.
        for login in ["::1p2222", "u@::1#2222", "[::1]:2222", "ssh -p 2222 [::1]"] {
            let spec = s(&[login]).unwrap().remove(0);
            let want = match login.contains("u@") {
                true => "ssh=u@::1//port=2222",
                false => "ssh=::1//port=2222",
            };
            assert!(spec.starts_with(want), "{login}: {spec}");
            assert!(spec.ends_with("PARALLEL_SSHHOST=::1"), "{login}: {spec}");
            let parsed = remex::Spec::parse(&without_login_env(&spec)).unwrap();
            assert!(
                matches!(parsed.transport, remex::Transport::Ssh { ref target } if target.ends_with("::1")),
                "{login}"
            );
        }
        assert_eq!(
            s(&["::1"]).unwrap()[0],
            format!("ssh=::1{}", env("::1", "::1"))
        );
        assert!(s(&["::1px"]).unwrap_err().contains("\"x\" is not a port"));
        assert!(s(&["ssh -p 22 ::1p2222"])
            .unwrap_err()
            .contains("two ports"));
        assert!(s(&["0/host"]).unwrap_err().contains("from 1"));
        assert!(s(&["2/"]).unwrap_err().contains("no host after the count"));
    }

    #[test]
    fn errors_name_the_spec_without_the_login_variables() {
        let spec = sshlogins(&["root@rx2".to_string()], &[]).unwrap().specs[0].clone();
        let e = format!("remex: spec {spec:?}: the host key of root@rx2 was rejected");
        assert_eq!(
            without_login_env(&e),
            "remex: spec \"ssh=root@rx2\": the host key of root@rx2 was rejected"
        );
    }

    #[test]
    fn host_groups_tag_logins_and_a_bare_group_selects() {
        let l = |v: &[&str]| sshlogins(&v.iter().map(|x| x.to_string()).collect::<Vec<_>>(), &[]);
        // The specs without their `//env:` settings.
        let bare = |v: &[String]| -> Vec<String> {
            v.iter()
                .map(|s| s.split("//").next().unwrap().to_string())
                .collect()
        };
        let g = l(&["@g1/a", "@g1+g2/2/b", "c"]).unwrap();
        assert_eq!(bare(&g.specs), ["ssh=a", "2*ssh=b", "ssh=c"]);
        let set = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<BTreeSet<_>>();
        let groups = |spec: &str| {
            g.groups
                .0
                .iter()
                .find(|(k, _)| k.split("//").next() == Some(spec))
                .map(|(_, v)| v.clone())
        };
        assert_eq!(groups("ssh=a"), Some(set(&["g1"])));
        assert_eq!(groups("ssh=b"), Some(set(&["g1", "g2"])));
        assert_eq!(groups("ssh=c"), None);
        // `-S @g1`: only the logins of g1 (a host of no selected group,
        // even a bad one, is never reached).
        let only = l(&["@g1", "@g1+g2/a", "@g2/BAD"]).unwrap();
        assert_eq!(bare(&only.specs), ["ssh=a"]);
        let none = l(&["@g3", "@g1/a"]).unwrap_err();
        assert!(none.contains("g3"), "{none}");
    }
}
