//! Per-request store state and the per-component settings it is built from.

use crate::kv::KeyValueStores;
use crate::llm::LlmRouter;
use crate::outbound::OutboundHooks;
use crate::variables::VariableValue;
use copycar_manifest::AllowedHosts;
use std::collections::HashMap;
use std::sync::Arc;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

/// A component's resolved settings, shared by all of its instances.
#[derive(Debug)]
pub(crate) struct ComponentSettings {
    pub id: String,
    pub key_value_stores: Vec<String>,
    /// Model aliases the component may call through `fermyon:spin/llm`.
    pub ai_models: Vec<String>,
    pub variables: HashMap<String, VariableValue>,
    pub environment: Vec<(String, String)>,
    pub allowed_hosts: AllowedHosts,
}

/// Enforces the per-instance memory cap and records when it was hit, so
/// the failure can be reported as such instead of as a bare trap.
pub(crate) struct MemoryLimiter {
    pub limit: usize,
    pub exceeded: bool,
}

impl wasmtime::ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.limit {
            self.exceeded = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn memory_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        self.exceeded = true;
        Ok(())
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }
}

/// The `T` of every `Store<T>`: one per request.
pub(crate) struct HostState {
    pub wasi: WasiCtx,
    pub http: WasiHttpCtx,
    pub table: ResourceTable,
    pub hooks: OutboundHooks,
    pub component: Arc<ComponentSettings>,
    pub kv: KeyValueStores,
    pub open_stores: usize,
    pub llm: Option<Arc<LlmRouter>>,
    pub limiter: MemoryLimiter,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for HostState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}
