//! What `relabel` reports: the new rewards' returns and success gap, their terms, frame
//! sources' agreement with the recorded success labels and, for an ensemble, each member and
//! where the members disagree.

/// One reward term over the relabelled steps (program) or scored frames (CLIP, classifier).
#[derive(Clone, Debug, serde::Serialize)]
pub struct TermSummary {
    pub name: String,
    pub mean: f64,
    pub min: f64,
    pub max: f64,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct RelabelOutcome {
    pub dataset: String,
    pub out: String,
    /// The new rewards, as the new `dataset.json` names them.
    pub reward: String,
    pub episodes: usize,
    pub steps: usize,
    /// Camera frames scored (CLIP and classifier sources; 0 for a program).
    pub frames_scored: usize,
    /// The dataset's own reward, as `dataset.json` names it, and its mean episode return.
    pub recorded_reward: String,
    pub recorded_mean_return: f64,
    pub mean_return: f64,
    /// Mean return of successful episodes minus that of failed ones (`None` when either
    /// group is empty): how well the new reward separates what the task's own success test
    /// separates.
    pub success_gap: Option<f64>,
    /// For a CLIP or classifier source: how its frame rewards line up with the success
    /// labels the frames were recorded with (the task's ground truth in that state).
    pub frame_labels: Option<LabelAgreement>,
    /// What the terms are summarised over: `steps` or `frames`.
    pub terms_over: &'static str,
    pub terms: Vec<TermSummary>,
    /// With `--ensemble`: each member, and where they disagree.
    pub ensemble: Option<EnsembleReport>,
}

/// An ensemble's members and their disagreement, over the dataset's steps.
#[derive(Clone, Debug, serde::Serialize)]
pub struct EnsembleReport {
    pub aggregate: String,
    pub members: Vec<MemberSummary>,
    /// Pearson correlation of every pair of members' step rewards.
    pub correlations: Vec<MemberCorrelation>,
    /// The standard deviation across the standardised members, averaged over steps: 0 when
    /// they agree everywhere, larger the less they agree (for unrelated members about 0.56
    /// with two, towards 1 with many).
    pub mean_spread: f64,
    /// The steps with the largest spread.
    pub most_disagreed: Vec<Disagreement>,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct MemberSummary {
    /// What the member is, as `dataset.json` would name it alone.
    pub reward: String,
    /// Mean and standard deviation of its step rewards (what it is standardised with).
    pub mean: f64,
    pub std: f64,
    /// Its own success gap (mean return of successful episodes minus failed ones).
    pub success_gap: Option<f64>,
    /// Frame sources: agreement with the frames' success labels.
    pub frame_labels: Option<LabelAgreement>,
    /// Its terms, over `steps` (programs) or `frames` (frame sources).
    pub terms_over: &'static str,
    pub terms: Vec<TermSummary>,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct MemberCorrelation {
    pub a: usize,
    pub b: usize,
    pub r: f64,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct Disagreement {
    pub episode: usize,
    pub step: usize,
    pub spread: f64,
    /// Each member's standardised reward at that step.
    pub standardised: Vec<f64>,
}

/// Frame rewards against the recorded ground-truth success labels.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct LabelAgreement {
    /// Frames labelled successful, and the others.
    pub positives: usize,
    pub negatives: usize,
    /// The mean reward of each group (`None` for an empty group).
    pub mean_reward_positive: Option<f64>,
    pub mean_reward_negative: Option<f64>,
    /// Classifier sources: of the frames it rewarded, the share labelled successful; of the
    /// frames labelled successful, the share it rewarded.
    pub precision: Option<f64>,
    pub recall: Option<f64>,
}

impl LabelAgreement {
    pub(super) fn of(rewards: &[f64], labels: &[bool], sparse: bool) -> Self {
        let mean = |want: bool| -> Option<f64> {
            let v: Vec<f64> = rewards
                .iter()
                .zip(labels)
                .filter(|(_, l)| **l == want)
                .map(|(r, _)| *r)
                .collect();
            (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
        };
        let positives = labels.iter().filter(|l| **l).count();
        let rewarded = rewards.iter().filter(|r| **r > 0.5).count();
        let both = rewards
            .iter()
            .zip(labels)
            .filter(|(r, l)| **r > 0.5 && **l)
            .count();
        let ratio = |a: usize, b: usize| (sparse && b > 0).then(|| a as f64 / b as f64);
        Self {
            positives,
            negatives: labels.len() - positives,
            mean_reward_positive: mean(true),
            mean_reward_negative: mean(false),
            precision: ratio(both, rewarded),
            recall: ratio(both, positives),
        }
    }
}

impl std::fmt::Display for RelabelOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "wrote {}: {} episodes ({} steps) of {} with rewards from {}",
            self.out, self.episodes, self.steps, self.dataset, self.reward
        )?;
        if self.frames_scored > 0 {
            writeln!(f, "  {} camera frames scored", self.frames_scored)?;
        }
        writeln!(
            f,
            "  mean return {:.3} (recorded {}: {:.3}), success gap {}",
            self.mean_return,
            self.recorded_reward,
            self.recorded_mean_return,
            self.success_gap
                .map_or_else(|| "n/a".to_owned(), |g| format!("{g:.3}"))
        )?;
        if let Some(l) = &self.frame_labels {
            let show = |v: Option<f64>| v.map_or_else(|| "n/a".to_owned(), |v| format!("{v:.3}"));
            writeln!(
                f,
                "  frames labelled successful: {} (mean reward {}), others: {} (mean reward {})",
                l.positives,
                show(l.mean_reward_positive),
                l.negatives,
                show(l.mean_reward_negative)
            )?;
            if l.precision.is_some() || l.recall.is_some() {
                writeln!(
                    f,
                    "  against the labels: precision {}, recall {}",
                    show(l.precision),
                    show(l.recall)
                )?;
            }
        }
        write_terms(f, "  ", &self.terms, self.terms_over)?;
        if let Some(e) = &self.ensemble {
            for (i, m) in e.members.iter().enumerate() {
                writeln!(
                    f,
                    "  member {i}: {} (mean {:.4}, std {:.4}, success gap {})",
                    m.reward,
                    m.mean,
                    m.std,
                    m.success_gap
                        .map_or_else(|| "n/a".to_owned(), |g| format!("{g:.3}"))
                )?;
                write_terms(f, "    ", &m.terms, m.terms_over)?;
            }
            for c in &e.correlations {
                writeln!(
                    f,
                    "  correlation of members {} and {}: {:.3}",
                    c.a, c.b, c.r
                )?;
            }
            writeln!(
                f,
                "  mean spread across members {:.3} (standardised units)",
                e.mean_spread
            )?;
            for d in &e.most_disagreed {
                writeln!(
                    f,
                    "  disagree at episode {} step {}: spread {:.3}, members {:?}",
                    d.episode,
                    d.step,
                    d.spread,
                    d.standardised
                        .iter()
                        .map(|v| (v * 1000.0).round() / 1000.0)
                        .collect::<Vec<_>>()
                )?;
            }
        }
        Ok(())
    }
}

/// One line per term: mean, minimum and maximum over steps or frames.
fn write_terms(
    f: &mut std::fmt::Formatter<'_>,
    indent: &str,
    terms: &[TermSummary],
    over: &str,
) -> std::fmt::Result {
    for t in terms {
        writeln!(
            f,
            "{indent}term {:<20} mean {:>9.4}  min {:>9.4}  max {:>9.4}  (over {over})",
            t.name, t.mean, t.min, t.max
        )?;
    }
    Ok(())
}

/// Running minimum, maximum and sum of each named term.
#[derive(Default)]
pub(super) struct TermStats {
    names: Vec<String>,
    /// (sum, min, max)
    stats: Vec<(f64, f64, f64)>,
    count: usize,
}

impl TermStats {
    pub(super) fn add(&mut self, names: &[String], values: &[f64]) {
        if self.names.is_empty() {
            self.names = names.to_vec();
            self.stats = vec![(0.0, f64::INFINITY, f64::NEG_INFINITY); names.len()];
        }
        for (stat, value) in self.stats.iter_mut().zip(values) {
            stat.0 += value;
            stat.1 = stat.1.min(*value);
            stat.2 = stat.2.max(*value);
        }
        self.count += 1;
    }

    pub(super) fn summaries(self) -> Vec<TermSummary> {
        let count = self.count.max(1) as f64;
        self.names
            .into_iter()
            .zip(self.stats)
            .map(|(name, (sum, min, max))| TermSummary {
                name,
                mean: sum / count,
                min,
                max,
            })
            .collect()
    }
}
