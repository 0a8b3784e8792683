//! Offset arithmetic between the log's `u64` offsets and Fluvio's `i64`
//! offsets, kept free of I/O so it can be tested without a cluster.

/// An offset that does not fit the other side's type, or partition bounds
/// that contradict each other.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OffsetError {
    #[error("Fluvio returned the negative offset {0}")]
    Negative(i64),
    #[error("offset {0} is larger than the maximum Fluvio offset {max}", max = i64::MAX)]
    TooLarge(u64),
    #[error("Fluvio returned a start offset {start} after the end offset {end}")]
    StartAfterEnd { start: i64, end: i64 },
}

/// The readable offsets of partition 0: `start` is the oldest offset that
/// retention kept, and `end` is one past the newest committed record (the
/// high watermark), so the partition contains `end - start` records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionBounds {
    pub start: u64,
    pub end: u64,
}

impl PartitionBounds {
    /// Converts the `start_offset` and `last_stable_offset` of a Fluvio
    /// fetch-offsets response.
    pub fn from_fluvio(start_offset: i64, last_stable_offset: i64) -> Result<Self, OffsetError> {
        if start_offset > last_stable_offset {
            return Err(OffsetError::StartAfterEnd {
                start: start_offset,
                end: last_stable_offset,
            });
        }
        Ok(PartitionBounds {
            start: from_fluvio_offset(start_offset)?,
            end: from_fluvio_offset(last_stable_offset)?,
        })
    }
}

/// The records one read fetches: `count` records from offset `start`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadRange {
    pub start: u64,
    pub count: usize,
}

/// Plans a read of at most `max` records from `requested` on.
///
/// A `requested` offset below `bounds.start` was deleted by retention, so
/// the read starts at `bounds.start`. Returns `None` when there is nothing
/// to read: `max` is 0, or the start is at or past `bounds.end`.
pub fn plan_read(requested: u64, bounds: PartitionBounds, max: usize) -> Option<ReadRange> {
    let start = requested.max(bounds.start);
    if max == 0 || start >= bounds.end {
        return None;
    }
    let available = bounds.end - start;
    let count = usize::try_from(available).map_or(max, |available| available.min(max));
    Some(ReadRange { start, count })
}

/// Converts a log offset to a Fluvio offset.
pub fn to_fluvio_offset(offset: u64) -> Result<i64, OffsetError> {
    i64::try_from(offset).map_err(|_| OffsetError::TooLarge(offset))
}

/// Converts a Fluvio offset to a log offset.
pub fn from_fluvio_offset(offset: i64) -> Result<u64, OffsetError> {
    u64::try_from(offset).map_err(|_| OffsetError::Negative(offset))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bounds(start: u64, end: u64) -> PartitionBounds {
        PartitionBounds { start, end }
    }

    #[test]
    fn read_starts_at_requested_offset() {
        assert_eq!(
            plan_read(3, bounds(0, 10), 4),
            Some(ReadRange { start: 3, count: 4 })
        );
    }

    #[test]
    fn read_stops_at_end_of_partition() {
        assert_eq!(
            plan_read(7, bounds(0, 10), 100),
            Some(ReadRange { start: 7, count: 3 })
        );
        assert_eq!(
            plan_read(9, bounds(0, 10), 100),
            Some(ReadRange { start: 9, count: 1 })
        );
    }

    #[test]
    fn deleted_offset_starts_at_oldest_retained() {
        assert_eq!(
            plan_read(2, bounds(5, 10), 3),
            Some(ReadRange { start: 5, count: 3 })
        );
        assert_eq!(
            plan_read(0, bounds(5, 10), 100),
            Some(ReadRange { start: 5, count: 5 })
        );
    }

    #[test]
    fn read_at_or_past_end_is_empty() {
        assert_eq!(plan_read(10, bounds(0, 10), 5), None);
        assert_eq!(plan_read(11, bounds(0, 10), 5), None);
        assert_eq!(plan_read(u64::MAX, bounds(0, 10), 5), None);
    }

    #[test]
    fn empty_partition_reads_nothing() {
        assert_eq!(plan_read(0, bounds(0, 0), 5), None);
        // Retention can delete every record, leaving start == end > 0.
        assert_eq!(plan_read(0, bounds(7, 7), 5), None);
    }

    #[test]
    fn zero_max_reads_nothing() {
        assert_eq!(plan_read(0, bounds(0, 10), 0), None);
    }

    #[test]
    fn bounds_convert_from_fluvio() {
        assert_eq!(PartitionBounds::from_fluvio(2, 9), Ok(bounds(2, 9)));
        assert_eq!(PartitionBounds::from_fluvio(0, 0), Ok(bounds(0, 0)));
    }

    #[test]
    fn bounds_reject_negative_and_inverted_offsets() {
        assert_eq!(
            PartitionBounds::from_fluvio(-1, 3),
            Err(OffsetError::Negative(-1))
        );
        assert_eq!(
            PartitionBounds::from_fluvio(-5, -2),
            Err(OffsetError::Negative(-5))
        );
        assert_eq!(
            PartitionBounds::from_fluvio(4, 3),
            Err(OffsetError::StartAfterEnd { start: 4, end: 3 })
        );
    }

    #[test]
    fn offsets_convert_at_the_limits() {
        assert_eq!(to_fluvio_offset(0), Ok(0));
        assert_eq!(to_fluvio_offset(i64::MAX as u64), Ok(i64::MAX));
        assert_eq!(
            to_fluvio_offset(i64::MAX as u64 + 1),
            Err(OffsetError::TooLarge(i64::MAX as u64 + 1))
        );
        assert_eq!(from_fluvio_offset(0), Ok(0));
        assert_eq!(from_fluvio_offset(i64::MAX), Ok(i64::MAX as u64));
        assert_eq!(from_fluvio_offset(-1), Err(OffsetError::Negative(-1)));
    }
}
