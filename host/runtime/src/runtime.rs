//! Loading an application and running one request in a fresh instance.

use crate::bindings::SpinHost;
use crate::config::{RuntimeConfig, SandboxLimits};
use crate::engine::{CacheOutcome, CompileCache, build_engine};
use crate::gateway::{Gateway, GatewayConfig};
use crate::kv::KeyValueStores;
use crate::llm::LlmRouter;
use crate::metrics::Metrics;
use crate::outbound::{OutboundHooks, collect_limited};
use crate::services::{HostInfoService, ServiceRegistry, ServiceRequest};
use crate::state::{ComponentSettings, HostState, MemoryLimiter};
use crate::variables::AppVariables;
use copycar_manifest::{AllowedHost, AllowedHosts, App, RouteMatch, Router};
use http_body_util::BodyExt;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use wasmtime::component::{HasSelf, Linker, ResourceTable};
use wasmtime::{Engine, Store, Trap, UpdateDeadline};
use wasmtime_wasi::WasiCtx;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::{Error as HttpError, WasiBody, WasiHttpCtx, WasiHttpView};

/// Settings for `Runtime::load` besides the manifest.
pub struct RuntimeOptions {
    /// Root of everything the host writes: key-value files, compile cache.
    pub data_dir: PathBuf,
    /// `--variable NAME=VALUE` pairs, in order.
    pub variables: Vec<(String, String)>,
    pub runtime_config: RuntimeConfig,
    pub limits: SandboxLimits,
    /// Extra `*.copycar.internal` services besides the built-in `host`.
    pub services: ServiceRegistry,
    /// Serves `fermyon:spin/llm`; without it every model is unsupported.
    pub llm: Option<Arc<LlmRouter>>,
}

/// Per-request facts that travel with nested component calls.
#[derive(Clone, Debug)]
pub struct CallContext {
    pub request_id: Arc<str>,
    pub client_addr: SocketAddr,
    pub depth: u8,
    pub deadline: Instant,
    /// The tenant of the verified caller, when the gateway identified one.
    pub tenant: Option<Arc<str>>,
}

impl CallContext {
    pub(crate) fn nested(&self) -> Self {
        CallContext {
            depth: self.depth + 1,
            ..self.clone()
        }
    }
}

/// A failure to get a response from a component.
#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    #[error("no component `{0}`")]
    UnknownComponent(String),
    #[error("component `{component}` exceeded its deadline of {timeout:?}")]
    Timeout {
        component: String,
        timeout: Duration,
    },
    #[error("component `{component}` exceeded its memory limit of {limit_mb} MiB")]
    MemoryLimit { component: String, limit_mb: u64 },
    #[error("component `{component}` trapped: {message}")]
    Trap { component: String, message: String },
    #[error("component `{component}` could not be instantiated: {message}")]
    Instantiate { component: String, message: String },
    #[error("component `{component}` returned an error code: {message}")]
    ErrorCode { component: String, message: String },
    #[error("component `{component}` finished without sending a response")]
    NoResponse { component: String },
}

impl InvokeError {
    /// Returns the HTTP status and the message shown to the client. Internal
    /// details stay in the logs.
    pub fn client_view(&self) -> (http::StatusCode, String) {
        use http::StatusCode as S;
        match self {
            InvokeError::UnknownComponent(_) => (S::NOT_FOUND, "not found".into()),
            InvokeError::Timeout { timeout, .. } => (
                S::GATEWAY_TIMEOUT,
                format!(
                    "the request did not complete within {} ms",
                    timeout.as_millis()
                ),
            ),
            InvokeError::MemoryLimit { limit_mb, .. } => (
                S::INTERNAL_SERVER_ERROR,
                format!("the component exceeded its memory limit of {limit_mb} MiB"),
            ),
            InvokeError::Trap { .. } => (
                S::INTERNAL_SERVER_ERROR,
                "the component failed while handling the request".into(),
            ),
            InvokeError::Instantiate { .. } => (
                S::SERVICE_UNAVAILABLE,
                "the component could not be started".into(),
            ),
            InvokeError::ErrorCode { .. } | InvokeError::NoResponse { .. } => (
                S::INTERNAL_SERVER_ERROR,
                "the component did not produce a response".into(),
            ),
        }
    }

