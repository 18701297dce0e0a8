//! Column formatting as OceanBase's views do it: times from `USEC_TO_TIME` (`''` for
//! zero), `*_DISPLAY` sizes in MB/GB/TB/PB with two decimals, ratios with two decimals.

use super::Cell;

/// `YYYY-MM-DD HH:MM:SS.ffffff` (UTC) from ms since the epoch; `''` for 0.
pub fn time(ms: u64) -> Cell {
    if ms == 0 {
        return Cell::from("");
    }
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
    let s = humantime::format_rfc3339_micros(t).to_string();
    Cell::Text(s.trim_end_matches('Z').replacen('T', " ", 1))
}

/// Bytes as OceanBase displays them: `12.34MB`, `1.50GB`, …
pub fn bytes_display(bytes: u64) -> Cell {
    const UNITS: [&str; 4] = ["MB", "GB", "TB", "PB"];
    let mut v = bytes as f64 / 1_048_576.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    Cell::Text(format!("{v:.2}{}", UNITS[unit]))
}

/// output / input, two decimals (0 when nothing was read).
pub fn ratio(output: u64, input: u64) -> Cell {
    if input == 0 {
        return Cell::Real(0.0);
    }
    Cell::Real(((output as f64 / input as f64) * 100.0).round() / 100.0)
}

/// `HH:MM:SS.ffffff` between two ms timestamps (TIMEDIFF); `''` while running.
pub fn time_taken(start_ms: u64, end_ms: u64) -> Cell {
    if end_ms == 0 || end_ms < start_ms {
        return Cell::from("");
    }
    let ms = end_ms - start_ms;
    Cell::Text(format!(
        "{:02}:{:02}:{:02}.{:06}",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000 * 1000
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_oceanbase() {
        assert_eq!(time(0), Cell::from(""));
        assert_eq!(time(1_000), Cell::from("1970-01-01 00:00:01.000000"));
        assert_eq!(bytes_display(3 * 1_048_576 / 2), Cell::from("1.50MB"));
        assert_eq!(bytes_display(5 * 1024 * 1_048_576), Cell::from("5.00GB"));
        assert_eq!(ratio(1, 3), Cell::Real(0.33));
        assert_eq!(time_taken(1_000, 62_500), Cell::from("00:01:01.500000"));
    }
}
