//! Durations as people type them ("20s", "500ms", "2m", "1.5"), and the
//! bounds on the time between readings that every program taking one
//! (`coffre publish`, `coffre fleet`, `coffre-device`) applies.

use std::time::Duration;

/// The shortest time between readings: below it a publisher takes
/// readings in a busy loop and queues them faster than any broker takes
/// them.
pub const MIN_INTERVAL: Duration = Duration::from_millis(10);

/// The longest time between readings: a day.
pub const MAX_INTERVAL: Duration = Duration::from_secs(86_400);

/// Parse a duration such as "20s", "500ms", "2m" or "1.5" (seconds).
pub fn parse(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let (num, unit) = match t.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => (&t[..i], &t[i..]),
        None => (t, "s"),
    };
    let v: f64 = num
        .parse()
        .map_err(|_| format!("'{s}' is not a duration (e.g. 20s, 500ms, 1m)"))?;
    let secs = match unit {
        "ms" => v / 1000.0,
        "s" => v,
        "m" | "min" => v * 60.0,
        _ => return Err(format!("'{s}': unknown unit '{unit}' (use ms, s or m)")),
    };
    Duration::try_from_secs_f64(secs)
        .map_err(|_| format!("'{s}' is out of range (at most {} s)", u64::MAX))
}

/// A duration between `min` and `max`, or an error that says the range.
pub fn bounded(s: &str, min: Duration, max: Duration) -> Result<Duration, String> {
    let d = parse(s)?;
    if d < min || d > max {
        return Err(format!(
            "'{s}' is out of range: use {} to {}",
            show(min),
            show(max)
        ));
    }
    Ok(d)
}

fn show(d: Duration) -> String {
    match d.as_millis() {
        ms if ms < 1000 => format!("{ms}ms"),
        ms if ms % 86_400_000 == 0 => format!("{}d", ms / 86_400_000),
        ms => format!("{}s", ms / 1000),
    }
}

/// Time between readings: [`MIN_INTERVAL`] to [`MAX_INTERVAL`].
pub fn interval(s: &str) -> Result<Duration, String> {
    bounded(s, MIN_INTERVAL, MAX_INTERVAL)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse("3h").is_err());
        assert!(parse("x").is_err());
        // Too large for a Duration: an error, not a panic.
        assert!(parse("99999999999999999999s").is_err());
    }

    #[test]
    fn intervals() {
        for bad in ["0", "0s", "9ms", "1.5d", "86401", "-1"] {
            assert!(interval(bad).is_err(), "{bad}");
        }
        assert_eq!(interval("10ms"), Ok(MIN_INTERVAL));
        assert_eq!(interval("2"), Ok(Duration::from_secs(2)));
        assert!(interval("1ms").unwrap_err().contains("10ms to 1d"));
    }
}
