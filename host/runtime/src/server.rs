//! The HTTP front end: accepts connections, serves the host's own
//! endpoints (`/metrics`, `/ready`), routes everything else to components
//! and stamps every response with its request id.

use crate::runtime::{CallContext, Runtime};
use bytes::Bytes;
use copycar_manifest::RouteMatch;
use http::{HeaderName, HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tracing::Instrument;
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::{Error as HttpError, WasiBody};

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// How long a shutdown waits for requests in flight.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Spin's routing headers. Clients may not set them: incoming copies are
/// removed before the host sets its own.
const SPIN_HEADERS: [&str; 7] = [
    "spin-full-url",
    "spin-path-info",
    "spin-matched-route",
    "spin-base-path",
    "spin-raw-component-route",
    "spin-component-route",
    "spin-client-addr",
];

/// Serves `runtime` on `listener` until `shutdown` resolves, then waits up
/// to ten seconds for requests in flight.
pub async fn serve(
    runtime: Arc<Runtime>,
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let local = listener.local_addr()?;
    let server = Arc::new(Server {
        runtime,
        local,
        ready: AtomicBool::new(true),
        in_flight: AtomicU64::new(0),
        next_id: AtomicU64::new(0),
        id_prefix: request_id_prefix(),
    });
    tokio::pin!(shutdown);
    loop {
        let (stream, client) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Typically EMFILE; back off instead of spinning.
                    tracing::warn!(error = %e, "failed to accept connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let server = server.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let server = server.clone();
                async move { Ok::<_, std::convert::Infallible>(server.handle(req, client).await) }
            });
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(Duration::from_secs(30))
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(client.address = %client, error = %e, "connection ended with an error");
            }
        });
    }

    server.ready.store(false, Ordering::SeqCst);
    tracing::info!("shutting down; waiting for requests in flight");
    let drain_started = Instant::now();
    while server.in_flight.load(Ordering::SeqCst) > 0 && drain_started.elapsed() < DRAIN_TIMEOUT {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

struct Server {
    runtime: Arc<Runtime>,
    local: SocketAddr,
    ready: AtomicBool,
    in_flight: AtomicU64,
    next_id: AtomicU64,
    id_prefix: String,
}

impl Server {
    async fn handle(&self, mut req: Request<Incoming>, client: SocketAddr) -> Response<WasiBody> {
        let started = Instant::now();
        let request_id = self.request_id(&req);
        let span = tracing::info_span!(
            "request",
            http.request.method = %req.method(),
            url.path = %req.uri().path(),
            client.address = %client.ip(),
            request_id = %request_id,
            component = tracing::field::Empty,
            http.response.status_code = tracing::field::Empty,
        );
        // Hyper drops this future when the client disconnects; the guard
        // still records the request then.
        let mut guard = InFlight::start(self, &span, &request_id, started);
        let (component, mut response) = async {
            for name in SPIN_HEADERS {
                req.headers_mut().remove(name);
            }
            req.headers_mut().insert(
                REQUEST_ID,
                HeaderValue::from_str(&request_id).expect("request ids are ASCII"),
            );
            self.dispatch(req, client, &request_id, &mut guard).await
        }
        .instrument(span.clone())
        .await;
        guard.finish();

        response.headers_mut().insert(
            REQUEST_ID,
            HeaderValue::from_str(&request_id).expect("request ids are ASCII"),
        );
        let status = response.status().as_u16();
        span.record("component", component.as_str());
        span.record("http.response.status_code", status);
        self.runtime
            .metrics()
            .request(&component, status, started.elapsed());
        span.in_scope(|| {
            tracing::debug!(
                elapsed_us = started.elapsed().as_micros() as u64,
                "request completed"
            );
        });
        response
    }

    /// Returns the component label for metrics and the response.
    async fn dispatch(
        &self,
        req: Request<Incoming>,
        client: SocketAddr,
        request_id: &str,
        guard: &mut InFlight<'_>,
    ) -> (String, Response<WasiBody>) {
        let path = req.uri().path().to_string();
        if let Err(message) = check_request(&req) {
            tracing::warn!(url.path = %path, reason = message, "rejected malformed request");
            return (
                "host".into(),
                error_response(StatusCode::BAD_REQUEST, message, request_id),
            );
        }
        if path == "/metrics" || path == "/ready" {
            if req.method() != http::Method::GET && req.method() != http::Method::HEAD {
                let mut response =
                    error_response(StatusCode::METHOD_NOT_ALLOWED, "use GET", request_id);
                response
                    .headers_mut()
                    .insert(http::header::ALLOW, HeaderValue::from_static("GET, HEAD"));
                return ("host".into(), response);
            }
            let response = if path == "/metrics" {
                self.metrics()
            } else {
                self.ready()
            };
            return ("host".into(), response);
        }
        let Some(route) = self.runtime.router().route(&path) else {
            let message = format!("no route matches {path}");
            return (
                "host".into(),
                error_response(StatusCode::NOT_FOUND, &message, request_id),
            );
        };
        let gateway = self.runtime.gateway();
        let origin = req
            .headers()
            .get(http::header::ORIGIN)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let allowed_origin = origin
            .as_deref()
            .and_then(|o| cors_allowed_origin(gateway.cors_origins(), o));
        let cors_configured = !gateway.cors_origins().is_empty();
        if req.method() == http::Method::OPTIONS
            && origin.is_some()
            && req
                .headers()
                .contains_key(http::header::ACCESS_CONTROL_REQUEST_METHOD)
        {
            return (
                route.component,
                preflight(allowed_origin.as_deref(), request_id),
            );
        }

        guard.component = Some(route.component.clone());
        let (component, mut response) = self.admit_and_invoke(req, client, request_id, route).await;
        if let Some(origin) = allowed_origin {
            add_cors_headers(response.headers_mut(), &origin);
        } else if cors_configured {
            // Caches must not reuse a response across origins either way.
            response
                .headers_mut()
                .insert(http::header::VARY, HeaderValue::from_static("origin"));
        }
        (component, response)
    }

    /// Applies the route's gateway policy, then invokes the component.
    async fn admit_and_invoke(
        &self,
        req: Request<Incoming>,
        client: SocketAddr,
        request_id: &str,
        route: RouteMatch,
    ) -> (String, Response<WasiBody>) {
        let gateway = self.runtime.gateway();
        let policy = gateway.policy(req.uri().path());
        let client_ip = client.ip().to_string();
        // The deadline runs from arrival, so time spent waiting for a slot
        // counts against it.
        let deadline = Instant::now() + self.runtime.limits().request_timeout;
        // The principal is needed for rate limits and, for components that
        // call language models, to account their usage to the tenant.
        let mut tenant = None;
        if policy.is_some() || self.runtime.uses_llm(&route.component) {
            let principal = gateway
                .principal(req.headers(), self.runtime.key_value(), unix_now())
                .await;
            tenant = principal.tenant().map(Arc::<str>::from);
            if let Some(policy) = policy
                && let Err(limited) = gateway.admit(policy, &client_ip, &principal)
            {
                tracing::warn!(component = %route.component, client.address = %client_ip, reason = limited.reason, "request rate-limited");
                let mut response =
                    error_response(StatusCode::TOO_MANY_REQUESTS, limited.reason, request_id);
                response.headers_mut().insert(
                    http::header::RETRY_AFTER,
                    HeaderValue::from(limited.retry_after_secs),
                );
                return (route.component, response);
            }
        }

        // Hold a slot of the route's concurrency limit until the response
        // head is ready; wait for one no longer than the request deadline.
        let _slot = match policy.and_then(|p| gateway.slots(p)) {
            Some(slots) => {
                match tokio::time::timeout_at(deadline.into(), slots.acquire_owned()).await {
                    Ok(permit) => Some(permit.expect("gateway semaphores are never closed")),
                    Err(_) => {
                        tracing::warn!(component = %route.component, "no free slot on a route with max_concurrent");
                        let message = "the service is busy; try again shortly";
                        let mut response =
                            error_response(StatusCode::SERVICE_UNAVAILABLE, message, request_id);
                        response
                            .headers_mut()
                            .insert(http::header::RETRY_AFTER, HeaderValue::from_static("1"));
                        return (route.component, response);
                    }
                }
            }
            None => None,
        };

        let mut limit = self.runtime.limits().max_request_body;
        if let Some(route_limit) = policy.and_then(|(_, p)| p.max_body_bytes) {
            limit = limit.min(route_limit);
        }
        let declared_length = req
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared_length.is_some_and(|n| n > limit) {
            let message = format!("request body is larger than the limit of {limit} bytes");
            return (
                route.component,
                error_response(StatusCode::PAYLOAD_TOO_LARGE, &message, request_id),
            );
        }
        let req = with_full_url(req, self.local);
        let exceeded = Arc::new(AtomicBool::new(false));
        let malformed = Arc::new(AtomicBool::new(false));
        let req = req.map(|body| LimitedBody {
            inner: body,
            remaining: limit,
            limit,
            exceeded: exceeded.clone(),
            malformed: malformed.clone(),
        });

        let call = CallContext {
            request_id: request_id.into(),
            client_addr: client,
            depth: 0,
            deadline,
            tenant,
        };
        let mut response = self.runtime.invoke_routed(req, &route, call).await;
        // A body sent without Content-Length that outgrew the limit surfaces
        // in the component as a stream error; tell the client what happened.
        if exceeded.load(Ordering::SeqCst) && !response.status().is_success() {
            tracing::warn!(component = %route.component, limit, "request body exceeded the limit while streaming");
            let message = format!("request body is larger than the limit of {limit} bytes");
            response = error_response(StatusCode::PAYLOAD_TOO_LARGE, &message, request_id);
        } else if malformed.load(Ordering::SeqCst) && !response.status().is_success() {
            tracing::warn!(component = %route.component, "request body could not be read");
            response = error_response(
                StatusCode::BAD_REQUEST,
                "malformed request body",
                request_id,
            );
        }
        if let Some(policy) = policy {
            gateway.record_response(policy, &client_ip, response.status().as_u16());
        }
        (route.component, response)
    }

    /// Accepts a client's `x-request-id` when it is short and plain ASCII;
    /// otherwise creates one.
    fn request_id(&self, req: &Request<Incoming>) -> String {
        if let Some(id) = req.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok())
            && (1..=128).contains(&id.len())
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        {
            return id.to_string();
        }
        let n = self.next_id.fetch_add(1, Ordering::Relaxed);
        format!("{}-{n:08x}", self.id_prefix)
    }

    fn metrics(&self) -> Response<WasiBody> {
        let mut text = self.runtime.metrics().render();
        if let Some(llm) = self.runtime.llm() {
            llm.render_metrics(&mut text);
        }
        Response::builder()
            .header(http::header::CONTENT_TYPE, "text/plain; version=0.0.4")
            .body(full(Bytes::from(text)))
            .expect("static response parts are valid")
    }

    fn ready(&self) -> Response<WasiBody> {
        let ready = self.ready.load(Ordering::SeqCst);
        let (status, text) = if ready {
            (StatusCode::OK, "ready")
        } else {
            (StatusCode::SERVICE_UNAVAILABLE, "shutting down")
        };
        let body = serde_json::json!({
            "status": text,
            "app": self.runtime.app().name(),
            "components": self.runtime.app().components().len(),
        });
        json(status, &body)
    }
}

