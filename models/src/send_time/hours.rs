//! Hour-of-week bins, time-zone offsets and smoothing across neighbouring
//! hours.

use serde::{Deserialize, Serialize};

use crate::error::ModelError;

/// Bins in a week: hour 0 is Monday 00:00 to 00:59 local time.
pub const HOURS_PER_WEEK: usize = 168;

/// Smallest accepted offset from UTC in minutes (UTC−12:00).
pub const MIN_UTC_OFFSET_MINUTES: i32 = -12 * 60;

/// Largest accepted offset from UTC in minutes (UTC+14:00).
pub const MAX_UTC_OFFSET_MINUTES: i32 = 14 * 60;

const DAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// Returns the local hour of week of a Unix time in milliseconds, for a zone
/// `utc_offset_minutes` ahead of UTC.
pub fn hour_of_week(unix_ms: i64, utc_offset_minutes: i32) -> usize {
    let local_seconds = unix_ms.div_euclid(1000) + i64::from(utc_offset_minutes) * 60;
    let hours = local_seconds.div_euclid(3600);
    // 1970-01-01 was a Thursday, which is 72 hours after Monday 00:00.
    (hours + 72).rem_euclid(HOURS_PER_WEEK as i64) as usize
}

/// Returns the three-letter day name (`mon` to `sun`) of an hour of week.
pub fn day_name(hour_of_week: usize) -> &'static str {
    DAY_NAMES[(hour_of_week / 24) % 7]
}

/// Returns the minute of the UTC week (0 is Monday 00:00 UTC) at which a
/// local hour of week starts, in a zone `utc_offset_minutes` ahead of UTC.
pub fn utc_minute_of_week(hour_of_week: usize, utc_offset_minutes: i32) -> u32 {
    let minutes = hour_of_week as i64 * 60 - i64::from(utc_offset_minutes);
    minutes.rem_euclid(HOURS_PER_WEEK as i64 * 60) as u32
}

/// Checks that an offset lies within UTC−12:00 and UTC+14:00.
pub fn check_utc_offset(minutes: i64) -> Result<i32, ModelError> {
    if (i64::from(MIN_UTC_OFFSET_MINUTES)..=i64::from(MAX_UTC_OFFSET_MINUTES)).contains(&minutes) {
        Ok(minutes as i32)
    } else {
        Err(ModelError::invalid(
            "utc_offset_minutes",
            minutes.to_string(),
            format!("must be between {MIN_UTC_OFFSET_MINUTES} and {MAX_UTC_OFFSET_MINUTES}"),
        ))
    }
}

/// A circular smoothing kernel over the 168 bins, separable into hours of
/// the same day and the same hour on nearby days.
///
/// `hour_weights[d]` weighs the bins `d` hours away and `day_weights[d]`
/// the same hour `d` days away; index 0 is the bin itself. The kernel is
/// normalised to sum to 1, so smoothing keeps the total count.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Smoothing {
    pub hour_weights: Vec<f64>,
    pub day_weights: Vec<f64>,
}

impl Default for Smoothing {
    fn default() -> Self {
        Smoothing {
            hour_weights: vec![1.0, 0.5, 0.2],
            day_weights: vec![1.0, 0.3, 0.1, 0.05],
        }
    }
}

impl Smoothing {
    /// No smoothing: each bin keeps its own count.
    pub fn none() -> Self {
        Smoothing {
            hour_weights: vec![1.0],
            day_weights: vec![1.0],
        }
    }

    /// Checks the weights: 1 to 12 hour weights and 1 to 4 day weights, all
    /// finite and at least 0, with a positive centre.
    pub fn validate(&self) -> Result<(), ModelError> {
        let check = |name: &str, weights: &[f64], max: usize| {
            if weights.is_empty() || weights.len() > max {
                return Err(ModelError::Training(format!(
                    "smoothing `{name}` needs 1 to {max} weights, got {}",
                    weights.len()
                )));
            }
            if weights.iter().any(|w| !w.is_finite() || *w < 0.0) || weights[0] <= 0.0 {
                return Err(ModelError::Training(format!(
                    "smoothing `{name}` weights must be finite and at least 0, with a positive first weight"
                )));
            }
            Ok(())
        };
        check("hour_weights", &self.hour_weights, 12)?;
        // Four day weights reach three days either side, which covers the
        // week once; more would count some days twice.
        check("day_weights", &self.day_weights, 4)
    }

