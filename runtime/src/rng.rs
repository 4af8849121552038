//! splitmix64: a tiny, well-mixed generator for everything seeded in rlrt (simulator
//! resets, exploration noise, minibatches, initial weights, reward-program dry runs), so a
//! seed means the same numbers in every crate and on every platform.

/// Advances `state` and returns the next 64 random bits.
pub fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A uniform draw in `[0, 1)` (53 bits).
pub fn uniform01(state: &mut u64) -> f64 {
    (splitmix64(state) >> 11) as f64 / (1u64 << 53) as f64
}

/// A uniform draw in `[lo, hi)`.
pub fn uniform(state: &mut u64, lo: f64, hi: f64) -> f64 {
    lo + (hi - lo) * uniform01(state)
}

/// A standard normal draw (Box-Muller, two uniform draws per value).
pub fn gaussian(state: &mut u64) -> f64 {
    let u1 = uniform01(state).max(f64::MIN_POSITIVE);
    let u2 = uniform01(state);
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// Shuffles `items` in place (Fisher-Yates: from the last position down, each swaps with a
/// uniformly drawn position at or before it; one draw per position).
pub fn shuffle<T>(state: &mut u64, items: &mut [T]) {
    for i in (1..items.len()).rev() {
        // `min` guards the (measure-zero) draw that rounds up to i + 1.
        let j = (uniform01(state) * (i + 1) as f64) as usize;
        items.swap(i, j.min(i));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shuffle_permutes_and_repeats_for_a_seed() {
        let shuffled = |seed: u64| {
            let mut state = seed;
            let mut items: Vec<usize> = (0..50).collect();
            shuffle(&mut state, &mut items);
            items
        };
        let a = shuffled(7);
        assert_eq!(a, shuffled(7));
        assert_ne!(a, shuffled(8));
        assert_ne!(a, (0..50).collect::<Vec<_>>());
        let mut sorted = a.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..50).collect::<Vec<_>>());
    }
}
