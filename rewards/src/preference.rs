//! Reward models fitted to preference labels: for two frames of the same camera, a teacher (a
//! vision-language model asked which frame is closer to the goal, a person, or the
//! simulator's ground truth) says `first`, `second` or `none`. A network r(frame) is fitted
//! with the Bradley-Terry model, P(first preferred) = sigmoid(r(first) - r(second)), by
//! minimising the cross-entropy to the label (1, 0, or one half for `none`). The fitted
//! reward then scores frames like any other frame reward: in the loop as a
//! `kind = "preference_model"` source, or over a dataset with `rlrt relabel`.
//!
//! The network is the success classifier's ([`SuccessCnn`]: a strided patch convolution,
//! 1 x 1 convolutions, global max pooling, a linear head) without its sigmoid, and with each
//! patch's position in the frame as an input of the first layer: how close a gripper is to
//! its goal depends on where in the image it is, which max pooling alone cannot see. A
//! Bradley-Terry reward is defined up to a constant, so after training it is shifted and
//! scaled to mean 0 and standard deviation 1 over the training frames; the exported ONNX model
//! carries that normalisation in its head.

use burn::backend::Flex;
use burn::module::AutodiffModule;
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use rlrt_runtime::rng::splitmix64;

use crate::classifier::{
    batch, export_network, outputs, ClassifierConfig, ClassifierError, Frames, Geometry, Head,
    SuccessCnn, TrainBackend,
};
use crate::training::fit;

/// A teacher's answer for one pair of frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Preference {
    /// The first frame is closer to the goal.
    First,
    /// The second frame is closer to the goal.
    Second,
    /// Neither: the teacher cannot tell them apart.
    None,
}

impl Preference {
    /// The same answer for the pair shown the other way round.
    pub fn swapped(self) -> Self {
        match self {
            Self::First => Self::Second,
            Self::Second => Self::First,
            Self::None => Self::None,
        }
    }

    /// The Bradley-Terry target: the probability that the first frame is preferred.
    pub fn target(self) -> f32 {
        match self {
            Self::First => 1.0,
            Self::Second => 0.0,
            Self::None => 0.5,
        }
    }
}

/// Two frames (indices into a [`Frames`]) and the teacher's answer.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Pair {
    pub first: usize,
    pub second: usize,
    pub preference: Preference,
}

/// How a reward model orders labelled pairs.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct PairScores {
    pub pairs: usize,
    /// Pairs with a preference (`first` or `second`).
    pub strict: usize,
    /// Of the strict pairs, the share the model orders as the teacher did (0.5 by chance).
    pub accuracy: f64,
}

impl PairScores {
    pub fn of(rewards: &[f32], pairs: &[Pair]) -> Self {
        let (mut strict, mut agree) = (0usize, 0usize);
        for p in pairs {
            let d = rewards[p.first] - rewards[p.second];
            match p.preference {
                Preference::First => agree += usize::from(d > 0.0),
                Preference::Second => agree += usize::from(d < 0.0),
                Preference::None => continue,
            }
            strict += 1;
        }
        Self {
            pairs: pairs.len(),
            strict,
            accuracy: if strict == 0 {
                0.0
            } else {
                agree as f64 / strict as f64
            },
        }
    }
}

/// A fitted reward model and how it did.
pub struct TrainedReward {
    pub model: SuccessCnn<Flex>,
    pub patch: usize,
    pub stride: usize,
    pub channels: usize,
    pub width: usize,
    pub height: usize,
    /// The raw output's mean and standard deviation over the training frames; the exported
    /// reward is `(raw - shift) / scale`.
    pub shift: f32,
    pub scale: f32,
    /// Mean loss of each epoch.
    pub losses: Vec<f64>,
    pub train: PairScores,
    pub validation: PairScores,
}

/// The network's raw output for every frame (batches of 64).
pub fn raw_rewards<B: Backend>(
    model: &SuccessCnn<B>,
    frames: &Frames,
    patch: usize,
    stride: usize,
    device: &B::Device,
) -> Vec<f32> {
    outputs(model, frames, (patch, stride), device, |x| x)
}

