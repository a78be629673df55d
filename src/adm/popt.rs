//! A scanner for command lines with the exact behaviour of popt 1.19 (`poptGetNextOpt`),
//! which ipvsadm uses: short options cluster (`-Ln`, `-w5`, `-w=5`), long options take
//! `--name=value` or the next word, an optional argument (`-p [timeout]`) takes the next
//! word unless it starts with `-`, `--` ends options, and every word that is not an option
//! becomes a "leftover" (`--set 900 120 300`). Long names must match exactly (no
//! abbreviations); a single dash always starts a short-option cluster.
//!
//! This knows nothing of ipvsadm's commands; it only turns words into options. Error values
//! carry popt's wording, and [`Scanner::bad_option`] returns the word popt would blame.

/// Whether an option takes an argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArgKind {
    None,
    Required,
    /// `POPT_ARGFLAG_OPTIONAL`.
    Optional,
}

/// One row of the option table.
#[derive(Clone, Copy, Debug)]
pub struct OptSpec<T: 'static> {
    pub long: &'static str,
    /// 0 when the option has no short form.
    pub short: u8,
    pub arg: ArgKind,
    pub tag: T,
}

/// popt's error codes that this scanner can produce.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoptError {
    /// POPT_ERROR_NOARG.
    MissingArgument,
    /// POPT_ERROR_UNWANTEDARG.
    UnwantedArgument,
    /// POPT_ERROR_BADOPT.
    UnknownOption,
}

impl PoptError {
    /// `poptStrerror`.
    pub fn text(self) -> &'static str {
        match self {
            PoptError::MissingArgument => "missing argument",
            PoptError::UnwantedArgument => "option does not take an argument",
            PoptError::UnknownOption => "unknown option",
        }
    }
}

/// One step of the scan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Item<T> {
    /// An option with its argument (None for flags and for an absent optional argument).
    Opt(T, Option<Vec<u8>>),
    /// No more options (popt's -1).
    End,
    Error(PoptError),
}

/// The scan state over one argv (without argv[0]).
pub struct Scanner<'a, T: 'static> {
    table: &'a [OptSpec<T>],
    args: &'a [Vec<u8>],
    next: usize,
    /// The rest of a short-option cluster being read: (word index, byte offset).
    cluster: Option<(usize, usize)>,
    rest_leftover: bool,
    leftovers: Vec<Vec<u8>>,
    next_leftover: usize,
}

