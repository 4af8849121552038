//! The run's timeline in rerun (`--rerun`), or, in a build without the `rerun` feature (the
//! lean robot build), stand-ins of the same names that no value can reach: `--rerun` is then
//! refused when the arguments are parsed, with the reason, and nothing else changes.

#[cfg(feature = "rerun")]
pub use rlrt_rerun::{Destination, RerunLogger, RerunSummary, DEFAULT_QUEUE_LEN};
pub use rlrt_runtime::hub::WallTime;

#[cfg(not(feature = "rerun"))]
pub use absent::*;

#[cfg(not(feature = "rerun"))]
mod absent {
    use std::sync::Arc;

    use rlrt_runtime::hub::{EventSender, TickConsumer, WallTime};
    use rlrt_runtime::link::CameraFrames;
    use rlrt_runtime::RobotConfig;

    pub const DEFAULT_QUEUE_LEN: usize = 4096;

    /// No destination exists in this build.
    #[derive(Clone, Debug)]
    pub enum Destination {}

    /// `--rerun` in a build without rerun.
    #[derive(Debug, thiserror::Error)]
    #[error("--rerun: this rlrt was built without rerun (the robot build); rebuild with the default features")]
    pub struct NoRerun;

    impl std::str::FromStr for Destination {
        type Err = NoRerun;
        fn from_str(_: &str) -> Result<Self, NoRerun> {
            Err(NoRerun)
        }
    }

    impl std::fmt::Display for Destination {
        fn fmt(&self, _: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            match *self {}
        }
    }

    /// Never made: there is no logger without a destination.
    #[derive(Clone, Debug, Default, serde::Serialize)]
    pub struct RerunSummary {}

    impl std::fmt::Display for RerunSummary {
        fn fmt(&self, _: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            Ok(())
        }
    }

    /// Never made: [`RerunLogger::start`] needs a destination, and none exists.
    pub struct RerunLogger(());

    pub struct RerunConsumer(());

    impl TickConsumer for RerunConsumer {
        fn on_tick(&mut self, _: &rlrt_runtime::telemetry::TickRecord) {}
    }

    impl RerunLogger {
        pub fn start(
            destination: &Destination,
            _: &RobotConfig,
            _: &str,
            _: WallTime,
            _: usize,
        ) -> Result<Self, NoRerun> {
            match *destination {}
        }

        pub fn events(&self) -> EventSender {
            unreachable!("no rerun logger in this build")
        }

        pub fn consumer(&self, _: Option<Arc<CameraFrames>>) -> RerunConsumer {
            unreachable!("no rerun logger in this build")
        }

        pub fn finish(self) -> RerunSummary {
            RerunSummary {}
        }
    }
}
