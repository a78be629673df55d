//! Reading a health value out of a litmus answer: the `X-Health` header, or else the first
//! `Health: N` in the body (big_brother's `/Health: (\d+)/`). Pure functions over bytes.
//!
//! Values are clamped to 0..=65535 (the IPVS weight range); a negative header is 0; a
//! fraction is truncated (`87.5` is 87). These functions must never guess: a header that is
//! present but not a number is an error, not a fallback to the body.

use super::error::ProbeError;

/// The largest health value (and IPVS weight).
pub const MAX_HEALTH: u16 = u16::MAX;

/// Parses an `X-Health` header value: optional blanks, an optional sign, digits, an optional
/// fraction, optional blanks. `87.5` → 87, `-5` → 0, `100000` → 65535.
pub fn header_health(value: &[u8]) -> Result<u16, ProbeError> {
    let bad = || ProbeError::BadHealthHeader(String::from_utf8_lossy(value).into_owned());
    let v = value.trim_ascii();
    let (negative, rest) = match v.first() {
        Some(b'-') => (true, &v[1..]),
        Some(b'+') => (false, &v[1..]),
        _ => (false, v),
    };
    let int_len = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    if int_len == 0 {
        return Err(bad());
    }
    let frac = &rest[int_len..];
    if let Some(after_dot) = frac.strip_prefix(b".") {
        if !after_dot.iter().all(u8::is_ascii_digit) {
            return Err(bad());
        }
    } else if !frac.is_empty() {
        return Err(bad());
    }
    if negative {
        return Ok(0);
    }
    Ok(saturating_digits(&rest[..int_len]))
}

/// What the body says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyHealth {
    /// The first `Health: N` found.
    Found(u16),
    /// No match in the bytes given.
    Absent,
    /// The first match runs into the end of a body that was cut at the read limit, so its
    /// value is not known.
    Cut,
}

/// The first `Health: (\d+)` in `body`. `complete` says whether `body` is the whole body
/// (false when it was cut at the read limit): digits running into the end of an incomplete
/// body are not trusted.
pub fn body_health(body: &[u8], complete: bool) -> BodyHealth {
    const NEEDLE: &[u8] = b"Health: ";
    let mut from = 0;
    while let Some(at) = find(&body[from..], NEEDLE) {
        let digits_start = from + at + NEEDLE.len();
        let digits = body[digits_start..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        if digits > 0 {
            if digits_start + digits == body.len() && !complete {
                return BodyHealth::Cut;
            }
            return BodyHealth::Found(saturating_digits(
                &body[digits_start..digits_start + digits],
            ));
        }
        from += at + 1;
    }
    BodyHealth::Absent
}

/// Decimal digits to a health value, saturating at 65535 however many there are.
fn saturating_digits(digits: &[u8]) -> u16 {
    let mut v: u32 = 0;
    for d in digits {
        v = (v * 10 + u32::from(d - b'0')).min(u32::from(MAX_HEALTH) + 1);
    }
    v.min(u32::from(MAX_HEALTH)) as u16
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_values() {
        let ok = |s: &str| header_health(s.as_bytes()).unwrap();
        assert_eq!(ok("61"), 61);
        assert_eq!(ok(" 87.5 "), 87);
        assert_eq!(ok("87."), 87);
        assert_eq!(ok("+3"), 3);
        assert_eq!(ok("-5"), 0);
        assert_eq!(ok("-0.5"), 0);
        assert_eq!(ok("0"), 0);
        assert_eq!(ok("65535"), 65535);
        assert_eq!(ok("65536"), 65535);
        assert_eq!(ok("999999999999999999999999"), 65535);
    }

    #[test]
    fn header_garbage_is_an_error_naming_the_value() {
        for bad in [
            "", " ", "abc", "12abc", "1 2", ".5", "1.2.3", "--1", "0x10", "1e3",
        ] {
            let err = header_health(bad.as_bytes()).unwrap_err();
            assert_eq!(err, ProbeError::BadHealthHeader(bad.to_string()), "{bad:?}");
        }
    }

    #[test]
    fn body_takes_the_first_match() {
        let body = b"Health: 82\nMeasured Health: 90\n";
        assert_eq!(body_health(body, true), BodyHealth::Found(82));
        assert_eq!(body_health(b"Health: 87.5", true), BodyHealth::Found(87));
        // The regex skips a `Health: ` not followed by digits and matches a later one,
        // even inside `Measured Health: `.
        assert_eq!(
            body_health(b"Health: n/a\nMeasured Health: 5\n", true),
            BodyHealth::Found(5)
        );
        assert_eq!(
            body_health(b"Health: Health: 7", true),
            BodyHealth::Found(7)
        );
        assert_eq!(body_health(b"Health: -5", true), BodyHealth::Absent);
        assert_eq!(body_health(b"health: 5", true), BodyHealth::Absent);
        assert_eq!(body_health(b"Health:5", true), BodyHealth::Absent);
        assert_eq!(body_health(b"", true), BodyHealth::Absent);
        assert_eq!(
            body_health(b"Health: 70000", true),
            BodyHealth::Found(65535)
        );
    }

    #[test]
    fn digits_at_the_cut_are_not_trusted() {
        assert_eq!(body_health(b"xx Health: 12", false), BodyHealth::Cut);
        assert_eq!(body_health(b"xx Health: 12", true), BodyHealth::Found(12));
        assert_eq!(body_health(b"Health: 12\n", false), BodyHealth::Found(12));
        assert_eq!(body_health(b"xx Heal", false), BodyHealth::Absent);
    }
}
