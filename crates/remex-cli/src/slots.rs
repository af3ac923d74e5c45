//! `-j`: how many jobs run at once, in GNU parallel's forms (`N`, `N%`,
//! `+N`, `-N`, `0`). GNU parallel counts job slots per machine; remex
//! does the same for this machine when no `--tx` is given (the default
//! workers are one local worker per slot), and per worker otherwise.

/// The most slots `-j` makes on this machine (`-j 0`, `-j 5000%`): GNU
/// parallel stops near 250 for want of file handles; remex at 256 workers.
pub(crate) const MOST_LOCAL: usize = 256;

/// The most jobs at once on one `--tx` worker.
pub(crate) const MOST_PER_WORKER: usize = 1024;

/// `-j`'s value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Jobs {
    /// `N` (`0`: as many as possible).
    Count(usize),
    /// `N%` of the CPUs.
    Percent(usize),
    /// `+N`: the CPUs and N more.
    More(usize),
    /// `-N`: the CPUs less N (at least 1).
    Fewer(usize),
}

impl Jobs {
    /// Parses `-j`'s value.
    pub(crate) fn parse(s: &str) -> Result<Jobs, String> {
        let num = |t: &str| {
            t.parse::<usize>().map_err(|_| {
                // GNU parallel reads -j from a file it names (a procfile,
                // read again as jobs end); remex does not.
                let file = if std::path::Path::new(s).is_file() {
                    " (a file holding the number, GNU parallel's procfile, is not read: give -j \"$(cat FILE)\")"
                } else {
                    ""
                };
                format!("-j takes N, N%, +N, -N or 0 (GNU parallel's forms), not {s:?}{file}")
            })
        };
        if let Some(p) = s.strip_suffix('%') {
            return Ok(Jobs::Percent(num(p)?));
        }
        if let Some(n) = s.strip_prefix('+') {
            return Ok(Jobs::More(num(n)?));
        }
        if let Some(n) = s.strip_prefix('-') {
            return Ok(Jobs::Fewer(num(n)?));
        }
        Ok(Jobs::Count(num(s)?))
    }

    /// The number of slots for `cpus` CPUs; `None` for "as many as
    /// possible" (`0`).
    pub(crate) fn resolve(self, cpus: usize) -> Option<usize> {
        match self {
            Jobs::Count(0) => None,
            Jobs::Count(n) => Some(n),
            Jobs::Percent(p) => Some((cpus * p / 100).max(1)),
            Jobs::More(n) => Some(cpus + n),
            Jobs::Fewer(n) => Some(cpus.saturating_sub(n).max(1)),
        }
    }
}

/// The CPUs of this machine.
pub(crate) fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Slots on this machine for `jobs` (default 100%), with `inputs` jobs
/// to run when known: `-j 0` is one per job, up to [`MOST_LOCAL`].
pub(crate) fn local(jobs: Option<Jobs>, inputs: Option<u64>) -> usize {
    let want = jobs
        .unwrap_or(Jobs::Percent(100))
        .resolve(cpus())
        .unwrap_or_else(|| inputs.map_or(MOST_LOCAL, |n| n as usize));
    want.clamp(1, MOST_LOCAL)
}

/// Jobs at once on each `--tx` worker for `jobs` (default 1): a count,
/// or a share of this machine's CPUs; `-j 0` is refused there.
pub(crate) fn per_worker(jobs: Option<Jobs>) -> Result<usize, String> {
    match jobs.map(|j| j.resolve(cpus())) {
        None => Ok(1),
        Some(None) => Err(
            "-j 0 (as many as possible) is for this machine's workers; with --tx give a number"
                .into(),
        ),
        Some(Some(n)) if n > MOST_PER_WORKER => Err(format!(
            "-j {n}: at most {MOST_PER_WORKER} jobs at once on one worker"
        )),
        Some(Some(n)) => Ok(n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gnu_parallels_forms_of_j() {
        assert_eq!(Jobs::parse("4").unwrap().resolve(2), Some(4));
        assert_eq!(Jobs::parse("0").unwrap().resolve(2), None);
        assert_eq!(Jobs::parse("200%").unwrap().resolve(2), Some(4));
        assert_eq!(Jobs::parse("50%").unwrap().resolve(1), Some(1));
        assert_eq!(Jobs::parse("+3").unwrap().resolve(2), Some(5));
        assert_eq!(Jobs::parse("-1").unwrap().resolve(2), Some(1));
        assert_eq!(Jobs::parse("-5").unwrap().resolve(2), Some(1));
        for bad in ["", "x", "1.5", "%", "+", "--2"] {
            let e = Jobs::parse(bad).unwrap_err();
            assert!(e.contains("-j takes"), "{bad:?}: {e}");
        }
        assert_eq!(local(Some(Jobs::Count(0)), Some(8)), 8);
        assert_eq!(local(Some(Jobs::Count(0)), None), MOST_LOCAL);
        assert_eq!(local(Some(Jobs::Count(9999)), None), MOST_LOCAL);
        assert_eq!(local(None, None), cpus());
        assert_eq!(per_worker(None), Ok(1));
        assert!(per_worker(Some(Jobs::Count(0))).is_err());
        assert!(per_worker(Some(Jobs::Count(5000))).is_err());
        // A file, as GNU parallel's procfile: named as not read.
        let file = std::env::temp_dir().join(format!("remex-procfile-{}", std::process::id()));
        std::fs::write(&file, "2\n").unwrap();
        let e = Jobs::parse(file.to_str().unwrap()).unwrap_err();
        assert!(e.contains("procfile, is not read"), "{e}");
        std::fs::remove_file(file).unwrap();
    }
}
