//! "Did you mean": the closest known word to a misspelt key or value.
//!
//! Pure string work: it suggests, it never accepts a misspelling on the user's behalf. The
//! edit distance is strsim's (already in the tree through clap's own suggestions); the
//! rules around it (spellings that differ only in case, `_` and `-`, unique abbreviations,
//! a third of the word as the limit) are ours.

/// Edit distance (insertions, deletions, substitutions, adjacent swaps): strsim's optimal
/// string alignment, so `fwmakr` is one edit from `fwmark`.
fn distance(a: &str, b: &str) -> usize {
    strsim::osa_distance(a, b)
}

/// Lower case without `_` and `-`, so `checkInterval`, `check-interval` and
/// `check_interval` look alike.
fn normalise(s: &str) -> String {
    s.chars()
        .filter(|c| *c != '_' && *c != '-')
        .flat_map(char::to_lowercase)
        .collect()
}

/// The candidate closest to `word`, if one is close enough to be a likely typo.
pub fn did_you_mean<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    if word.chars().count() > 64 {
        return None;
    }
    let w = normalise(word);
    if let Some(same) = candidates.iter().find(|c| normalise(c) == w) {
        return Some(same);
    }
    // an abbreviation of exactly one candidate (`proto` for `protocol`)
    if w.chars().count() >= 4 {
        let mut prefixed = candidates.iter().filter(|c| normalise(c).starts_with(&w));
        if let (Some(only), None) = (prefixed.next(), prefixed.next()) {
            return Some(only);
        }
    }
    let limit = (w.chars().count() / 3).max(1);
    candidates
        .iter()
        .map(|c| (distance(&w, &normalise(c)), *c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_typos_and_respellings() {
        let keys = ["scheduler", "fwmark", "check_interval", "ramp_up_time"];
        assert_eq!(did_you_mean("schedular", &keys), Some("scheduler"));
        assert_eq!(did_you_mean("fw_mark", &keys), Some("fwmark"));
        assert_eq!(did_you_mean("fwmakr", &keys), Some("fwmark"));
        assert_eq!(did_you_mean("checkInterval", &keys), Some("check_interval"));
        assert_eq!(did_you_mean("rampup", &keys), Some("ramp_up_time"));
        assert_eq!(did_you_mean("rampage", &keys), None);
        assert_eq!(did_you_mean("colour", &keys), None);
        assert_eq!(did_you_mean("ramp", &keys), Some("ramp_up_time"));
        assert_eq!(
            did_you_mean("proto", &["port", "protocol"]),
            Some("protocol")
        );
        assert_eq!(did_you_mean("", &keys), None);
    }

    #[test]
    fn distances() {
        assert_eq!(distance("kitten", "sitting"), 3);
        assert_eq!(distance("ab", "ba"), 1);
        assert_eq!(distance("", "abc"), 3);
    }
}
