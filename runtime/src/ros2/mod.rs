//! ROS 2 without a bridge: rlrt speaks rmw_zenoh's wire format (ROS 2 Jazzy and newer) on its own
//! zenoh session. [`wire`] has the keys, tokens, attachments and type hashes, [`msgs`] the
//! messages' CDR, [`node`] a ROS 2 node on a session, [`link`] the `ros2` flavour of the
//! robot link. See `docs/ros2.md`.

pub(crate) mod link;
pub mod msgs;
pub mod node;
pub mod wire;
