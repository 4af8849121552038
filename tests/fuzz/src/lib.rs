//! The fuzz targets' entry points: one function per target, taking the raw bytes of one input
//! and handing them to the real decoder or loader. Whatever the bytes, none may panic, hang or
//! abort; errors are the expected outcome for most inputs and are dropped. Each returns
//! whether the input got past its first reader (the message, file or text was accepted),
//! which every seed must: a format change cannot leave the fuzzer mutating stale seeds.
//!
//! `fuzz_targets/<name>.rs` calls `<name>` here, and the stable `tests/fuzz_corpus.rs` of the
//! main workspace includes this very file (`#[path]`) to replay every committed corpus and
//! regression input through the same functions. So this file names only crates both have
//! (rlrt's own, `serde_json`) and reads shipped files with `include_str!`, relative to itself.
//!
//! Loaders that only read files (checkpoint.json, CLIP's tokenizer files, safetensors) get the
//! input written to a scratch folder of the thread first (under the temporary directory).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use rlrt_policies::checkpoint::{check_fits, CheckpointMeta};
use rlrt_rewards::clip::{weights, Clip, ClipConfig, CpuBackend, Tokenizer};
use rlrt_rewards::program::{check, CheckOptions, Environment, Limits};
use rlrt_runtime::config::{
    self, ActionMode, CameraSpec, ImageEncoding, PolicyKind, MAX_ACTION, MAX_JOINTS,
    MAX_SENSOR_VALUES,
};
use rlrt_runtime::link::CameraFrames;
use rlrt_runtime::protocol::{self, ImageEncodingName, ImageView};
use rlrt_runtime::recording::{self, DatasetInfo};
use rlrt_runtime::ros2::msgs;
use rlrt_runtime::{Command, Observation, RobotConfig};

/// A target's entry point: the input's bytes in, whether its first reader accepted them out.
pub type Entry = fn(&[u8]) -> bool;

/// Every target, by name, as `fuzz_targets/` and `corpus/` name them.
pub const TARGETS: &[(&str, Entry)] = &[
    ("link_state", link_state),
    ("link_command", link_command),
    ("link_image", link_image),
    ("link_control", link_control),
    ("ros2_joint_state", ros2_joint_state),
    ("ros2_image", ros2_image),
    ("ros2_compressed_image", ros2_compressed_image),
    ("ros2_command", ros2_command),
    ("ros2_estop", ros2_estop),
    ("hw_config", hw_config),
    ("reward_program", reward_program),
    ("dataset_info", dataset_info),
    ("checkpoint_meta", checkpoint_meta),
    ("clip_prompt", clip_prompt),
    ("clip_tokenizer", clip_tokenizer),
    ("safetensors", safetensors),
];

/// The shipped reach arm (3 joints, two 3-value sensors, `ee_delta` actions): the robot the
/// decoders that need a config decode for, and the environment of reward programs (the
/// reward program tests use it too).
pub fn reach_arm() -> &'static RobotConfig {
    static CONFIG: OnceLock<RobotConfig> = OnceLock::new();
    CONFIG.get_or_init(|| {
        config::parse(
            include_str!("../../../hw-configs/reach-arm.toml"),
            Path::new("hw-configs/reach-arm.toml"),
        )
        .expect("the shipped reach-arm config is valid")
    })
}

/// `rlrt_msgs/RobotState` as the link's state subscriber decodes it, for the reach arm's
/// shape and for the smallest and largest shapes a config may have.
pub fn link_state(data: &[u8]) -> bool {
    let config = reach_arm();
    let mut scratch = Observation::empty(MAX_JOINTS, MAX_SENSOR_VALUES);
    let mut accepted = false;
    for (dof, sensor_len) in [
        (config.dof(), config.observation.sensor_values),
        (0, 0),
        (MAX_JOINTS, MAX_SENSOR_VALUES),
    ] {
        accepted |= protocol::decode_state(data, dof, sensor_len, &mut scratch).is_ok();
    }
    accepted
}

/// `rlrt_msgs/Command` as a simulator serving the link decodes it.
pub fn link_command(data: &[u8]) -> bool {
    let mut scratch = Command::new(ActionMode::JointPosition, MAX_ACTION);
    protocol::decode_command(data, &mut scratch).is_ok()
}

