//! Number rendering shared by both text formats.
//!
//! Floats are written the way Go's `strconv.FormatFloat(v, 'g', -1, 64)` writes them
//! (Prometheus' own writer): the shortest digits that round-trip, in exponent form when
//! the decimal exponent is below -4 or at least 6. Bucket bounds and quantiles use the
//! OpenMetrics canonical form, which adds `.0` to a bare integer (`1.0`, `100000.0`),
//! in both formats and forever: Prometheus 2.x stores `le="1"` and `le="1.0"` as two
//! different series, so a rendering must never change.

use std::io::Write as _;

/// Appends `v` as Go's `%g` with the shortest round-trip precision would.
pub(crate) fn write_float(out: &mut Vec<u8>, v: f64) {
    if v.is_nan() {
        out.extend_from_slice(b"NaN");
    } else if v.is_infinite() {
        out.extend_from_slice(if v > 0.0 { b"+Inf" } else { b"-Inf" });
    } else if v == 0.0 {
        out.push(b'0');
    } else if v.fract() == 0.0 && v.abs() < 1e6 {
        // Small integers are common (counts, bytes): skip digit generation.
        out.extend_from_slice(itoa::Buffer::new().format(v as i64).as_bytes());
    } else {
        write_general(out, v);
    }
}

/// Appends `v` in the OpenMetrics canonical form used for `le` and `quantile`.
pub(crate) fn write_canonical(out: &mut Vec<u8>, v: f64) {
    let start = out.len();
    write_float(out, v);
    let written = &out[start..];
    let bare_integer = written.iter().all(|b| b.is_ascii_digit() || *b == b'-');
    if bare_integer {
        out.extend_from_slice(b".0");
    }
}

/// Appends an unsigned integer.
pub(crate) fn write_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
}

fn write_general(out: &mut Vec<u8>, v: f64) {
    // Rust's `{:e}` gives the shortest round-trip digits; reshape them Go's way.
    let mut buf = [0u8; 40];
    let len = {
        let mut cursor = std::io::Cursor::new(&mut buf[..]);
        // A finite f64 in `{:e}` form needs at most 24 bytes, so this cannot fail.
        let _ = write!(cursor, "{:e}", v.abs());
        cursor.position() as usize
    };
    let sci = &buf[..len];
    let (mantissa, exp) = match sci.iter().position(|&b| b == b'e') {
        Some(i) => (&sci[..i], parse_exp(&sci[i + 1..])),
        None => (sci, 0),
    };
    let mut digits = [0u8; 24];
    let mut nd = 0;
    for &b in mantissa.iter().filter(|b| b.is_ascii_digit()) {
        if nd < digits.len() {
            digits[nd] = b;
            nd += 1;
        }
    }
    let digits = &digits[..nd];
    if v < 0.0 {
        out.push(b'-');
    }
    if !(-4..6).contains(&exp) {
        out.push(digits[0]);
        if digits.len() > 1 {
            out.push(b'.');
            out.extend_from_slice(&digits[1..]);
        }
        out.push(b'e');
        out.push(if exp < 0 { b'-' } else { b'+' });
        let e = exp.unsigned_abs();
        if e < 10 {
            out.push(b'0');
        }
        write_u64(out, u64::from(e));
    } else if exp >= 0 {
        let int_len = exp as usize + 1;
        for i in 0..int_len {
            out.push(digits.get(i).copied().unwrap_or(b'0'));
        }
        if digits.len() > int_len {
            out.push(b'.');
            out.extend_from_slice(&digits[int_len..]);
        }
    } else {
        out.extend_from_slice(b"0.");
        for _ in 0..(-exp - 1) {
            out.push(b'0');
        }
        out.extend_from_slice(digits);
    }
}

fn parse_exp(s: &[u8]) -> i32 {
    let (neg, digits) = match s.first() {
        Some(b'-') => (true, &s[1..]),
        _ => (false, s),
    };
    let e = digits.iter().fold(0i32, |acc, b| acc * 10 + i32::from(b - b'0'));
    if neg {
        -e
    } else {
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn go(v: f64) -> String {
        let mut out = Vec::new();
        write_float(&mut out, v);
        String::from_utf8_lossy(&out).into_owned()
    }

    fn canonical(v: f64) -> String {
        let mut out = Vec::new();
        write_canonical(&mut out, v);
        String::from_utf8_lossy(&out).into_owned()
    }

    #[test]
    fn matches_go_shortest_g() {
        // Expected strings are what Go's strconv.FormatFloat(v, 'g', -1, 64) returns.
        let cases = [
            (0.0, "0"),
            (-0.0, "0"),
            (1.0, "1"),
            (-1.0, "-1"),
            (0.1, "0.1"),
            (2.5, "2.5"),
            (0.005, "0.005"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1.5e-7, "1.5e-07"),
            (100000.0, "100000"),
            (999999.0, "999999"),
            (1e6, "1e+06"),
            (1234567.0, "1.234567e+06"),
            (123456.7, "123456.7"),
            (1e21, "1e+21"),
            (1e100, "1e+100"),
            (-3.25e-300, "-3.25e-300"),
            (f64::MAX, "1.7976931348623157e+308"),
            (5e-324, "5e-324"),
            (1732212345.678, "1.732212345678e+09"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
            (f64::NAN, "NaN"),
        ];
        for (v, want) in cases {
            assert_eq!(go(v), want, "{v:e}");
        }
    }

    #[test]
    fn canonical_adds_point_to_integers_only() {
        let cases = [
            (1.0, "1.0"),
            (0.1, "0.1"),
            (0.00001, "1e-05"),
            (100000.0, "100000.0"),
            (1e6, "1e+06"),
            (-2.0, "-2.0"),
            (0.0, "0.0"),
            (f64::INFINITY, "+Inf"),
        ];
        for (v, want) in cases {
            assert_eq!(canonical(v), want, "{v:e}");
        }
    }

    proptest::proptest! {
        #[test]
        fn every_finite_float_round_trips(bits: u64) {
            let v = f64::from_bits(bits);
            proptest::prop_assume!(v.is_finite());
            let s = go(v);
            let back: f64 = s.parse().unwrap_or(f64::NAN);
            proptest::prop_assert!(back == v || (v == 0.0 && back == 0.0), "{} -> {}", v, s);
        }
    }
}
