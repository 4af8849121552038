//! Zero-shot rewards from CLIP embeddings, as in VLM-RM (Rocamonde et al., 2023).
//!
//! With unit vectors s (image), g (goal prompt), b (baseline prompt), d = g - b and
//! v = s - g, the goal-baseline reward projects v onto the baseline-to-goal direction with
//! weight alpha before measuring its length:
//!
//! r = 1 - 0.5 * |P v|^2,  P = alpha * d d^T / |d|^2 + (1 - alpha) * I,
//!
//! which expands to 1 - 0.5 * ((1-alpha)^2 |v|^2 + alpha (2-alpha) (d.v)^2 / |d|^2).
//! With alpha = 0 this is 1 - 0.5 |s - g|^2, the cosine similarity of s and g.

/// Why embeddings cannot be scored.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ScoreError {
    #[error("embedding sizes differ: image {image}, goal {goal}, baseline {baseline}")]
    SizeMismatch {
        image: usize,
        goal: usize,
        baseline: usize,
    },
    #[error("the {which} embedding is empty, zero or not finite")]
    Degenerate { which: &'static str },
    #[error("alpha = {0} is outside [0, 1]")]
    Alpha(f64),
    #[error("goal and baseline embeddings are identical: no direction to project on")]
    NoDirection,
}

