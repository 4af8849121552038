//! The interface the loop calls once per tick to turn an observation into an action.

/// Why a policy produced no action this tick. Plain data: no strings on the control path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// The policy needs more observations before it can act.
    #[error("the policy needs more observations before it can act")]
    NotReady,
    /// A numerical failure inside the policy.
    #[error("a numerical failure inside the policy")]
    Numerical,
    /// A backend (ONNX Runtime, libtorch, a GPU) reported an error, with its code.
    #[error("the policy's backend reported error {0}")]
    Backend(i32),
}

/// A control policy. Implementations must not allocate, lock or block in [`Policy::act`];
/// the loop checks the sizes once, when it is built, and never again.
pub trait Policy: Send {
    /// A short name for logs.
    fn name(&self) -> &str;
    /// Length of the flat observation vector the policy reads.
    fn input_len(&self) -> usize;
    /// Number of action values the policy writes.
    fn output_len(&self) -> usize;
    /// Called when an episode starts (and before the first tick).
    fn reset(&mut self) {}
    /// Writes the action for `observation` into `action`. Both have exactly the lengths
    /// declared above. Values may be anything: the safety layer filters them.
    fn act(&mut self, observation: &[f64], action: &mut [f64]) -> Result<(), PolicyError>;
}
