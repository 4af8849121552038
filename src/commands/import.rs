//! `rlrt import`: a Minari or D4RL dataset as an rlrt dataset (`rlrt_datasets::minari`).

use std::path::PathBuf;

use rlrt_datasets::minari::{import, GivenConfig};

/// `rlrt import`: a Minari or D4RL dataset as an rlrt dataset.
#[derive(clap::Args, Clone, Debug)]
pub struct ImportArgs {
    /// Minari dataset folder (data/main_data.hdf5) or HDF5 file; D4RL HDF5 file.
    pub source: PathBuf,
    /// The hw-config describing the observations and actions (stored with the dataset).
    /// Without it, one is written from the dataset's own description of its spaces
    /// (Minari's metadata: a Box action space's bounds, the observation length).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// The rlrt dataset folder to write.
    #[arg(long)]
    pub out: PathBuf,
}

/// `rlrt import`: converts and prints what was written.
pub fn execute(args: ImportArgs, output: super::Output) -> anyhow::Result<super::Exit> {
    let given = match &args.config {
        Some(path) => {
            let (config, text) = super::load_config(path)?;
            Some(GivenConfig {
                config,
                text,
                path: path.clone(),
            })
        }
        None => None,
    };
    output.print(&import(&args.source, given, &args.out)?)?;
    Ok(super::Exit::Success)
}