    fn metric_kind(&self) -> &'static str {
        match self {
            InvokeError::UnknownComponent(_) => "unknown",
            InvokeError::Timeout { .. } => "timeout",
            InvokeError::MemoryLimit { .. } => "memory",
            InvokeError::Trap { .. } => "trap",
            InvokeError::Instantiate { .. } => "instantiate",
            InvokeError::ErrorCode { .. } | InvokeError::NoResponse { .. } => "no_response",
        }
    }
}

struct LoadedComponent {
    settings: Arc<ComponentSettings>,
    pre: ProxyPre<HostState>,
}

/// A loaded application, ready to serve.
pub struct Runtime {
    engine: Engine,
    app: App,
    router: Router,
    components: HashMap<String, LoadedComponent>,
    kv: KeyValueStores,
    services: ServiceRegistry,
    llm: Option<Arc<LlmRouter>>,
    limits: SandboxLimits,
    /// Slots for requests from clients.
    permits: Arc<Semaphore>,
    /// Slots for nested calls between components, so a chain of calls can
    /// always make progress while client requests hold every top slot.
    nested_permits: Arc<Semaphore>,
    metrics: Metrics,
    gateway: Gateway,
}

impl Runtime {
    /// Resolves variables, opens key-value stores, compiles (or loads from
    /// the cache) and links every component, and pre-instantiates it.
    pub async fn load(app: App, options: RuntimeOptions) -> anyhow::Result<Arc<Runtime>> {
        let RuntimeOptions {
            data_dir,
            variables,
            runtime_config,
            limits,
            mut services,
            llm,
        } = options;
        std::fs::create_dir_all(&data_dir).map_err(|e| {
            anyhow::anyhow!(
                "failed to create data directory {}: {e}",
                data_dir.display()
            )
        })?;

        let variables = AppVariables::resolve(&app, &variables, |name| std::env::var(name).ok())?;
        for (name, source) in variables.sources() {
            tracing::debug!(variable = name, ?source, "resolved variable");
        }
        let router = app.router()?;
        // The host serves these paths itself, so no component route may
        // claim them, exactly, with a trailing slash, or as a wildcard.
        for (route, component) in router.routes() {
            let claimed = route.trim_end_matches("/...").trim_end_matches('/');
            if ["/metrics", "/ready"].contains(&claimed) {
                anyhow::bail!(
                    "invalid manifest {}: route `{route}` of component `{component}` is reserved for the copycar host (`/metrics` and `/ready`)",
                    app.manifest_path().display()
                );
            }
        }

        let gateway_config = GatewayConfig::from_app(&app)?;
        let signing_key = match variables.get(&gateway_config.signing_key_variable) {
            Some(value) => Some(copycar_identity::SigningKey::new(value.expose()).map_err(
                |e| anyhow::anyhow!("variable `{}`: {e}", gateway_config.signing_key_variable),
            )?),
            None => None,
        };
        let gateway = Gateway::new(gateway_config, signing_key);

        let kv = KeyValueStores::open(&runtime_config.key_value_store, &data_dir).await?;
        // Nested calls (`*.spin.internal`, `self`) need instances beyond the
        // top-level limit, so the pool has headroom over the semaphore.
        let pool_limits = SandboxLimits {
            max_instances: limits.max_instances.saturating_mul(2),
            ..limits
        };
        let engine = build_engine(&pool_limits)?;
        let cache = Arc::new(CompileCache::new(
            &engine,
            data_dir.join("cache").join("components"),
        ));
        let metrics = Metrics::default();

        let mut linker = Linker::<HostState>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
        SpinHost::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |state| state)?;

