//! The ROS 2 round trip of `rlrt bench link`: a robot node on its own session publishes
//! `sensor_msgs/msg/JointState` the way rmw_zenoh does and checks the commands that come back.

use std::time::Instant;

use crossbeam_channel::bounded;
use rlrt_runtime::link::open_session;
use rlrt_runtime::{Observation, RobotConfig};
use zenoh::Wait;

use crate::linked::LinkedRuntime;
use crate::loopback::free_port;

/// The round trip of [`super::run`] on a `ros2` link: the robot (a ROS 2 node on its own session)
/// publishes `sensor_msgs/msg/JointState` with rmw_zenoh's attachment and waits for the
/// `std_msgs/msg/Float64MultiArray` command the tick sends back, checking its attachment and
/// decoding it as a forward command controller would.
pub(super) struct Ros2Exchange {
    pub(super) rt: LinkedRuntime,
    _robot: rlrt_runtime::ros2::node::Node,
    state_pub: Option<rlrt_runtime::ros2::node::Publisher>,
    _commands: zenoh::pubsub::Subscriber<()>,
    pub(super) rx: crossbeam_channel::Receiver<()>,
    names: Vec<String>,
}

impl Ros2Exchange {
    pub(super) fn new(base: &RobotConfig) -> anyhow::Result<Self> {
        use rlrt_runtime::config::{Ros2Command, Ros2Config};
        use rlrt_runtime::ros2::{msgs, node::Node, wire};

        let port = free_port()?;
        let ros = Ros2Config {
            domain_id: 0,
            node_name: "rlrt".into(),
            namespace: "/".into(),
            state_topic: "/joint_states".into(),
            command_topic: "/forward_position_controller/commands".into(),
            command_type: Ros2Command::Float64MultiArray,
            trajectory_time_from_start_ns: 0,
            estop_topic: None,
            cameras: Vec::new(),
        };
        let mut rc = base.clone();
        rc.link.key_prefix = "rlrt/bench-link-ros2".into();
        rc.link.listen = vec![format!("tcp/127.0.0.1:{port}")];
        rc.observation.cameras.clear();
        rc.link.ros2 = Some(ros.clone());
        let mut robot_cfg = rc.clone();
        robot_cfg.link.listen = Vec::new();
        robot_cfg.link.connect = vec![format!("tcp/127.0.0.1:{port}")];
        let rt = LinkedRuntime::connect(&rc, 0)?;

        let robot = Node::new(
            open_session(&robot_cfg.link)?,
            &Ros2Config {
                node_name: "bench_robot".into(),
                ..ros.clone()
            },
        )?;
        let state_pub =
            robot.publisher(&ros.state_topic, &wire::JOINT_STATE, &wire::Qos::DEFAULT)?;
        let (tx, rx) = bounded::<()>(16);
        let dof = rc.dof();
        let commands = robot
            .session()
            .declare_subscriber(wire::data_key(
                0,
                &ros.command_topic,
                &wire::FLOAT64_MULTI_ARRAY,
            ))
            .callback(move |sample| {
                let attachment = sample.attachment().map(|a| a.to_bytes());
                let mut values = [0.0; rlrt_runtime::config::MAX_ACTION];
                let ok = wire::Attachment::decode(attachment.as_deref()).is_ok()
                    && msgs::decode_float64_multi_array(&sample.payload().to_bytes(), &mut values)
                        == Ok(dof);
                if ok {
                    let _ = tx.try_send(());
                }
            })
            .wait()
            .map_err(|e| anyhow::anyhow!(e))?;
        Ok(Self {
            rt,
            _robot: robot,
            state_pub: Some(state_pub),
            _commands: commands,
            rx,
            names: rc.joints.iter().map(|j| j.name.clone()).collect(),
        })
    }

    /// Publishes one JointState per call and returns when it left.
    pub(super) fn putter(&mut self, dof: usize) -> impl FnMut() -> anyhow::Result<Instant> + use<> {
        use rlrt_runtime::ros2::{msgs, wire};
        let mut publisher = self.state_pub.take().expect("one putter");
        let names = self.names.clone();
        let mut obs = Observation::empty(dof, 0);
        obs.joint_positions[0] = 0.1;
        let mut buf = Vec::with_capacity(512);
        move || {
            let stamp = wire::system_time_ns().max(0) as u64;
            msgs::encode_joint_state(&names, &obs, stamp, "", &mut buf);
            let t0 = Instant::now();
            publisher.put(&buf).map_err(|e| anyhow::anyhow!(e))?;
            Ok(t0)
        }
    }

    /// Fails if the runtime refused any of the robot's samples.
    pub(super) fn check(&self) -> anyhow::Result<()> {
        for (name, count) in self.rt.link.stats().snapshot() {
            if name.starts_with("samples_")
                || name == "states_malformed"
                || name == "states_missing_joints"
            {
                anyhow::ensure!(
                    count == 0,
                    "the ROS 2 exchange rejected states: {name} = {count}"
                );
            }
        }
        Ok(())
    }
}
