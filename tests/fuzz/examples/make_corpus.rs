//! Writes the fuzz targets' seed corpora, `tests/fuzz/corpus/<target>/`: a handful of small
//! valid inputs per target, made with rlrt's own encoders and writers or copied from shipped
//! files, for the fuzzer to mutate from. Run it from the repository root after a format
//! changes:
//!
//! ```text
//! cargo run --manifest-path tests/fuzz/Cargo.toml --example make_corpus
//! ```
//!
//! Seeds are overwritten by name; other files in the folders are left alone.

use std::fs;
use std::path::{Path, PathBuf};

use burn::prelude::Tensor;
use burn::tensor::backend::BackendTypes;
use rlrt_fuzz::{reach_arm, scratch_dir, TARGETS, TINY_CLIP};
use rlrt_policies::checkpoint::{Algorithm, CheckpointMeta, Normalisation};
use rlrt_policies::iql_config::IqlConfig;
use rlrt_rewards::clip::model::TensorSource;
use rlrt_rewards::clip::{Clip, ClipConfig, CpuBackend};
use rlrt_runtime::config::{self, ActionMode, MAX_JOINTS, MAX_SENSOR_VALUES};
use rlrt_runtime::protocol::{self, EpisodeOp, Evaluation, ImageEncodingName, ImageView};
use rlrt_runtime::recording::{self, CameraInfo, DatasetInfo, DatasetWriter, Episode, FrameTrack};
use rlrt_runtime::ros2::msgs::{self, CompressedView};
use rlrt_runtime::{Command, Observation, RobotConfig};

fn main() {
    let corpus = Path::new("tests/fuzz/corpus");
    assert!(
        Path::new("tests/fuzz/Cargo.toml").exists(),
        "run from the repository root"
    );
    let seeds = [
        ("link_state", link_state()),
        ("link_command", link_command()),
        ("link_image", images(&[0, 1, 0, 0], &[])),
        ("link_control", link_control()),
        ("ros2_joint_state", ros2_joint_state()),
        ("ros2_image", images(&[0, 1, 0, 2], &[0, 0])),
        ("ros2_compressed_image", ros2_compressed_image()),
        ("ros2_command", ros2_command()),
        ("ros2_estop", ros2_estop()),
        ("hw_config", shipped("hw-configs", "toml")),
        ("reward_program", reward_program()),
        ("dataset_info", dataset_info()),
        ("checkpoint_meta", checkpoint_meta()),
        ("clip_prompt", clip_prompt()),
        ("clip_tokenizer", clip_tokenizer()),
        ("safetensors", safetensors()),
    ];
    for (target, files) in seeds {
        let (_, entry) = TARGETS.iter().find(|(t, _)| *t == target).unwrap();
        let dir = corpus.join(target);
        fs::create_dir_all(&dir).unwrap();
        for (name, bytes) in &files {
            assert!(entry(bytes), "{target}: the seed {name} is not accepted");
            fs::write(dir.join(name), bytes).unwrap();
        }
        println!("{target}: {} seeds", files.len());
    }
    let _ = fs::remove_dir_all(scratch_dir());
}

type Seeds = Vec<(String, Vec<u8>)>;

fn seed(name: &str, encode: impl FnOnce(&mut Vec<u8>)) -> (String, Vec<u8>) {
    let mut buf = Vec::new();
    encode(&mut buf);
    (name.to_owned(), buf)
}

/// A state with every value different, for `dof` joints and `sensors` sensor values.
fn observation(dof: usize, sensors: usize) -> Observation {
    let mut o = Observation::empty(dof, sensors);
    o.seq = 7;
    o.stamp_ns = 1_500_000_123;
    for j in 0..dof {
        o.joint_positions[j] = 0.1 * j as f64;
        o.joint_velocities[j] = -0.01 * j as f64;
        o.joint_efforts[j] = 2.0 + j as f64;
    }
    for s in 0..sensors {
        o.sensors[s] = 0.25 - 0.05 * s as f64;
    }
    o
}

fn link_state() -> Seeds {
    let config = reach_arm();
    vec![
        seed("reach_arm", |b| {
            protocol::encode_state(
                &observation(config.dof(), config.observation.sensor_values),
                b,
            )
        }),
        seed("empty", |b| protocol::encode_state(&observation(0, 0), b)),
        seed("largest", |b| {
            protocol::encode_state(&observation(MAX_JOINTS, MAX_SENSOR_VALUES), b)
        }),
    ]
}

