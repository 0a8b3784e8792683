//! `copycar outreach`: the main job from a CSV of companies. It starts the
//! application on a loopback port, researches each company through
//! `/api/v1/accounts` (the CSV's columns become known facts), writes one
//! piece of copy each through `/api/v1/content`, and saves the results as
//! JSON lines with a summary table.
//!
//! Everything goes through the same HTTP API a client uses, so the job
//! exercises the gateway, the components and the data plane as they run
//! in production.

use anyhow::{Context, bail};
use clap::Args;
use futures_util::StreamExt;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Args)]
pub(crate) struct OutreachArgs {
    /// CSV of companies with `name` and `domain` columns; `blurb`,
    /// `technologies`, `office_locations`, `remote_policy`,
    /// `company_size`, `size_text` and `region` become known facts.
    #[arg(long)]
    accounts: PathBuf,
    /// Companies to take from the file (after `--skip`).
    #[arg(long, default_value_t = 25)]
    limit: usize,
    /// Companies to skip at the start of the file.
    #[arg(long, default_value_t = 0)]
    skip: usize,
    /// Accounts in flight at once. A local model serves one call at a
    /// time, so more than two only adds waiting; raise it for templates or
    /// a remote provider.
    #[arg(long, default_value_t = 2)]
    concurrency: usize,
    /// Content type written for each account.
    #[arg(long, default_value = "email")]
    content_type: String,
    /// Results as JSON lines [default: outreach.jsonl in the data directory].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Sender named in the copy.
    #[arg(long, default_value = "Alex Morgan")]
    sender_name: String,
    #[arg(long, default_value = "CopyCar")]
    sender_company: String,
    /// Manifest file, or a directory containing spin.toml.
    #[arg(short = 'f', long = "from", default_value = "spin.toml")]
    from: PathBuf,
    /// Data directory of the application [default: .copycar beside the
    /// manifest]. The job's tenant and its cached profiles live here, so a
    /// second run reuses them.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Runtime configuration file (language-model providers and more).
    #[arg(long)]
    runtime_config_file: Option<PathBuf>,
    /// Re-research accounts even when a cached profile is fresh.
    #[arg(long)]
    refresh: bool,
    /// Run the components' build commands before starting.
    #[arg(long)]
    build: bool,
    /// Model directory of the application [default: models/registry beside
    /// the manifest]. The local language models live in its `llm` folder.
    #[arg(long)]
    models_dir: Option<PathBuf>,
    /// Do not install the local language models when they are missing.
    /// Without them, rules and templates write the profiles and the copy.
    #[arg(long)]
    skip_fetch: bool,
}

/// One company from the CSV.
struct Company {
    name: String,
    domain: String,
    facts: Vec<Value>,
}

/// Outcome of one company: its result line and timing.
struct Outcome {
    line: Value,
    elapsed: Duration,
    ok: bool,
}

pub(crate) fn run(args: OutreachArgs) -> anyhow::Result<()> {
    if !(1..=16).contains(&args.concurrency) {
        bail!("--concurrency must be 1 to 16");
    }
    if args.limit == 0 {
        bail!("--limit must be at least 1");
    }
    let companies = read_companies(&args.accounts, args.skip, args.limit)?;
    if companies.is_empty() {
        bail!(
            "{} has no companies after skipping {}",
            args.accounts.display(),
            args.skip
        );
    }
    let manifest = crate::manifest_path(&args.from);
    let data_dir = args
        .data_dir
        .clone()
        .unwrap_or_else(|| manifest.parent().unwrap_or(Path::new(".")).join(".copycar"));
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("cannot create {}", data_dir.display()))?;
    let out_path = args
        .out
        .clone()
        .unwrap_or_else(|| data_dir.join("outreach.jsonl"));

    if args.build {
        let app = copycar_manifest::App::load(&manifest)?;
        crate::build::build_components(&app, &[])?;
    }
    let models_dir = args.models_dir.clone().unwrap_or_else(|| {
        manifest
            .parent()
            .unwrap_or(Path::new("."))
            .join("models/registry")
    });
    if !args.skip_fetch
        && let Err(e) = crate::models::fetch(&models_dir)
    {
        eprintln!("local language models are not available ({e:#}); templates and rules will write");
    }
    let host = AppProcess::start(
        &manifest,
        &data_dir,
        &models_dir,
        args.runtime_config_file.as_deref(),
    )?;
    eprintln!(
        "application running at {} (log: {})",
        host.base,
        host.log.display()
    );
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(job(&args, &host, &data_dir, &out_path, companies));
    drop(host);
    result
}

