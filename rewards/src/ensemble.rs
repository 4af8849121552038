//! Combining several reward models. Ensembles reduce (but do not remove) reward hacking:
//! a policy that exploits one model is rarely rewarded by all of them, so conservative
//! aggregates (the minimum, or the mean minus k standard deviations) and the spread itself
//! (where models disagree) are what to watch.

/// How member rewards are combined into one.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Aggregate {
    Mean,
    Min,
    /// Mean minus `k` population standard deviations.
    MeanMinusStd {
        k: f64,
    },
    /// Sum over members of log-sigmoid(r - reference): for rewards on a Bradley-Terry
    /// scale this behaves like a logical AND (high only when every member is high).
    LogSigmoidAnd {
        reference: f64,
    },
}

impl std::fmt::Display for Aggregate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Aggregate::Mean => write!(f, "mean"),
            Aggregate::Min => write!(f, "min"),
            Aggregate::MeanMinusStd { k } => write!(f, "mean-minus-std:{k}"),
            Aggregate::LogSigmoidAnd { reference } => write!(f, "and:{reference}"),
        }
    }
}

/// An aggregate that is none of `mean`, `min`, `mean-minus-std[:K]`, `and[:REFERENCE]`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadAggregate(String);

impl std::str::FromStr for Aggregate {
    type Err = BadAggregate;

    /// `mean`, `min`, `mean-minus-std[:K]` (K standard deviations, default 1) or
    /// `and[:REFERENCE]` (the log-sigmoid sum around REFERENCE, default 0).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (name, value) = match text.split_once(':') {
            Some((name, value)) => (name, Some(value)),
            None => (text, None),
        };
        let number = |default: f64| -> Result<f64, BadAggregate> {
            match value {
                None => Ok(default),
                Some(v) => match v.parse::<f64>() {
                    Ok(x) if x.is_finite() => Ok(x),
                    _ => Err(BadAggregate(format!(
                        "{text:?}: {v:?} is not a finite number"
                    ))),
                },
            }
        };
        let plain = |how: Aggregate| match value {
            None => Ok(how),
            Some(_) => Err(BadAggregate(format!("{text:?}: {name} takes no value"))),
        };
        match name {
            "mean" => plain(Aggregate::Mean),
            "min" => plain(Aggregate::Min),
            "mean-minus-std" => Ok(Aggregate::MeanMinusStd { k: number(1.0)? }),
            "and" => Ok(Aggregate::LogSigmoidAnd {
                reference: number(0.0)?,
            }),
            _ => Err(BadAggregate(format!(
                "{text:?}: expected mean, min, mean-minus-std[:K] or and[:REFERENCE]"
            ))),
        }
    }
}

/// One combined value with the spread that produced it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Combined {
    pub value: f64,
    pub mean: f64,
    pub std: f64,
    pub min: f64,
    pub max: f64,
}

/// Numerically stable log(sigmoid(x)).
pub fn log_sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        -(-x).exp().ln_1p()
    } else {
        x - x.exp().ln_1p()
    }
}

/// Combines member rewards. `None` when there are none or any is not finite: an invalid
/// member invalidates the tick's reward rather than silently shifting it.
pub fn combine(rewards: &[f64], how: Aggregate) -> Option<Combined> {
    if rewards.is_empty() || !rewards.iter().all(|r| r.is_finite()) {
        return None;
    }
    let n = rewards.len() as f64;
    let mean = rewards.iter().sum::<f64>() / n;
    let std = (rewards.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / n).sqrt();
    let min = rewards.iter().copied().fold(f64::INFINITY, f64::min);
    let max = rewards.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let value = match how {
        Aggregate::Mean => mean,
        Aggregate::Min => min,
        Aggregate::MeanMinusStd { k } => mean - k * std,
        Aggregate::LogSigmoidAnd { reference } => {
            rewards.iter().map(|r| log_sigmoid(r - reference)).sum()
        }
    };
    Some(Combined {
        value,
        mean,
        std,
        min,
        max,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aggregates() {
        let r = [1.0, 2.0, 6.0];
        assert_eq!(combine(&r, Aggregate::Mean).unwrap().value, 3.0);
        assert_eq!(combine(&r, Aggregate::Min).unwrap().value, 1.0);
        let c = combine(&r, Aggregate::MeanMinusStd { k: 1.0 }).unwrap();
        let std = (14.0f64 / 3.0).sqrt();
        assert!((c.value - (3.0 - std)).abs() < 1e-12);
        assert_eq!((c.min, c.max), (1.0, 6.0));
        assert!(combine(&[], Aggregate::Mean).is_none());
        assert!(combine(&[1.0, f64::NAN], Aggregate::Mean).is_none());
    }

    #[test]
    fn aggregates_parse_and_print() {
        for (text, how) in [
            ("mean", Aggregate::Mean),
            ("min", Aggregate::Min),
            ("mean-minus-std", Aggregate::MeanMinusStd { k: 1.0 }),
            ("mean-minus-std:0.5", Aggregate::MeanMinusStd { k: 0.5 }),
            ("and", Aggregate::LogSigmoidAnd { reference: 0.0 }),
            ("and:-1", Aggregate::LogSigmoidAnd { reference: -1.0 }),
        ] {
            assert_eq!(text.parse::<Aggregate>(), Ok(how), "{text}");
            assert_eq!(how.to_string().parse::<Aggregate>(), Ok(how));
        }
        for bad in ["max", "min:2", "mean-minus-std:x", "and:inf", ""] {
            let e = bad.parse::<Aggregate>().unwrap_err().to_string();
            assert!(e.contains(&format!("{bad:?}")), "{e}");
        }
    }

    #[test]
    fn log_sigmoid_sum_acts_like_and() {
        let and = |r: &[f64]| {
            combine(r, Aggregate::LogSigmoidAnd { reference: 0.0 })
                .unwrap()
                .value
        };
        // Both high beats one very high and one low, although the latter has a higher sum.
        assert!(and(&[3.0, 3.0]) > and(&[10.0, -2.0]));
        assert!((log_sigmoid(0.0) - 0.5f64.ln()).abs() < 1e-12);
        assert!(log_sigmoid(-800.0).is_finite() && log_sigmoid(800.0) <= 0.0);
    }
}
