//! Which kernel tests libtest is going to run on the host, read from the test binary's own
//! command line, so that `cargo test --test NAME some_filter` boots a VM that runs only the
//! matching kernel tests. It mirrors libtest's rules (filters are substrings, or whole names
//! with `--exact`; `--skip` removes); when it meets an argument it does not know it selects
//! every kernel test, which is slower but never wrong. It must never drop a test that
//! libtest would run.

/// libtest options that take a value (`--opt value` or `--opt=value`).
const WITH_VALUE: &[&str] = &[
    "--logfile",
    "--skip",
    "--test-threads",
    "--color",
    "--format",
    "-Z",
    "--shuffle-seed",
];

/// libtest options that take no value.
const FLAGS: &[&str] = &[
    "--include-ignored",
    "--ignored",
    "--force-run-in-process",
    "--exclude-should-panic",
    "--test",
    "--bench",
    "--nocapture",
    "--no-capture",
    "--show-output",
    "-q",
    "--quiet",
    "--exact",
    "--report-time",
    "--ensure-time",
    "--shuffle",
];

/// The kernel tests among `all` that the command line `args` (without the program name)
/// selects.
pub fn select(all: &[String], args: &[String]) -> Vec<String> {
    let Some(parsed) = parse(args) else {
        return all.to_vec();
    };
    all.iter()
        .filter(|name| parsed.selects(name))
        .cloned()
        .collect()
}

struct Parsed {
    filters: Vec<String>,
    skips: Vec<String>,
    exact: bool,
}

impl Parsed {
    fn matches(&self, pattern: &str, name: &str) -> bool {
        if self.exact {
            name == pattern
        } else {
            name.contains(pattern)
        }
    }

    fn selects(&self, name: &str) -> bool {
        let wanted = self.filters.is_empty() || self.filters.iter().any(|f| self.matches(f, name));
        wanted && !self.skips.iter().any(|s| self.matches(s, name))
    }
}

/// None when an argument is not one libtest documents.
fn parse(args: &[String]) -> Option<Parsed> {
    let mut parsed = Parsed {
        filters: Vec::new(),
        skips: Vec::new(),
        exact: false,
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        if !arg.starts_with('-') {
            parsed.filters.push(arg.clone());
            continue;
        }
        if FLAGS.contains(&arg.as_str()) {
            parsed.exact |= arg == "--exact";
            continue;
        }
        let (option, value) = match arg.split_once('=') {
            Some((option, value)) => (option, value.to_string()),
            None if WITH_VALUE.contains(&arg.as_str()) => (arg.as_str(), args.next()?.clone()),
            None => return None,
        };
        if !WITH_VALUE.contains(&option) {
            return None;
        }
        if option == "--skip" {
            parsed.skips.push(value);
        }
    }
    Some(parsed)
}

#[cfg(test)]
mod tests {
    use super::select;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn filters_like_libtest() {
        let all = strings(&["smoke", "isolation_a", "isolation_b", "m::smoke_two"]);
        assert_eq!(select(&all, &[]), all);
        assert_eq!(
            select(&all, &strings(&["smoke"])),
            strings(&["smoke", "m::smoke_two"])
        );
        assert_eq!(
            select(&all, &strings(&["--exact", "smoke"])),
            strings(&["smoke"])
        );
        assert_eq!(
            select(
                &all,
                &strings(&["--test-threads", "1", "isolation", "--skip=_b"])
            ),
            strings(&["isolation_a"])
        );
        assert_eq!(
            select(&all, &strings(&["--nocapture", "--skip", "isolation"])),
            strings(&["smoke", "m::smoke_two"])
        );
        // Unknown options select everything rather than risk missing a test.
        assert_eq!(select(&all, &strings(&["--frobnicate", "smoke"])), all);
    }
}
