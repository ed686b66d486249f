//! The command-line values the benchmark examples share, each read with an
//! error that names its flag.

use anyhow::{Context, Result, bail};

/// A whole number, at least 1 (a smaller one counts as 1).
pub fn whole(flag: &str, text: &str) -> Result<usize> {
    let n = text
        .parse::<usize>()
        .with_context(|| format!("{flag}: {text:?} is not a whole number"))?;
    Ok(n.max(1))
}

/// A number of seconds above 0.
pub fn seconds(flag: &str, text: &str) -> Result<f64> {
    let seconds: f64 = text
        .parse()
        .with_context(|| format!("{flag}: {text:?} is not a number"))?;
    if !(seconds > 0.0 && seconds.is_finite()) {
        bail!("{flag} must be above 0, got {text}");
    }
    Ok(seconds)
}

/// A comma-separated list of counts above 0, such as `2,1`.
pub fn counts(flag: &str, text: &str) -> Result<Vec<usize>> {
    text.split(',')
        .map(|n| n.trim().parse::<usize>().ok().filter(|&n| n > 0))
        .collect::<Option<Vec<_>>>()
        .filter(|counts| !counts.is_empty())
        .with_context(|| format!("{flag}: {text:?} is not a list of counts above 0"))
}

#[cfg(test)]
mod tests {
    use super::{counts, seconds, whole};

    #[test]
    fn values_are_read_or_refused_naming_the_flag() {
        assert_eq!(whole("--rounds", "7").unwrap(), 7);
        assert_eq!(whole("--rounds", "0").unwrap(), 1);
        assert!(
            whole("--rounds", "x")
                .unwrap_err()
                .to_string()
                .contains("--rounds")
        );
        assert_eq!(seconds("--seconds", "0.4").unwrap(), 0.4);
        for bad in ["0", "-1", "inf", "NaN", "x"] {
            let err = seconds("--seconds", bad).unwrap_err().to_string();
            assert!(err.contains("--seconds"), "{bad}: {err}");
        }
        assert_eq!(counts("--threads", "2, 1").unwrap(), vec![2, 1]);
        for bad in ["", "0", "2,", "two"] {
            let err = counts("--threads", bad).unwrap_err().to_string();
            assert!(err.contains("--threads"), "{bad:?}: {err}");
        }
    }
}
