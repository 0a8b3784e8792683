//! The wasmtime engine and the on-disk cache of compiled components.

use crate::config::SandboxLimits;
use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use wasmtime::component::Component;
use wasmtime::{
    Config, Enabled, Engine, InstanceAllocationStrategy, OptLevel, PoolingAllocationConfig,
};

/// How often the epoch advances. Deadlines are checked at this granularity.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Memory and table bytes per pool slot that are reset in place and kept
/// resident between instances. The spin-sdk components here start with a
/// heap of about 1 MiB, so 2 MiB covers a typical request (an estimate).
const KEEP_RESIDENT_BYTES: usize = 2 << 20;

/// Creates the engine: pooling allocator sized for `limits.max_instances`
/// concurrent instances, each memory capped at `limits.memory_limit`, and
/// epoch interruption for deadlines. Starts the thread that advances the
/// epoch.
pub(crate) fn build_engine(limits: &SandboxLimits) -> anyhow::Result<Engine> {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    config.cranelift_opt_level(OptLevel::Speed);

    let n = limits.max_instances;
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(n)
        .total_core_instances(n.saturating_mul(8))
        .total_memories(n.saturating_mul(2))
        .total_tables(n.saturating_mul(8))
        .total_stacks(n)
        .max_memory_size(limits.memory_limit as usize)
        // Reset the pages an instance dirtied with memset instead of
        // madvise, so the next instance in the slot takes no page faults.
        // PAGEMAP_SCAN (Linux 6.7+) finds the dirty pages; `Auto` falls back
        // to resetting the low addresses elsewhere.
        .linear_memory_keep_resident(KEEP_RESIDENT_BYTES)
        .table_keep_resident(KEEP_RESIDENT_BYTES)
        .pagemap_scan(Enabled::Auto);
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));

    let engine = Engine::new(&config).map_err(|e| {
        anyhow::anyhow!(
            "failed to create the instance pool for {n} instances: {e:#}; lower sandbox.max_instances (--max-instances)"
        )
    })?;
    let ticker = engine.weak();
    std::thread::Builder::new()
        .name("copycar-epoch".into())
        .spawn(move || {
            while let Some(engine) = ticker.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })?;
    Ok(engine)
}

/// Feeds a `Hash` value into SHA-256, so the engine's compatibility hash is
/// stable across processes.
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn finish(&self) -> u64 {
        unreachable!("only the digest is read")
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Largest component file accepted.
const MAX_COMPONENT_BYTES: u64 = 256 << 20;

/// Whether a component came from the cache or was compiled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    Hit,
    Miss,
}

/// Compiled components, stored under `dir` as `<wasm sha256>-<engine hash>.cwasm`.
pub(crate) struct CompileCache {
    dir: PathBuf,
    engine_key: String,
}

impl CompileCache {
    pub fn new(engine: &Engine, dir: PathBuf) -> Self {
        let mut hasher = Sha256Hasher(Sha256::new());
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let engine_key = hex(&hasher.0.finalize()[..8]);
        CompileCache { dir, engine_key }
    }

    /// Loads the component at `wasm_path`, from the cache when possible.
    pub fn load(
        &self,
        engine: &Engine,
        id: &str,
        wasm_path: &Path,
    ) -> anyhow::Result<(Component, CacheOutcome)> {
        let metadata = std::fs::metadata(wasm_path).map_err(|e| {
            anyhow::anyhow!(
                "component `{id}`: failed to read {}: {e} (build it with `copycar build`)",
                wasm_path.display()
            )
        })?;
        anyhow::ensure!(
            metadata.is_file(),
            "component `{id}`: {} is not a regular file",
            wasm_path.display()
        );
        anyhow::ensure!(
            metadata.len() <= MAX_COMPONENT_BYTES,
            "component `{id}`: {} is {} bytes, larger than the limit of {MAX_COMPONENT_BYTES}",
            wasm_path.display(),
            metadata.len()
        );
        let bytes = std::fs::read(wasm_path).map_err(|e| {
            anyhow::anyhow!(
                "component `{id}`: failed to read {}: {e} (build it with `copycar build`)",
                wasm_path.display()
            )
        })?;
        let digest = hex(&Sha256::digest(&bytes));
        let cached = self.dir.join(format!("{digest}-{}.cwasm", self.engine_key));

        if cached.exists() {
            // SAFETY: the file was written by `Component::serialize` of an
            // engine with the same compatibility hash (it is part of the
            // name), in a directory only this host writes to.
            match unsafe { Component::deserialize_file(engine, &cached) } {
                Ok(component) => return Ok((component, CacheOutcome::Hit)),
                Err(e) => {
                    tracing::warn!(component = id, path = %cached.display(), error = %e, "ignoring unreadable compile cache entry")
                }
            }
        }

        let started = Instant::now();
        let component = Component::new(engine, &bytes).map_err(|e| {
            anyhow::anyhow!(
                "component `{id}`: failed to compile {}: {e:#}",
                wasm_path.display()
            )
        })?;
        tracing::info!(
            component = id,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "compiled component"
        );
        if let Err(e) = self.store(&cached, &component) {
            tracing::warn!(component = id, path = %cached.display(), error = %e, "failed to write compile cache entry");
        }
        Ok((component, CacheOutcome::Miss))
    }

    fn store(&self, path: &Path, component: &Component) -> anyhow::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let bytes = component.serialize()?;
        // Write then rename, so a crash never leaves a truncated entry.
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(&tmp, path)?;
        Ok(())
    }
}