/// A camera frame (`sensor_msgs/Image` in rlrt's own framing) through the link's camera
/// path: decoded, and, when it decodes, received by a camera of the frame's own size,
/// encoding and name, so that it is accepted and its rows copied as every frame is.
pub fn link_image(data: &[u8]) -> bool {
    let Ok(image) = protocol::decode_image(data) else {
        return false;
    };
    camera_for(&image).receive(0, data, 0)
}

/// rlrt's small control messages: the e-stop, a simulator's episode control and its
/// evaluation answer.
pub fn link_control(data: &[u8]) -> bool {
    let estop = protocol::decode_estop(data).is_ok();
    let episode = protocol::decode_episode(data).is_ok();
    let evaluation = protocol::decode_evaluation(data).is_ok();
    estop || episode || evaluation
}

/// `sensor_msgs/msg/JointState` as a `ros2` link decodes it: by the reach arm's joint names,
/// and by as many names as a config may have joints.
pub fn ros2_joint_state(data: &[u8]) -> bool {
    static MANY: OnceLock<Vec<String>> = OnceLock::new();
    let many = MANY.get_or_init(|| (0..MAX_JOINTS).map(|j| format!("joint_{j}")).collect());
    let mut scratch = Observation::empty(MAX_JOINTS, MAX_SENSOR_VALUES);
    let mut accepted = false;
    for joints in [&joint_names(reach_arm())[..], many] {
        accepted |= msgs::decode_joint_state(data, joints, &mut scratch).is_ok();
    }
    accepted
}

/// `sensor_msgs/msg/Image` as a `ros2` link decodes it (any option bytes, trailing bytes
/// allowed) and accepts it (the frame id is not checked against the camera's name).
pub fn ros2_image(data: &[u8]) -> bool {
    let Ok(image) = protocol::decode_ros_image(data) else {
        return false;
    };
    camera_for(&image).accept(0, &image, false, 0)
}

/// `sensor_msgs/msg/CompressedImage`'s CDR. The JPEG or PNG inside is decoded by the `ros2`
/// link's private `decompress`, which no public function reaches.
pub fn ros2_compressed_image(data: &[u8]) -> bool {
    msgs::decode_compressed_image(data).is_ok()
}

/// The `ros2` commands as a simulator serving a `ros2` link decodes them:
/// `std_msgs/msg/Float64MultiArray` and `trajectory_msgs/msg/JointTrajectory` (by the reach
/// arm's joint names).
pub fn ros2_command(data: &[u8]) -> bool {
    let mut values = [0.0; MAX_ACTION];
    let array = msgs::decode_float64_multi_array(data, &mut values).is_ok();
    let trajectory = msgs::decode_joint_trajectory(data, &joint_names(reach_arm())).is_ok();
    array || trajectory
}

/// The `ros2` e-stop, `std_msgs/msg/Bool`.
pub fn ros2_estop(data: &[u8]) -> bool {
    msgs::decode_bool(data).is_ok()
}

/// hw-config text through `config::parse` (what `rlrt check` and every command load a config
/// with), the error rendered as `rlrt check` prints it; a valid config then goes on as far as
/// `rlrt check` takes it without reading other files: the reward programs' environment and a
/// scripted policy.
pub fn hw_config(data: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(data) else {
        return false;
    };
    match config::parse(text, Path::new("fuzz.toml")) {
        Ok(config) => {
            let _ = Environment::from_config(&config);
            let scripted = matches!(
                config.policy.kind,
                PolicyKind::Hold | PolicyKind::Sine | PolicyKind::JointTarget | PolicyKind::EeServo
            );
            if scripted {
                let _ = rlrt_policies::build(&config);
            }
            true
        }
        Err(e) => {
            let _ = e.to_string();
            false
        }
    }
}

/// A reward program through the full check (compile, names, dry run) in the reach arm's
/// environment with the default sandbox limits, then evaluated on a few sampled states. The
/// dry run takes 8 samples instead of 256 to keep each input cheap; the limits per call are
/// the same.
pub fn reward_program(data: &[u8]) -> bool {
    static ENV: OnceLock<Environment> = OnceLock::new();
    let Ok(source) = std::str::from_utf8(data) else {
        return false;
    };
    let env = ENV.get_or_init(|| {
        Environment::from_config(reach_arm()).expect("the reach arm is a program environment")
    });
    let options = CheckOptions {
        samples: 8,
        ..CheckOptions::default()
    };
    let limits = Limits::default();
    match check(env, source, Path::new("fuzz.rhai"), &limits, &options) {
        Ok((mut program, _)) => {
            for state in env.sample_states(4, 1, options.sensor_range) {
                let _ = program.evaluate(&state);
            }
            true
        }
        Err(e) => {
            let _ = e.to_string();
            false
        }
    }
}

