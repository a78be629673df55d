//! Reading `ipvsadm -R` input the way ipvsadm's `config_stream_read` does: one command per
//! line, words split on spaces, tabs and carriage returns, the word `ipvsadm` dropped
//! wherever it appears, words cut at 4096 bytes and at a NUL byte.
//!
//! ipvsadm's quirks are kept because scripts depend on whatever it accepted: `#` starts no
//! comment (its comment check can never fire, so `# note` is a command line that fails), a
//! blank line is skipped, and the input ends early at a line that has run into end-of-file
//! after two or more white-space characters. This module only reads; it never executes.

use std::io::{self, Read};

/// `MAX_LINE_LENGTH`: the longest word `fscanf` reads at once.
const MAX_WORD: usize = 4096;
/// How much is read from the input at once.
const CHUNK: usize = 64 * 1024;

fn is_sep(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

/// A stream of ipvsadm command lines, with its own buffer so that the caller can tell
/// whether more input is already at hand ([`ConfigStream::has_buffered`]).
pub struct ConfigStream<R: Read> {
    input: R,
    buf: Vec<u8>,
    pos: usize,
}

impl<R: Read> ConfigStream<R> {
    pub fn new(input: R) -> Self {
        ConfigStream {
            input,
            buf: Vec::new(),
            pos: 0,
        }
    }

    /// True if input is waiting in the buffer, i.e. the next line can be read without
    /// waiting on the input (a restore applies what it has before it waits for more).
    pub fn has_buffered(&self) -> bool {
        self.pos < self.buf.len()
    }

    fn peek(&mut self) -> io::Result<Option<u8>> {
        if self.pos == self.buf.len() {
            self.buf.resize(CHUNK, 0);
            let n = loop {
                match self.input.read(&mut self.buf) {
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    r => break r,
                }
            };
            let n = n.inspect_err(|_| self.buf.clear())?;
            self.buf.truncate(n);
            self.pos = 0;
        }
        Ok(self.buf.get(self.pos).copied())
    }

    fn bump(&mut self) {
        self.pos += 1;
    }

    /// The next line's words (possibly none, for a blank line), or None at the end of the
    /// input. Mirrors `config_stream_read` returning an array or NULL.
    pub fn next_line(&mut self) -> io::Result<Option<Vec<Vec<u8>>>> {
        let mut words: Vec<Vec<u8>> = Vec::new();
        let mut any_word = false;
        loop {
            // fscanf("%4096[^ \t\n\r]%1[ \t\n\r]", token, tail)
            let Some(first) = self.peek()? else {
                // EOF before any conversion.
                return Ok(any_word.then_some(words));
            };
            if is_sep(first) {
                // Matching failure: skip blanks by hand; a newline ends the line, EOF drops
                // it (and ends the input).
                loop {
                    match self.peek()? {
                        None => return Ok(None),
                        Some(b'\n') => {
                            self.bump();
                            return Ok(Some(words));
                        }
                        Some(b'\t' | b'\r' | b' ') => self.bump(),
                        Some(_) => break,
                    }
                }
                continue;
            }
            let mut token = Vec::new();
            while token.len() < MAX_WORD {
                match self.peek()? {
                    Some(b) if !is_sep(b) => {
                        token.push(b);
                        self.bump();
                    }
                    _ => break,
                }
            }
            let tail = match self.peek()? {
                Some(b) if is_sep(b) => {
                    self.bump();
                    Some(b)
                }
                _ => None,
            };
            if token.as_slice() != b"ipvsadm" {
                any_word = true;
                // strdup stops at a NUL byte.
                let end = token.iter().position(|&b| b == 0).unwrap_or(token.len());
                token.truncate(end);
                words.push(token);
            }
            if tail == Some(b'\n') {
                return Ok(Some(words));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &str) -> Vec<Vec<String>> {
        let mut s = ConfigStream::new(input.as_bytes());
        assert!(!s.has_buffered());
        let mut out = Vec::new();
        while let Some(words) = s.next_line().unwrap() {
            out.push(
                words
                    .iter()
                    .map(|w| String::from_utf8(w.clone()).unwrap())
                    .collect(),
            );
        }
        out
    }

    #[test]
    fn splits_like_config_stream_read() {
        assert_eq!(
            lines("-A -t 10.0.0.1:80 -s rr\n\n  ipvsadm\t-C \r\n# note\n-L"),
            vec![
                vec!["-A", "-t", "10.0.0.1:80", "-s", "rr"],
                vec![],
                vec!["-C"],
                vec!["#", "note"],
                vec!["-L"],
            ]
        );
    }

    #[test]
    fn end_of_input_quirks() {
        // One trailing blank before EOF keeps the last line; two drop it.
        assert_eq!(lines("-C\n-L "), vec![vec!["-C"], vec!["-L"]]);
        assert_eq!(lines("-C\n-L  "), vec![vec!["-C"]]);
        assert_eq!(lines("-C\n\n"), vec![vec!["-C"], vec![]]);
        assert!(lines("").is_empty());
        assert!(lines("ipvsadm").is_empty());
    }

    #[test]
    fn long_words_are_cut() {
        let long = "x".repeat(5000);
        let got = lines(&format!("-A {long}\n"));
        assert_eq!(got[0].len(), 3);
        assert_eq!(got[0][1].len(), 4096);
        assert_eq!(got[0][2].len(), 904);
    }
}
