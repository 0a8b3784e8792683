//! The local language models on the real files from the PyPI packages.
//!
//! `COPYCAR_LOCAL_MODELS_DIR` names the directory that `copycar models
//! fetch` filled (`tests/run.sh` sets it); without it the tests read
//! `models/registry/llm`, the command's default.

use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use copycar_models::llm::{GenerateOptions, LlmError, MiniLm, SmolLm, locate};

fn models_dir() -> PathBuf {
    match std::env::var_os("COPYCAR_LOCAL_MODELS_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("registry/llm"),
    }
}

fn text_model_path() -> PathBuf {
    let dir = models_dir();
    locate(&dir).text.unwrap_or_else(|| {
        panic!(
            "no SmolLM2 GGUF file in {}; run `copycar models fetch` or set COPYCAR_LOCAL_MODELS_DIR",
            dir.display()
        )
    })
}

fn embedding_model_path() -> PathBuf {
    let dir = models_dir();
    locate(&dir).embeddings.unwrap_or_else(|| {
        panic!(
            "no all-MiniLM-L6-v2 directory in {}; run `copycar models fetch` or set COPYCAR_LOCAL_MODELS_DIR",
            dir.display()
        )
    })
}

/// Loads each model once for all tests of the binary.
fn smollm() -> &'static SmolLm {
    static MODEL: OnceLock<SmolLm> = OnceLock::new();
    MODEL.get_or_init(|| SmolLm::load(&text_model_path()).unwrap())
}

fn minilm() -> &'static MiniLm {
    static MODEL: OnceLock<MiniLm> = OnceLock::new();
    MODEL.get_or_init(|| MiniLm::load(&embedding_model_path()).unwrap())
}

fn greedy(max_tokens: usize) -> GenerateOptions {
    GenerateOptions {
        max_tokens,
        temperature: 0.0,
        ..Default::default()
    }
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn norm(a: &[f32]) -> f32 {
    a.iter().map(|x| x * x).sum::<f32>().sqrt()
}

#[test]
fn locate_finds_both_models() {
    let files = locate(&models_dir());
    assert!(files.text.is_some(), "{files:?}");
    assert!(files.embeddings.is_some(), "{files:?}");
}

#[test]
fn locate_empty_directory_finds_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let files = locate(dir.path());
    assert_eq!(files.text, None);
    assert_eq!(files.embeddings, None);
}

#[test]
fn greedy_generation_is_deterministic() {
    let model = smollm();
    let prompt = "What is the capital of France?";
    let first = model.generate(prompt, None, &greedy(24)).unwrap();
    let second = model.generate(prompt, None, &greedy(24)).unwrap();
    assert_eq!(first, second);
    assert_eq!(first.generated_tokens, 24);
    assert!(!first.text.is_empty());
}

#[test]
fn generation_is_repeatable_across_threads() {
    let model = smollm();
    let expected = model.generate("Name a colour.", None, &greedy(8)).unwrap();
    let expected = Arc::new(expected);
    std::thread::scope(|scope| {
        for _ in 0..2 {
            let expected = Arc::clone(&expected);
            scope.spawn(move || {
                let generated = model.generate("Name a colour.", None, &greedy(8)).unwrap();
                assert_eq!(generated, *expected);
            });
        }
    });
}

#[test]
fn generation_stops_at_stop_string() {
    let model = smollm();
    let prompt = "Count from 1 to 20, separated by commas.";
    let full = model.generate(prompt, None, &greedy(40)).unwrap();
    assert!(full.text.contains('5'), "{:?}", full.text);

    let options = GenerateOptions {
        stop: vec!["5".to_owned()],
        ..greedy(40)
    };
    let stopped = model.generate(prompt, None, &options).unwrap();
    let cut = full.text.find('5').unwrap();
    assert_eq!(stopped.text, full.text[..cut]);
    assert!(stopped.generated_tokens < full.generated_tokens);
}

#[test]
fn generation_respects_max_tokens() {
    let model = smollm();
    let generated = model
        .generate("Write a long story about a lighthouse.", None, &greedy(5))
        .unwrap();
    assert_eq!(generated.generated_tokens, 5);
}

#[test]
fn prompt_tokens_follow_chat_template() {
    let model = smollm();
    let without_system = model.count_prompt_tokens("Hello", Some("")).unwrap();
    let with_system = model.count_prompt_tokens("Hello", Some("Be brief.")).unwrap();
    // `<|im_start|>system\n<|im_end|>\n<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n`
    // is 15 tokens in llama.cpp 0.3.36's tokenizer for this file:
    // [1, 9690, 198, 2, 198, 1, 4093, 198, 19556, 2, 198, 1, 520, 9531, 198].
    assert_eq!(without_system, 15);
    // "Be brief." is three tokens: "Be", " brief", ".".
    assert_eq!(with_system, without_system + 3);

    let generated = model.generate("Hello", Some("Be brief."), &greedy(3)).unwrap();
    assert_eq!(generated.prompt_tokens, with_system);
}

#[test]
fn digits_are_tokenized_one_by_one() {
    let model = smollm();
    let short = model.count_prompt_tokens("1", Some("")).unwrap();
    let long = model.count_prompt_tokens("12345", Some("")).unwrap();
    assert_eq!(long - short, 4);
}

