//! The C library's number and address conversions, reproduced exactly as ipvsadm sees them
//! (glibc 2.36): `strtol`, `atoi`, `inet_aton` (numbers-and-dots with octal and hex parts)
//! and ipvsadm's own `str_is_digit`.
//!
//! ipvsadm accepts `-w +5`, `-t 10:80` (the address 0.0.0.10) and `-M 0xffffff00` because
//! it hands its arguments to these functions; a compatible front end has to accept and reject
//! exactly the same strings. Everything here is a pure function on bytes; nothing here may
//! consult the system (name lookups live in `names`).

/// C `isspace` in the "C" locale.
pub fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// The outcome of `strtol(s, &end, 10)` on a 64-bit `long`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Strtol {
    /// The value, clamped to `i64::MIN..=i64::MAX` on overflow.
    pub value: i64,
    /// Bytes consumed; 0 when no digits were found (`end == s`).
    pub end: usize,
    /// `errno == ERANGE`.
    pub overflow: bool,
}

/// `strtol(s, &end, 10)`: leading white space, an optional sign, decimal digits.
pub fn strtol(s: &[u8]) -> Strtol {
    let mut i = 0;
    while i < s.len() && is_c_space(s[i]) {
        i += 1;
    }
    let mut negative = false;
    if i < s.len() && (s[i] == b'+' || s[i] == b'-') {
        negative = s[i] == b'-';
        i += 1;
    }
    let digits_start = i;
    let mut magnitude: u128 = 0;
    while i < s.len() && s[i].is_ascii_digit() {
        magnitude = (magnitude * 10 + u128::from(s[i] - b'0')).min(u128::from(u64::MAX) + 1);
        i += 1;
    }
    if i == digits_start {
        return Strtol {
            value: 0,
            end: 0,
            overflow: false,
        };
    }
    let (value, overflow) = if negative {
        if magnitude > 1u128 << 63 {
            (i64::MIN, true)
        } else {
            ((magnitude as i128).wrapping_neg() as i64, false)
        }
    } else if magnitude > i64::MAX as u128 {
        (i64::MAX, true)
    } else {
        (magnitude as i64, false)
    };
    Strtol {
        value,
        end: i,
        overflow,
    }
}

/// ipvsadm's `string_to_number`: the whole string is a decimal number in `min..=max`.
pub fn string_to_number(s: &[u8], min: i64, max: i64) -> Option<i64> {
    let r = strtol(s);
    (r.end != 0 && r.end == s.len() && !r.overflow && min <= r.value && r.value <= max)
        .then_some(r.value)
}

/// C `atoi`: `(int) strtol(s, NULL, 10)`, garbage after the number ignored, 0 if none.
pub fn atoi(s: &[u8]) -> i32 {
    strtol(s).value as i32
}

/// ipvsadm's `parse_fwmark` test: a whole decimal number in 1..=UINT_MAX (negative values
/// wrap to huge unsigned ones and are refused).
pub fn fwmark_number(s: &[u8]) -> Option<u32> {
    let r = strtol(s);
    if r.end == 0 || r.end != s.len() || r.overflow {
        return None;
    }
    let l = r.value as u64;
    (l != 0 && l <= u64::from(u32::MAX)).then_some(l as u32)
}

/// ipvsadm's `str_is_digit`: true for the empty string and for all-digit strings.
pub fn str_is_digit(s: &[u8]) -> bool {
    s.iter().all(u8::is_ascii_digit)
}

/// `strtoul(s, &end, 0)` restricted to what `inet_aton` feeds it (starts with a digit):
/// `0x` hex, leading `0` octal, else decimal. Returns (value or None on overflow, consumed).
fn strtoul_base0(s: &[u8]) -> (Option<u64>, usize) {
    let (radix, mut i) = if s.len() >= 2 && s[0] == b'0' && (s[1] == b'x' || s[1] == b'X') {
        if s.len() > 2 && s[2].is_ascii_hexdigit() {
            (16, 2)
        } else {
            // "0x" with no hex digit: strtoul parses the "0" only.
            return (Some(0), 1);
        }
    } else if s.first() == Some(&b'0') {
        (8, 0)
    } else {
        (10, 0)
    };
    let mut value: Option<u64> = Some(0);
    while i < s.len() {
        let d = match (s[i] as char).to_digit(radix) {
            Some(d) => d,
            None => break,
        };
        value = value.and_then(|v| v.checked_mul(u64::from(radix))?.checked_add(u64::from(d)));
        i += 1;
    }
    (value, i)
}

