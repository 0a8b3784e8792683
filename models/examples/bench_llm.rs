//! Times the local language models: SmolLM2 load time, prompt and
//! generation speed (greedy), and MiniLM embedding latency for one sentence
//! and for a batch of 32. `models/bench/llm_compare.py` runs this with
//! `--json` and puts the figures beside llama.cpp's and
//! sentence-transformers'.
//!
//! Usage: cargo run --release -p copycar-models --example bench_llm --
//!            [--models-dir DIR] [--tokens N] [--runs N]
//!            [--sentences FILE.csv --column NAME] [--json]
//!
//! `--models-dir` is the directory that `copycar models fetch` filled
//! [default: models/registry/llm]. Sentences come from a CSV column, for
//! example the `blurb` column of a company list; without a file a fixed
//! list of 64 sentences is used.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, bail};
use copycar_models::llm::{GenerateOptions, MiniLm, SmolLm, locate};

/// The prompt both engines generate from; it asks for a long answer so that
/// generation rarely ends before `--tokens`.
const PROMPT: &str = "Write a long, detailed story about a lighthouse keeper who finds a message in a bottle. Describe the sea, the weather and the keeper's daily routine.";
const BATCH: usize = 32;

struct Options {
    models_dir: PathBuf,
    tokens: usize,
    runs: usize,
    sentences: Option<(PathBuf, String)>,
    json: bool,
}

fn parse_options() -> anyhow::Result<Options> {
    let mut args = std::env::args().skip(1);
    let mut options = Options {
        models_dir: PathBuf::from("models/registry/llm"),
        tokens: 128,
        runs: 3,
        sentences: None,
        json: false,
    };
    let mut file = None;
    let mut column = None;
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().with_context(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--models-dir" => options.models_dir = PathBuf::from(value(&arg)?),
            "--tokens" => options.tokens = value(&arg)?.parse()?,
            "--runs" => options.runs = value(&arg)?.parse()?,
            "--sentences" => file = Some(PathBuf::from(value(&arg)?)),
            "--column" => column = Some(value(&arg)?),
            "--json" => options.json = true,
            other => bail!("unknown option {other}"),
        }
    }
    if options.tokens < 2 || options.runs == 0 {
        bail!("--tokens must be at least 2 and --runs at least 1");
    }
    options.sentences = match (file, column) {
        (Some(file), Some(column)) => Some((file, column)),
        (None, None) => None,
        _ => bail!("--sentences and --column go together"),
    };
    Ok(options)
}

/// Reads up to 64 non-empty values of one CSV column, each cut to 400 characters.
fn read_sentences(path: &PathBuf, column: &str) -> anyhow::Result<Vec<String>> {
    let mut reader = csv::Reader::from_path(path).with_context(|| format!("failed to open {}", path.display()))?;
    let index = reader
        .headers()?
        .iter()
        .position(|name| name == column)
        .with_context(|| format!("column `{column}` not found in {}", path.display()))?;
    let mut sentences = Vec::new();
    for record in reader.records() {
        let record = record?;
        let text = record.get(index).unwrap_or("").trim();
        if !text.is_empty() {
            sentences.push(text.chars().take(400).collect());
        }
        if sentences.len() == 64 {
            break;
        }
    }
    Ok(sentences)
}

