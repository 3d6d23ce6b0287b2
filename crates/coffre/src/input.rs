//! Bounds on what the command line accepts: each value parser turns a bad
//! value into a usage error (exit code 2) that says what is allowed, and
//! every file given on the command line is read with a size limit.

use std::path::Path;
use std::time::Duration;

/// Largest file read from the command line (certificates, configurations).
pub const MAX_INPUT_FILE: u64 = 1024 * 1024;

/// Read a file named on the command line, refusing one over
/// [`MAX_INPUT_FILE`] (a device such as /dev/zero is not read forever).
/// The caller says which file it was, with `.with_context`.
pub fn read_file(path: &Path) -> std::io::Result<Vec<u8>> {
    coffre_fs::read_limited(path, MAX_INPUT_FILE)
}

/// As [`read_file`], as text.
pub fn read_text(path: &Path) -> std::io::Result<String> {
    String::from_utf8(read_file(path)?)
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8 text"))
}

/// Time between readings: 10 ms to 1 day (0 would take readings in a busy
/// loop and queue them faster than any broker takes them).
pub fn interval(s: &str) -> Result<Duration, String> {
    coffre_agent::duration::interval(s)
}

/// A run length: 1 ms to 30 days.
pub fn run_length(s: &str) -> Result<Duration, String> {
    coffre_agent::duration::bounded(
        s,
        Duration::from_millis(1),
        Duration::from_secs(30 * 86_400),
    )
}

/// A ramp rate, connections per second: above 0, at most 100 000.
pub fn rate(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(r) if r > 0.0 && r <= 100_000.0 => Ok(r),
        _ => Err(format!(
            "'{s}' is not a rate: use a number above 0, at most 100000"
        )),
    }
}

/// A certificate validity in days: 1 to 100 years (beyond, dates overflow
/// what X.509 can write).
pub fn days(s: &str) -> Result<u32, String> {
    let max = coffre_pki::ca::MAX_VALIDITY_DAYS;
    match s.trim().parse::<u32>() {
        Ok(d) if (1..=max).contains(&d) => Ok(d),
        _ => Err(format!("'{s}' is out of range: use 1 to {max} days")),
    }
}

/// A device id: the certificate CN, MQTT username and a file name.
pub fn device_id(s: &str) -> Result<String, String> {
    coffre_pki::ca::validate_id(s).map_err(|e| e.to_string())?;
    Ok(s.to_string())
}

/// A fleet id prefix: ids are PREFIX + number, each a file name in --dir,
/// so the prefix can hold no path separator and cannot start with '.'.
pub fn id_prefix(s: &str) -> Result<String, String> {
    if s.is_empty() {
        return Err("the prefix is empty: ids would be bare numbers; use e.g. m5go-".into());
    }
    if s.len() > 48 {
        return Err("the prefix is longer than 48 characters".into());
    }
    coffre_pki::ca::validate_id(&format!("{s}1"))
        .map_err(|_| format!("'{s}' cannot start a device id: use letters, digits, '.', '_' and '-' only, not starting with '.' or '-' (ids become file names inside --dir)"))?;
    Ok(s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds() {
        assert!(interval("0s").is_err());
        assert!(interval("99999999999999999999s").is_err());
        assert_eq!(interval("500ms").unwrap(), Duration::from_millis(500));
        assert!(run_length("31d").is_err());
        assert!(id_prefix("../x-").is_err());
        assert!(id_prefix("/tmp/x-").is_err());
        assert!(id_prefix("m5go-").is_ok());
        assert_eq!(days("365"), Ok(365));
        for bad in ["0", "36501", "99999999", "-1", "x"] {
            assert!(days(bad).is_err(), "{bad}");
        }
    }
}
