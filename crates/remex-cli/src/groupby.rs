//! GNU parallel's `--group-by COL` with `--pipe`: consecutive lines whose
//! column COL holds the same value make one record, so that a block (and
//! with `-N1` a job) gets whole groups. COL is a number (from 1) or, the
//! input's first line naming the columns, a name; columns are split at
//! `--colsep` (a regular expression), else at a tab, as GNU parallel
//! splits them.

use regex::bytes::Regex;

/// Whether `s` names a column (GNU parallel's test, for `--group-by`,
/// `--shard` and `--bin`): a letter or `_`, then letters, digits, `_`.
pub(crate) fn is_column_name(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// How `--group-by` finds a line's value.
#[derive(Debug, Clone)]
pub(crate) struct GroupBy {
    column: Column,
    sep: Regex,
}

#[derive(Debug, Clone)]
enum Column {
    /// From 1.
    Number(usize),
    /// Found in the header line.
    Name(String),
}

impl GroupBy {
    /// `--group-by val`, columns split at `colsep` (a tab when none).
    pub(crate) fn new(val: &str, colsep: Option<&str>) -> Result<GroupBy, String> {
        let perl = || {
            format!(
                "--group-by {val:?}: give a column number (from 1) or name; Perl expressions are GNU parallel's, not offered (docs/cli.md)"
            )
        };
        let column = match val.parse::<usize>() {
            Ok(0) => return Err(format!("--group-by {val:?}: columns count from 1")),
            Ok(n) => Column::Number(n),
            Err(_) if is_column_name(val) => Column::Name(val.to_string()),
            Err(_) => return Err(perl()),
        };
        let sep = colsep.unwrap_or("\t");
        let sep = Regex::new(sep)
            .map_err(|e| format!("--colsep {sep:?} is not a regular expression: {e}"))?;
        Ok(GroupBy { column, sep })
    }

    /// Whether the column is named, so that the input's first line (which
    /// names the columns) goes before every block, as `--header :` does.
    pub(crate) fn named(&self) -> bool {
        matches!(self.column, Column::Name(_))
    }

    /// The column named in `header` (the input's first line), by number
    /// from now on; an error naming it when the header lacks it.
    pub(crate) fn resolve(&mut self, header: &[u8]) -> Result<(), String> {
        let Column::Name(name) = &self.column else {
            return Ok(());
        };
        let line = header.split(|b| *b == b'\n').next().unwrap_or_default();
        match self.sep.split(line).position(|n| n == name.as_bytes()) {
            Some(i) => {
                self.column = Column::Number(i + 1);
                Ok(())
            }
            None => Err(format!(
                "--group-by {name}: no column of that name in the first line {:?}",
                String::from_utf8_lossy(line)
            )),
        }
    }

    /// The value of `line` (without its newline): its column, or nothing
    /// past the last.
    fn value<'a>(&self, line: &'a [u8]) -> &'a [u8] {
        let n = match self.column {
            Column::Number(n) => n,
            // Unresolved (no header read): every line the same.
            Column::Name(_) => return b"",
        };
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        self.sep.splitn(line, n + 1).nth(n - 1).unwrap_or_default()
    }

    /// Where in `buf` (which starts a group) a group starts after its
    /// first: each line whose value is not the line's before. A line
    /// counts once it is whole (ends in a newline) or nothing more comes
    /// (`eof`).
    pub(crate) fn starts<'a>(
        &'a self,
        buf: &'a [u8],
        eof: bool,
    ) -> impl Iterator<Item = usize> + 'a {
        let mut at = 0;
        let mut last: Option<&'a [u8]> = None;
        std::iter::from_fn(move || loop {
            if at >= buf.len() {
                return None;
            }
            let end = match buf[at..].iter().position(|b| *b == b'\n') {
                Some(i) => at + i + 1,
                None if eof => buf.len(),
                None => return None,
            };
            let (start, line) = (at, &buf[at..end]);
            at = end;
            let value = self.value(line);
            let changed = last.is_some_and(|l| l != value);
            last = Some(value);
            if changed {
                return Some(start);
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_start_where_the_columns_value_changes() {
        let by = |val: &str, sep: Option<&str>| GroupBy::new(val, sep).unwrap();
        let starts = |g: &GroupBy, buf: &[u8], eof| g.starts(buf, eof).collect::<Vec<usize>>();
        let csv = b"123,1\n123,2\n12-3,1\n221,3\n221,1\n2/21,5";
        let g = by("1", Some(","));
        assert_eq!(starts(&g, csv, true), [12, 19, 31]);
        // The last line counts only once it is whole or the input ends.
        assert_eq!(starts(&g, csv, false), [12, 19]);
        // Column 2; one past the last column is empty for every line.
        assert_eq!(starts(&by("2", Some(",")), csv, true), [6, 12, 19, 25, 31]);
        assert_eq!(starts(&by("3", Some(",")), csv, true), Vec::<usize>::new());
        // A tab when no --colsep.
        assert_eq!(starts(&by("2", None), b"a\tx\nb\tx\nc\ty\n", true), [8]);
        // By name, once the header names it; a name it lacks is an error.
        let mut g = by("Consumption", Some(","));
        assert!(g.named());
        g.resolve(b"UserID,Consumption\n").unwrap();
        assert_eq!(starts(&g, csv, true), [6, 12, 19, 25, 31]);
        let e = by("Used", Some(",")).resolve(b"UserID,Consumption\n");
        assert!(e.unwrap_err().contains("--group-by Used"));
        // Not a column: refused, naming what was given.
        for bad in ["0", "UserID s/\\D//g", "$_ % 2", "-1"] {
            let e = GroupBy::new(bad, None).unwrap_err();
            assert!(e.contains(&format!("--group-by {bad:?}")), "{bad}: {e}");
        }
    }
}
