//! The `ros2` flavour of the robot link: a ROS 2 node that subscribes to the robot's
//! `sensor_msgs/msg/JointState`, cameras and e-stop topic and publishes the loop's commands as
//! the configured controller expects them.
//!
//! Every sample is checked before it reaches the loop, and what fails is counted and dropped:
//! a sample on the topic with another type or type hash (`samples_wrong_type`, seen by a
//! second subscription that leaves type and hash open), a missing or malformed
//! attachment (`samples_bad_attachment`), malformed CDR (`states_malformed`,
//! `estop_malformed`, a camera's `rejected`), a JointState without one of the hw-config's
//! joints (`states_missing_joints`), non-finite values, and a sequence number that does not
//! move forward for the same publisher (`states_out_of_order`). The robot counts as present
//! while at least one publisher token of the state topic exists in the ROS graph.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use zenoh::sample::{Sample, SampleKind};
use zenoh::{Session, Wait};

use super::msgs;
use super::node::Node;
use super::wire::{self, Attachment, MsgType, Qos};
use crate::clock::Clock;
use crate::config::{ActionMode, CameraSpec, ImageEncoding, RobotConfig, Ros2Command, Ros2Config};
use crate::link::error::LinkError;
use crate::link::shared::{apply_estop, deliver, CommandSender, Endpoints, LinkStats, Shared};
use crate::messages::{Command, Observation};
use crate::protocol::{self, ImageEncodingName, ImageView};
use crate::safety::EStop;

type Subscriber = zenoh::pubsub::Subscriber<()>;

/// The part of a data key after the topic: `<dds type>/<hash>`.
fn type_suffix(ty: &MsgType) -> String {
    format!("{}/{}", ty.dds_name(), ty.hash)
}