/// glibc `inet_aton` (which ignores anything after a white-space character): `a.b.c.d`,
/// `a.b.c` (c is 16 bits), `a.b` (b is 24 bits) or `a` (32 bits), each part decimal, octal
/// or hex. Returns the address as a host-order u32.
pub fn inet_aton(s: &[u8]) -> Option<u32> {
    const MAX: [u64; 4] = [0xffff_ffff, 0x00ff_ffff, 0xffff, 0xff];
    let mut parts: Vec<u8> = Vec::with_capacity(3);
    let mut pos = 0;
    let mut val;
    loop {
        if !s.get(pos).is_some_and(u8::is_ascii_digit) {
            return None;
        }
        let (v, used) = strtoul_base0(&s[pos..]);
        val = v.filter(|v| *v <= 0xffff_ffff)?;
        pos += used;
        if s.get(pos) == Some(&b'.') {
            if parts.len() > 2 || val > 0xff {
                return None;
            }
            parts.push(val as u8);
            pos += 1;
        } else {
            break;
        }
    }
    if let Some(&c) = s.get(pos) {
        if !(c.is_ascii() && is_c_space(c)) {
            return None;
        }
    }
    if val > MAX[parts.len()] {
        return None;
    }
    let mut word: u32 = 0;
    for (i, p) in parts.iter().enumerate() {
        word |= u32::from(*p) << (24 - 8 * i);
    }
    Some(word | val as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strtol_matches_c() {
        assert_eq!(string_to_number(b"42", 0, 65535), Some(42));
        assert_eq!(string_to_number(b"+42", 0, 65535), Some(42));
        assert_eq!(string_to_number(b" \t42", 0, 65535), Some(42));
        assert_eq!(string_to_number(b"-0", 0, 65535), Some(0));
        assert_eq!(string_to_number(b"42 ", 0, 65535), None);
        assert_eq!(string_to_number(b"", 0, 65535), None);
        assert_eq!(string_to_number(b" ", 0, 65535), None);
        assert_eq!(string_to_number(b"+", 0, 65535), None);
        assert_eq!(string_to_number(b"0x10", 0, 65535), None);
        assert_eq!(string_to_number(b"65536", 0, 65535), None);
        assert_eq!(string_to_number(b"-1", 0, 65535), None);
        assert_eq!(string_to_number(b"99999999999999999999", 0, i64::MAX), None);
        assert_eq!(atoi(b"64abc"), 64);
        assert_eq!(atoi(b"abc"), 0);
        assert_eq!(atoi(b"4294967360"), 64);
    }

    #[test]
    fn fwmark_range_is_one_to_uint_max() {
        assert_eq!(fwmark_number(b"1"), Some(1));
        assert_eq!(fwmark_number(b"4294967295"), Some(u32::MAX));
        assert_eq!(fwmark_number(b"4294967296"), None);
        assert_eq!(fwmark_number(b"0"), None);
        assert_eq!(fwmark_number(b"-1"), None);
        assert_eq!(fwmark_number(b"7x"), None);
        assert_eq!(fwmark_number(b" +7"), Some(7));
    }

    #[test]
    fn inet_aton_accepts_every_classic_form() {
        assert_eq!(inet_aton(b"10.0.0.1"), Some(0x0a00_0001));
        assert_eq!(inet_aton(b"10"), Some(10));
        assert_eq!(inet_aton(b"10.1"), Some(0x0a00_0001));
        assert_eq!(inet_aton(b"10.1.2"), Some(0x0a01_0002));
        assert_eq!(inet_aton(b"0x0a.010.0.1"), Some(0x0a08_0001));
        assert_eq!(inet_aton(b"255.255.255.0"), Some(0xffff_ff00));
        assert_eq!(inet_aton(b"1.2.3.4 trailing"), Some(0x0102_0304));
        assert_eq!(inet_aton(b"1.2.3.4x"), None);
        assert_eq!(inet_aton(b"1.2.3.256"), None);
        assert_eq!(inet_aton(b"1.2.3.4.5"), None);
        assert_eq!(inet_aton(b"08"), None);
        assert_eq!(inet_aton(b"0x"), None);
        assert_eq!(inet_aton(b"1..2"), None);
        assert_eq!(inet_aton(b""), None);
        assert_eq!(inet_aton(b"host"), None);
        assert_eq!(inet_aton(b"4294967296"), None);
    }
}