fn fixed_sentences() -> Vec<String> {
    let subjects = ["The team", "Our company", "A small startup", "The engineers"];
    let actions = ["builds", "maintains", "sells", "designs"];
    let objects = [
        "open-source developer tools",
        "payment software for shops",
        "a remote-first hiring platform",
        "cloud infrastructure for hospitals",
    ];
    let mut sentences = Vec::new();
    for subject in subjects {
        for action in actions {
            for object in objects {
                sentences.push(format!("{subject} {action} {object}."));
            }
        }
    }
    sentences
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() -> anyhow::Result<()> {
    let options = parse_options()?;
    let files = locate(&options.models_dir);
    let gguf = files
        .text
        .with_context(|| format!("no SmolLM2 file in {}; run `copycar models fetch`", options.models_dir.display()))?;
    let embedding_dir = files
        .embeddings
        .with_context(|| format!("no MiniLM directory in {}", options.models_dir.display()))?;

    // Text model: load, then time the prompt alone (one generated token)
    // and the whole generation; the difference is the decoding loop.
    let started = Instant::now();
    let model = SmolLm::load(&gguf)?;
    let load_s = started.elapsed().as_secs_f64();
    let greedy = |max_tokens| GenerateOptions {
        max_tokens,
        temperature: 0.0,
        ..Default::default()
    };
    model.generate(PROMPT, None, &greedy(2))?;

    let mut prompt_times = Vec::new();
    let mut prompt_tokens = 0;
    for _ in 0..options.runs {
        let started = Instant::now();
        let generated = model.generate(PROMPT, None, &greedy(1))?;
        prompt_times.push(started.elapsed().as_secs_f64());
        prompt_tokens = generated.prompt_tokens;
    }
    let prompt_s = median(prompt_times);

    let mut full_times = Vec::new();
    let mut generated = None;
    for _ in 0..options.runs {
        let started = Instant::now();
        let output = model.generate(PROMPT, None, &greedy(options.tokens))?;
        full_times.push(started.elapsed().as_secs_f64());
        generated = Some(output);
    }
    let generated = generated.expect("at least one run");
    let full_s = median(full_times);
    let decode_tokens = generated.generated_tokens.saturating_sub(1);
    let decode_s = full_s - prompt_s;

    // Embeddings: one sentence at a time, then batches of 32.
    let sentences = match &options.sentences {
        Some((path, column)) => read_sentences(path, column)?,
        None => fixed_sentences(),
    };
    if sentences.len() < BATCH {
        bail!("need at least {BATCH} sentences, found {}", sentences.len());
    }
    let texts: Vec<&str> = sentences.iter().map(String::as_str).collect();
    let started = Instant::now();
    let embedder = MiniLm::load(&embedding_dir)?;
    let embed_load_s = started.elapsed().as_secs_f64();
    embedder.embed(&texts[..BATCH])?;

    let started = Instant::now();
    for text in &texts {
        embedder.embed(&[text])?;
    }
    let sentence_ms = started.elapsed().as_secs_f64() * 1e3 / texts.len() as f64;
    let mut batch_times = Vec::new();
    for _ in 0..options.runs.max(3) {
        let started = Instant::now();
        embedder.embed(&texts[..BATCH])?;
        batch_times.push(started.elapsed().as_secs_f64() * 1e3);
    }
    let batch_ms = median(batch_times);
    let sample = embedder.embed(&texts[..4])?;

    if options.json {
        let report = serde_json::json!({
            "threads": candle_core::utils::get_num_threads(),
            "load_s": load_s,
            "prompt": PROMPT,
            "prompt_tokens": prompt_tokens,
            "prompt_s": prompt_s,
            "generated_tokens": generated.generated_tokens,
            "decode_tokens": decode_tokens,
            "decode_s": decode_s,
            "text": generated.text,
            "embed_load_s": embed_load_s,
            "sentences": sentences,
            "sentence_ms": sentence_ms,
            "batch": BATCH,
            "batch_ms": batch_ms,
            "sample_embeddings": sample,
        });
        println!("{report}");
        return Ok(());
    }
    println!("candle, {} threads", candle_core::utils::get_num_threads());
    println!("| measure | value |");
    println!("|---|---:|");
    println!("| SmolLM2 load | {:.2} s |", load_s);
    println!("| prompt ({prompt_tokens} tokens) | {:.0} tokens/s |", prompt_tokens as f64 / prompt_s);
    println!("| generation ({decode_tokens} tokens) | {:.1} tokens/s |", decode_tokens as f64 / decode_s);
    println!("| MiniLM load | {:.2} s |", embed_load_s);
    println!("| MiniLM, one sentence | {:.1} ms |", sentence_ms);
    println!("| MiniLM, batch of {BATCH} | {:.0} ms |", batch_ms);
    println!();
    println!("generated: {:?}", generated.text);
    Ok(())
}
