//! The script standard library (docs/scripts.md has an example of each):
//! time, JSON and the worker's description for every script; environment,
//! files and processes unless the worker restricts its scripts.
//!
//! Everything a function returns is bounded by the script's limits: a file
//! or a process's output larger than `script_max_string` (or, when that is
//! not set, `script_max_memory`) is an error, not a partial value.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use remex_core::wire::ScriptLimits;
use rhai::{Array, Blob, Dynamic, Engine, ImmutableString, Map};

use super::convert::{rhai_err, seconds, RhaiResult};
use super::signatures::Registrar;
use crate::process::RunError;

fn io_err(what: &str, path: &str, e: std::io::Error) -> Box<rhai::EvalAltResult> {
    rhai_err(format!("{what} {path:?}: {e}"))
}

/// When the worker started (its first script engine, in practice).
pub(crate) fn started() -> Instant {
    static START: OnceLock<Instant> = OnceLock::new();
    *START.get_or_init(Instant::now)
}

/// Time, JSON and the worker's description.
pub(crate) fn register_pure(e: &mut Registrar<'_>) {
    let _ = started();
    e.register_fn("sleep", |d: Dynamic| -> RhaiResult<()> {
        let d = seconds(&d)?;
        // Ends early when the script's channel closes (a cancel).
        match super::current() {
            Some(ch) => {
                let _ = ch.waitclose_blocking(Some(d));
            }
            None => std::thread::sleep(d),
        }
        Ok(())
    });
    e.register_fn("now", || {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64())
    });
    e.register_fn("monotonic", || started().elapsed().as_secs_f64());
    e.register_fn("json_encode", |d: Dynamic| -> RhaiResult<String> {
        serde_json::to_string(&d).map_err(|e| rhai_err(format!("json_encode: {e}")))
    });
    e.register_fn("json_decode", |s: ImmutableString| -> RhaiResult<Dynamic> {
        serde_json::from_str::<Dynamic>(&s).map_err(|e| rhai_err(format!("json_decode: {e}")))
    });
    // rhai's own `to_json` and `parse_json` as they are with its
    // `metadata` feature (serde_json), which remex's rhai is built
    // without: without it `to_json` writes Rust escapes (`\u{1b}`) and
    // `parse_json` takes only an object. Not listed among the worker's
    // own functions: the standard table has them.
    Engine::register_fn(e, "to_json", |m: &mut Map| {
        serde_json::to_string(&Dynamic::from_map(m.clone())).unwrap_or_else(|_| "ERROR".into())
    });
    Engine::register_fn(
        e,
        "parse_json",
        |s: ImmutableString| -> RhaiResult<Dynamic> {
            serde_json::from_str::<Dynamic>(&s).map_err(|e| rhai_err(e.to_string()))
        },
    );
    e.register_fn("pid", || i64::from(std::process::id()));
    e.register_fn("hostname", hostname);
    e.register_fn("cwd", || -> RhaiResult<String> {
        crate::place::cwd()
            .map(|p| p.display().to_string())
            .map_err(|e| rhai_err(format!("cwd: {e}")))
    });
    e.register_fn("worker_info", || {
        let mut m = Map::new();
        m.insert("pid".into(), i64::from(std::process::id()).into());
        m.insert("host".into(), hostname().into());
        let cwd = crate::place::cwd().map(|p| p.display().to_string());
        m.insert("cwd".into(), cwd.unwrap_or_default().into());
        let exe = std::env::current_exe().map(|p| p.display().to_string());
        m.insert("executable".into(), exe.unwrap_or_default().into());
        m.insert("platform".into(), crate::serve::platform().into());
        m.insert("version".into(), remex_core::VERSION.into());
        m
    });
}

use crate::process::hostname;

/// Environment, files and processes.
pub(crate) fn register_system(e: &mut Registrar<'_>, limits: &ScriptLimits) {
    let cap = super::limits::value_cap(limits);
    e.register_fn("env", |name: ImmutableString| -> Dynamic {
        crate::place::var(name.as_str()).map_or(Dynamic::UNIT, Dynamic::from)
    });
    e.register_fn("env", || {
        crate::place::vars()
            .into_iter()
            .map(|(k, v)| (k.into(), Dynamic::from(v)))
            .collect::<Map>()
    });
    register_files(e, cap);
    register_processes(e, cap);
}