fn link_command() -> Seeds {
    let modes = [
        ActionMode::JointPosition,
        ActionMode::JointVelocity,
        ActionMode::EeDelta,
        ActionMode::JointEffort,
    ];
    modes
        .into_iter()
        .enumerate()
        .map(|(i, mode)| {
            let mut c = Command::new(mode, 3 + i);
            c.seq = 11;
            c.stamp_ns = 2_000_000_000 + i as u64;
            c.is_fault_action = i == 1;
            for (k, v) in c.values[..3 + i].iter_mut().enumerate() {
                *v = 0.01 * k as f64 - 0.02;
            }
            let flags = if i == 3 {
                protocol::FLAG_LOCKSTEP_STEP
            } else {
                0
            };
            seed(mode.as_str(), |b| protocol::encode_command(&c, flags, b))
        })
        .collect()
}

/// One small frame per encoding (one with rows padded past their width), under `header`
/// (rlrt writes `00 01 00 00`; ROS 2 writers may set the option bytes) and followed by
/// `trailing` bytes.
fn images(header: &[u8; 4], trailing: &[u8]) -> Seeds {
    let frames = [
        ("rgb8", ImageEncodingName::Rgb8, 2, 2, 6),
        ("mono8_padded_rows", ImageEncodingName::Mono8, 3, 2, 4),
        ("depth16", ImageEncodingName::Mono16, 2, 1, 4),
        ("depth32f", ImageEncodingName::Depth32F, 1, 1, 4),
    ];
    frames
        .into_iter()
        .map(|(name, encoding, width, height, step)| {
            let data: Vec<u8> = (0..step * height).map(|i| (i * 37) as u8).collect();
            let image = ImageView {
                stamp_ns: 3_000_000_001,
                camera: "wrist",
                height,
                width,
                encoding,
                step,
                data: &data,
            };
            seed(name, |b| {
                protocol::encode_image(&image, b);
                b[..4].copy_from_slice(header);
                b.extend_from_slice(trailing);
            })
        })
        .collect()
}

fn link_control() -> Seeds {
    vec![
        seed("estop_engage", |b| protocol::encode_estop(true, b)),
        seed("estop_reset", |b| protocol::encode_estop(false, b)),
        seed("episode_reset", |b| {
            protocol::encode_episode(EpisodeOp::Reset { seed: 42 }, b)
        }),
        seed("episode_lockstep", |b| {
            protocol::encode_episode(EpisodeOp::Lockstep, b)
        }),
        seed("evaluation", |b| {
            let e = Evaluation {
                state_seq: 120,
                seed: 42,
                steps: 119,
                success: true,
                score: 0.021,
            };
            protocol::encode_evaluation(&e, b)
        }),
    ]
}

fn names(config: &RobotConfig) -> Vec<String> {
    config.joints.iter().map(|j| j.name.clone()).collect()
}

fn ros2_joint_state() -> Seeds {
    let joints = names(reach_arm());
    let mut shuffled: Vec<String> = joints.iter().rev().cloned().collect();
    shuffled.insert(1, "gripper_finger".to_owned());
    let many: Vec<String> = (0..MAX_JOINTS).map(|j| format!("joint_{j}")).collect();
    let state = |names: &[String], frame: &str, name: &str| {
        let obs = observation(names.len(), 0);
        seed(name, |b| {
            msgs::encode_joint_state(names, &obs, 1_700_000_000, frame, b)
        })
    };
    vec![
        state(&joints, "base_link", "reach_arm"),
        state(&shuffled, "", "reordered_with_extra_joint"),
        state(&many, "world", "largest"),
    ]
}

fn ros2_compressed_image() -> Seeds {
    let pixels: Vec<u8> = (0..2 * 2 * 3).map(|i| (i * 21) as u8).collect();
    let png = recording::encode_png(&pixels, 2, 2, 3).unwrap();
    let compressed = |format: &str, data: &[u8], name: &str| {
        let view = CompressedView {
            stamp_ns: 4_000_000_000,
            frame_id: "wrist_optical_frame",
            format,
            data,
        };
        seed(name, |b| msgs::encode_compressed_image(&view, b))
    };
    vec![
        compressed("png", &png, "png"),
        compressed(
            "rgb8; jpeg compressed bgr8",
            b"\xff\xd8\xff\xe0",
            "jpeg_header",
        ),
    ]
}

fn ros2_command() -> Seeds {
    let joints = names(reach_arm());
    let values = [0.1, -0.2, 0.3];
    let mut seeds = vec![seed("float64_multi_array", |b| {
        msgs::encode_float64_multi_array(&values, b)
    })];
    for mode in [
        ActionMode::JointPosition,
        ActionMode::JointVelocity,
        ActionMode::JointEffort,
    ] {
        seeds.push(seed(&format!("joint_trajectory_{}", mode.as_str()), |b| {
            msgs::encode_joint_trajectory(&joints, mode, &values, 20_000_000, b)
        }));
    }
    seeds
}