fn normalised(x: &[f32], which: &'static str) -> Result<Vec<f64>, ScoreError> {
    let norm = x.iter().map(|v| (*v as f64).powi(2)).sum::<f64>().sqrt();
    if x.is_empty() || !norm.is_finite() || norm == 0.0 {
        return Err(ScoreError::Degenerate { which });
    }
    Ok(x.iter().map(|v| *v as f64 / norm).collect())
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Cosine similarity of an image and a goal embedding (any scale; both are normalised).
pub fn cosine_reward(image: &[f32], goal: &[f32]) -> Result<f64, ScoreError> {
    if image.len() != goal.len() {
        return Err(ScoreError::SizeMismatch {
            image: image.len(),
            goal: goal.len(),
            baseline: 0,
        });
    }
    let s = normalised(image, "image")?;
    let g = normalised(goal, "goal")?;
    Ok(dot(&s, &g))
}

/// A goal-baseline scorer: text embeddings are normalised once, images per call.
#[derive(Clone, Debug)]
pub struct GoalBaselineReward {
    goal: Vec<f64>,
    /// Unit vector from baseline to goal.
    direction: Vec<f64>,
    alpha: f64,
}

impl GoalBaselineReward {
    pub fn new(goal: &[f32], baseline: &[f32], alpha: f64) -> Result<Self, ScoreError> {
        if goal.len() != baseline.len() {
            return Err(ScoreError::SizeMismatch {
                image: 0,
                goal: goal.len(),
                baseline: baseline.len(),
            });
        }
        if !(0.0..=1.0).contains(&alpha) {
            return Err(ScoreError::Alpha(alpha));
        }
        let g = normalised(goal, "goal")?;
        let b = normalised(baseline, "baseline")?;
        let d: Vec<f64> = g.iter().zip(&b).map(|(g, b)| g - b).collect();
        let norm = dot(&d, &d).sqrt();
        if norm < 1e-12 {
            return Err(ScoreError::NoDirection);
        }
        Ok(Self {
            goal: g,
            direction: d.iter().map(|x| x / norm).collect(),
            alpha,
        })
    }

    /// The reward of one image embedding, in [-1, 1].
    pub fn score(&self, image: &[f32]) -> Result<f64, ScoreError> {
        if image.len() != self.goal.len() {
            return Err(ScoreError::SizeMismatch {
                image: image.len(),
                goal: self.goal.len(),
                baseline: self.goal.len(),
            });
        }
        let s = normalised(image, "image")?;
        let v: Vec<f64> = s.iter().zip(&self.goal).map(|(s, g)| s - g).collect();
        let along = dot(&self.direction, &v);
        let a = self.alpha;
        Ok(1.0 - 0.5 * ((1.0 - a).powi(2) * dot(&v, &v) + a * (2.0 - a) * along * along))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The projection written out as a matrix, independent of the closed form above.
    fn by_matrix(s: &[f32], g: &[f32], b: &[f32], alpha: f64) -> f64 {
        let n = |x: &[f32]| {
            let l = x.iter().map(|v| (*v as f64).powi(2)).sum::<f64>().sqrt();
            x.iter().map(|v| *v as f64 / l).collect::<Vec<_>>()
        };
        let (s, g, b) = (n(s), n(g), n(b));
        let d: Vec<f64> = g.iter().zip(&b).map(|(g, b)| g - b).collect();
        let dd: f64 = d.iter().map(|x| x * x).sum();
        let v: Vec<f64> = s.iter().zip(&g).map(|(s, g)| s - g).collect();
        let k = d.len();
        let mut pv = vec![0.0; k];
        for i in 0..k {
            for j in 0..k {
                let p = alpha * d[i] * d[j] / dd + if i == j { 1.0 - alpha } else { 0.0 };
                pv[i] += p * v[j];
            }
        }
        1.0 - 0.5 * pv.iter().map(|x| x * x).sum::<f64>()
    }

    #[test]
    fn closed_form_matches_the_projection_matrix() {
        let s = [0.3f32, -0.2, 0.9, 0.1];
        let g = [0.5f32, 0.1, 0.7, -0.3];
        let b = [-0.1f32, 0.4, 0.2, 0.6];
        for alpha in [0.0, 0.25, 0.5, 1.0] {
            let r = GoalBaselineReward::new(&g, &b, alpha)
                .unwrap()
                .score(&s)
                .unwrap();
            assert!(
                (r - by_matrix(&s, &g, &b, alpha)).abs() < 1e-12,
                "alpha {alpha}"
            );
        }
    }

    #[test]
    fn alpha_zero_is_cosine_similarity() {
        let s = [1.0f32, 2.0, 3.0];
        let g = [3.0f32, -1.0, 0.5];
        let b = [0.0f32, 1.0, 0.0];
        let r = GoalBaselineReward::new(&g, &b, 0.0)
            .unwrap()
            .score(&s)
            .unwrap();
        assert!((r - cosine_reward(&s, &g).unwrap()).abs() < 1e-12);
    }

    #[test]
    fn reward_rises_as_the_image_moves_from_baseline_to_goal() {
        let g = [1.0f32, 0.0, 0.0];
        let b = [0.0f32, 1.0, 0.0];
        let scorer = GoalBaselineReward::new(&g, &b, 1.0).unwrap();
        let at_baseline = scorer.score(&b).unwrap();
        let halfway = scorer.score(&[0.5, 0.5, 0.0]).unwrap();
        let at_goal = scorer.score(&g).unwrap();
        assert!(at_baseline < halfway && halfway < at_goal);
        assert!((at_goal - 1.0).abs() < 1e-12);
    }

    #[test]
    fn bad_inputs_are_errors() {
        assert!(matches!(
            GoalBaselineReward::new(&[1.0, 0.0], &[1.0, 0.0], 0.5),
            Err(ScoreError::NoDirection)
        ));
        assert!(matches!(
            GoalBaselineReward::new(&[1.0, 0.0], &[0.0, 1.0], 1.5),
            Err(ScoreError::Alpha(_))
        ));
        let scorer = GoalBaselineReward::new(&[1.0, 0.0], &[0.0, 1.0], 0.5).unwrap();
        assert!(matches!(
            scorer.score(&[0.0, 0.0]),
            Err(ScoreError::Degenerate { .. })
        ));
        assert!(matches!(
            scorer.score(&[f32::NAN, 0.0]),
            Err(ScoreError::Degenerate { .. })
        ));
        assert!(matches!(
            scorer.score(&[1.0]),
            Err(ScoreError::SizeMismatch { .. })
        ));
    }
}
