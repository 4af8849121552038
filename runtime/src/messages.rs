//! The in-process forms of what crosses the link: robot observations and commands, and the
//! lock-free "newest value" mailbox that hands observations to the tick.
//!
//! Both messages are fixed-size `Copy` values so that ticks never allocate; the sizes of the
//! arrays are the limits in [`crate::config`].

use crate::config::{ActionMode, MAX_ACTION, MAX_JOINTS, MAX_SENSOR_VALUES};

/// One sample of robot state.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Observation {
    /// Sender's sequence number; increases by one per sample.
    pub seq: u64,
    /// When the robot sampled the state, on the robot's clock.
    pub stamp_ns: u64,
    /// When the runtime received it, on the runtime's clock. Staleness is judged on this,
    /// so robot and runtime clocks need not be synchronised.
    pub received_ns: u64,
    pub dof: u32,
    pub joint_positions: [f64; MAX_JOINTS],
    pub joint_velocities: [f64; MAX_JOINTS],
    pub joint_efforts: [f64; MAX_JOINTS],
    /// Values of the extra sensors in config order; `sensor_len` are used.
    pub sensor_len: u32,
    pub sensors: [f64; MAX_SENSOR_VALUES],
}

impl Observation {
    pub fn empty(dof: usize, sensor_len: usize) -> Self {
        Self {
            seq: 0,
            stamp_ns: 0,
            received_ns: 0,
            dof: dof.min(MAX_JOINTS) as u32,
            joint_positions: [0.0; MAX_JOINTS],
            joint_velocities: [0.0; MAX_JOINTS],
            joint_efforts: [0.0; MAX_JOINTS],
            sensor_len: sensor_len.min(MAX_SENSOR_VALUES) as u32,
            sensors: [0.0; MAX_SENSOR_VALUES],
        }
    }

    pub fn positions(&self) -> &[f64] {
        &self.joint_positions[..self.dof as usize]
    }

    pub fn velocities(&self) -> &[f64] {
        &self.joint_velocities[..self.dof as usize]
    }

    pub fn efforts(&self) -> &[f64] {
        &self.joint_efforts[..self.dof as usize]
    }

    pub fn sensor_values(&self) -> &[f64] {
        &self.sensors[..self.sensor_len as usize]
    }

    /// True when every used value is finite.
    pub fn is_finite(&self) -> bool {
        self.positions().iter().all(|v| v.is_finite())
            && self.velocities().iter().all(|v| v.is_finite())
            && self.efforts().iter().all(|v| v.is_finite())
            && self.sensor_values().iter().all(|v| v.is_finite())
    }
}

/// One command to the robot, already through the safety layer.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Command {
    pub seq: u64,
    /// When the runtime published it, on the runtime's clock.
    pub stamp_ns: u64,
    pub mode: ActionMode,
    /// True when the safety layer replaced the policy's action with the fault action.
    pub is_fault_action: bool,
    pub len: u32,
    pub values: [f64; MAX_ACTION],
}

impl Command {
    pub fn new(mode: ActionMode, len: usize) -> Self {
        Self {
            seq: 0,
            stamp_ns: 0,
            mode,
            is_fault_action: false,
            len: len.min(MAX_ACTION) as u32,
            values: [0.0; MAX_ACTION],
        }
    }

    pub fn values(&self) -> &[f64] {
        &self.values[..self.len as usize]
    }
}

/// Why a command could not be handed to the robot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SinkError {
    /// The robot or simulator is gone.
    Disconnected,
    /// The transport refused the message (queue full, congestion).
    Rejected,
}

/// Where commands go: the link to a robot, or an in-process simulator.
pub trait CommandSink: Send {
    /// Publishes one command. Must not block for long or allocate.
    fn send(&mut self, command: &Command) -> Result<(), SinkError>;
}

/// Creates the mailbox between whoever receives observations (a link or simulator thread)
/// and the tick. The writer never waits for the reader and vice versa.
pub fn observation_mailbox(
    dof: usize,
    sensor_len: usize,
) -> (ObservationWriter, ObservationReader) {
    let (input, output) = triple_buffer::triple_buffer(&Observation::empty(dof, sensor_len));
    (
        ObservationWriter { input },
        ObservationReader {
            output,
            seen_any: false,
        },
    )
}

/// Write side of the observation mailbox.
pub struct ObservationWriter {
    input: triple_buffer::Input<Observation>,
}

impl ObservationWriter {
    /// Replaces the newest observation. `seq` 0 is reserved for "nothing received yet".
    pub fn publish(&mut self, observation: &Observation) {
        self.input.write(*observation);
    }
}

/// Read side of the observation mailbox, owned by the control loop.
pub struct ObservationReader {
    output: triple_buffer::Output<Observation>,
    seen_any: bool,
}

impl ObservationReader {
    /// The newest observation, or `None` if nothing has arrived yet. Lock-free.
    pub fn latest(&mut self) -> Option<&Observation> {
        let observation = self.output.read();
        if observation.seq != 0 {
            self.seen_any = true;
        }
        if self.seen_any {
            Some(observation)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_sees_nothing_then_the_newest() {
        let (mut writer, mut reader) = observation_mailbox(2, 0);
        assert!(reader.latest().is_none());
        let mut obs = Observation::empty(2, 0);
        for seq in 1..=3 {
            obs.seq = seq;
            obs.joint_positions[0] = seq as f64;
            writer.publish(&obs);
        }
        let latest = reader.latest().unwrap();
        assert_eq!(latest.seq, 3);
        assert_eq!(latest.positions(), &[3.0, 0.0]);
    }

    #[test]
    fn non_finite_values_are_detected() {
        let mut obs = Observation::empty(3, 1);
        assert!(obs.is_finite());
        obs.sensors[0] = f64::INFINITY;
        assert!(!obs.is_finite());
        obs.sensors[0] = 0.0;
        // Values beyond the used length are ignored.
        obs.joint_positions[5] = f64::NAN;
        assert!(obs.is_finite());
    }
}
