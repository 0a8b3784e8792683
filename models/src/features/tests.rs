use super::*;
use crate::schema::{Field, Transform};

fn schema() -> Schema {
    Schema::new(vec![
        Field::categorical("colour", &["unknown"]),
        Field::numeric_with(
            "count",
            NumericSpec {
                missing_sentinel: Some(-1.0),
                min: Some(0.0),
                ..NumericSpec::default()
            },
        ),
    ])
}

fn training_rows() -> Vec<Record> {
    vec![
        Record::new().with("colour", "red").with("count", 1.0),
        Record::new().with("colour", "blue").with("count", 3.0),
        Record::new().with("colour", "unknown").with("count", -1.0),
        Record::new().with("colour", "red").with("count", 5.0),
    ]
}

#[test]
fn fit_orders_levels_and_adds_missing_columns() {
    let pipeline = FeaturePipeline::fit(&schema(), &training_rows()).unwrap();

    // colour: blue, red, missing; count: value, missing indicator.
    assert_eq!(pipeline.width(), 5);
    assert_eq!(pipeline.field_columns(), vec![0..3, 3..5]);
}

#[test]
fn transform_one_hot_and_standardises_on_training_statistics() {
    let pipeline = FeaturePipeline::fit(&schema(), &training_rows()).unwrap();

    // count statistics come from 1, 3, 5 (the sentinel is missing): mean 3,
    // population std sqrt(8/3).
    let std = (8.0f64 / 3.0).sqrt();
    let rows = pipeline
        .transform(&[
            Record::new().with("colour", "blue").with("count", 7.0),
            Record::new().with("colour", "unknown").with("count", -1.0),
            Record::new(),
        ])
        .unwrap();

    let expected_scaled = (4.0 / std) as f32;
    assert_eq!(rows[0..5], [1.0, 0.0, 0.0, expected_scaled, 0.0]);
    assert_eq!(rows[5..10], [0.0, 0.0, 1.0, 0.0, 1.0]);
    assert_eq!(rows[10..15], [0.0, 0.0, 1.0, 0.0, 1.0]);
}

#[test]
fn baseline_is_training_column_mean() {
    let pipeline = FeaturePipeline::fit(&schema(), &training_rows()).unwrap();

    // blue 1/4, red 2/4, missing 1/4; scaled count averages to 0 over the
    // three present values and the missing row encodes as 0; missing 1/4.
    assert_eq!(pipeline.baseline(), &[0.25, 0.5, 0.25, 0.0, 0.25]);
}

#[test]
fn numbers_are_accepted_as_text_and_categories_as_integers() {
    let schema = Schema::new(vec![Field::categorical("day", &[]), Field::numeric("age")]);
    let train = vec![
        Record::new().with("day", "5").with("age", "30"),
        Record::new().with("day", 6i64).with("age", 50i64),
    ];
    let pipeline = FeaturePipeline::fit(&schema, &train).unwrap();

    let rows = pipeline
        .transform(&[Record::new().with("day", 5i64).with("age", " 40 ")])
        .unwrap();

    assert_eq!(rows, vec![1.0, 0.0, 0.0, 0.0]);
}

#[test]
fn signed_log_transform_applies_before_scaling() {
    let spec = NumericSpec {
        transform: Transform::SignedLog1p,
        ..NumericSpec::default()
    };
    let schema = Schema::new(vec![Field::numeric_with("balance", spec)]);
    let e = std::f64::consts::E;
    let train = vec![
        Record::new().with("balance", e - 1.0),
        Record::new().with("balance", 1.0 - e),
    ];
    let pipeline = FeaturePipeline::fit(&schema, &train).unwrap();

    // Transformed values are +1 and -1: mean 0, std 1.
    let rows = pipeline.transform(&train).unwrap();

    assert!((rows[0] - 1.0).abs() < 1e-6, "got {}", rows[0]);
    assert!((rows[1] + 1.0).abs() < 1e-6, "got {}", rows[1]);
}