        let mut components = HashMap::new();
        for component in app.components().values() {
            let id = component.id.as_str();
            for label in &component.key_value_stores {
                if !kv.contains(label) {
                    anyhow::bail!(
                        "component `{id}` uses key-value store `{label}`, which is not defined; add [key_value_store.{label}] to the runtime config file"
                    );
                }
            }
            for model in &component.ai_models {
                if !llm.as_ref().is_some_and(|router| router.has_model(model)) {
                    tracing::warn!(
                        component = id,
                        model = %model,
                        "ai_models lists a model that [llm.models] does not define; calls to it fail with model-not-supported"
                    );
                }
            }
            let settings = component_settings(component, &variables)?;

            let started = Instant::now();
            // Compiling takes hundreds of milliseconds of CPU per component.
            let (compiled, outcome) = {
                let (engine, cache, path, id) = (
                    engine.clone(),
                    cache.clone(),
                    component.source.clone(),
                    id.to_string(),
                );
                tokio::task::spawn_blocking(move || cache.load(&engine, &id, &path)).await??
            };
            metrics.compile_cache(match outcome {
                CacheOutcome::Hit => "hit",
                CacheOutcome::Miss => "miss",
            });
            let instance_pre = linker
                .instantiate_pre(&compiled)
                .map_err(|e| anyhow::anyhow!("component `{id}`: failed to link: {e:#}"))?;
            let pre = ProxyPre::new(instance_pre).map_err(|e| {
                anyhow::anyhow!("component `{id}`: not a WASI HTTP component (it must export wasi:http/incoming-handler@0.2.x): {e:#}")
            })?;
            tracing::info!(
                component = id,
                source = %component.source.display(),
                cache = ?outcome,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "loaded component"
            );
            components.insert(
                id.to_string(),
                LoadedComponent {
                    settings: Arc::new(settings),
                    pre,
                },
            );
        }

        services.register("locks", crate::locks::LocksService::default());
        services.register(
            "host",
            HostInfoService {
                app_name: app.name().to_string(),
                app_version: app.version().map(str::to_string),
                components: app.components().keys().cloned().collect(),
            },
        );

