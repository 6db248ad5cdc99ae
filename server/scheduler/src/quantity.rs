//! Resource quantities ("100m", "1.5Gi", "2e3") as the integers the scheduler compares: CPU in
//! millicores and everything else in units, both rounded up as upstream's `MilliValue`/`Value` do.

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$': {0:?}")]
pub struct QuantityError(pub String);

/// The quantity times `scale` (1000 for milli-units), rounded up.
fn scaled(s: &str, scale: i128) -> Result<i64, QuantityError> {
    let err = || QuantityError(s.to_string());
    let s = s.trim();
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-')).unwrap_or(s.len());
    let (number, suffix) = s.split_at(split);
    let (negative, digits) = match number.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, number.strip_prefix('+').unwrap_or(number)),
    };
    let (int_part, frac_part) = digits.split_once('.').unwrap_or((digits, ""));
    if int_part.is_empty() && frac_part.is_empty() {
        return Err(err());
    }
    if !int_part.chars().chain(frac_part.chars()).all(|c| c.is_ascii_digit()) || frac_part.len() > 30 {
        return Err(err());
    }
    let mantissa: i128 = format!("{int_part}{frac_part}").parse().map_err(|_| err())?;
    // value = mantissa / 10^frac * num / den
    let (mut num, mut den): (i128, i128) = (1, 10i128.pow(frac_part.len() as u32));
    let binary = |p: u32| 1024i128.pow(p);
    match suffix {
        "" => {}
        "Ki" => num = binary(1),
        "Mi" => num = binary(2),
        "Gi" => num = binary(3),
        "Ti" => num = binary(4),
        "Pi" => num = binary(5),
        "Ei" => num = binary(6),
        "n" => den *= 1_000_000_000,
        "u" => den *= 1_000_000,
        "m" => den *= 1_000,
        "k" => num = 1_000,
        "M" => num = 1_000_000,
        "G" => num = 1_000_000_000,
        "T" => num = 1_000_000_000_000,
        "P" => num = 1_000_000_000_000_000,
        "E" => num = 1_000_000_000_000_000_000,
        exp if exp.starts_with(['e', 'E']) => {
            let e: i32 = exp[1..].parse().map_err(|_| err())?;
            if e.unsigned_abs() > 30 {
                return Err(err());
            }
            if e >= 0 {
                num = 10i128.pow(e as u32);
            } else {
                den *= 10i128.pow(e.unsigned_abs());
            }
        }
        _ => return Err(err()),
    }
    let top = mantissa.checked_mul(num).and_then(|v| v.checked_mul(scale)).ok_or_else(err)?;
    let value = (top + den - 1) / den;
    let value = if negative { -(top / den) } else { value };
    i64::try_from(value).map_err(|_| err())
}

/// Millicores (or milli-units): "100m" → 100, "1" → 1000, "0.1" → 100.
pub fn milli(s: &str) -> Result<i64, QuantityError> {
    scaled(s, 1000)
}

/// Whole units, rounded up: "1Gi" → 1073741824, "100m" → 1.
pub fn units(s: &str) -> Result<i64, QuantityError> {
    scaled(s, 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_upstream_forms() {
        let cases: &[(&str, i64, i64)] = &[
            ("100m", 100, 1),
            ("1", 1000, 1),
            ("0.1", 100, 1),
            ("1.5", 1500, 2),
            ("2", 2000, 2),
            ("1Ki", 1_024_000, 1024),
            ("1.5Gi", 1_610_612_736_000, 1_610_612_736),
            ("128Mi", 134_217_728_000, 134_217_728),
            ("1k", 1_000_000, 1000),
            ("1M", 1_000_000_000, 1_000_000),
            ("2e3", 2_000_000, 2000),
            ("1E3", 1_000_000, 1000),
            ("5e-1", 500, 1),
            ("1n", 1, 1),
            ("250u", 1, 1),
            ("+3", 3000, 3),
            (".5", 500, 1),
        ];
        for (s, m, u) in cases {
            assert_eq!(milli(s), Ok(*m), "milli({s})");
            assert_eq!(units(s), Ok(*u), "units({s})");
        }
    }

    #[test]
    fn rejects_garbage() {
        for s in ["", "abc", "1Xi", "1..2", "m", "1e", "--1"] {
            assert!(milli(s).is_err(), "{s:?} should not parse");
        }
    }
}