/// The most bytes one value may have, and the limit that says so.
type Cap = (u64, &'static str);

/// Reads at most `max` bytes of `path`; more is an error naming `key`.
fn read_capped(path: &str, (max, key): Cap) -> RhaiResult<Vec<u8>> {
    let f = std::fs::File::open(crate::place::path(path))
        .map_err(|e| io_err("cannot open", path, e))?;
    let mut buf = Vec::new();
    f.take(max.saturating_add(1))
        .read_to_end(&mut buf)
        .map_err(|e| io_err("cannot read", path, e))?;
    if buf.len() as u64 > max {
        return Err(rhai_err(format!(
            "{path:?} is larger than {key}={max} bytes"
        )));
    }
    Ok(buf)
}

fn bytes_of(d: &Dynamic) -> RhaiResult<Vec<u8>> {
    if d.is_string() {
        Ok(d.clone().cast::<ImmutableString>().as_bytes().to_vec())
    } else if d.is_blob() {
        Ok(d.clone().cast::<Blob>())
    } else {
        Err(rhai_err(format!(
            "expected a string or a blob, got {}",
            d.type_name()
        )))
    }
}

fn write(path: &str, data: &Dynamic, append: bool) -> RhaiResult<()> {
    let bytes = bytes_of(data)?;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .append(append)
        .truncate(!append)
        .open(crate::place::path(path))
        .map_err(|e| io_err("cannot open", path, e))?;
    f.write_all(&bytes)
        .map_err(|e| io_err("cannot write", path, e))
}

fn metadata(path: &str) -> RhaiResult<Map> {
    use std::os::unix::fs::PermissionsExt;
    let at = crate::place::path(path);
    let link = std::fs::symlink_metadata(&at).map_err(|e| io_err("no metadata for", path, e))?;
    let md = if link.file_type().is_symlink() {
        std::fs::metadata(&at).unwrap_or(link.clone())
    } else {
        link.clone()
    };
    let modified = md
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0.0, |d| d.as_secs_f64());
    let mut m = Map::new();
    m.insert("size".into(), (md.len() as i64).into());
    m.insert("is_file".into(), md.is_file().into());
    m.insert("is_dir".into(), md.is_dir().into());
    m.insert("is_symlink".into(), link.file_type().is_symlink().into());
    m.insert(
        "mode".into(),
        i64::from(md.permissions().mode() & 0o7777).into(),
    );
    m.insert("modified".into(), modified.into());
    Ok(m)
}

