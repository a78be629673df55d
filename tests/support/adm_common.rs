//! Helpers shared by the `bigbro ipvsadm` test files (adm_cli.rs, kernel_adm.rs): reading
//! the corpus's command lines. Test-only; nothing here touches the kernel.

/// Splits like the shell for the corpus's quoting: words, with '...' quoting.
pub fn shell_words(s: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quoted = false;
    for c in s.chars() {
        match c {
            '\'' => {
                quoted = !quoted;
                in_word = true;
            }
            ' ' if !quoted => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                }
                in_word = false;
            }
            c => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    words
}
