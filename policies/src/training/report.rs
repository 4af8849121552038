//! How a run reads to a person: the outcome, an evaluation's progress line, diagnostics on
//! one line.

use rlrt_runtime::evaluation::Evaluation;

use super::TrainOutcome;
use crate::iql::Diagnostics;
use crate::iql_config::Algorithm;

impl std::fmt::Display for TrainOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{} steps in {:.1} s, updates at {:.0} steps/s on {} thread{}; checkpoint {}",
            self.steps,
            self.train_seconds,
            self.steps_per_s,
            self.threads,
            if self.threads == 1 { "" } else { "s" },
            self.out.display()
        )?;
        let h = &self.hyperparameters;
        if self.algorithm == Algorithm::Iql {
            writeln!(
                f,
                "preset {}: expectile {}, temperature {}, rewards x {:.4} {:+}",
                h.preset.map_or("none".into(), |p| p.to_string()),
                h.expectile,
                h.temperature,
                h.reward_scale,
                h.reward_shift
            )?;
        }
        if self.interrupted {
            writeln!(
                f,
                "interrupted: the checkpoint holds step {}; continue with --resume",
                self.steps
            )?;
        }
        // Tasks without a success test (Gymnasium's) are judged by return alone.
        if self.final_eval.is_none_or(|e| e.success_test) {
            writeln!(
                f,
                "dataset (behaviour) success rate: {:.0}%",
                self.dataset_success_rate * 100.0
            )?;
        }
        writeln!(
            f,
            "dataset (behaviour) mean return: {:.2}",
            self.dataset_mean_return
        )?;
        if let Some(e) = &self.final_eval {
            writeln!(f, "final evaluation: {e}")?;
        }
        if let Some(d) = &self.final_diagnostics {
            writeln!(
                f,
                "final offline diagnostics ({}; not a rollout): {}",
                self.diagnostics_on_text(),
                DiagnosticsLine(d)
            )?;
        }
        Ok(())
    }
}

impl TrainOutcome {
    fn diagnostics_on_text(&self) -> String {
        match self.diagnostics_on {
            Some("held_out") => format!("{} held-out episodes", self.held_out_episodes.len()),
            _ => "training data".into(),
        }
    }
}

/// Diagnostics on one line.
pub struct DiagnosticsLine<'a>(pub &'a Diagnostics);

impl std::fmt::Display for DiagnosticsLine<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let d = self.0;
        write!(
            f,
            "{} transitions, action error {:.4} (mean abs, action units)",
            d.transitions, d.action_mae
        )?;
        if let Some(ll) = d.log_likelihood {
            write!(f, ", log-likelihood {ll:.3}")?;
        }
        if let Some(c) = &d.critic {
            write!(
                f,
                ", TD error {:.3} (rms), V {:.2}+-{:.2}, Q {:.2}+-{:.2}, expectile loss {:.4}, \
                 advantage {:+.3}, weight {:.2} ({:.1}% clipped)",
                c.td_error_rms,
                c.v_mean,
                c.v_std,
                c.q_mean,
                c.q_std,
                c.expectile_loss,
                c.advantage_mean,
                c.weight_mean,
                100.0 * c.clipped_share
            )?;
        }
        Ok(())
    }
}

/// The line said after an evaluation at `step`.
pub(super) fn eval_line(
    step: usize,
    eval: Option<&Evaluation>,
    diagnostics: Option<&Diagnostics>,
    diagnostics_on: Option<&str>,
) -> String {
    let mut line = format!("step {step}:");
    if let Some(e) = eval {
        line += &format!(" {e}");
    }
    if let Some(d) = diagnostics {
        let on = match diagnostics_on {
            Some("held_out") => "held-out",
            Some(_) => "training data",
            None => "",
        };
        line += &format!(" offline ({on}; not a rollout): {}", DiagnosticsLine(d));
    }
    line
}