    /// Returns `values` (one per hour of week) convolved with the kernel.
    pub(crate) fn apply(&self, values: &[f64]) -> Vec<f64> {
        debug_assert_eq!(values.len(), HOURS_PER_WEEK);
        let total = self.total_weight();
        let week = HOURS_PER_WEEK as i64;
        let mut out = vec![0.0; HOURS_PER_WEEK];
        for (bin, slot) in out.iter_mut().enumerate() {
            let mut sum = 0.0;
            for (days, day_weight) in self.day_weights.iter().enumerate() {
                for day_sign in signs(days) {
                    for (hours, hour_weight) in self.hour_weights.iter().enumerate() {
                        for hour_sign in signs(hours) {
                            let offset = day_sign * 24 * days as i64 + hour_sign * hours as i64;
                            let source = (bin as i64 + offset).rem_euclid(week) as usize;
                            sum += day_weight * hour_weight * values[source];
                        }
                    }
                }
            }
            *slot = sum / total;
        }
        out
    }

    fn total_weight(&self) -> f64 {
        let side = |weights: &[f64]| weights[0] + 2.0 * weights[1..].iter().sum::<f64>();
        side(&self.hour_weights) * side(&self.day_weights)
    }
}

/// Returns the directions of an offset: only `+` for 0, both otherwise.
fn signs(distance: usize) -> &'static [i64] {
    if distance == 0 { &[1] } else { &[1, -1] }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hour_of_week_starts_on_monday() {
        // 2024-01-01 00:30 UTC was a Monday.
        let monday = 1_704_069_000_000;
        assert_eq!(hour_of_week(monday, 0), 0);
        assert_eq!(day_name(hour_of_week(monday, 0)), "mon");
        // The same instant is Sunday 23:30 one hour west of UTC.
        assert_eq!(hour_of_week(monday, -60), 167);
        assert_eq!(
            hour_of_week(monday + 3_600_000 * 24 * 2 + 3_600_000 * 9, 0),
            57
        );
    }

    #[test]
    fn utc_minute_of_week_undoes_the_offset() {
        assert_eq!(utc_minute_of_week(10, 0), 600);
        assert_eq!(utc_minute_of_week(10, 330), 270);
        assert_eq!(utc_minute_of_week(0, 60), 168 * 60 - 60);
    }

    #[test]
    fn offset_outside_the_zones_is_invalid() {
        assert_eq!(check_utc_offset(-720).unwrap(), -720);
        assert_eq!(check_utc_offset(840).unwrap(), 840);
        assert!(check_utc_offset(841).is_err());
        assert!(check_utc_offset(-721).is_err());
    }

    #[test]
    fn smoothing_keeps_the_total_and_spreads_a_spike() {
        let mut values = vec![0.0; HOURS_PER_WEEK];
        values[0] = 10.0;
        let smoothed = Smoothing::default().apply(&values);
        let total: f64 = smoothed.iter().sum();
        assert!((total - 10.0).abs() < 1e-9, "{total}");
        assert!(smoothed[0] > smoothed[1]);
        assert!(smoothed[1] > smoothed[2]);
        // Wraps around the end of the week and reaches the previous day.
        assert!(smoothed[167] > 0.0);
        assert!(smoothed[144] > 0.0);
        assert_eq!(smoothed[12], 0.0);
        assert_eq!(Smoothing::none().apply(&values), values);
    }

    #[test]
    fn smoothing_rejects_bad_weights() {
        let mut smoothing = Smoothing {
            day_weights: vec![1.0; 5],
            ..Smoothing::default()
        };
        assert!(smoothing.validate().is_err());
        smoothing.day_weights = vec![0.0];
        assert!(smoothing.validate().is_err());
        assert!(Smoothing::default().validate().is_ok());
    }
}