impl TrainedReward {
    /// The normalised reward of every frame, as the exported model computes it.
    pub fn rewards(&self, frames: &Frames) -> Vec<f32> {
        raw_rewards(
            &self.model,
            frames,
            self.patch,
            self.stride,
            &Default::default(),
        )
        .into_iter()
        .map(|r| (r - self.shift) / self.scale)
        .collect()
    }
}

fn check_pairs(frames: &Frames, pairs: &[Pair], what: &str) -> Result<(), ClassifierError> {
    if let Some(p) = pairs
        .iter()
        .find(|p| p.first >= frames.len() || p.second >= frames.len())
    {
        return Err(ClassifierError::Data(format!(
            "a {what} pair names frame {} of {} frames",
            p.first.max(p.second),
            frames.len()
        )));
    }
    Ok(())
}

/// Fits a reward model to `train` pairs of `frames` (their success labels are not used) and
/// scores it on `validation` pairs; `progress` gets (epoch, mean loss).
pub fn train(
    frames: &Frames,
    train: &[Pair],
    validation: &[Pair],
    config: &ClassifierConfig,
    progress: impl FnMut(usize, f64),
) -> Result<TrainedReward, ClassifierError> {
    let (w, h, c) = (frames.width, frames.height, frames.channels);
    if w < config.patch || h < config.patch || config.stride == 0 {
        return Err(ClassifierError::TooSmall {
            width: w,
            height: h,
            patch: config.patch,
        });
    }
    check_pairs(frames, train, "training")?;
    check_pairs(frames, validation, "validation")?;
    if !train.iter().any(|p| p.preference != Preference::None) {
        return Err(ClassifierError::Data(
            "no training pair has a preference (all are `none`): nothing orders the frames".into(),
        ));
    }
    let device = Default::default();
    let mut rng = config.seed ^ 0xB7AD_1E77;
    splitmix64(&mut rng);
    let model = SuccessCnn::<TrainBackend>::with_positions(config, c, w, h, &device, &mut rng);
    let loss = |model: &SuccessCnn<TrainBackend>, chunk: &[usize]| {
        let n = chunk.len();
        // Both frames of every pair through one forward pass: firsts, then seconds.
        let indices: Vec<usize> = chunk
            .iter()
            .map(|i| train[*i].first)
            .chain(chunk.iter().map(|i| train[*i].second))
            .collect();
        let x = batch::<TrainBackend>(frames, &indices, config.patch, config.stride, &device);
        let r = model.forward(x);
        let d = r.clone().slice([0..n, 0..1]) - r.slice([n..2 * n, 0..1]);
        let targets: Vec<f32> = chunk
            .iter()
            .map(|i| train[*i].preference.target())
            .collect();
        let y = Tensor::<TrainBackend, 2>::from_data(TensorData::new(targets, [n, 1]), &device);
        // Cross-entropy of sigmoid(d) to y: log(1 + e^d) - y d, computed stably.
        let softplus = d.clone().clamp_min(0.0) + d.clone().abs().neg().exp().log1p();
        (softplus - y * d).mean()
    };
    let (model, losses) = fit(
        model,
        train.len(),
        config.schedule(),
        &mut rng,
        loss,
        progress,
    );
    let model = model.valid();
    let raw = raw_rewards(&model, frames, config.patch, config.stride, &device);
    // Normalise over the frames the training pairs use.
    let mut used: Vec<usize> = train.iter().flat_map(|p| [p.first, p.second]).collect();
    used.sort_unstable();
    used.dedup();
    let mean = used.iter().map(|i| f64::from(raw[*i])).sum::<f64>() / used.len() as f64;
    let var = used
        .iter()
        .map(|i| (f64::from(raw[*i]) - mean).powi(2))
        .sum::<f64>()
        / used.len() as f64;
    let scale = if var.sqrt() > 1e-6 { var.sqrt() } else { 1.0 };
    Ok(TrainedReward {
        train: PairScores::of(&raw, train),
        validation: PairScores::of(&raw, validation),
        model,
        patch: config.patch,
        stride: config.stride,
        channels: c,
        width: w,
        height: h,
        shift: mean as f32,
        scale: scale as f32,
        losses,
    })
}

