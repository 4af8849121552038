//! The prompt a language model reads to write a reward program: the environment
//! description, the rules of the language and two worked examples.
//!
//! The examples are for other robots and tasks on purpose: a model shown the answer's shape
//! for a different task copies the form (a map of a few named, bounded terms; dense shaping
//! plus a success bonus) rather than the content.

use super::env::Environment;
use super::sandbox::Limits;

/// First example: a lifting task with a gripper (names that the target robot may not have).
pub const EXAMPLE_LIFT: &str = r#"// Lift the cube at least 10 cm above the table.
let gap = distance(gripper_position, cube_position);
let height = cube_position[2];
let holding = gap < 0.03;
#{
    // Dense: approach the cube (1 when within 2 cm, 0.1 at 22 cm).
    approach: tolerance(gap, 0.0, 0.02, 0.2),
    // Dense: raise it, counted only while the gripper is at the cube.
    lift: 2.0 * tolerance(height, 0.1, 10.0, 0.1) * indicator(holding),
    // Sparse: the task's success condition.
    success: 5.0 * indicator(holding && height >= 0.1),
}"#;

/// Second example: a joint-space task that loops over the joints.
pub const EXAMPLE_HOME: &str = r#"// Bring every joint to 0 rad and stop there, moving smoothly.
let squared = 0.0;
for q in joint_positions {
    squared += q * q;
}
let pose_error = sqrt(squared);
let speed = norm(joint_velocities);
#{
    pose: -pose_error,
    // Being still only counts near the pose, otherwise standing still would pay.
    still: 0.5 * tolerance(speed, 0.0, 0.05, 1.0) * indicator(pose_error < 0.1),
    smooth: -0.01 * norm(previous_action),
}"#;

/// The rules of the language, shared by the first prompt and refinement prompts.
pub fn rules(limits: &Limits, max_abs_term: f64) -> String {
    format!(
        "Rules of the reward program language (Rhai):\n\
         - The program is a script body, not a function. The variables above already exist \
           and are read-only; declare your own with `let`. End statements with `;`.\n\
         - Its last expression is a map of named terms: #{{ name: value, ... }}. Every value \
           is a number; the reward is the sum of the terms. Use 2 to 6 terms with short \
           snake_case names, already weighted, and return the same names on every call.\n\
         - Write floats with a decimal point (0.5, 1.0). x ** 2 is x squared. Index arrays \
           with v[0]; loop with `for x in array {{ ... }}`. Vectors are arrays: use the \
           helpers (sub, add, scale, distance, norm, dot), not + or - on arrays.\n\
         - Every term must stay finite and within +/-{max_abs_term} for any state within \
           the robot's limits: never divide by something that can be zero (use \
           max(x, 1e-6)), and prefer tolerance(...) or exp(-k * d) to 1 / d.\n\
         - Give dense terms that improve smoothly as the robot gets closer to success, plus \
           a bonus term when the task's success condition holds. Do not reward what a \
           policy could exploit without doing the task.\n\
         - Only the listed variables and functions exist: no files, network, time, \
           randomness or output. At most {} operations per call, so keep loops short.\n\
         - Answer with the whole program in one ```rhai code block.\n",
        limits.max_operations
    )
}

/// The full prompt for one task sentence.
pub fn prompt(env: &Environment, task: &str, limits: &Limits, max_abs_term: f64) -> String {
    format!(
        "You write dense reward functions for reinforcement learning on a robot.\n\n\
         Task: {task}\n\n\
         {}\n\
         {}\n\
         Example 1, for another robot that has gripper_position and cube_position \
         (array[3] of float [m]):\n```rhai\n{EXAMPLE_LIFT}\n```\n\n\
         Example 2, for a robot with joints:\n```rhai\n{EXAMPLE_HOME}\n```\n\n\
         Now write the reward program for the task \"{task}\", using only the names \
         listed for this robot.\n",
        env.describe(),
        rules(limits, max_abs_term),
    )
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::program::{check, CheckOptions};

    fn config(text: &str) -> rlrt_runtime::RobotConfig {
        rlrt_runtime::config::parse(text, Path::new("example.toml")).unwrap()
    }

    const REACH: &str = include_str!("../../../hw-configs/reach-arm.toml");

    #[test]
    fn the_prompt_names_the_task_the_environment_and_the_rules() {
        let env = Environment::from_config(&config(REACH)).unwrap();
        let text = prompt(&env, "touch the target", &Limits::default(), 1e3);
        for part in [
            "Task: touch the target",
            "- target_position: array[3] of float [m]",
            "tolerance(x, lo, hi, margin)",
            "At most 20000 operations",
            EXAMPLE_LIFT,
        ] {
            assert!(text.contains(part), "prompt lacks {part:?}");
        }
    }

    #[test]
    fn the_examples_pass_the_check_on_robots_that_have_their_names() {
        let lift = REACH
            .replace("ee_position", "gripper_position")
            .replace("target_position", "cube_position");
        for (text, program) in [(lift.as_str(), EXAMPLE_LIFT), (REACH, EXAMPLE_HOME)] {
            let env = Environment::from_config(&config(text)).unwrap();
            let result = check(
                &env,
                program,
                Path::new("example.rhai"),
                &Limits::default(),
                &CheckOptions::default(),
            );
            assert!(result.is_ok(), "{}", result.unwrap_err());
        }
    }
}