/// Counts a request in flight and, if the client goes away before the
/// response is ready, logs it and counts it as status 499.
struct InFlight<'a> {
    server: &'a Server,
    span: &'a tracing::Span,
    request_id: &'a str,
    started: Instant,
    component: Option<String>,
    finished: bool,
}

impl<'a> InFlight<'a> {
    fn start(
        server: &'a Server,
        span: &'a tracing::Span,
        request_id: &'a str,
        started: Instant,
    ) -> Self {
        server.in_flight.fetch_add(1, Ordering::SeqCst);
        InFlight {
            server,
            span,
            request_id,
            started,
            component: None,
            finished: false,
        }
    }

    fn finish(&mut self) {
        self.finished = true;
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.server.in_flight.fetch_sub(1, Ordering::SeqCst);
        if self.finished {
            return;
        }
        let component = self.component.as_deref().unwrap_or("host");
        self.server
            .runtime
            .metrics()
            .request(component, 499, self.started.elapsed());
        self.span.in_scope(|| {
            tracing::warn!(
                component,
                request_id = self.request_id,
                elapsed_ms = self.started.elapsed().as_millis() as u64,
                "client disconnected before the response was ready"
            );
        });
    }
}

/// Rejects requests that routing or the gateway could read differently
/// from the component: paths with empty or dot segments (`//login`,
/// `/a/../b`), and repeated credential headers.
fn check_request<B>(req: &Request<B>) -> Result<(), &'static str> {
    let path = req.uri().path();
    if !path.starts_with('/') {
        return Err("invalid request target: expected a path starting with /");
    }
    let inner = path[1..].strip_suffix('/').unwrap_or(&path[1..]);
    if !inner.is_empty()
        && inner
            .split('/')
            .any(|s| s.is_empty() || s == "." || s == "..")
    {
        return Err("invalid path: empty, `.` or `..` segments are not allowed");
    }
    for name in [http::header::AUTHORIZATION.as_str(), "x-api-key"] {
        if req.headers().get_all(name).iter().count() > 1 {
            return Err("send at most one authorization header and one x-api-key header");
        }
    }
    Ok(())
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Returns the value for `Access-Control-Allow-Origin`: the configured
/// spelling of a matching origin, or `*` when every origin is allowed.
fn cors_allowed_origin(origins: &[String], origin: &str) -> Option<String> {
    origins
        .iter()
        .find(|o| *o == "*" || o.eq_ignore_ascii_case(origin))
        .cloned()
}