/// Reads a sample's attachment; a missing or malformed one is counted in
/// `samples_bad_attachment` (and the sample is to be dropped, as rmw_zenoh drops it).
fn attachment(sample: &Sample, stats: &LinkStats) -> Option<Attachment> {
    let bytes = sample.attachment().map(|a| a.to_bytes());
    match Attachment::decode(bytes.as_deref()) {
        Ok(a) => Some(a),
        Err(_) => {
            stats.samples_bad_attachment.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

/// The subscription key that matches `topic` with any type and hash.
fn any_type_key(domain: u32, topic: &str) -> String {
    format!("{domain}/{}/*/*", topic.trim_start_matches('/'))
}

/// A subscriber that counts the samples on `topic` of any other type or type hash than `ty`
/// (another message, or another ROS 2 release's version of it) in `samples_wrong_type`, so
/// they are seen rather than silently missed. The data itself is read by a subscriber on the
/// exact key: with only a wildcard subscription, zenoh took about 7 % longer per round trip
/// (`rlrt bench link`, ros2 row), with both the difference was gone.
fn count_other_types(
    session: &Session,
    shared: &Arc<Shared>,
    domain: u32,
    topic: &str,
    ty: &MsgType,
    on_wrong: impl Fn() + Send + Sync + 'static,
) -> Result<Subscriber, LinkError> {
    let shared = shared.clone();
    let suffix = type_suffix(ty);
    let key = any_type_key(domain, topic);
    session
        .declare_subscriber(&key)
        .callback(move |sample| {
            if !sample.key_expr().as_str().ends_with(&suffix) {
                shared
                    .stats
                    .samples_wrong_type
                    .fetch_add(1, Ordering::Relaxed);
                on_wrong();
            }
        })
        .wait()
        .map_err(|e| LinkError::declare("a ROS 2 type watch", &key, e))
}

/// Declares the node, its subscriptions and their tokens.
pub(crate) fn endpoints<C: Clock + Clone + Sync + 'static>(
    session: Session,
    config: &RobotConfig,
    ros: &Ros2Config,
    shared: Shared,
    clock: C,
    estop: EStop,
) -> Result<Endpoints, LinkError> {
    let node = Arc::new(Node::new(session.clone(), ros)?);
    tracing::info!(
        node = %wire::qualify(&ros.namespace, &ros.node_name),
        domain = ros.domain_id,
        state = %ros.state_topic,
        command = %ros.command_topic,
        command_type = ros.command_type.type_name(),
        "ROS 2 node on the link (rmw_zenoh wire format)"
    );
    let shared = Arc::new(shared);
    let domain = ros.domain_id;
    let mut subscribers = Vec::new();
    let mut tokens = Vec::new();

    // Joint states, by name.
    let (_, token) = node.subscription(&ros.state_topic, &wire::JOINT_STATE, &Qos::DEFAULT)?;
    tokens.push(token);
    subscribers.push(subscribe_joint_states(
        &session,
        config,
        ros,
        &shared,
        clock.clone(),
    )?);
    subscribers.push(count_other_types(
        &session,
        &shared,
        domain,
        &ros.state_topic,
        &wire::JOINT_STATE,
        || {},
    )?);
    subscribers.push(watch_robot_presence(&session, ros, &shared)?);

    // E-stop.
    if let Some(topic) = &ros.estop_topic {
        let (_, token) = node.subscription(topic, &wire::BOOL, &Qos::DEFAULT)?;
        tokens.push(token);
        subscribers.push(count_other_types(
            &session,
            &shared,
            domain,
            topic,
            &wire::BOOL,
            || {},
        )?);
        let key = wire::data_key(domain, topic, &wire::BOOL);
        subscribers.push(subscribe_estop(&session, key, &shared, estop)?);
    }

    // Cameras: raw frames checked in place; compressed ones decoded here, on zenoh's thread,
    // never on the tick.
    for (index, camera) in ros.cameras.iter().enumerate() {
        let ty = if camera.compressed {
            wire::COMPRESSED_IMAGE
        } else {
            wire::IMAGE
        };
        let (_, token) = node.subscription(&camera.topic, &ty, &Qos::SENSOR_DATA)?;
        tokens.push(token);
        let frames = shared.cameras.clone();
        subscribers.push(count_other_types(
            &session,
            &shared,
            domain,
            &camera.topic,
            &ty,
            move || {
                frames.reject(index);
            },
        )?);
        let key = wire::data_key(domain, &camera.topic, &ty);
        let spec = config.observation.cameras[index].clone();
        subscribers.push(subscribe_camera(
            &session,
            key,
            index,
            camera.compressed,
            spec,
            &shared,
            clock.clone(),
        )?);
    }

    Ok(Endpoints {
        subscribers,
        tokens,
        node: Some(node),
    })
}

/// The JointState subscriber: reads the hw-config's joints by name and delivers states that
/// are well formed, finite and in order per publisher.
fn subscribe_joint_states<C: Clock + Clone + Sync + 'static>(
    session: &Session,
    config: &RobotConfig,
    ros: &Ros2Config,
    shared: &Arc<Shared>,
    clock: C,
) -> Result<Subscriber, LinkError> {
    let shared = shared.clone();
    let joints: Vec<String> = config.joints.iter().map(|j| j.name.clone()).collect();
    let mut scratch = Observation::empty(config.dof(), 0);
    let mut last: Option<([u8; 16], i64)> = None;
    let mut seq = 0u64;
    let key = wire::data_key(ros.domain_id, &ros.state_topic, &wire::JOINT_STATE);
    session
        .declare_subscriber(&key)
        .callback_mut(move |sample| {
            let stats = &shared.stats;
            stats.states_received.fetch_add(1, Ordering::Relaxed);
            let Some(attachment) = attachment(&sample, stats) else {
                return;
            };
            let payload = sample.payload().to_bytes();
            match msgs::decode_joint_state(&payload, &joints, &mut scratch) {
                Ok(()) => {}
                Err(msgs::StateReject::Malformed(_)) => {
                    stats.states_malformed.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                Err(_) => {
                    stats.states_missing_joints.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            }
            if !scratch.is_finite() {
                stats.states_non_finite.fetch_add(1, Ordering::Relaxed);
                return;
            }
            // In order per publisher; a new publisher (another GID, or a restarted one
            // counting from 1) starts afresh.
            if let Some((gid, n)) = last {
                if gid == attachment.gid
                    && attachment.sequence_number <= n
                    && attachment.sequence_number != 1
                {
                    stats.states_out_of_order.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            }
            last = Some((attachment.gid, attachment.sequence_number));
            seq += 1;
            scratch.seq = seq;
            deliver(&shared, &clock, &mut scratch);
        })
        .wait()
        .map_err(|e| LinkError::declare("the JointState subscriber", &key, e))
}

/// The robot is present while a publisher of its joint states is in the graph: this watch
/// of their liveliness tokens sets `robot_alive`, and says when the last one goes.
fn watch_robot_presence(
    session: &Session,
    ros: &Ros2Config,
    shared: &Arc<Shared>,
) -> Result<Subscriber, LinkError> {
    let shared = shared.clone();
    let live: Mutex<HashSet<String>> = Mutex::new(HashSet::new());
    let key = wire::publishers_of(ros.domain_id, &ros.state_topic, &wire::JOINT_STATE);
    session
        .liveliness()
        .declare_subscriber(&key)
        .history(true)
        .callback(move |sample| {
            let stats = &shared.stats;
            let Ok(mut live) = live.lock() else {
                return;
            };
            let token = sample.key_expr().as_str().to_owned();
            match sample.kind() {
                SampleKind::Put => {
                    live.insert(token);
                    stats.robot_alive.store(true, Ordering::Release);
                }
                SampleKind::Delete => {
                    if live.remove(&token) && live.is_empty() {
                        stats.robot_alive.store(false, Ordering::Release);
                        let accepted = stats.states_accepted.load(Ordering::Acquire);
                        let _ = shared.gone.try_send(accepted);
                    }
                }
            }
        })
        .wait()
        .map_err(|e| LinkError::declare("the JointState publishers' watch", &key, e))
}

/// The e-stop subscriber on `key`: a `std_msgs/msg/Bool` engages (true) or resets (false).
fn subscribe_estop(
    session: &Session,
    key: String,
    shared: &Arc<Shared>,
    estop: EStop,
) -> Result<Subscriber, LinkError> {
    let shared = shared.clone();
    session
        .declare_subscriber(&key)
        .callback(move |sample| {
            let stats = &shared.stats;
            if attachment(&sample, stats).is_none() {
                return;
            }
            apply_estop(
                msgs::decode_bool(&sample.payload().to_bytes()),
                stats,
                &estop,
            );
        })
        .wait()
        .map_err(|e| LinkError::declare("the e-stop subscriber", &key, e))
}

/// The subscriber of camera `index` (`spec` in the hw-config) on `key`: an Image is checked
/// in place, a CompressedImage decoded into the hw-config's encoding.
fn subscribe_camera<C: Clock + Clone + Sync + 'static>(
    session: &Session,
    key: String,
    index: usize,
    compressed: bool,
    spec: CameraSpec,
    shared: &Arc<Shared>,
    clock: C,
) -> Result<Subscriber, LinkError> {
    let shared = shared.clone();
    let mut pixels = Vec::new();
    session
        .declare_subscriber(&key)
        .callback_mut(move |sample| {
            let cameras = &shared.cameras;
            if attachment(&sample, &shared.stats).is_none() {
                cameras.reject(index);
                return;
            }
            let payload = sample.payload().to_bytes();
            let now = clock.now_ns();
            if !compressed {
                match protocol::decode_ros_image(&payload) {
                    Ok(image) => cameras.accept(index, &image, false, now),
                    Err(_) => cameras.reject(index),
                };
                return;
            }
            match decompress(&payload, spec.encoding, &mut pixels) {
                Some((stamp_ns, width, height, encoding)) => {
                    let image = ImageView {
                        stamp_ns,
                        camera: &spec.name,
                        height,
                        width,
                        encoding,
                        step: width * encoding.bytes_per_pixel() as u32,
                        data: &pixels,
                    };
                    cameras.accept(index, &image, false, now)
                }
                None => cameras.reject(index),
            };
        })
        .wait()
        .map_err(|e| LinkError::declare("a camera subscriber", &key, e))
}

/// Decodes a CompressedImage (JPEG or PNG, whatever its `format` says: the bytes tell) into
/// `out` in the hw-config's encoding (rgb8 or mono8); returns its stamp, size and encoding.
fn decompress(
    payload: &[u8],
    wanted: ImageEncoding,
    out: &mut Vec<u8>,
) -> Option<(u64, u32, u32, ImageEncodingName)> {
    let view = msgs::decode_compressed_image(payload).ok()?;
    let format = image::guess_format(view.data).ok()?;
    if !matches!(format, image::ImageFormat::Jpeg | image::ImageFormat::Png) {
        return None;
    }
    let decoded = image::load_from_memory_with_format(view.data, format).ok()?;
    let (width, height) = (decoded.width(), decoded.height());
    let encoding = match wanted {
        ImageEncoding::Rgb8 => {
            *out = decoded.into_rgb8().into_raw();
            ImageEncodingName::Rgb8
        }
        ImageEncoding::Mono8 => {
            *out = decoded.into_luma8().into_raw();
            ImageEncodingName::Mono8
        }
        // Depth does not survive JPEG; a 16-bit PNG could carry it, but no camera driver
        // rlrt was checked against sends that.
        _ => return None,
    };
    Some((view.stamp_ns, width, height, encoding))
}

/// The publisher thread's sender for a `ros2` link: the command as `ros.command_type` on
/// `ros.command_topic`.
pub(crate) fn command_sender(
    node: &Arc<Node>,
    config: &RobotConfig,
    ros: &Ros2Config,
) -> Result<CommandSender, LinkError> {
    let ty = match ros.command_type {
        Ros2Command::Float64MultiArray => wire::FLOAT64_MULTI_ARRAY,
        Ros2Command::JointTrajectory => wire::JOINT_TRAJECTORY,
    };
    let mut publisher = node.publisher(&ros.command_topic, &ty, &Qos::DEFAULT)?;
    let names: Vec<String> = config.joints.iter().map(|j| j.name.clone()).collect();
    let mode: ActionMode = config.action.mode;
    let kind = ros.command_type;
    let time_from_start_ns = ros.trajectory_time_from_start_ns;
    Ok(Box::new(move |command: &Command, buf: &mut Vec<u8>| {
        match kind {
            Ros2Command::Float64MultiArray => {
                msgs::encode_float64_multi_array(command.values(), buf)
            }
            Ros2Command::JointTrajectory => msgs::encode_joint_trajectory(
                &names,
                mode,
                command.values(),
                time_from_start_ns,
                buf,
            ),
        }
        publisher.put(buf).is_ok()
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::ImageEncoder;

    fn compressed(data: &[u8], format: &str) -> Vec<u8> {
        let mut buf = Vec::new();
        msgs::encode_compressed_image(
            &msgs::CompressedView {
                stamp_ns: 5,
                frame_id: "cam",
                format,
                data,
            },
            &mut buf,
        );
        buf
    }

    #[test]
    fn jpeg_and_png_frames_decode_into_the_configured_encoding() {
        let (w, h) = (16u32, 8u32);
        let rgb: Vec<u8> = (0..w * h)
            .flat_map(|i| [(i * 3) as u8, 128, 255 - (i * 3) as u8])
            .collect();
        let mut jpeg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 95)
            .write_image(&rgb, w, h, image::ExtendedColorType::Rgb8)
            .unwrap();
        let mut out = Vec::new();
        let got = decompress(&compressed(&jpeg, "jpeg"), ImageEncoding::Rgb8, &mut out);
        assert_eq!(got, Some((5, w, h, ImageEncodingName::Rgb8)));
        assert_eq!(out.len(), rgb.len());
        let worst = out
            .iter()
            .zip(&rgb)
            .map(|(a, b)| a.abs_diff(*b))
            .max()
            .unwrap();
        assert!(worst < 40, "JPEG error {worst}");

        let mut png = Vec::new();
        image::codecs::png::PngEncoder::new(&mut png)
            .write_image(&rgb, w, h, image::ExtendedColorType::Rgb8)
            .unwrap();
        // The bytes decide, not the format string.
        let got = decompress(&compressed(&png, "jpeg"), ImageEncoding::Rgb8, &mut out);
        assert_eq!(got, Some((5, w, h, ImageEncodingName::Rgb8)));
        assert_eq!(out, rgb);
        let got = decompress(&compressed(&png, "png"), ImageEncoding::Mono8, &mut out);
        assert_eq!(got, Some((5, w, h, ImageEncodingName::Mono8)));
        assert_eq!(out.len(), (w * h) as usize);

        for bad in [&b"not an image"[..], &png[..png.len() / 2], &[]] {
            assert_eq!(
                decompress(&compressed(bad, "png"), ImageEncoding::Rgb8, &mut out),
                None
            );
        }
        assert_eq!(decompress(&png[..3], ImageEncoding::Rgb8, &mut out), None);
        assert_eq!(
            decompress(&compressed(&png, "png"), ImageEncoding::Depth16, &mut out),
            None
        );
    }
}