/// A dataset's `dataset.json` and the episode and frames files it describes, as one input:
/// the JSON text, a zero byte, the episode file's length (u32, little endian), the episode
/// file, then the frames file. The JSON is read as `Dataset::open` reads it, the episode
/// decoded against it, and, if it decodes, the frames against both (as `Dataset::frames`).
///
/// Both files end in an FNV-1a hash of the bytes before it; the harness writes it, so that
/// inputs get past that check to the fields behind it (a damaged file that was hashed again,
/// or one made on purpose, gets that far too).
pub fn dataset_info(data: &[u8]) -> bool {
    let (json, files) = data.split_at(data.iter().position(|&b| b == 0).unwrap_or(data.len()));
    let Ok(info) = serde_json::from_slice::<DatasetInfo>(json) else {
        return false;
    };
    let files = files.get(1..).unwrap_or_default();
    let (len, files) = files.split_at(files.len().min(4));
    let mut le = [0u8; 4];
    le[..len.len()].copy_from_slice(len);
    let (episode, frames) = files.split_at(files.len().min(u32::from_le_bytes(le) as usize));
    let path = Path::new("episode-000000.rlep");
    let Ok(episode) = recording::decode(&with_hash(episode), path, 0, &info) else {
        return false;
    };
    if info.cameras.is_empty() {
        return true;
    }
    let frames_path = Path::new("episode-000000.frames");
    recording::decode_frames(&with_hash(frames), frames_path, 0, episode.steps(), &info).is_ok()
}

/// `checkpoint.json` through `CheckpointMeta::read`, and a checkpoint that reads checked
/// against the reach arm as `rlrt check` and `rlrt run` check it.
pub fn checkpoint_meta(data: &[u8]) -> bool {
    let file = scratch_file("checkpoint.json", data);
    let Ok(meta) = CheckpointMeta::read(&file) else {
        return false;
    };
    let _ = check_fits(&scratch_dir(), &meta, reach_arm());
    true
}

/// A prompt through the tokenizer of the CLIP test fixture (vocab.json and merges.txt of a
/// small CLIP, as a Hugging Face folder has them), padded to CLIP's 77 positions.
pub fn clip_prompt(data: &[u8]) -> bool {
    static TOKENIZER: OnceLock<Tokenizer> = OnceLock::new();
    let Ok(prompt) = std::str::from_utf8(data) else {
        return false;
    };
    let tokenizer = TOKENIZER.get_or_init(|| {
        let dir = scratch_dir().join("clip-fixture");
        std::fs::create_dir_all(&dir).expect("a scratch folder for the CLIP fixture");
        for (name, text) in [
            (
                "vocab.json",
                include_str!("../../../rewards/tests/fixtures/clip/vocab.json"),
            ),
            (
                "merges.txt",
                include_str!("../../../rewards/tests/fixtures/clip/merges.txt"),
            ),
        ] {
            std::fs::write(dir.join(name), text).expect("writing the CLIP fixture");
        }
        Tokenizer::from_folder(&dir, 77).expect("the CLIP fixture's tokenizer files are valid")
    });
    tokenizer.encode_padded(prompt).is_ok()
}

