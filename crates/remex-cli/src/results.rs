//! `--results DIR`, as GNU parallel's: each job's stdout, stderr and
//! number in files under DIR, in a directory named after its arguments
//! (`DIR/1/A/2/C/stdout`: source number, or the `--header` name, then
//! the value, for each argument; in a value `\` `\t` `\0` `/` are
//! written `\\` `\t` `\0` `\_`). The output is not printed (GNU
//! parallel 20221122 prints none either).

use std::path::{Path, PathBuf};

/// Where the files go.
pub(crate) struct Results {
    dir: PathBuf,
    /// Argument position (from 1) -> its name (`--header`).
    names: Vec<(String, usize)>,
}

/// A value as one directory name.
fn escaped(v: &str) -> String {
    v.replace('\\', r"\\")
        .replace('\t', r"\t")
        .replace('\0', r"\0")
        .replace('/', r"\_")
}

impl Results {
    fn new(dir: &Path, names: &[(String, usize)]) -> Results {
        Results {
            dir: dir.to_path_buf(),
            names: names.to_vec(),
        }
    }

    /// Files under `dir`, made now if missing: one that cannot be made is
    /// an error before any job runs (GNU parallel stops there too).
    pub(crate) fn create(dir: &Path, names: &[(String, usize)]) -> Result<Results, String> {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("--results: cannot make {}: {e}", dir.display()))?;
        Ok(Results::new(dir, names))
    }

    /// The directory of a job with arguments `args`.
    pub(crate) fn dir_of(&self, args: &[String]) -> PathBuf {
        let mut d = self.dir.clone();
        for (i, a) in args.iter().enumerate() {
            let pos = i + 1;
            let name = self
                .names
                .iter()
                .find(|(_, p)| *p == pos)
                .map_or_else(|| pos.to_string(), |(n, _)| escaped(n));
            d.push(name);
            d.push(escaped(a));
        }
        d
    }

    /// Writes a job's files: `seq` (its number), `stdout`, `stderr`.
    pub(crate) fn write(
        &self,
        seq: u64,
        args: &[String],
        stdout: &[u8],
        stderr: &[u8],
    ) -> Result<(), String> {
        let d = self.dir_of(args);
        let say =
            |e: std::io::Error, p: &Path| format!("--results: cannot write {}: {e}", p.display());
        std::fs::create_dir_all(&d).map_err(|e| say(e, &d))?;
        for (name, body) in [
            ("seq", seq.to_string().as_bytes().to_vec()),
            ("stdout", stdout.to_vec()),
            ("stderr", stderr.to_vec()),
        ] {
            let p = d.join(name);
            std::fs::write(&p, body).map_err(|e| say(e, &p))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directories_are_named_as_gnu_parallel_names_them() {
        let r = Results::new(Path::new("out"), &[]);
        assert_eq!(
            r.dir_of(&["A".into(), "C".into()]),
            Path::new("out/1/A/2/C")
        );
        assert_eq!(
            r.dir_of(&["a/b\\c\td".into()]),
            Path::new(r"out/1/a\_b\\c\td")
        );
        let r = Results::new(Path::new("out"), &[("f1".into(), 1), ("f2".into(), 2)]);
        assert_eq!(
            r.dir_of(&["A".into(), "C".into()]),
            Path::new("out/f1/A/f2/C")
        );
    }
}