fn add_cors_headers(headers: &mut http::HeaderMap, origin: &str) {
    if let Ok(value) = HeaderValue::from_str(origin) {
        headers.insert(http::header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
        headers.insert(http::header::VARY, HeaderValue::from_static("origin"));
        headers.insert(
            http::header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static("x-request-id, retry-after"),
        );
    }
}

/// Responds to a CORS preflight without invoking the component.
fn preflight(allowed_origin: Option<&str>, request_id: &str) -> Response<WasiBody> {
    let Some(origin) = allowed_origin else {
        return error_response(StatusCode::FORBIDDEN, "origin not allowed", request_id);
    };
    let mut response = Response::builder()
        .status(StatusCode::NO_CONTENT)
        .header(
            http::header::ACCESS_CONTROL_ALLOW_METHODS,
            "GET, POST, PUT, PATCH, DELETE, OPTIONS",
        )
        .header(
            http::header::ACCESS_CONTROL_ALLOW_HEADERS,
            "authorization, content-type, x-api-key, x-request-id",
        )
        .header(http::header::ACCESS_CONTROL_MAX_AGE, "600")
        .body(full(Bytes::new()))
        .expect("static response parts are valid");
    add_cors_headers(response.headers_mut(), origin);
    response
}

/// Creates a per-process prefix for generated request ids, so ids from
/// restarts and replicas do not collide.
fn request_id_prefix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let mixed = nanos ^ (u64::from(std::process::id()) << 32);
    format!("{:012x}", mixed & 0xffff_ffff_ffff)
}