/// Output name of exported reward models.
pub const OUTPUT: &str = "reward";

/// The reward model as ONNX: uint8 [1, height, width, channels] in (the camera's bytes),
/// float32 [1, 1] out (the normalised reward); see `docs/frame-rewards.md`.
pub fn export_onnx(trained: &TrainedReward) -> Vec<u8> {
    export_network(
        &trained.model,
        &Geometry {
            patch: trained.patch,
            stride: trained.stride,
            channels: trained.channels,
            width: trained.width,
            height: trained.height,
        },
        "rlrt_preference_reward",
        OUTPUT,
        Head::Affine {
            shift: trained.shift,
            scale: trained.scale,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use rlrt_runtime::rng::uniform01;

    /// 16 x 16 grey frames with a bright 3 x 3 square at column `x`: further right is better.
    fn frames(columns: &[usize]) -> Frames {
        let mut f = Frames::new(16, 16, 1);
        for &x in columns {
            let mut px = vec![40u8; 256];
            for y in 6..9 {
                for dx in 0..3 {
                    px[y * 16 + x + dx] = 230;
                }
            }
            f.push(&px, false);
        }
        f
    }

    fn pairs(columns: &[usize], n: usize, seed: u64) -> Vec<Pair> {
        let mut rng = seed;
        (0..n)
            .map(|_| {
                let a = (uniform01(&mut rng) * columns.len() as f64) as usize;
                let b = (uniform01(&mut rng) * columns.len() as f64) as usize;
                let preference = match columns[a].cmp(&columns[b]) {
                    std::cmp::Ordering::Greater => Preference::First,
                    std::cmp::Ordering::Less => Preference::Second,
                    std::cmp::Ordering::Equal => Preference::None,
                };
                Pair {
                    first: a,
                    second: b,
                    preference,
                }
            })
            .collect()
    }

    fn config() -> ClassifierConfig {
        ClassifierConfig {
            patch: 4,
            stride: 2,
            channels: vec![8],
            epochs: 30,
            batch_size: 16,
            ..ClassifierConfig::default()
        }
    }

    #[test]
    fn learns_an_ordering_from_pairs_and_is_repeatable() {
        let columns: Vec<usize> = (0..60).map(|i| i % 13).collect();
        let f = frames(&columns);
        let (tr, va) = (pairs(&columns, 400, 1), pairs(&columns, 200, 2));
        let a = train(&f, &tr, &va, &config(), |_, _| {}).unwrap();
        assert!(a.validation.accuracy > 0.9, "{:?}", a.validation);
        assert!(a.losses.last() < a.losses.first(), "{:?}", a.losses);
        // Normalised over the training frames.
        let r = a.rewards(&f);
        let mean = r.iter().sum::<f32>() / r.len() as f32;
        assert!(mean.abs() < 1e-3, "{mean}");
        let b = train(&f, &tr, &va, &config(), |_, _| {}).unwrap();
        assert_eq!(a.losses, b.losses);
        assert_eq!(r, b.rewards(&f));
    }

    #[test]
    fn pairs_without_preferences_or_outside_the_frames_are_refused() {
        let columns = [1, 2, 3];
        let f = frames(&columns);
        let ties = [Pair {
            first: 0,
            second: 1,
            preference: Preference::None,
        }];
        let e = train(&f, &ties, &[], &config(), |_, _| {}).err().unwrap();
        assert!(e.to_string().contains("no training pair"), "{e}");
        let outside = [Pair {
            first: 0,
            second: 7,
            preference: Preference::First,
        }];
        let e = train(&f, &outside, &[], &config(), |_, _| {})
            .err()
            .unwrap();
        assert!(e.to_string().contains("frame 7 of 3"), "{e}");
    }
}