#[test]
fn unseen_level_is_invalid_and_names_field() {
    let pipeline = FeaturePipeline::fit(&schema(), &training_rows()).unwrap();

    let error = pipeline
        .transform(&[Record::new().with("colour", "green")])
        .unwrap_err();

    match &error {
        ModelError::InvalidFeature { field, value, .. } => {
            assert_eq!(field, "colour");
            assert_eq!(value, "green");
        }
        other => panic!("expected InvalidFeature, got {other:?}"),
    }
    assert!(error.to_string().contains("blue, red"), "{error}");
}

#[test]
fn out_of_range_and_non_numeric_values_are_invalid() {
    let pipeline = FeaturePipeline::fit(&schema(), &training_rows()).unwrap();

    for value in [
        Value::Number(-2.0),
        Value::from("many"),
        Value::Number(f64::NAN),
    ] {
        let error = pipeline
            .transform(&[Record::new().with("count", value.clone())])
            .unwrap_err();
        assert!(
            matches!(&error, ModelError::InvalidFeature { field, .. } if field == "count"),
            "{value:?} gave {error:?}"
        );
    }
}

#[test]
fn unknown_field_is_rejected() {
    let pipeline = FeaturePipeline::fit(&schema(), &training_rows()).unwrap();

    let error = pipeline
        .transform(&[Record::new().with("size", 3.0)])
        .unwrap_err();

    assert!(matches!(error, ModelError::UnknownFeature { field, .. } if field == "size"));
}

#[test]
fn fitted_state_round_trips_through_json() {
    let pipeline = FeaturePipeline::fit(&schema(), &training_rows()).unwrap();

    let json = serde_json::to_string(&pipeline).unwrap();
    let restored: FeaturePipeline = serde_json::from_str(&json).unwrap();

    assert_eq!(restored, pipeline);
}

#[test]
fn cross_pools_rare_and_unseen_combinations() {
    let schema = Schema::new(vec![
        Field::categorical("month", &[]),
        Field::categorical("day", &[]),
        Field::cross("month_day", &["month", "day"], 2),
    ]);
    let train = vec![
        Record::new().with("month", "may").with("day", 5i64),
        Record::new().with("month", "may").with("day", 5i64),
        Record::new().with("month", "jun").with("day", 5i64),
    ];
    let pipeline = FeaturePipeline::fit(&schema, &train).unwrap();

    // month: jun, may, missing; day: 5, missing; month_day: may|5, other,
    // missing. jun|5 was seen once, below the minimum of two.
    assert_eq!(pipeline.width(), 8);
    let rows = pipeline
        .transform(&[
            Record::new().with("month", "may").with("day", 5i64),
            Record::new().with("month", "jun").with("day", 5i64),
            Record::new().with("month", "may"),
        ])
        .unwrap();
    assert_eq!(rows[5..8], [1.0, 0.0, 0.0]);
    assert_eq!(rows[13..16], [0.0, 1.0, 0.0]);
    assert_eq!(rows[21..24], [0.0, 0.0, 1.0]);
}

#[test]
fn cross_is_not_a_record_field() {
    let schema = Schema::new(vec![
        Field::categorical("month", &[]),
        Field::cross("month_only", &["month"], 1),
    ]);
    let train = vec![Record::new().with("month", "may")];
    let pipeline = FeaturePipeline::fit(&schema, &train).unwrap();

    let error = pipeline
        .transform(&[Record::new().with("month_only", "may")])
        .unwrap_err();

    assert!(matches!(error, ModelError::UnknownFeature { field, .. } if field == "month_only"));
}

#[test]
fn cross_of_numeric_field_is_rejected_at_fit() {
    let schema = Schema::new(vec![
        Field::numeric("age"),
        Field::cross("age_cross", &["age"], 1),
    ]);

    let error = FeaturePipeline::fit(&schema, &[Record::new().with("age", 30i64)]).unwrap_err();

    assert!(
        error
            .to_string()
            .contains("`age_cross` needs categorical field `age`"),
        "{error}"
    );
}