/// Gives the request an absolute URI, which `wasi:http` exposes as the
/// scheme and authority, taking the authority from `Host` when present.
fn with_full_url(mut req: Request<Incoming>, local: SocketAddr) -> Request<Incoming> {
    let host = req
        .headers()
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.parse::<http::uri::Authority>().ok())
        .unwrap_or_else(|| {
            local
                .to_string()
                .parse()
                .expect("socket addresses are valid authorities")
        });
    let path_and_query = req
        .uri()
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| "/".parse().unwrap());
    if let Ok(uri) = http::Uri::builder()
        .scheme("http")
        .authority(host)
        .path_and_query(path_and_query)
        .build()
    {
        *req.uri_mut() = uri;
    }
    req
}

/// Sets Spin's routing headers for `route`.
pub(crate) fn set_spin_headers<B>(
    req: &mut Request<B>,
    route: &RouteMatch,
    base: &str,
    client: SocketAddr,
) {
    let full_url = if req.uri().authority().is_some() {
        req.uri().to_string()
    } else {
        format!(
            "http://self{}",
            req.uri()
                .path_and_query()
                .map(|p| p.as_str())
                .unwrap_or("/")
        )
    };
    let values = [
        ("spin-full-url", full_url),
        ("spin-path-info", route.path_info.clone()),
        ("spin-matched-route", route.matched_route.clone()),
        ("spin-base-path", base.to_string()),
        ("spin-raw-component-route", route.matched_route.clone()),
        ("spin-component-route", route.component_route.clone()),
        ("spin-client-addr", client.to_string()),
    ];
    let headers = req.headers_mut();
    for (name, value) in values {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    }
}