async fn job(
    args: &OutreachArgs,
    host: &AppProcess,
    data_dir: &Path,
    out_path: &Path,
    companies: Vec<Company>,
) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(900))
        .build()?;
    let api = Api {
        client,
        base: host.base.clone(),
        token: String::new(),
    };
    let token = sign_in(&api, data_dir).await?;
    let api = Api { token, ..api };

    let total = companies.len();
    eprintln!(
        "researching and writing for {total} companies, {} at a time",
        args.concurrency
    );
    let started = Instant::now();
    let mut out = std::io::BufWriter::new(
        std::fs::File::create(out_path)
            .with_context(|| format!("cannot write {}", out_path.display()))?,
    );
    let mut outcomes = Vec::with_capacity(total);
    let mut stream = futures_util::stream::iter(companies)
        .map(|company| process(&api, args, company))
        .buffer_unordered(args.concurrency);
    while let Some(outcome) = stream.next().await {
        writeln!(out, "{}", outcome.line)?;
        let done = outcomes.len() + 1;
        let line = &outcome.line;
        if outcome.ok {
            eprintln!(
                "[{done}/{total}] {} · research {} · {} · score {:.2} · {} ms",
                line["domain"].as_str().unwrap_or(""),
                line["research"].as_str().unwrap_or(""),
                line["engine"].as_str().unwrap_or(""),
                line["quality"]["score"].as_f64().unwrap_or(0.0),
                outcome.elapsed.as_millis()
            );
        } else {
            eprintln!(
                "[{done}/{total}] {} failed: {}",
                line["domain"].as_str().unwrap_or(""),
                line["error"].as_str().unwrap_or("")
            );
        }
        outcomes.push(outcome);
    }
    out.flush()?;
    let wall = started.elapsed();
    print_summary(&outcomes, wall);
    println!("results: {}", out_path.display());
    Ok(())
}

/// Researches one company and writes its copy.
async fn process(api: &Api, args: &OutreachArgs, company: Company) -> Outcome {
    let started = Instant::now();
    let fail = |stage: &str, error: String, started: Instant| Outcome {
        line: json!({"domain": company.domain, "name": company.name, "stage": stage, "error": error}),
        elapsed: started.elapsed(),
        ok: false,
    };
    let research = json!({
        "domain": company.domain,
        "name": company.name,
        "facts": company.facts,
        "refresh": args.refresh,
    });
    let (status, reply) = match api.post("/api/v1/accounts", &research).await {
        Ok(r) => r,
        Err(e) => return fail("research", format!("{e:#}"), started),
    };
    if status != 200 {
        return fail("research", format!("{status}: {}", reply["error"]), started);
    }
    let profile = &reply["profile"];
    let research_ms = started.elapsed().as_millis() as u64;
    let Some(account_id) = profile["id"].as_str() else {
        return fail("research", format!("no profile id in {reply}"), started);
    };

    let request = json!({
        "content_type": args.content_type,
        "account_id": account_id,
        "parameters": {
            "sender": {"name": args.sender_name, "company": args.sender_company},
        },
    });
    let (status, content) = match api.post("/api/v1/content", &request).await {
        Ok(r) => r,
        Err(e) => return fail("write", format!("{e:#}"), started),
    };
    if status != 200 {
        return fail("write", format!("{status}: {}", content["error"]), started);
    }
    Outcome {
        line: json!({
            "domain": profile["domain"],
            "name": profile["name"],
            "research": profile["research"],
            "research_note": profile["research_note"],
            "profile_engine": profile["engine"],
            "industry": profile["industry"],
            "cached": reply["cached"],
            "engine": content["engine"],
            "model": content["model"],
            "content": content["content"],
            "quality": content["quality"],
            "facts_used": content["facts_used"],
            "research_ms": research_ms,
            "total_ms": started.elapsed().as_millis() as u64,
        }),
        elapsed: started.elapsed(),
        ok: true,
    }
}

