use copycar_models::{
    DataSource, ModelCard, ModelError, Registry, SplitSummary, bank_marketing_schema, train,
};

use crate::{bank_sample, sample_split, small_config};

#[test]
fn registry_round_trip_preserves_predictions_and_card() {
    let data = bank_sample();
    let split = sample_split(&data);
    let config = small_config();
    let (model, summary) = train(
        &bank_marketing_schema(),
        &data.subset(&split.train),
        &data.subset(&split.validation),
        &config,
        |_| {},
    )
    .unwrap();
    let test = data.subset(&split.test);
    let metrics = model.evaluate(&test).unwrap();
    let source = DataSource {
        name: "bank-sample.csv".into(),
        licence: "CC BY 4.0".into(),
        rows: data.len(),
        target: "y".into(),
        dropped_columns: vec!["duration".into()],
    };
    let card = ModelCard::new(
        &model,
        source,
        SplitSummary::of(&split),
        config,
        summary,
        metrics,
    );
    let directory = tempfile::tempdir().unwrap();
    let registry = Registry::open(directory.path().join("response-rate"));

    assert_eq!(registry.versions().unwrap(), Vec::<String>::new());
    let first = registry.save(&model, card.clone()).unwrap();
    let second = registry.save(&model, card.clone()).unwrap();
    let (loaded, loaded_card) = registry.load(&first).unwrap();

    assert_eq!((first.as_str(), second.as_str()), ("v1", "v2"));
    assert_eq!(registry.versions().unwrap(), vec!["v1", "v2"]);
    assert_eq!(registry.latest().unwrap().as_deref(), Some("v2"));
    assert_eq!(loaded_card.version, "v1");
    assert_eq!(loaded_card.test, card.test);
    assert_eq!(loaded_card.features, bank_marketing_schema());
    assert_eq!(
        loaded.predict(test.records()).unwrap(),
        model.predict(test.records()).unwrap()
    );
    for file in ["model.safetensors", "pipeline.json", "card.json"] {
        assert!(
            directory
                .path()
                .join("response-rate/v1")
                .join(file)
                .is_file(),
            "{file}"
        );
    }
}

#[test]
fn registry_load_of_unknown_version_fails() {
    let directory = tempfile::tempdir().unwrap();
    let registry = Registry::open(directory.path());

    let error = registry.load("v7").unwrap_err();

    assert!(matches!(error, ModelError::VersionNotFound { ref version, .. } if version == "v7"));
}

#[test]
fn committed_artefact_loads_and_predicts() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/registry/response-rate");
    let registry = Registry::open(root);
    let latest = registry
        .latest()
        .unwrap()
        .expect("a committed model version");
    let data = bank_sample();

    let (model, card) = registry.load(&latest).unwrap();
    let predictions = model.predict(&data.records()[..10]).unwrap();

    assert_eq!(card.version, latest);
    assert!(card.test.roc_auc > 0.7, "{:?}", card.test);
    assert_eq!(predictions.len(), 10);
}
