//! Hot reload of a reward program file: poll its modification time, check the new text in
//! full, and swap it in only when the check passes. A broken edit never takes the reward
//! out of service; the previous program keeps running and the reason is reported.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::check::{check, CheckOptions, CheckReport, ProgramError};
use super::env::Environment;
use super::sandbox::Limits;
use super::RewardProgram;

/// What one poll found.
#[derive(Debug)]
pub enum Reload {
    /// The file is as it was.
    Unchanged,
    /// The new text passed the check and is now in service.
    Swapped(CheckReport),
    /// The new text failed the check (or could not be read); the previous program stays.
    Rejected(ProgramError),
}

/// A program in service plus the file it came from.
pub struct ProgramWatcher {
    path: PathBuf,
    env: Environment,
    limits: Limits,
    options: CheckOptions,
    program: RewardProgram,
    /// Modification time and length of the file as last seen (checked or rejected), so a
    /// rejected edit is reported once, not on every poll.
    seen: Option<(SystemTime, u64)>,
    swaps: u64,
    rejections: u64,
}

impl ProgramWatcher {
    /// Loads and checks the program; fails if the first version does not pass.
    pub fn new(
        env: Environment,
        path: impl AsRef<Path>,
        limits: Limits,
        options: CheckOptions,
    ) -> Result<(Self, CheckReport), ProgramError> {
        let path = path.as_ref().to_owned();
        let seen = stamp(&path);
        let (program, report) = super::check_file(&env, &path, &limits, &options)?;
        Ok((
            Self {
                path,
                env,
                limits,
                options,
                program,
                seen,
                swaps: 0,
                rejections: 0,
            },
            report,
        ))
    }

    /// Looks at the file once; call it from the reward thread between evaluations.
    pub fn poll(&mut self) -> Reload {
        let now = stamp(&self.path);
        if now == self.seen {
            return Reload::Unchanged;
        }
        self.seen = now;
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(error) => {
                self.rejections += 1;
                return Reload::Rejected(ProgramError::Read {
                    file: self.path.clone(),
                    error,
                });
            }
        };
        match check(&self.env, &text, &self.path, &self.limits, &self.options) {
            Ok((program, report)) => {
                self.program = program;
                self.swaps += 1;
                Reload::Swapped(report)
            }
            Err(e) => {
                self.rejections += 1;
                Reload::Rejected(e)
            }
        }
    }

    /// The program in service.
    pub fn program(&mut self) -> &mut RewardProgram {
        &mut self.program
    }

    pub fn swaps(&self) -> u64 {
        self.swaps
    }

    pub fn rejections(&self) -> u64 {
        self.rejections
    }
}

fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}