fn print_summary(outcomes: &[Outcome], wall: Duration) {
    let ok: Vec<&Outcome> = outcomes.iter().filter(|o| o.ok).collect();
    let count = |key: &str, value: &str| ok.iter().filter(|o| o.line[key] == value).count();
    let scores: Vec<f64> = ok
        .iter()
        .filter_map(|o| o.line["quality"]["score"].as_f64())
        .collect();
    let passing = scores.iter().filter(|s| **s >= 0.8).count();
    let regenerations: u64 = ok
        .iter()
        .filter_map(|o| o.line["quality"]["regenerations"].as_u64())
        .sum();
    let mut latencies: Vec<u128> = ok.iter().map(|o| o.elapsed.as_millis()).collect();
    latencies.sort_unstable();
    let percentile = |p: f64| -> u128 {
        if latencies.is_empty() {
            return 0;
        }
        let rank = ((p * latencies.len() as f64).ceil() as usize).clamp(1, latencies.len());
        latencies[rank - 1]
    };
    let mut engines: Vec<String> = ok
        .iter()
        .map(|o| {
            format!(
                "{}{}",
                o.line["engine"].as_str().unwrap_or("?"),
                o.line["model"]
                    .as_str()
                    .map(|m| format!(" ({m})"))
                    .unwrap_or_default()
            )
        })
        .collect();
    engines.sort();
    engines.dedup();

    println!();
    println!("| measure | value |");
    println!("|---|---|");
    println!("| companies | {} |", outcomes.len());
    println!("| written | {} |", ok.len());
    println!("| failed | {} |", outcomes.len() - ok.len());
    println!(
        "| research: site read / known facts only | {} / {} |",
        count("research", "fetched"),
        count("research", "offline")
    );
    if !scores.is_empty() {
        let mean = scores.iter().sum::<f64>() / scores.len() as f64;
        let min = scores.iter().cloned().fold(f64::INFINITY, f64::min);
        println!("| quality score: mean / min | {mean:.3} / {min:.3} |");
        println!("| score at least 0.8 | {passing} of {} |", scores.len());
    }
    println!("| regenerations | {regenerations} |");
    println!("| engines | {} |", engines.join(", "));
    println!("| wall time | {:.1} s |", wall.as_secs_f64());
    println!(
        "| throughput | {:.2} accounts/s |",
        ok.len() as f64 / wall.as_secs_f64().max(1e-9)
    );
    println!(
        "| latency per account: p50 / p99 | {} ms / {} ms |",
        percentile(0.50),
        percentile(0.99)
    );
}

/// Reads up to `limit` companies after `skip`, turning the known columns
/// into facts. Rows without a usable domain are reported and skipped.
fn read_companies(path: &Path, skip: usize, limit: usize) -> anyhow::Result<Vec<Company>> {
    let mut reader =
        csv::Reader::from_path(path).with_context(|| format!("cannot read {}", path.display()))?;
    let headers = reader.headers()?.clone();
    let column = |name: &str| headers.iter().position(|h| h == name);
    let (Some(name_at), Some(domain_at)) = (column("name"), column("domain")) else {
        bail!("{} needs `name` and `domain` columns", path.display());
    };
    let fact_columns: Vec<(usize, &str)> = [
        ("blurb", "description"),
        ("technologies", "technology"),
        ("office_locations", "location"),
        ("remote_policy", "remote_policy"),
        ("company_size", "size_band"),
        ("size_text", "size_band"),
        ("region", "other"),
    ]
    .iter()
    .filter_map(|(col, kind)| column(col).map(|at| (at, *kind)))
    .collect();

    let mut companies = Vec::new();
    for (row, record) in reader.records().enumerate().skip(skip) {
        if companies.len() == limit {
            break;
        }
        let record = record.with_context(|| format!("{} row {}", path.display(), row + 2))?;
        let name = record.get(name_at).unwrap_or("").trim().to_string();
        let domain = record.get(domain_at).unwrap_or("").trim().to_string();
        if domain.is_empty() || name.is_empty() {
            eprintln!("skipping row {}: no name or domain", row + 2);
            continue;
        }
        let mut facts = Vec::new();
        for (at, kind) in &fact_columns {
            let value = record.get(*at).unwrap_or("").trim();
            if value.is_empty() {
                continue;
            }
            if *kind == "technology" {
                for tech in value.split(';').map(str::trim).filter(|t| !t.is_empty()) {
                    facts.push(json!({"kind": kind, "value": tech}));
                }
            } else if *kind == "other" {
                facts.push(json!({"kind": kind, "value": format!("Hires in the region: {value}")}));
            } else {
                let value: String = value.chars().take(1900).collect();
                facts.push(json!({"kind": kind, "value": value}));
            }
        }
        facts.truncate(50);
        companies.push(Company {
            name,
            domain,
            facts,
        });
    }
    Ok(companies)
}

struct Api {
    client: reqwest::Client,
    base: String,
    token: String,
}

