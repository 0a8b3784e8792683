use copycar_models::{ModelError, Record, TOP_FACTORS, bank_marketing_schema, train};

use crate::{bank_sample, sample_split, small_config};

#[test]
fn training_on_bank_sample_beats_chance() {
    let data = bank_sample();
    let split = sample_split(&data);
    let mut epochs = Vec::new();

    let (model, summary) = train(
        &bank_marketing_schema(),
        &data.subset(&split.train),
        &data.subset(&split.validation),
        &small_config(),
        |p| epochs.push(p.epoch),
    )
    .unwrap();
    let test = model.evaluate(&data.subset(&split.test)).unwrap();

    // Chance is 0.5; on the full data this setup scores about 0.79.
    assert!(test.roc_auc > 0.70, "test ROC AUC {}", test.roc_auc);
    // Average precision of a random ranking is the positive rate (~0.12).
    assert!(test.pr_auc > 0.25, "test PR AUC {}", test.pr_auc);
    assert_eq!(epochs, (1..=summary.epochs_run).collect::<Vec<_>>());
    assert!(summary.best_epoch >= 1, "{summary:?}");
    assert!(summary.best_epoch <= summary.epochs_run, "{summary:?}");
}

#[test]
fn training_is_deterministic_for_a_seed() {
    let data = bank_sample();
    let split = sample_split(&data);
    let train_set = data.subset(&split.train);
    let validation = data.subset(&split.validation);
    let test = data.subset(&split.test);
    let schema = bank_marketing_schema();

    let (first, _) = train(&schema, &train_set, &validation, &small_config(), |_| {}).unwrap();
    let (second, _) = train(&schema, &train_set, &validation, &small_config(), |_| {}).unwrap();

    let first = first.predict(test.records()).unwrap();
    let second = second.predict(test.records()).unwrap();
    assert_eq!(first, second);
}

#[test]
fn predict_returns_probability_uncertainty_and_factors() {
    let data = bank_sample();
    let split = sample_split(&data);
    let schema = bank_marketing_schema();
    let (model, _) = train(
        &schema,
        &data.subset(&split.train),
        &data.subset(&split.validation),
        &small_config(),
        |_| {},
    )
    .unwrap();
    let field_names: Vec<&str> = schema.fields().iter().map(|f| f.name()).collect();

    let predictions = model.predict(&data.records()[..20]).unwrap();

    assert_eq!(predictions.len(), 20);
    for prediction in &predictions {
        assert!(
            prediction.probability > 0.0 && prediction.probability < 1.0,
            "{prediction:?}"
        );
        assert!(prediction.uncertainty >= 0.0, "{prediction:?}");
        assert_eq!(prediction.factors.len(), TOP_FACTORS);
        for pair in prediction.factors.windows(2) {
            assert!(
                pair[0].contribution.abs() >= pair[1].contribution.abs(),
                "{prediction:?}"
            );
        }
        for factor in &prediction.factors {
            assert!(field_names.contains(&factor.field.as_str()), "{factor:?}");
        }
    }
}

#[test]
fn predict_batch_matches_single_rows() {
    let data = bank_sample();
    let split = sample_split(&data);
    let (model, _) = train(
        &bank_marketing_schema(),
        &data.subset(&split.train),
        &data.subset(&split.validation),
        &small_config(),
        |_| {},
    )
    .unwrap();
    let records = &data.records()[..5];

    let batch = model.predict(records).unwrap();

    for (record, from_batch) in records.iter().zip(&batch) {
        let single = model.predict(std::slice::from_ref(record)).unwrap();
        assert!((single[0].probability - from_batch.probability).abs() < 1e-6);
        assert_eq!(single[0].factors.len(), from_batch.factors.len());
    }
}

#[test]
fn predict_rejects_invalid_values_by_field() {
    let data = bank_sample();
    let split = sample_split(&data);
    let (model, _) = train(
        &bank_marketing_schema(),
        &data.subset(&split.train),
        &data.subset(&split.validation),
        &small_config(),
        |_| {},
    )
    .unwrap();
    let valid = data.records()[0].clone();
    let cases: [(&str, Record); 4] = [
        ("job", valid.clone().with("job", "astronaut")),
        ("age", valid.clone().with("age", -3.0)),
        ("balance", valid.clone().with("balance", "a lot")),
        ("month", valid.clone().with("month", 4.5)),
    ];

    for (expected_field, record) in cases {
        let error = model.predict(&[valid.clone(), record]).unwrap_err();
        match &error {
            ModelError::InvalidFeature { field, .. } => assert_eq!(field, expected_field),
            other => panic!("expected InvalidFeature for {expected_field}, got {other:?}"),
        }
        assert!(error.to_string().contains(expected_field), "{error}");
    }
}

#[test]
fn predict_accepts_missing_values() {
    let data = bank_sample();
    let split = sample_split(&data);
    let (model, _) = train(
        &bank_marketing_schema(),
        &data.subset(&split.train),
        &data.subset(&split.validation),
        &small_config(),
        |_| {},
    )
    .unwrap();
    let sparse = Record::new()
        .with("age", 35i64)
        .with("job", "unknown")
        .with("month", "may");

    let predictions = model.predict(&[sparse, Record::new()]).unwrap();

    assert!(
        predictions
            .iter()
            .all(|p| p.probability > 0.0 && p.probability < 1.0)
    );
}
