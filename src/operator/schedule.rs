//! Cron schedules of channels: the 5-field expressions and `@` descriptors the CRD accepts,
//! read in an IANA time zone, and the per-channel jitter that spreads channels sharing a
//! schedule over a few seconds.

use std::time::Duration;

use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use jiff::Timestamp;
use jiff::tz::TimeZone;

/// The largest jitter added to a scheduled start.
pub const MAX_JITTER: Duration = Duration::from_secs(10);

/// A schedule that cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error("schedule {schedule:?} is not a 5-field cron expression: {message}")]
    Expression { schedule: String, message: String },
    #[error("time zone {0:?} is unknown")]
    TimeZone(String),
}

/// A parsed schedule in its time zone.
#[derive(Clone, Debug)]
pub struct Schedule {
    cron: Cron,
    time_zone: TimeZone,
}

impl Schedule {
    /// Parses `expression` (5 fields or a descriptor) in `time_zone` (unset: UTC).
    pub fn parse(expression: &str, time_zone: Option<&str>) -> Result<Schedule, ScheduleError> {
        let trimmed = expression.trim();
        // croner knows every descriptor the CRD allows except @midnight.
        let expression = if trimmed.eq_ignore_ascii_case("@midnight") {
            "@daily"
        } else {
            trimmed
        };
        if !expression.starts_with('@') && expression.split_whitespace().count() != 5 {
            return Err(ScheduleError::Expression {
                schedule: expression.to_string(),
                message: "it needs exactly 5 fields".into(),
            });
        }
        let cron = CronParser::builder()
            .seconds(Seconds::Disallowed)
            .year(Year::Disallowed)
            .build()
            .parse(expression)
            .map_err(|error| ScheduleError::Expression {
                schedule: expression.to_string(),
                message: error.to_string(),
            })?;
        let time_zone = match time_zone {
            None => TimeZone::UTC,
            Some(name) => {
                TimeZone::get(name).map_err(|_| ScheduleError::TimeZone(name.to_string()))?
            }
        };
        Ok(Schedule { cron, time_zone })
    }

    /// The latest slot at or before `now`.
    pub fn latest_at_or_before(&self, now: Timestamp) -> Option<Timestamp> {
        let zoned = now.to_zoned(self.time_zone.clone());
        self.cron
            .find_previous_occurrence(&zoned, true)
            .ok()
            .map(|slot| slot.timestamp())
    }

    /// The first slot after `now`.
    pub fn next_after(&self, now: Timestamp) -> Option<Timestamp> {
        let zoned = now.to_zoned(self.time_zone.clone());
        self.cron
            .find_next_occurrence(&zoned, false)
            .ok()
            .map(|slot| slot.timestamp())
    }
}

/// The jitter of the channel `key` (`namespace/name`): a fixed delay below [`MAX_JITTER`],
/// the same on every reconcile, different between channels.
pub fn jitter(key: &str) -> Duration {
    // FNV-1a: stable across processes and releases, unlike the std hasher.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in key.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    Duration::from_millis(hash % MAX_JITTER.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        text.parse().expect("timestamp")
    }

    #[test]
    fn five_fields_in_a_time_zone() {
        let schedule = Schedule::parse("30 2 * * *", Some("Europe/Berlin")).expect("parses");
        // 02:30 in Berlin in winter is 01:30 UTC.
        assert_eq!(
            schedule.next_after(at("2026-01-10T00:00:00Z")),
            Some(at("2026-01-10T01:30:00Z"))
        );
        assert_eq!(
            schedule.latest_at_or_before(at("2026-01-10T05:00:00Z")),
            Some(at("2026-01-10T01:30:00Z"))
        );
        let utc = Schedule::parse("30 2 * * *", None).expect("parses");
        assert_eq!(
            utc.next_after(at("2026-01-10T00:00:00Z")),
            Some(at("2026-01-10T02:30:00Z"))
        );
    }

    #[test]
    fn descriptors_and_every_minute() {
        let daily = Schedule::parse("@midnight", None).expect("parses");
        assert_eq!(
            daily.next_after(at("2026-03-01T10:00:00Z")),
            Some(at("2026-03-02T00:00:00Z"))
        );
        let minutely = Schedule::parse("* * * * *", None).expect("parses");
        assert_eq!(
            minutely.latest_at_or_before(at("2026-03-01T10:00:42Z")),
            Some(at("2026-03-01T10:00:00Z"))
        );
    }

    #[test]
    fn seconds_fields_and_unknown_zones_are_refused() {
        assert!(matches!(
            Schedule::parse("0 0 1 * * *", None),
            Err(ScheduleError::Expression { .. })
        ));
        assert!(matches!(
            Schedule::parse("0 1 * * *", Some("Mars/Olympus")),
            Err(ScheduleError::TimeZone(_))
        ));
    }

    #[test]
    fn jitter_is_stable_bounded_and_spread() {
        assert_eq!(jitter("ns/a"), jitter("ns/a"));
        let distinct: std::collections::BTreeSet<Duration> = (0..50)
            .map(|i| jitter(&format!("ns/channel-{i}")))
            .collect();
        assert!(distinct.len() > 40, "{distinct:?}");
        assert!(distinct.iter().all(|d| *d < MAX_JITTER));
    }
}