#[test]
fn sampling_is_seeded() {
    let model = smollm();
    let options = |seed| GenerateOptions {
        max_tokens: 16,
        temperature: 1.0,
        top_p: Some(0.9),
        seed,
        stop: Vec::new(),
    };
    let prompt = "Tell me about cats.";
    let first = model.generate(prompt, None, &options(7)).unwrap();
    let again = model.generate(prompt, None, &options(7)).unwrap();
    assert_eq!(first, again);
}

#[test]
fn invalid_options_are_rejected() {
    let model = smollm();
    let options = GenerateOptions {
        temperature: 3.0,
        ..Default::default()
    };
    match model.generate("Hi", None, &options) {
        Err(LlmError::InvalidInput { field, .. }) => assert_eq!(field, "temperature"),
        other => panic!("expected invalid temperature, got {other:?}"),
    }
}

#[test]
fn overlong_prompt_is_rejected() {
    let model = smollm();
    let prompt = "word ".repeat(model.context_length());
    match model.generate(&prompt, None, &greedy(1)) {
        Err(LlmError::ContextTooLong { prompt_tokens, max }) => {
            assert!(prompt_tokens >= max, "{prompt_tokens} < {max}");
        }
        other => panic!("expected a context error, got {other:?}"),
    }
}

#[test]
fn embeddings_have_unit_norm_and_384_dims() {
    let model = minilm();
    let texts = ["A cat sits on the mat.", "", "Quarterly revenue grew by 12%."];
    let embeddings = model.embed(&texts).unwrap();
    assert_eq!(model.dims(), 384);
    assert_eq!(embeddings.len(), texts.len());
    for embedding in &embeddings {
        assert_eq!(embedding.len(), 384);
        assert!((norm(embedding) - 1.0).abs() < 1e-4, "norm {}", norm(embedding));
    }
}

#[test]
fn similar_sentences_score_higher() {
    let model = minilm();
    let embeddings = model
        .embed(&[
            "The cat is sleeping on the sofa.",
            "A kitten naps on the couch.",
            "Interest rates rose sharply last quarter.",
        ])
        .unwrap();
    let similar = cosine(&embeddings[0], &embeddings[1]);
    let unrelated = cosine(&embeddings[0], &embeddings[2]);
    assert!(similar > unrelated, "similar {similar} <= unrelated {unrelated}");
    assert!(similar > 0.5, "similar {similar}");
}

#[test]
fn batching_does_not_change_embeddings() {
    let model = minilm();
    let texts: Vec<String> = (0..40)
        .map(|i| format!("Sentence number {i} is {} words long.", "very ".repeat(i % 7)))
        .collect();
    let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
    let batched = model.embed(&texts).unwrap();
    for index in [0, 17, 39] {
        let single = model.embed(&texts[index..=index]).unwrap();
        let similarity = cosine(&single[0], &batched[index]);
        assert!(similarity > 0.9999, "text {index}: cosine {similarity}");
    }
}

#[test]
fn long_text_is_truncated() {
    let model = minilm();
    let long = "alpha beta gamma ".repeat(500);
    let counts = model.count_tokens(&[&long]).unwrap();
    assert_eq!(counts, vec![model.max_tokens()]);
    assert_eq!(model.max_tokens(), 256);
    let embeddings = model.embed(&[&long]).unwrap();
    assert_eq!(embeddings[0].len(), 384);
}

#[test]
fn damaged_gguf_is_rejected() {
    let original = std::fs::read(text_model_path()).unwrap();
    let dir = tempfile::tempdir().unwrap();

    let truncated = dir.path().join("truncated.gguf");
    std::fs::write(&truncated, &original[..original.len() / 2]).unwrap();
    match SmolLm::load(&truncated) {
        Err(LlmError::InvalidFile { path, .. }) => assert_eq!(path, truncated),
        Err(other) => panic!("expected an invalid file error, got {other}"),
        Ok(_) => panic!("a truncated GGUF file loaded"),
    }

    let garbage = dir.path().join("garbage.gguf");
    std::fs::File::create(&garbage)
        .unwrap()
        .write_all(b"this is not a model")
        .unwrap();
    assert!(matches!(
        SmolLm::load(&garbage),
        Err(LlmError::InvalidFile { .. })
    ));

    let missing = dir.path().join("missing.gguf");
    assert!(matches!(
        SmolLm::load(&missing),
        Err(LlmError::Missing { .. })
    ));
}

#[test]
fn damaged_embedding_files_are_rejected() {
    let source = embedding_model_path();
    let dir = tempfile::tempdir().unwrap();
    for name in ["config.json", "tokenizer.json", "model.safetensors"] {
        std::fs::copy(source.join(name), dir.path().join(name)).unwrap();
    }

    let weights = dir.path().join("model.safetensors");
    let bytes = std::fs::read(&weights).unwrap();
    std::fs::write(&weights, &bytes[..bytes.len() / 2]).unwrap();
    match MiniLm::load(dir.path()) {
        Err(LlmError::InvalidFile { path, .. }) => assert_eq!(path, weights),
        Err(other) => panic!("expected an invalid file error, got {other}"),
        Ok(_) => panic!("truncated weights loaded"),
    }

    std::fs::write(dir.path().join("config.json"), b"{").unwrap();
    assert!(matches!(
        MiniLm::load(dir.path()),
        Err(LlmError::InvalidFile { .. })
    ));

    std::fs::remove_file(dir.path().join("config.json")).unwrap();
    assert!(matches!(
        MiniLm::load(dir.path()),
        Err(LlmError::Missing { .. })
    ));
}