        Ok(Arc::new(Runtime {
            engine,
            router,
            components,
            kv,
            services,
            llm,
            permits: Arc::new(Semaphore::new(limits.max_instances as usize)),
            nested_permits: Arc::new(Semaphore::new(limits.max_instances as usize)),
            limits,
            metrics,
            gateway,
            app,
        }))
    }

    pub fn app(&self) -> &App {
        &self.app
    }
    pub fn router(&self) -> &Router {
        &self.router
    }
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }
    pub fn limits(&self) -> &SandboxLimits {
        &self.limits
    }
    pub fn services(&self) -> &ServiceRegistry {
        &self.services
    }
    pub fn llm(&self) -> Option<&Arc<LlmRouter>> {
        self.llm.as_ref()
    }
    pub(crate) fn gateway(&self) -> &Gateway {
        &self.gateway
    }
    pub(crate) fn key_value(&self) -> &KeyValueStores {
        &self.kv
    }

    /// Returns whether the component may call language models, so the
    /// server identifies its callers for usage accounting.
    pub(crate) fn uses_llm(&self, component: &str) -> bool {
        self.components
            .get(component)
            .is_some_and(|c| !c.settings.ai_models.is_empty())
    }

    /// Runs `request` in a fresh instance of `component_id`.
    ///
    /// The instance lives in its own task until the response body is
    /// complete, under the request's deadline and the memory cap. Top-level
    /// requests (depth 0) wait for one of `max_instances` slots.
    pub async fn invoke<B>(
        self: &Arc<Self>,
        component_id: &str,
        request: http::Request<B>,
        call: CallContext,
    ) -> Result<http::Response<WasiBody>, InvokeError>
    where
        B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
        B::Error: Into<HttpError>,
    {
        let component = self
            .components
            .get(component_id)
            .ok_or_else(|| InvokeError::UnknownComponent(component_id.to_string()))?;
        let id = component_id.to_string();
        let timeout = self.limits.request_timeout;
        let deadline = call.deadline.min(Instant::now() + timeout);
        let timed_out = || InvokeError::Timeout {
            component: id.clone(),
            timeout,
        };

        // The pool has room for twice `max_instances`: one half for client
        // requests, one for nested calls. Both wait for a slot until the
        // deadline instead of failing.
        let slots = if call.depth == 0 {
            &self.permits
        } else {
            &self.nested_permits
        };
        let permit =
            match tokio::time::timeout_at(deadline.into(), slots.clone().acquire_owned()).await {
                Ok(permit) => permit.expect("the semaphore is never closed"),
                Err(_) => return Err(timed_out()),
            };

        let mut wasi = WasiCtx::builder();
        wasi.inherit_stdout().inherit_stderr();
        for (key, value) in &component.settings.environment {
            wasi.env(key, value);
        }
        let state = HostState {
            wasi: wasi.build(),
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            hooks: OutboundHooks {
                runtime: self.clone(),
                component: component.settings.clone(),
                call: CallContext {
                    deadline,
                    ..call.clone()
                },
            },
            component: component.settings.clone(),
            kv: self.kv.clone(),
            open_stores: 0,
            llm: self.llm.clone(),
            limiter: MemoryLimiter {
                limit: self.limits.memory_limit as usize,
                exceeded: false,
            },
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|state| &mut state.limiter);
        // Check the deadline on every epoch tick; between checks the guest
        // yields to the executor so a busy loop cannot starve other requests.
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            if Instant::now() >= deadline {
                Err(Trap::Interrupt.into())
            } else {
                Ok(UpdateDeadline::Yield(1))
            }
        });

        let (sender, receiver) = tokio::sync::oneshot::channel();
        let (incoming, outparam) = {
            let mut http = store.data_mut().http();
            let incoming = http
                .new_incoming_request(Scheme::Http, request)
                .map_err(|e| InvokeError::Instantiate {
                    component: id.clone(),
                    message: format!("{e:#}"),
                })?;
            let outparam =
                http.new_response_outparam(sender)
                    .map_err(|e| InvokeError::Instantiate {
                        component: id.clone(),
                        message: format!("{e:#}"),
                    })?;
            (incoming, outparam)
        };

        let pre = component.pre.clone();
        let runtime = self.clone();
        let task_id = id.clone();
        let task = tokio::spawn(async move {
            let _permit = permit;
            runtime.metrics.instance_started();
            let run = async {
                let started = Instant::now();
                let proxy = pre
                    .instantiate_async(&mut store)
                    .await
                    .map_err(|e| InstanceEnd::Instantiate(format!("{e:#}")))?;
                runtime.metrics.instantiated(started.elapsed());
                proxy
                    .wasi_http_incoming_handler()
                    .call_handle(&mut store, incoming, outparam)
                    .await
                    .map_err(|e| {
                        if store.data().limiter.exceeded {
                            InstanceEnd::Memory
                        } else if matches!(e.downcast_ref::<Trap>(), Some(Trap::Interrupt)) {
                            InstanceEnd::Timeout
                        } else {
                            // The wasm backtrace is long; it goes to the
                            // debug log, the error log gets the message.
                            tracing::debug!(component = %task_id, error = ?e, "trap details");
                            InstanceEnd::Trap(format!("{e:#}"))
                        }
                    })
            };
            let result = match tokio::time::timeout_at(deadline.into(), run).await {
                Ok(result) => result,
                Err(_) => Err(InstanceEnd::Timeout),
            };
            runtime.metrics.instance_finished();
            if let Err(end) = &result {
                tracing::debug!(component = %task_id, ?end, "instance ended with an error");
            }
            result
        });

        // If the caller goes away before the response head (a client that
        // disconnects), stop the instance instead of letting it run to the
        // deadline.
        let mut abort_guard = AbortOnDrop(Some(task.abort_handle()));

        let failure = |end: InstanceEnd| match end {
            InstanceEnd::Timeout => timed_out(),
            InstanceEnd::Memory => InvokeError::MemoryLimit {
                component: id.clone(),
                limit_mb: self.limits.memory_limit >> 20,
            },
            InstanceEnd::Trap(message) => InvokeError::Trap {
                component: id.clone(),
                message,
            },
            InstanceEnd::Instantiate(message) => InvokeError::Instantiate {
                component: id.clone(),
                message,
            },
        };
        let outcome = match receiver.await {
            Ok(Ok(response)) => {
                // The instance keeps running to stream the body.
                abort_guard.0 = None;
                return Ok(response);
            }
            Ok(Err(code)) => Err(InvokeError::ErrorCode {
                component: id.clone(),
                message: format!("{code:?}"),
            }),
            // The instance ended without setting a response, so its task's
            // result explains why.
            Err(_) => match task.await {
                Ok(Ok(())) => Err(InvokeError::NoResponse {
                    component: id.clone(),
                }),
                Ok(Err(end)) => Err(failure(end)),
                Err(join) => Err(InvokeError::Trap {
                    component: id.clone(),
                    message: join.to_string(),
                }),
            },
        };
        if let Err(e) = &outcome {
            self.metrics.failure(component_id, e.metric_kind());
        }
        outcome
    }

    /// Serves `http://<name>.copycar.internal/…` for a component.
    pub(crate) async fn call_service(
        &self,
        name: &str,
        caller: &str,
        call: &CallContext,
        request: http::Request<WasiBody>,
    ) -> Result<http::Response<WasiBody>, HttpError> {
        let Some(service) = self.services.get(name) else {
            tracing::warn!(component = caller, request_id = %call.request_id, service = name, "no internal service with this name");
            return Err(HttpError::DestinationNotFound);
        };
        let (parts, body) = request.into_parts();
        let body = collect_limited(body, self.limits.max_request_body).await?;
        let response = service
            .handle(ServiceRequest {
                caller: caller.to_string(),
                request_id: call.request_id.to_string(),
                deadline: call.deadline,
                request: http::Request::from_parts(parts, body),
            })
            .await;
        Ok(response.map(|b| {
            http_body_util::Full::new(b)
                .map_err(|never| match never {})
                .boxed_unsync()
        }))
    }

    /// Serves `http://<id>.spin.internal/…`: a direct call to a component,
    /// private or not, with the whole path as `spin-path-info`.
    pub(crate) async fn call_component(
        self: &Arc<Self>,
        id: &str,
        request: http::Request<WasiBody>,
        call: CallContext,
    ) -> Result<http::Response<WasiBody>, HttpError> {
        if !self.components.contains_key(id) {
            return Err(HttpError::DestinationNotFound);
        }
        let path = request.uri().path().to_string();
        let route = RouteMatch {
            component: id.to_string(),
            matched_route: "/...".into(),
            component_route: String::new(),
            path_info: path,
        };
        Ok(self.invoke_routed(request, &route, call).await)
    }

    /// Serves `http://self/…`: the request goes through the public routes.
    pub(crate) async fn call_self(
        self: &Arc<Self>,
        request: http::Request<WasiBody>,
        call: CallContext,
    ) -> Result<http::Response<WasiBody>, HttpError> {
        let Some(route) = self.router.route(request.uri().path()) else {
            return Err(HttpError::DestinationNotFound);
        };
        Ok(self.invoke_routed(request, &route, call).await)
    }

    /// Adds Spin's routing headers and invokes; failures become JSON error
    /// responses carrying the request id.
    pub async fn invoke_routed<B>(
        self: &Arc<Self>,
        mut request: http::Request<B>,
        route: &RouteMatch,
        call: CallContext,
    ) -> http::Response<WasiBody>
    where
        B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
        B::Error: Into<HttpError>,
    {
        crate::server::set_spin_headers(&mut request, route, self.app.base(), call.client_addr);
        // Nested calls carry the original request id, so one id follows a
        // request through every component it reaches.
        if let Ok(value) = http::HeaderValue::from_str(&call.request_id) {
            request.headers_mut().insert("x-request-id", value);
        }
        let request_id = call.request_id.clone();
        match self.invoke(&route.component, request, call).await {
            Ok(response) => response,
            Err(e) => {
                tracing::error!(component = %route.component, request_id = %request_id, error = %e, "request failed");
                let (status, message) = e.client_view();
                crate::server::error_response(status, &message, &request_id)
            }
        }
    }
}

