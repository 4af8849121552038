//! A telemetry consumer that turns tick records into log lines about safety faults: when a
//! fault begins (with its cause), when it clears and how long it lasted. It runs on the
//! telemetry thread, so the tick never formats or writes a log line.

use super::TickConsumer;
use crate::safety::Cause;
use crate::telemetry::TickRecord;

pub struct FaultLog {
    period_ns: u64,
    current: Option<(Cause, u64)>,
}

impl FaultLog {
    pub fn new(period_ns: u64) -> Self {
        Self {
            period_ns,
            current: None,
        }
    }
}

impl TickConsumer for FaultLog {
    fn on_tick(&mut self, record: &TickRecord) {
        match (self.current, record.fault) {
            (None, Some(cause)) => {
                tracing::warn!(
                    tick = record.tick,
                    cause = cause.name(),
                    published = record.published,
                    "safety fault: commanding the fault action"
                );
                self.current = Some((cause, record.tick));
            }
            (Some((cause, since)), None) => {
                let ticks = record.tick - since;
                tracing::info!(
                    tick = record.tick,
                    cause = cause.name(),
                    ticks,
                    ms = (ticks * self.period_ns) as f64 / 1e6,
                    "safety fault cleared: policy back in control"
                );
                self.current = None;
            }
            (Some((old, since)), Some(new)) if old != new => {
                tracing::warn!(
                    tick = record.tick,
                    from = old.name(),
                    to = new.name(),
                    "safety fault changed cause"
                );
                self.current = Some((new, since));
            }
            _ => {}
        }
    }

    fn finish(&mut self) {
        if let Some((cause, since)) = self.current {
            tracing::warn!(
                cause = cause.name(),
                since_tick = since,
                "run ended during a safety fault"
            );
        }
    }
}
