//! Rounding of the figures Sori reports, so JSON and records stay readable.

/// `v` rounded to `decimals` decimal places.
pub fn round_to(v: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (v * scale).round() / scale
}

#[cfg(test)]
mod tests {
    use super::round_to;

    #[test]
    fn rounds_half_away_from_zero_at_the_given_place() {
        assert_eq!(round_to(1.23456, 2), 1.23);
        assert_eq!(round_to(1.23456, 4), 1.2346);
        assert_eq!(round_to(-0.0005, 3), -0.001);
        assert_eq!(round_to(11.0, 3), 11.0);
    }
}