impl<'a, T: Copy + 'static> Scanner<'a, T> {
    pub fn new(table: &'a [OptSpec<T>], args: &'a [Vec<u8>]) -> Self {
        Scanner {
            table,
            args,
            next: 0,
            cluster: None,
            rest_leftover: false,
            leftovers: Vec::new(),
            next_leftover: 0,
        }
    }

    /// `poptGetNextOpt`.
    pub fn next_item(&mut self) -> Item<T> {
        loop {
            let mut long_arg: Option<Vec<u8>> = None;
            let mut opt: Option<&OptSpec<T>> = None;
            if self.cluster.is_none() {
                if self.next == self.args.len() {
                    return Item::End;
                }
                let word_index = self.next;
                let word = &self.args[word_index];
                self.next += 1;
                if self.rest_leftover || word.first() != Some(&b'-') || word.len() == 1 {
                    self.leftovers.push(word.clone());
                    continue;
                }
                if word.as_slice() == b"--" {
                    self.rest_leftover = true;
                    continue;
                }
                if word[1] == b'-' {
                    let body = &word[2..];
                    let (name, value) = match body.iter().position(|&b| b == b'=') {
                        Some(eq) => (&body[..eq], Some(body[eq + 1..].to_vec())),
                        None => (body, None),
                    };
                    match self.table.iter().find(|o| o.long.as_bytes() == name) {
                        Some(o) => {
                            opt = Some(o);
                            long_arg = value;
                        }
                        None => return Item::Error(PoptError::UnknownOption),
                    }
                } else {
                    self.cluster = Some((word_index, 1));
                }
            }
            if let Some((w, off)) = self.cluster.take() {
                let word = &self.args[w];
                let c = word[off];
                match self.table.iter().find(|o| o.short != 0 && o.short == c) {
                    Some(o) => opt = Some(o),
                    None => return Item::Error(PoptError::UnknownOption),
                }
                if off + 1 < word.len() {
                    self.cluster = Some((w, off + 1));
                }
            }
            let Some(opt) = opt else {
                return Item::Error(PoptError::UnknownOption);
            };
            if opt.arg == ArgKind::None {
                let eq_next = self
                    .cluster
                    .is_some_and(|(w, off)| self.args[w][off] == b'=');
                if long_arg.is_some() || eq_next {
                    return Item::Error(PoptError::UnwantedArgument);
                }
                return Item::Opt(opt.tag, None);
            }
            let value = if long_arg.is_some() {
                long_arg
            } else if let Some((w, off)) = self.cluster.take() {
                let rest = &self.args[w][off..];
                let rest = rest.strip_prefix(b"=").unwrap_or(rest);
                Some(rest.to_vec())
            } else if self.next == self.args.len() {
                if opt.arg != ArgKind::Optional {
                    return Item::Error(PoptError::MissingArgument);
                }
                None
            } else if opt.arg == ArgKind::Optional && self.args[self.next].first() == Some(&b'-') {
                None
            } else {
                self.next += 1;
                Some(self.args[self.next - 1].clone())
            };
            return Item::Opt(opt.tag, value);
        }
    }

    /// `poptBadOption(con, POPT_BADOPTION_NOALIAS)`: the last word consumed.
    pub fn bad_option(&self) -> &[u8] {
        self.next
            .checked_sub(1)
            .and_then(|i| self.args.get(i))
            .map(Vec::as_slice)
            .unwrap_or(b"")
    }

    /// `poptGetArg`: the next leftover word, in order.
    pub fn next_leftover(&mut self) -> Option<Vec<u8>> {
        let v = self.leftovers.get(self.next_leftover).cloned();
        if v.is_some() {
            self.next_leftover += 1;
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &[OptSpec<char>] = &[
        OptSpec {
            long: "list",
            short: b'L',
            arg: ArgKind::None,
            tag: 'L',
        },
        OptSpec {
            long: "numeric",
            short: b'n',
            arg: ArgKind::None,
            tag: 'n',
        },
        OptSpec {
            long: "weight",
            short: b'w',
            arg: ArgKind::Required,
            tag: 'w',
        },
        OptSpec {
            long: "persistent",
            short: b'p',
            arg: ArgKind::Optional,
            tag: 'p',
        },
    ];

    fn scan(words: &[&str]) -> (Vec<Item<char>>, Vec<Vec<u8>>) {
        let args: Vec<Vec<u8>> = words.iter().map(|w| w.as_bytes().to_vec()).collect();
        let mut s = Scanner::new(TABLE, &args);
        let mut items = Vec::new();
        loop {
            let it = s.next_item();
            let stop = !matches!(it, Item::Opt(..));
            items.push(it);
            if stop {
                break;
            }
        }
        let mut left = Vec::new();
        while let Some(l) = s.next_leftover() {
            left.push(l);
        }
        (items, left)
    }

    fn opt(c: char, v: Option<&str>) -> Item<char> {
        Item::Opt(c, v.map(|v| v.as_bytes().to_vec()))
    }

    #[test]
    fn clusters_and_attached_values() {
        let (items, _) = scan(&[
            "-Ln",
            "-w5",
            "-w=6",
            "-w",
            "7",
            "--weight=8",
            "--weight",
            "-9",
        ]);
        assert_eq!(
            items,
            vec![
                opt('L', None),
                opt('n', None),
                opt('w', Some("5")),
                opt('w', Some("6")),
                opt('w', Some("7")),
                opt('w', Some("8")),
                opt('w', Some("-9")),
                Item::End
            ]
        );
    }

    #[test]
    fn optional_argument_skips_options() {
        let (items, _) = scan(&["-p", "-L", "-p", "30", "-p"]);
        assert_eq!(
            items,
            vec![
                opt('p', None),
                opt('L', None),
                opt('p', Some("30")),
                opt('p', None),
                Item::End
            ]
        );
    }

    #[test]
    fn errors_and_leftovers() {
        let (items, left) = scan(&["a", "-", "-L", "--", "-n"]);
        assert_eq!(items, vec![opt('L', None), Item::End]);
        assert_eq!(left, vec![b"a".to_vec(), b"-".to_vec(), b"-n".to_vec()]);
        assert_eq!(
            scan(&["--lis"]).0,
            vec![Item::Error(PoptError::UnknownOption)]
        );
        assert_eq!(
            scan(&["--list=x"]).0,
            vec![Item::Error(PoptError::UnwantedArgument)]
        );
        assert_eq!(
            scan(&["-L=x"]).0,
            vec![Item::Error(PoptError::UnwantedArgument)]
        );
        assert_eq!(
            scan(&["-Lw"]).0,
            vec![opt('L', None), Item::Error(PoptError::MissingArgument)]
        );
        let args = vec![b"-Lq".to_vec()];
        let mut s = Scanner::new(TABLE, &args);
        assert_eq!(s.next_item(), opt('L', None));
        assert_eq!(s.next_item(), Item::Error(PoptError::UnknownOption));
        assert_eq!(s.bad_option(), b"-Lq");
    }
}