fn ros2_estop() -> Seeds {
    vec![
        seed("engage", |b| msgs::encode_bool(true, b)),
        seed("reset", |b| msgs::encode_bool(false, b)),
    ]
}

/// Every file of `dir` ending in `.ext`, under its own name.
fn shipped(dir: &str, ext: &str) -> Seeds {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    files.sort();
    files
        .iter()
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, fs::read(p).unwrap())
        })
        .collect()
}

/// The shipped program for the reach arm (push.rhai needs the push arm's sensors), and small
/// ones that take the paths it does not (Rhai's interpreter instead of the direct path,
/// script functions, loops, strings).
fn reward_program() -> Seeds {
    let mut seeds = vec![(
        "reach.rhai".to_owned(),
        fs::read("rewards/programs/reach.rhai").unwrap(),
    )];
    for (name, text) in [
        (
            "loop.rhai",
            "let s = 0.0;\nfor q in joint_positions { s += q * q; }\n#{ a: -s }",
        ),
        (
            "function.rhai",
            "fn clamp01(x) { if x < 0.0 { 0.0 } else if x > 1.0 { 1.0 } else { x } }\n\
             #{ a: clamp01(ee_position[2]), b: -0.1 * norm(previous_action) }",
        ),
        (
            "strings.rhai",
            "let s = `d=${dt}`;\nprint(s);\n#{ n: s.len(), t: indicator(s.contains(\"=\")) }",
        ),
        (
            "integer.rhai",
            "let i = 7 / 2;\nlet m = #{ x: i };\n#{ a: m.x, b: joint_positions.len() }",
        ),
    ] {
        seeds.push((name.to_owned(), text.as_bytes().to_vec()));
    }
    seeds
}

