//! GNU parallel's `--cat` and `--fifo`: a `--pipe` job's block reaches
//! its command as a file (`{}`, the job's `$PARALLEL_TMP`) on the host
//! where the job runs, not on its stdin.
//!
//! As in GNU parallel, the work is done by a few lines of shell around
//! the command, run by the worker: the file's name is made there
//! (`mktemp` in `$TMPDIR`, else /tmp), the block written into it (`--cat`)
//! or through it (`--fifo`, a named pipe the command reads while the
//! block flows in), and the file removed after the command, whose exit
//! status is the job's. So it works on every kind of worker, and the
//! file never exists on this machine unless the job runs here.

use crate::jobs::{At, Template};

/// What stands for the job's file in its command and in its tag, as in
/// GNU parallel (`{}`, `{.}`, `{/}`... are this text, filled in by the
/// job's shell; `--tag` shows it as it is).
pub(crate) const ARG: &str = "$PARALLEL_TMP";

/// A word that stands for [`ARG`] while a command line is made: the
/// job's shell must see `$PARALLEL_TMP` unquoted, and quoting leaves a
/// word of letters and digits as it is. Made of this process's id and
/// start, so that no command holds it by chance.
fn stand_in() -> &'static str {
    static WORD: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    WORD.get_or_init(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        format!("REMEXBLOCKFILE{}X{nanos}", std::process::id())
    })
}

/// The command line of job `at`, `{}` standing for the job's file
/// (`$PARALLEL_TMP`, for its shell to fill in).
pub(crate) fn command(template: &Template, at: At) -> String {
    template
        .render_at(at, &[stand_in().to_string()])
        .replace(stand_in(), ARG)
}

/// Which of the two.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BlockFile {
    /// `--cat`: the block is written to the file before the command runs.
    Cat,
    /// `--fifo`: the file is a named pipe; the block flows into it while
    /// the command reads it.
    Fifo,
}

/// The shells that read the wrapper as it is written (POSIX sh's
/// syntax); under any other (csh, fish, rc...) it runs in sh and starts
/// the command in the jobs' shell.
const BOURNE: &[&str] = &[
    "sh", "ash", "bash", "dash", "ksh", "ksh93", "lksh", "mksh", "pdksh", "posh", "rbash", "yash",
    "zsh", "rzsh",
];

impl BlockFile {
    /// `--cat`, `--fifo` or neither.
    pub(crate) fn of(cat: bool, fifo: bool) -> Option<BlockFile> {
        match (cat, fifo) {
            (true, _) => Some(BlockFile::Cat),
            (_, true) => Some(BlockFile::Fifo),
            _ => None,
        }
    }

    /// `command` (written for `shell`, `None` for sh) inside the shell
    /// lines that make the file, and the shell that runs them: the jobs'
    /// own when it reads sh's syntax (so that what it was given, such as
    /// bash's exported functions, reaches the command), else sh.
    pub(crate) fn wrap(self, command: &str, shell: Option<&str>) -> (String, Option<String>) {
        // PARALLEL_SHELL may name the shell by its path (/bin/bash).
        let bourne = shell.is_none_or(|s| BOURNE.contains(&s.rsplit('/').next().unwrap_or(s)));
        // Its own process: an `exit` in the command ends it, not the
        // lines that remove the file.
        let run = match shell.filter(|_| !bourne) {
            None => format!("(\n{command}\n)"),
            Some(s) => format!(
                "{} -c {}",
                crate::jobs::Quoting::Sh.quote(s),
                crate::jobs::Quoting::Sh.quote(command)
            ),
        };
        // A signal that ends the job (--timeout, --halt now, Ctrl-C: the
        // worker signals the job's processes) still removes the file.
        let head = "export PARALLEL_TMP\n\
                    trap 'rm -f \"$PARALLEL_TMP\"; exit 129' HUP\n\
                    trap 'rm -f \"$PARALLEL_TMP\"; exit 130' INT\n\
                    trap 'rm -f \"$PARALLEL_TMP\"; exit 143' TERM\n";
        // The command's status is the job's, once the file is gone. The
        // command writes to stderr, the lines around it do not once the
        // file is made: a shell that outlives a command killed by a
        // signal (it waits in order to remove the file) says so there
        // ("Terminated"), where the job's own stderr does not want it.
        let quiet = "exec 4>&2 2>/dev/null\n";
        let end = "rm -f \"$PARALLEL_TMP\"\nexit $_remex_status";
        let script = match self {
            BlockFile::Cat => format!(
                "PARALLEL_TMP=$(mktemp \"${{TMPDIR:-/tmp}}/parXXXXXX\") || exit 255\n\
                 {head}cat > \"$PARALLEL_TMP\"\n\
                 {quiet}{run} < /dev/null 2>&4 4>&-\n_remex_status=$?\n{end}"
            ),
            // The block flows in from a process of its own (stdin kept as
            // fd 3 for it: an `&` list's stdin is /dev/null). One that
            // no reader opened is ended after the command, where GNU
            // parallel's would wait for a reader for ever.
            BlockFile::Fifo => format!(
                "PARALLEL_TMP=$(mktemp -u \"${{TMPDIR:-/tmp}}/parXXXXXX\") && \
                 mkfifo -m 600 \"$PARALLEL_TMP\" || exit 255\n\
                 {head}exec 3<&0\n\
                 cat <&3 > \"$PARALLEL_TMP\" 3<&- &\n\
                 _remex_cat=$!\n\
                 {quiet}{run} < /dev/null 2>&4 3<&- 4>&-\n\
                 _remex_status=$?\n\
                 kill $_remex_cat\n\
                 wait $_remex_cat\n{end}"
            ),
        };
        (script, shell.filter(|_| bourne).map(String::from))
    }
}