impl Api {
    /// POSTs JSON, retrying 429 and 503 responses after their `Retry-After`
    /// (up to six times), so a rate limit delays the job but loses nothing.
    async fn post(&self, path: &str, body: &Value) -> anyhow::Result<(u16, Value)> {
        let mut attempt = 0;
        loop {
            let mut request = self.client.post(format!("{}{path}", self.base)).json(body);
            if !self.token.is_empty() {
                request = request.bearer_auth(&self.token);
            }
            let response = request
                .send()
                .await
                .with_context(|| format!("POST {path}"))?;
            let status = response.status().as_u16();
            let retry_after = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            let text = response.text().await?;
            if (status == 429 || status == 503) && attempt < 6 {
                attempt += 1;
                let wait = retry_after.unwrap_or(1).clamp(1, 60);
                tokio::time::sleep(Duration::from_secs(wait)).await;
                continue;
            }
            let value = serde_json::from_str(&text).unwrap_or(json!({"error": text}));
            return Ok((status, value));
        }
    }
}

/// Signs in as the job's own user, registering it on the first run. The
/// credentials are kept in the data directory, readable by the owner only.
async fn sign_in(api: &Api, data_dir: &Path) -> anyhow::Result<String> {
    let path = data_dir.join("outreach-user.json");
    if let Ok(text) = std::fs::read_to_string(&path) {
        let saved: Value = serde_json::from_str(&text).with_context(|| {
            format!(
                "{} is damaged; delete it to start a new tenant",
                path.display()
            )
        })?;
        let (status, reply) = api
            .post(
                "/api/v1/auth/login",
                &json!({"email": saved["email"], "password": saved["password"]}),
            )
            .await?;
        if status == 200 {
            return token_of(&reply);
        }
        bail!(
            "the saved job user in {} could not sign in ({status}: {}); delete the file to start a new tenant",
            path.display(),
            reply["error"]
        );
    }
    let mut secret = [0u8; 18];
    getrandom::fill(&mut secret).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    let password: String = secret.iter().map(|b| format!("{b:02x}")).collect();
    let email = "outreach-job@copycar.invalid";
    let (status, reply) = api
        .post(
            "/api/v1/auth/register",
            &json!({"email": email, "password": password, "organisation": "Outreach job"}),
        )
        .await?;
    if status != 201 {
        bail!(
            "registering the job user failed ({status}): {}",
            reply["error"]
        );
    }
    write_private(
        &path,
        &json!({"email": email, "password": password}).to_string(),
    )?;
    token_of(&reply)
}

fn token_of(reply: &Value) -> anyhow::Result<String> {
    reply["access_token"]
        .as_str()
        .map(String::from)
        .ok_or_else(|| anyhow::anyhow!("no access token in {reply}"))
}

fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(text.as_bytes())?;
    Ok(())
}

/// `copycar up` in a child process on a free loopback port, stopped on drop.
struct AppProcess {
    child: Child,
    base: String,
    log: PathBuf,
}

impl AppProcess {
    fn start(
        manifest: &Path,
        data_dir: &Path,
        models_dir: &Path,
        runtime_config: Option<&Path>,
    ) -> anyhow::Result<Self> {
        let log = data_dir.join("outreach-host.log");
        let log_file = std::fs::File::create(&log)
            .with_context(|| format!("cannot write {}", log.display()))?;
        let mut command = Command::new(std::env::current_exe()?);
        command
            .arg("up")
            .arg("--from")
            .arg(manifest)
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--models-dir")
            .arg(models_dir)
            // A local model writes a profile in seconds; a batch of them
            // needs more than the default request deadline.
            .arg("--request-timeout-ms")
            .arg("600000")
            .stdout(Stdio::piped())
            .stderr(log_file);
        if let Some(config) = runtime_config {
            command.arg("--runtime-config-file").arg(config);
        }
        if std::env::var_os("SPIN_VARIABLE_TOKEN_SIGNING_KEY").is_none() {
            // The key only signs this run's tokens; the saved job user signs
            // in again next time.
            let mut key = [0u8; 32];
            getrandom::fill(&mut key).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
            let key: String = key.iter().map(|b| format!("{b:02x}")).collect();
            command.env("SPIN_VARIABLE_TOKEN_SIGNING_KEY", key);
        }
        let mut child = command.spawn().context("cannot start copycar up")?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(line)) = lines.next() {
                let _ = tx.send(line);
            }
            for _ in lines {}
        });
        let line = match rx.recv_timeout(Duration::from_secs(300)) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                let tail = std::fs::read_to_string(&log).unwrap_or_default();
                let tail: Vec<&str> = tail.lines().rev().take(15).collect();
                bail!(
                    "the application did not start:\n{}",
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                );
            }
        };
        let addr = line
            .strip_prefix("Serving ")
            .ok_or_else(|| anyhow::anyhow!("unexpected first line from copycar up: {line}"))?;
        Ok(AppProcess {
            child,
            base: addr.trim_end_matches('/').to_string(),
            log,
        })
    }
}

impl Drop for AppProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