pub(crate) fn full(bytes: Bytes) -> WasiBody {
    Full::new(bytes)
        .map_err(|never| match never {})
        .boxed_unsync()
}

pub(crate) fn json(status: StatusCode, value: &serde_json::Value) -> Response<WasiBody> {
    Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(full(Bytes::from(value.to_string())))
        .expect("static response parts are valid")
}

/// The body of every error the host itself returns.
pub fn error_response(status: StatusCode, message: &str, request_id: &str) -> Response<WasiBody> {
    let mut response = json(
        status,
        &serde_json::json!({ "error": message, "request_id": request_id }),
    );
    if let Ok(value) = HeaderValue::from_str(request_id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    response
}

/// A request body that fails once more than `limit` bytes have arrived,
/// for bodies sent without a `Content-Length`.
struct LimitedBody {
    inner: Incoming,
    remaining: u64,
    limit: u64,
    /// Set once the limit is crossed, so the gateway can return 413.
    exceeded: Arc<AtomicBool>,
    /// Set when the body's framing is broken, so the gateway can return 400.
    malformed: Arc<AtomicBool>,
}

impl http_body::Body for LimitedBody {
    type Data = Bytes;
    type Error = HttpError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, HttpError>>> {
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let len = data.len() as u64;
                    if len > self.remaining {
                        self.exceeded.store(true, Ordering::SeqCst);
                        return Poll::Ready(Some(Err(HttpError::HttpRequestBodySize(Some(
                            self.limit,
                        )))));
                    }
                    self.remaining -= len;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                self.malformed.store(true, Ordering::SeqCst);
                Poll::Ready(Some(Err(e.into())))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(path: &str) -> Request<()> {
        Request::builder().uri(path).body(()).unwrap()
    }

    #[test]
    fn paths_with_odd_segments_are_rejected() {
        for path in ["/a//b", "//a", "/a/./b", "/a/../b", "/..", "/a/."] {
            assert!(check_request(&request(path)).is_err(), "{path}");
        }
        for path in ["/", "/a", "/a/", "/a/b/c", "/a.b/c..d"] {
            assert!(check_request(&request(path)).is_ok(), "{path}");
        }
    }

    #[test]
    fn repeated_credential_headers_are_rejected() {
        let mut twice = request("/a");
        twice
            .headers_mut()
            .append("authorization", HeaderValue::from_static("Bearer a"));
        twice
            .headers_mut()
            .append("authorization", HeaderValue::from_static("Bearer b"));
        assert!(check_request(&twice).is_err());
        let mut both = request("/a");
        both.headers_mut()
            .append("authorization", HeaderValue::from_static("Bearer a"));
        both.headers_mut()
            .append("x-api-key", HeaderValue::from_static("k"));
        assert!(check_request(&both).is_ok());
    }
}
