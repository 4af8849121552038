//! Evaluation episodes summed up: success rate with its Wilson interval, mean return with a
//! normal-approximation interval, mean length. Rollouts in a simulator and offline training
//! both report one.

use crate::recording::Episode;

/// Summary of evaluation episodes.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct Evaluation {
    pub episodes: usize,
    /// Whether the task has a success test (Gymnasium's tasks do not: their successes are
    /// always 0 and only the return counts).
    pub success_test: bool,
    pub successes: usize,
    pub success_rate: f64,
    /// Wilson score interval (95%) of the success rate.
    pub success_low: f64,
    pub success_high: f64,
    pub mean_return: f64,
    /// Normal-approximation 95% interval of the mean return (mean +/- 1.96 standard errors).
    pub return_low: f64,
    pub return_high: f64,
    /// Mean number of steps per episode (below the time limit when episodes terminate).
    pub mean_steps: f64,
}

impl Evaluation {
    pub fn of(episodes: &[Episode], success_test: bool) -> Self {
        let n = episodes.len();
        let successes = episodes.iter().filter(|e| e.success).count();
        let (low, high) = wilson(successes, n);
        let returns: Vec<f64> = episodes.iter().map(Episode::total_reward).collect();
        let mean = returns.iter().sum::<f64>() / n.max(1) as f64;
        let half = if n > 1 {
            let var = returns.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
            1.959_963_984_540_054 * (var / n as f64).sqrt()
        } else {
            0.0
        };
        Self {
            episodes: n,
            success_test,
            successes,
            success_rate: successes as f64 / n.max(1) as f64,
            success_low: low,
            success_high: high,
            mean_return: mean,
            return_low: mean - half,
            return_high: mean + half,
            mean_steps: episodes.iter().map(|e| e.steps() as f64).sum::<f64>() / n.max(1) as f64,
        }
    }
}

impl std::fmt::Display for Evaluation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.success_test {
            write!(
                f,
                "success {}/{} = {:.0}% (95% CI {:.0}-{:.0}%), ",
                self.successes,
                self.episodes,
                self.success_rate * 100.0,
                self.success_low * 100.0,
                self.success_high * 100.0,
            )?;
        } else {
            write!(f, "{} episodes, ", self.episodes)?;
        }
        write!(
            f,
            "mean return {:.2} (95% CI {:.2} to {:.2}), mean length {:.0} steps",
            self.mean_return, self.return_low, self.return_high, self.mean_steps
        )
    }
}

/// The Wilson score interval at 95% (z = 1.96) for `k` successes in `n` trials.
pub fn wilson(k: usize, n: usize) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let (k, n, z) = (k as f64, n as f64, 1.959_963_984_540_054f64);
    let p = k / n;
    let denom = 1.0 + z * z / n;
    let centre = (p + z * z / (2.0 * n)) / denom;
    let half = z * (p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt() / denom;
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wilson_matches_published_values() {
        // 10 of 50: 0.112 to 0.330 (Wilson 1927, as tabulated by common calculators).
        let (lo, hi) = wilson(10, 50);
        assert!(
            (lo - 0.1124).abs() < 1e-3 && (hi - 0.3304).abs() < 1e-3,
            "{lo} {hi}"
        );
        let (lo, hi) = wilson(50, 50);
        assert!(hi == 1.0 && (lo - 0.9287).abs() < 1e-3, "{lo}");
    }
}
