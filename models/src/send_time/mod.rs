//! The send-time model: the probability of an open and of a reply for each
//! local hour of week, per recipient, per segment and per tenant.
//!
//! 1. [`OutcomeJoin`] reads events and marks each send as opened or replied
//!    when a response with the same recipient and campaign follows it.
//! 2. [`fit`] counts sends and responses per hour of week at three levels
//!    and smooths them across neighbouring hours and days ([`Smoothing`]).
//!    It then shrinks each recipient toward their segment and each segment
//!    toward the tenant, with beta priors whose strength it estimates from
//!    the data.
//! 3. [`train_send_time`] splits the sends by time, measures the lift of the
//!    model's schedule over the best single hour on the later part
//!    ([`evaluate`]), refits on everything and writes a [`SendTimeCard`].
//! 4. [`SendTimeModel::predict`] ranks the hours for a recipient, a segment
//!    or neither, and returns the level that produced the estimate.

mod evaluate;
mod fit;
mod hours;
mod model;
mod outcomes;
mod store;
mod train;

pub use evaluate::{
    ESTIMATOR, HoldoutReport, LiftEstimate, PolicyRate, TimeSplit, evaluate, split_by_time,
};
pub use fit::{SendTimeConfig, fit};
pub use hours::{
    HOURS_PER_WEEK, MAX_UTC_OFFSET_MINUTES, MIN_UTC_OFFSET_MINUTES, Smoothing, check_utc_offset,
    day_name, hour_of_week, utc_minute_of_week,
};
pub use model::{
    HourEstimate, Level, Objective, PriorStrengths, SendTimeModel, SendTimePrediction,
    SendTimeQuery,
};
pub use outcomes::{
    JoinStats, OutcomeJoin, SEGMENT_PROPERTY, SegmentKey, SendOutcome, UTC_OFFSET_PROPERTY,
};
pub use store::{
    EventRange, SendTimeCard, SendTimeData, SendTimeFeatures, TimeSplitSummary, tenant_registry,
};
pub use train::{SendTimeStage, train_send_time};

#[cfg(test)]
mod tests;
