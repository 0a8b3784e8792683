//! The reference data set: outcomes of a Portuguese bank's phone campaigns
//! (UCI bank marketing, CC BY 4.0, Moro, Cortez and Rita 2014,
//! DOI 10.24432/C5K306).

use crate::data::CsvOptions;
use crate::schema::{Field, NumericSpec, Schema, Transform};

/// Month and day combinations rarer than this in training share one column.
const MONTH_DAY_MIN_COUNT: usize = 10;

/// Returns the reading options for `bank-full.csv`: `;`-separated, with
/// outcome `y` = "yes".
///
/// `duration` is dropped because the call length is known only after the
/// call ends, so a model that scores contacts in advance cannot use it.
pub fn bank_marketing_csv() -> CsvOptions {
    CsvOptions {
        delimiter: b';',
        target: "y".into(),
        positive: "yes".into(),
        drop: vec!["duration".into()],
    }
}

/// Returns the input fields of the bank marketing data without `duration`.
///
/// "unknown" is the data's missing marker, and `pdays` = -1 means the client
/// was not contacted before. Counts and the balance are heavy-tailed, so
/// they are log-transformed. The day of the month is categorical, and is
/// crossed with the month, because response rates vary by calendar date
/// (campaign waves), not smoothly with the day.
pub fn bank_marketing_schema() -> Schema {
    let count = NumericSpec {
        transform: Transform::SignedLog1p,
        min: Some(0.0),
        ..NumericSpec::default()
    };
    Schema::new(vec![
        Field::numeric_with(
            "age",
            NumericSpec {
                min: Some(0.0),
                max: Some(130.0),
                ..NumericSpec::default()
            },
        ),
        Field::categorical("job", &["unknown"]),
        Field::categorical("marital", &["unknown"]),
        Field::categorical("education", &["unknown"]),
        Field::categorical("default", &["unknown"]),
        Field::numeric_with(
            "balance",
            NumericSpec {
                transform: Transform::SignedLog1p,
                ..NumericSpec::default()
            },
        ),
        Field::categorical("housing", &["unknown"]),
        Field::categorical("loan", &["unknown"]),
        Field::categorical("contact", &["unknown"]),
        Field::categorical("day", &[]),
        Field::categorical("month", &[]),
        Field::numeric_with("campaign", count.clone()),
        Field::numeric_with(
            "pdays",
            NumericSpec {
                missing_sentinel: Some(-1.0),
                ..count.clone()
            },
        ),
        Field::numeric_with("previous", count),
        Field::categorical("poutcome", &["unknown"]),
        Field::cross("month_day", &["month", "day"], MONTH_DAY_MIN_COUNT),
    ])
}