/// Aborts a task when dropped, unless disarmed by taking the handle.
struct AbortOnDrop(Option<tokio::task::AbortHandle>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(handle) = self.0.take() {
            handle.abort();
        }
    }
}

/// The reason an instance's task ended without completing cleanly.
#[derive(Debug)]
enum InstanceEnd {
    Timeout,
    Memory,
    Trap(String),
    Instantiate(String),
}

fn component_settings(
    component: &copycar_manifest::Component,
    variables: &AppVariables,
) -> anyhow::Result<ComponentSettings> {
    let mut allowed = Vec::new();
    for template in &component.allowed_outbound_hosts {
        let rendered = variables.render(template).map_err(|name| {
            anyhow::anyhow!(
                "component `{}`: allowed_outbound_hosts entry `{template}` uses `{name}`, which has no value",
                component.id
            )
        })?;
        let host = AllowedHost::parse(&rendered).map_err(|e| {
            anyhow::anyhow!(
                "component `{}`: invalid allowed_outbound_hosts entry: {e}",
                component.id
            )
        })?;
        allowed.push(host);
    }
    Ok(ComponentSettings {
        id: component.id.clone(),
        key_value_stores: component.key_value_stores.clone(),
        ai_models: component.ai_models.clone(),
        variables: variables.render_component(component)?,
        environment: component
            .environment
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        allowed_hosts: AllowedHosts::new(allowed),
    })
}