fn register_files(e: &mut Registrar<'_>, cap: Cap) {
    e.register_fn(
        "read_file",
        move |path: ImmutableString| -> RhaiResult<String> {
            let bytes = read_capped(&path, cap)?;
            String::from_utf8(bytes)
                .map_err(|_| rhai_err(format!("{path:?} is not UTF-8 text: use read_blob")))
        },
    );
    e.register_fn(
        "read_blob",
        move |path: ImmutableString| -> RhaiResult<Blob> { read_capped(&path, cap) },
    );
    e.register_fn("write_file", |path: ImmutableString, data: Dynamic| {
        write(&path, &data, false)
    });
    e.register_fn("append_file", |path: ImmutableString, data: Dynamic| {
        write(&path, &data, true)
    });
    e.register_fn("list_dir", |path: ImmutableString| -> RhaiResult<Array> {
        let rd = std::fs::read_dir(crate::place::path(&path))
            .map_err(|e| io_err("cannot list", &path, e))?;
        let mut names = Vec::new();
        for entry in rd {
            let entry = entry.map_err(|e| io_err("cannot list", &path, e))?;
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        Ok(names.into_iter().map(Dynamic::from).collect())
    });
    e.register_fn("exists", |path: ImmutableString| {
        std::fs::symlink_metadata(crate::place::path(&path)).is_ok()
    });
    e.register_fn("metadata", |path: ImmutableString| metadata(&path));
    e.register_fn("mkdir", |path: ImmutableString| -> RhaiResult<()> {
        std::fs::create_dir_all(crate::place::path(&path))
            .map_err(|e| io_err("cannot create", &path, e))
    });
    e.register_fn("remove_file", |path: ImmutableString| -> RhaiResult<()> {
        std::fs::remove_file(crate::place::path(&path))
            .map_err(|e| io_err("cannot remove", &path, e))
    });
    e.register_fn(
        "remove_dir_all",
        |path: ImmutableString| -> RhaiResult<()> {
            std::fs::remove_dir_all(crate::place::path(&path))
                .map_err(|e| io_err("cannot remove", &path, e))
        },
    );
    e.register_fn(
        "rename",
        |from: ImmutableString, to: ImmutableString| -> RhaiResult<()> {
            std::fs::rename(crate::place::path(&from), crate::place::path(&to))
                .map_err(|e| io_err("cannot rename", &format!("{from} -> {to}"), e))
        },
    );
    e.register_fn(
        "copy_file",
        |from: ImmutableString, to: ImmutableString| -> RhaiResult<i64> {
            std::fs::copy(crate::place::path(&from), crate::place::path(&to))
                .map(|n| n as i64)
                .map_err(|e| io_err("cannot copy", &format!("{from} -> {to}"), e))
        },
    );
    e.register_fn("join_path", |a: ImmutableString, b: ImmutableString| {
        Path::new(a.as_str()).join(b.as_str()).display().to_string()
    });
}

/// How a process is to be run: `run(cmd, #{cwd, env, stdin, timeout})`.
struct ProcessSpec {
    label: String,
    command: Command,
    stdin: Option<Vec<u8>>,
    timeout: Option<Duration>,
}

fn process_spec(cmd: Dynamic, opts: Option<Map>) -> RhaiResult<ProcessSpec> {
    let (label, mut command) = if cmd.is_string() {
        let s = cmd.cast::<ImmutableString>().to_string();
        let mut c = crate::place::program("sh");
        c.arg("-c").arg(&s);
        (s, c)
    } else if cmd.is_array() {
        let argv: Vec<String> = cmd
            .cast::<Array>()
            .into_iter()
            .map(|a| {
                a.into_immutable_string()
                    .map(|s| s.to_string())
                    .map_err(|t| rhai_err(format!("a command's words must be strings, got {t}")))
            })
            .collect::<RhaiResult<_>>()?;
        let Some((prog, args)) = argv.split_first() else {
            return Err(rhai_err("the command is an empty array"));
        };
        let mut c = crate::place::program(prog);
        c.args(args);
        (argv.join(" "), c)
    } else {
        return Err(rhai_err(format!(
            "a command is a string (run by sh -c) or an array of words, got {}",
            cmd.type_name()
        )));
    };
    let mut spec = ProcessSpec {
        label,
        command: Command::new("true"),
        stdin: None,
        timeout: None,
    };
    for (k, v) in opts.unwrap_or_default() {
        match k.as_str() {
            "cwd" => {
                command.current_dir(crate::place::path(&v.to_string()));
            }
            "env" => {
                let m = v
                    .try_cast::<Map>()
                    .ok_or_else(|| rhai_err("option env must be a map of names to strings"))?;
                for (name, value) in m {
                    command.env(name.as_str(), value.to_string());
                }
            }
            "stdin" => spec.stdin = Some(bytes_of(&v)?),
            "timeout" => spec.timeout = Some(seconds(&v)?),
            other => {
                return Err(rhai_err(format!(
                    "unknown process option '{other}' (known: cwd, env, stdin, timeout)"
                )))
            }
        }
    }
    spec.command = command;
    Ok(spec)
}

fn status_map(status: ExitStatus, timed_out: bool) -> Map {
    use std::os::unix::process::ExitStatusExt;
    let mut m = Map::new();
    m.insert(
        "status".into(),
        status.code().map_or(Dynamic::UNIT, |c| i64::from(c).into()),
    );
    m.insert(
        "signal".into(),
        status
            .signal()
            .map_or(Dynamic::UNIT, |s| i64::from(s).into()),
    );
    m.insert("success".into(), status.success().into());
    m.insert("timed_out".into(), timed_out.into());
    m
}

/// `run`: the process to its end, with its output (each stream at most
/// `max` bytes).
fn run(spec: ProcessSpec, (max, key): Cap) -> RhaiResult<Map> {
    let ProcessSpec {
        label,
        command,
        stdin,
        timeout,
    } = spec;
    let done = crate::process::run(crate::process::Run {
        label: label.clone(),
        command,
        stdin,
        stdin_from: None,
        timeout,
        max_output: max,
        termseq: Vec::new(),
        cancel: None,
        // Suspended while the controller is paused, as a task's command is.
        session: super::current().map(|c| c.connection()),
        stdout_to: None,
    })
    .map_err(|e| match e {
        RunError::Spawn(m) | RunError::Wait(m) => rhai_err(m),
        RunError::TooLarge(which) => rhai_err(format!(
            "the {which} of {label:?} is larger than {key}={max} bytes"
        )),
        RunError::Cancelled => rhai_err(format!("{label:?} was cancelled")),
    })?;
    let mut m = status_map(done.status, done.timed_out);
    m.insert(
        "stdout".into(),
        String::from_utf8_lossy(&done.stdout).into_owned().into(),
    );
    m.insert(
        "stderr".into(),
        String::from_utf8_lossy(&done.stderr).into_owned().into(),
    );
    Ok(m)
}

/// A process whose stdout lines a script iterates over (`lines(cmd)`).
#[derive(Clone)]
pub(crate) struct ProcessLines(Arc<Mutex<LinesState>>);

struct LinesState {
    label: String,
    /// Suspends the process while the controller is paused; dropped
    /// before the process is reaped.
    watch: Option<crate::process::PauseWatch>,
    child: Option<Child>,
    out: Option<BufReader<ChildStdout>>,
    max_line: Cap,
}

impl Drop for LinesState {
    fn drop(&mut self) {
        // The script stopped early: the process is not needed any more.
        self.watch = None;
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl LinesState {
    fn next_line(&mut self) -> Option<RhaiResult<Dynamic>> {
        let out = self.out.as_mut()?;
        let mut line = Vec::new();
        let n = out
            .by_ref()
            .take(self.max_line.0.saturating_add(1))
            .read_until(b'\n', &mut line);
        match n {
            Ok(0) => {
                self.out = None;
                self.watch = None;
                let mut child = self.child.take()?;
                match child.wait() {
                    Ok(s) if s.success() => None,
                    Ok(s) => Some(Err(rhai_err(format!(
                        "command {:?} failed: {s}",
                        self.label
                    )))),
                    Err(e) => Some(Err(rhai_err(format!("waiting for {:?}: {e}", self.label)))),
                }
            }
            Ok(_) if line.len() as u64 > self.max_line.0 && !line.ends_with(b"\n") => {
                self.out = None;
                Some(Err(rhai_err(format!(
                    "a line of {:?} is longer than {}={} bytes",
                    self.label, self.max_line.1, self.max_line.0
                ))))
            }
            Ok(_) => {
                if line.ends_with(b"\n") {
                    line.pop();
                }
                Some(Ok(String::from_utf8_lossy(&line).into_owned().into()))
            }
            Err(e) => {
                self.out = None;
                Some(Err(rhai_err(format!("reading {:?}: {e}", self.label))))
            }
        }
    }
}

impl IntoIterator for ProcessLines {
    type Item = RhaiResult<Dynamic>;
    type IntoIter = Box<dyn Iterator<Item = RhaiResult<Dynamic>>>;
    fn into_iter(self) -> Self::IntoIter {
        let state = self.0;
        Box::new(std::iter::from_fn(move || state.lock().next_line()))
    }
}

fn lines(spec: ProcessSpec, max_line: Cap) -> RhaiResult<ProcessLines> {
    if spec.stdin.is_some() || spec.timeout.is_some() {
        return Err(rhai_err("lines() takes the options cwd and env only"));
    }
    let ProcessSpec {
        label, mut command, ..
    } = spec;
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| rhai_err(format!("cannot run {label:?}: {e}")))?;
    let out = child.stdout.take().map(BufReader::new);
    // Suspended while the controller is paused, as run(...)'s command is.
    let watch = super::current()
        .and_then(|c| crate::process::PauseWatch::start(child.id(), c.connection()));
    Ok(ProcessLines(Arc::new(Mutex::new(LinesState {
        label,
        watch,
        child: Some(child),
        out,
        max_line,
    }))))
}

fn register_processes(e: &mut Registrar<'_>, max: Cap) {
    e.register_fn("run", move |cmd: Dynamic| {
        run(process_spec(cmd, None)?, max)
    });
    e.register_fn("run", move |cmd: Dynamic, opts: Map| {
        run(process_spec(cmd, Some(opts))?, max)
    });
    e.register_fn("lines", move |cmd: Dynamic| {
        lines(process_spec(cmd, None)?, max)
    });
    e.register_fn("lines", move |cmd: Dynamic, opts: Map| {
        lines(process_spec(cmd, Some(opts))?, max)
    });
    e.register_type_with_name::<ProcessLines>("ProcessLines")
        .register_iterator_result::<ProcessLines, Dynamic>();
}
