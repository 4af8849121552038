//! Comparing two computations of the same values (an export against its source, rlrt against
//! a reference implementation). `f64::max` ignores NaN, so a fold with it reports 0 for
//! outputs that are all NaN; these helpers make NaN and missing values the worst possible
//! difference instead.

/// The larger of two absolute differences, where NaN wins: fold with it from 0.0.
pub fn worse(worst: f64, difference: f64) -> f64 {
    if difference.is_nan() || difference > worst {
        difference
    } else {
        worst
    }
}

/// The largest |a_i - b_i|: NaN when any pair involves NaN, infinity when the lengths differ.
pub fn max_abs_difference(a: &[f64], b: &[f64]) -> f64 {
    if a.len() != b.len() {
        return f64::INFINITY;
    }
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, worse)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nan_and_length_mismatch_are_the_worst_difference() {
        assert_eq!(max_abs_difference(&[1.0, 2.0], &[1.5, 2.0]), 0.5);
        assert!(max_abs_difference(&[1.0, f64::NAN], &[1.0, 2.0]).is_nan());
        assert!(max_abs_difference(&[f64::NAN, 1.0], &[1.0, 2.0]).is_nan());
        assert_eq!(max_abs_difference(&[1.0], &[1.0, 2.0]), f64::INFINITY);
        assert_eq!([0.1, 0.3, 0.2].into_iter().fold(0.0, worse), 0.3);
    }
}