/// CLIP's tokenizer files and a prompt, as one input: `vocab.json`, a zero byte,
/// `merges.txt`, a zero byte, the prompt. The files go through `Tokenizer::from_folder`, the
/// prompt through the tokenizer they make. Slow per input: reading the files compiles the
/// tokenizer's Unicode patterns each time (`clip_prompt` fuzzes prompts alone, quickly).
pub fn clip_tokenizer(data: &[u8]) -> bool {
    let mut parts = data.splitn(3, |&b| b == 0);
    let (Some(vocab), Some(merges), Some(prompt)) = (parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    scratch_file("vocab.json", vocab);
    scratch_file("merges.txt", merges);
    let Ok(tokenizer) = Tokenizer::from_folder(&scratch_dir(), 77) else {
        return false;
    };
    std::str::from_utf8(prompt).is_ok_and(|prompt| tokenizer.encode_padded(prompt).is_ok())
}

/// A `model.safetensors` through `weights::Checkpoint::read` (as `ClipModel::load` reads it)
/// and, if it reads, a CLIP built from it: every tensor looked up by name, its shape, dtype
/// and values checked. The sizes are those of a tiny CLIP (`TINY_CLIP`), which the seeds
/// follow.
pub fn safetensors(data: &[u8]) -> bool {
    static CONFIG: OnceLock<ClipConfig> = OnceLock::new();
    let config = CONFIG.get_or_init(|| {
        ClipConfig::from_hf_json(TINY_CLIP, "tiny CLIP").expect("the tiny CLIP config is valid")
    });
    let file = scratch_file("model.safetensors", data);
    let Ok(checkpoint) = weights::Checkpoint::read(&file) else {
        return false;
    };
    let device = Default::default();
    let _ = Clip::<CpuBackend>::build(config, &mut checkpoint.source::<CpuBackend>(&device));
    true
}

/// The CLIP sizes the `safetensors` target builds: two heads of 4 values, one layer per
/// tower, a 16-pixel image of 8-pixel patches, 16 tokens of vocabulary.
pub const TINY_CLIP: &str = r#"{
  "projection_dim": 4,
  "text_config": {
    "vocab_size": 16, "hidden_size": 8, "intermediate_size": 8, "num_hidden_layers": 1,
    "num_attention_heads": 2, "max_position_embeddings": 4, "hidden_act": "quick_gelu",
    "layer_norm_eps": 1e-05, "eos_token_id": 15
  },
  "vision_config": {
    "hidden_size": 8, "intermediate_size": 8, "num_hidden_layers": 1,
    "num_attention_heads": 2, "image_size": 16, "patch_size": 8, "num_channels": 3,
    "hidden_act": "quick_gelu", "layer_norm_eps": 1e-05
  }
}"#;

/// The reach arm's joint names, as a `ros2` link matches JointStates by them.
fn joint_names(config: &RobotConfig) -> Vec<String> {
    config.joints.iter().map(|j| j.name.clone()).collect()
}

/// Camera frames with one camera shaped like `image` (its name, size and encoding), which
/// keeps every frame it accepts as a recording asks it to.
fn camera_for(image: &ImageView<'_>) -> CameraFrames {
    let encoding = match image.encoding {
        ImageEncodingName::Rgb8 => ImageEncoding::Rgb8,
        ImageEncodingName::Mono8 => ImageEncoding::Mono8,
        ImageEncodingName::Mono16 => ImageEncoding::Depth16,
        ImageEncodingName::Depth32F => ImageEncoding::Depth32F,
    };
    let cameras = CameraFrames::new(&[CameraSpec {
        name: image.camera.to_owned(),
        width: image.width,
        height: image.height,
        rate_hz: 30.0,
        encoding,
    }]);
    cameras.keep_every_frame(0, 1 << 20);
    cameras
}

/// `bytes` with its last 8 bytes replaced by the FNV-1a hash of the others, as rlrt's episode
/// and frames files end (`recording.rs`).
fn with_hash(bytes: &[u8]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    if let Some(body) = out.len().checked_sub(8) {
        let mut hash = 0xcbf2_9ce4_8422_2325u64;
        for &b in &out[..body] {
            hash ^= b as u64;
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        out[body..].copy_from_slice(&hash.to_le_bytes());
    }
    out
}

/// This thread's scratch folder (the process id and a thread number keep fuzzer processes
/// and test threads apart).
pub fn scratch_dir() -> PathBuf {
    static THREADS: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static DIR: PathBuf = {
            let thread = THREADS.fetch_add(1, Ordering::Relaxed);
            let dir = std::env::temp_dir()
                .join(format!("rlrt-fuzz-{}-{thread}", std::process::id()));
            std::fs::create_dir_all(&dir).expect("a scratch folder in the temporary directory");
            dir
        };
    }
    DIR.with(Clone::clone)
}

/// Writes `bytes` to `name` in this thread's scratch folder.
fn scratch_file(name: &str, bytes: &[u8]) -> PathBuf {
    let file = scratch_dir().join(name);
    std::fs::write(&file, bytes).expect("writing to the scratch folder");
    file
}
