//! Resource quantities (`250m`, `1.5Gi`, `1e3`) read as apimachinery's `resource.Quantity` reads them,
//! as far as `Value()` and `MilliValue()` go: both round up (away from zero) to an integer.

use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error(
    "invalid quantity {0:?}: quantities must match the regular expression \
     '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
)]
pub struct QuantityError(pub String);

/// `mantissa * 2^pow2 * 10^pow10`, exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quantity {
    negative: bool,
    mantissa: i128,
    pow10: i32,
    pow2: u32,
}

impl Quantity {
    pub fn parse(input: &str) -> Result<Self, QuantityError> {
        let err = || QuantityError(input.to_string());
        let s = input.trim();
        let (negative, number) = match s.as_bytes().first() {
            Some(b'-') => (true, &s[1..]),
            Some(b'+') => (false, &s[1..]),
            _ => (false, s),
        };
        let mut mantissa: i128 = 0;
        let mut pow10: i32 = 0;
        let mut digits = 0usize;
        let mut seen_dot = false;
        let mut end = number.len();
        for (i, b) in number.bytes().enumerate() {
            match b {
                b'0'..=b'9' => {
                    mantissa =
                        mantissa.checked_mul(10).and_then(|m| m.checked_add(i128::from(b - b'0'))).ok_or_else(err)?;
                    if seen_dot {
                        pow10 -= 1;
                    }
                    digits += 1;
                }
                b'.' if !seen_dot => seen_dot = true,
                _ => {
                    end = i;
                    break;
                }
            }
        }
        if digits == 0 {
            return Err(err());
        }
        let (suffix10, pow2) = match &number[end..] {
            "" => (0, 0),
            "n" => (-9, 0),
            "u" => (-6, 0),
            "m" => (-3, 0),
            "k" => (3, 0),
            "M" => (6, 0),
            "G" => (9, 0),
            "T" => (12, 0),
            "P" => (15, 0),
            "E" => (18, 0),
            "Ki" => (0, 10),
            "Mi" => (0, 20),
            "Gi" => (0, 30),
            "Ti" => (0, 40),
            "Pi" => (0, 50),
            "Ei" => (0, 60),
            other => (decimal_exponent(other).ok_or_else(err)?, 0),
        };
        Ok(Self { negative, mantissa, pow10: pow10.saturating_add(suffix10), pow2 })
    }

    pub fn is_zero(&self) -> bool {
        self.mantissa == 0
    }

    /// `Value()`: the quantity rounded up to an integer.
    pub fn value(&self) -> i64 {
        self.scaled_up(0)
    }

    /// `MilliValue()`: the quantity times 1000, rounded up.
    pub fn milli_value(&self) -> i64 {
        self.scaled_up(3)
    }

    fn scaled_up(&self, scale: i32) -> i64 {
        let Some(base) = 1i128.checked_shl(self.pow2).and_then(|p| self.mantissa.checked_mul(p)) else {
            return self.signed(i64::MAX);
        };
        let exponent = self.pow10.saturating_add(scale);
        let magnitude = if exponent >= 0 {
            10i128.checked_pow(exponent.unsigned_abs()).and_then(|p| base.checked_mul(p)).unwrap_or(i128::MAX)
        } else {
            match 10i128.checked_pow(exponent.unsigned_abs()) {
                Some(d) => base / d + i128::from(base % d != 0),
                None => i128::from(base != 0),
            }
        };
        self.signed(i64::try_from(magnitude).unwrap_or(i64::MAX))
    }

    fn signed(&self, magnitude: i64) -> i64 {
        if self.negative {
            -magnitude
        } else {
            magnitude
        }
    }
}

/// `e3`, `E-2`, `e+6`: a decimal exponent suffix.
fn decimal_exponent(suffix: &str) -> Option<i32> {
    let rest = suffix.strip_prefix(['e', 'E'])?;
    let digits = rest.strip_prefix(['+', '-']).unwrap_or(rest);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    rest.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_and_milli_value_round_up() {
        let cases: &[(&str, i64, i64)] = &[
            ("250m", 1, 250),
            ("1", 1, 1000),
            ("0.1", 1, 100),
            ("1.5", 2, 1500),
            ("2", 2, 2000),
            ("100n", 1, 1),
            ("1Ki", 1024, 1_024_000),
            ("64Mi", 64 * 1024 * 1024, 64 * 1024 * 1024 * 1000),
            ("1.5Gi", 1_610_612_736, 1_610_612_736_000),
            ("1e3", 1000, 1_000_000),
            ("1E-3", 1, 1),
            ("5e+2", 500, 500_000),
            ("1k", 1000, 1_000_000),
            ("1M", 1_000_000, 1_000_000_000),
            (" 3 ", 3, 3000),
            ("+4", 4, 4000),
            ("0", 0, 0),
            ("-1.5", -2, -1500),
            (".5", 1, 500),
        ];
        for (input, value, milli) in cases {
            let q = Quantity::parse(input).unwrap();
            assert_eq!(q.value(), *value, "value of {input}");
            assert_eq!(q.milli_value(), *milli, "milli value of {input}");
        }
    }

    #[test]
    fn rejects_malformed_quantities() {
        for input in ["", "abc", "1Xi", "1.2.3", "m", "1e", "1e+", "Mi", "1 Mi"] {
            assert!(Quantity::parse(input).is_err(), "{input:?} should not parse");
        }
    }

    #[test]
    fn huge_values_saturate() {
        assert_eq!(Quantity::parse("8Ei").unwrap().milli_value(), i64::MAX);
        assert_eq!(Quantity::parse("1e40").unwrap().value(), i64::MAX);
        assert!(Quantity::parse("0").unwrap().is_zero());
    }
}