/// `dataset_info`'s input: `dataset.json`, a zero byte, the episode file's length as a
/// little-endian u32, the episode file, the frames file.
fn dataset_info() -> Seeds {
    let config = reach_arm();
    let camera = CameraInfo {
        name: "wrist".to_owned(),
        width: 2,
        height: 2,
        encoding: "rgb8".to_owned(),
        rate_hz: 30.0,
    };
    let mut seeds = Vec::new();
    for (name, cameras) in [("reach_arm", vec![]), ("reach_arm_camera", vec![camera])] {
        let dir = std::env::temp_dir().join(format!("rlrt-make-corpus-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let mut info = DatasetInfo::describe(
            config,
            Path::new("hw-configs/reach-arm.toml"),
            "negative_task_distance".to_owned(),
            "ee_servo + gaussian(0.01)".to_owned(),
            cameras,
        );
        info.config_source = "hw-configs/reach-arm.toml".to_owned();
        let o = info.observation_len;
        let row = |t: usize| -> Vec<f64> { (0..o).map(|i| 0.01 * (t * o + i) as f64).collect() };
        let mut episode = Episode::start(9, &row(0));
        for t in 1..=3 {
            episode.push(
                &[0.004, -0.002, 0.001],
                -0.1 * t as f64,
                t == 3,
                false,
                &row(t),
            );
        }
        if let Some(camera) = info.cameras.first() {
            let mut track = FrameTrack::default();
            for t in [0, 2] {
                let pixels: Vec<u8> = (0..camera.frame_bytes()).map(|i| (i + t) as u8).collect();
                track.push(t as u32, t == 2, 0.05 - 0.01 * t as f64, &pixels);
            }
            episode.frames.push(track);
        }
        let mut writer = DatasetWriter::create(&dir, info, "").unwrap();
        let episode_file = writer.write(&episode).unwrap();
        let mut input = fs::read(dir.join("dataset.json")).unwrap();
        let episode_bytes = fs::read(&episode_file).unwrap();
        input.push(0);
        input.extend_from_slice(&(episode_bytes.len() as u32).to_le_bytes());
        input.extend_from_slice(&episode_bytes);
        if let Ok(frames) = fs::read(episode_file.with_extension("frames")) {
            input.extend_from_slice(&frames);
        }
        seeds.push((name.to_owned(), input));
        fs::remove_dir_all(&dir).unwrap();
    }
    seeds
}

/// A checkpoint.json of the reach arm (IQL) and one of another robot (behaviour cloning), as
/// `rlrt train` writes them.
fn checkpoint_meta() -> Seeds {
    let ur5e = config::parse(
        include_str!("../../../hw-configs/ur5e.toml"),
        Path::new("hw-configs/ur5e.toml"),
    )
    .unwrap();
    [
        ("reach_arm_iql", reach_arm(), Algorithm::Iql),
        ("ur5e_bc", &ur5e, Algorithm::Bc),
    ]
    .into_iter()
    .map(|(name, config, algorithm)| {
        let (o, a) = (config.observation.feature_len, config.action.len());
        let meta = CheckpointMeta {
            algorithm,
            step: 2000,
            observation_len: o,
            action_len: a,
            observation_fields: config.observation_field_names(),
            action_mode: config.action.mode.as_str().to_owned(),
            hidden: vec![256, 256],
            normalisation: Normalisation {
                observation_mean: (0..o).map(|i| 0.1 * i as f64).collect(),
                observation_std: vec![0.5; o],
                action_mid: vec![0.0; a],
                action_half_range: vec![0.01; a],
            },
            reward_scale: 1.0,
            config: IqlConfig::default(),
            rng_state: 0x1234_5678,
        };
        let json = serde_json::to_string_pretty(&meta).unwrap();
        (name.to_owned(), json.into_bytes())
    })
    .collect()
}

fn clip_prompt() -> Seeds {
    [
        ("reach", "a robot arm touching the red target"),
        (
            "special_tokens",
            "<|startoftext|>a photo of a gripper<|endoftext|> extra",
        ),
        (
            "unicode",
            "Roboterarm greift den W\u{fc}rfel \u{2014} 3 cm, e\u{301}t\u{e9}",
        ),
        ("contractions", "don't move; it's 42 cm away!!"),
    ]
    .into_iter()
    .map(|(name, text)| (name.to_owned(), text.as_bytes().to_vec()))
    .collect()
}

/// `clip_tokenizer`'s input: vocab.json, a zero byte, merges.txt, a zero byte, a prompt.
fn clip_tokenizer() -> Seeds {
    let join = |vocab: &str, merges: &str, prompt: &str| {
        [vocab.as_bytes(), merges.as_bytes(), prompt.as_bytes()].join(&0u8)
    };
    let tiny_vocab =
        r#"{"<|startoftext|>": 0, "<|endoftext|>": 1, "a": 2, "a</w>": 3, "aa</w>": 4}"#;
    vec![
        (
            "fixture".to_owned(),
            join(
                include_str!("../../../rewards/tests/fixtures/clip/vocab.json"),
                include_str!("../../../rewards/tests/fixtures/clip/merges.txt"),
                "a robot arm touching the red target",
            ),
        ),
        (
            "tiny".to_owned(),
            join(tiny_vocab, "#version: 0.2\na a</w>\n", "aaaa a"),
        ),
    ]
}

/// Records the name and shape of every tensor a CLIP asks for, handing out zeros.
struct Recorder {
    device: <CpuBackend as BackendTypes>::Device,
    tensors: Vec<(String, Vec<usize>)>,
}

impl TensorSource<CpuBackend> for Recorder {
    type Error = std::convert::Infallible;

    fn tensor<const D: usize>(
        &mut self,
        name: &str,
        shape: [usize; D],
    ) -> Result<Tensor<CpuBackend, D>, Self::Error> {
        self.tensors.push((name.to_owned(), shape.to_vec()));
        Ok(Tensor::zeros(shape, &self.device))
    }
}

/// A whole tiny CLIP (`TINY_CLIP`) in f32 and in bf16, and the same with only its first
/// tensor, as a Hugging Face checkpoint names them.
fn safetensors() -> Seeds {
    let config = ClipConfig::from_hf_json(TINY_CLIP, "tiny CLIP").unwrap();
    let mut recorder = Recorder {
        device: Default::default(),
        tensors: Vec::new(),
    };
    let Ok(_) = Clip::<CpuBackend>::build(&config, &mut recorder);
    let file = |count: usize, dtype: safetensors::Dtype| {
        let width = if dtype == safetensors::Dtype::F32 {
            4
        } else {
            2
        };
        let data: Vec<(String, Vec<usize>, Vec<u8>)> = recorder.tensors[..count]
            .iter()
            .map(|(name, shape)| {
                let n: usize = shape.iter().product();
                let bytes = (0..n * width).map(|i| (i % 7) as u8 * 9).collect();
                (name.clone(), shape.clone(), bytes)
            })
            .collect();
        let views: Vec<(&str, safetensors::tensor::TensorView<'_>)> = data
            .iter()
            .map(|(name, shape, bytes)| {
                let view =
                    safetensors::tensor::TensorView::new(dtype, shape.clone(), bytes).unwrap();
                (name.as_str(), view)
            })
            .collect();
        safetensors::serialize(views, None).unwrap()
    };
    let all = recorder.tensors.len();
    vec![
        (
            "tiny_clip_f32".to_owned(),
            file(all, safetensors::Dtype::F32),
        ),
        (
            "tiny_clip_bf16".to_owned(),
            file(all, safetensors::Dtype::BF16),
        ),
        (
            "first_tensor_only".to_owned(),
            file(1, safetensors::Dtype::F32),
        ),
    ]
}
