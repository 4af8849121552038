//! The minibatch loop the frame networks share (the success classifier in [`classifier`],
//! the preference reward model in [`preference`]): epochs of minibatches drawn from the
//! crate's seeded generator, one Adam step on each minibatch's loss, the mean loss of each
//! epoch. Each model brings only its data and its loss.
//!
//! [`classifier`]: crate::classifier
//! [`preference`]: crate::preference

use burn::module::AutodiffModule;
use burn::optim::{AdamConfig, GradientsParams, Optimizer};
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{ElementConversion, Tensor};
use rlrt_runtime::rng::shuffle;

/// How long and how fast to train.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Schedule {
    pub epochs: usize,
    pub batch_size: usize,
    pub learning_rate: f64,
}

/// Trains `model` on examples `0..examples` with Adam for `schedule.epochs` epochs. Each
/// epoch shuffles the examples with `rng`, cuts them into minibatches of
/// `schedule.batch_size` and takes one step on `loss(model, minibatch)`, a scalar; then
/// `progress` gets (epoch, mean loss). Returns the trained model and each epoch's mean loss.
pub(crate) fn fit<B: AutodiffBackend, M: AutodiffModule<B>>(
    mut model: M,
    examples: usize,
    schedule: Schedule,
    rng: &mut u64,
    mut loss: impl FnMut(&M, &[usize]) -> Tensor<B, 1>,
    mut progress: impl FnMut(usize, f64),
) -> (M, Vec<f64>) {
    let mut optim = AdamConfig::new().init::<B, M>();
    let mut order: Vec<usize> = (0..examples).collect();
    let mut losses = Vec::with_capacity(schedule.epochs);
    for epoch in 0..schedule.epochs {
        shuffle(rng, &mut order);
        let (mut sum, mut batches) = (0.0, 0);
        for chunk in order.chunks(schedule.batch_size) {
            let loss = loss(&model, chunk);
            sum += loss.clone().into_scalar().elem::<f64>();
            batches += 1;
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(schedule.learning_rate, model, grads);
        }
        let mean = sum / batches.max(1) as f64;
        losses.push(mean);
        progress(epoch + 1, mean);
    }
    (model, losses)
}
