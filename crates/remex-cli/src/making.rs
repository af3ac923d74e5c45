//! How one input of `remex run` becomes a job: its stdin (`--pipe`'s
//! block, `--tee`'s all of stdin), its arguments (`--cat`/`--fifo`'s
//! file, `--hostgroups`' groups taken off) and its command line. The
//! same for a job that runs and for one `--dry-run` shows.

use std::collections::BTreeSet;

use crate::blockfile::BlockFile;
use crate::jobs::{At, Template};

/// What a job is made of, but its number and slot.
pub(crate) struct Made {
    /// Its arguments, as replacement strings and tags see them.
    pub(crate) args: Vec<String>,
    pub(crate) command: String,
    pub(crate) stdin: Option<bytes::Bytes>,
    /// `--hostgroups`: the host groups it may run in (none: anywhere).
    pub(crate) groups: BTreeSet<String>,
}

/// How inputs become jobs, from `remex run`'s options.
pub(crate) struct Maker {
    pub(crate) template: Template,
    /// `--pipe`: an input is a block, for stdin, not an argument.
    pub(crate) pipe: bool,
    /// `--tee`: every job's stdin.
    pub(crate) tee: Option<bytes::Bytes>,
    pub(crate) block_file: Option<BlockFile>,
    /// `--hostgroups`: `arg@g1+g2` runs in groups g1 and g2.
    pub(crate) hostgroups: bool,
}

impl Made {
    /// `-s N` given: GNU parallel's "Command line too long" when this
    /// job's command line and its end (a NUL) take more than `most`
    /// characters; the run then starts no more jobs and ends 255, as
    /// GNU parallel's does. The inputs are shown as GNU parallel shows
    /// them, at most 50 characters.
    pub(crate) fn too_long(&self, most: Option<usize>) -> Option<String> {
        let most = most?;
        let len = self.command.len();
        if len < most {
            return None;
        }
        let args = self.args.join(" ");
        let shown = match args.char_indices().nth(50) {
            Some((cut, _)) => format!("{}...", &args[..cut]),
            None => args,
        };
        Some(format!(
            "command line too long ({len} >= {most}, -s {most}) at input: {shown}"
        ))
    }
}

impl Maker {
    /// The job at `at` made of the input `args`.
    pub(crate) fn make(&self, at: At, mut args: Vec<String>) -> Made {
        let block = match self.pipe {
            true => Some(bytes::Bytes::from(
                args.pop()
                    .map(|b| crate::raw::bytes(&b).into_owned())
                    .unwrap_or_default(),
            )),
            false => None,
        };
        let stdin = self.tee.clone().or(block);
        // --cat, --fifo: {} is the block's file on the job's host.
        if self.block_file.is_some() {
            args = vec![crate::blockfile::ARG.to_string()];
        }
        let mut groups = BTreeSet::new();
        if self.hostgroups {
            for arg in &mut args {
                if let Some((x, g)) = arg.rsplit_once('@') {
                    groups.extend(g.split('+').filter(|g| !g.is_empty()).map(String::from));
                    *arg = x.to_string();
                }
            }
        }
        let command = match self.block_file {
            Some(_) => crate::blockfile::command(&self.template, at),
            None => self.template.render_at(at, &args),
        };
        Made {
            args,
            command,
            stdin,
            groups,
        }
    }
}
