//! In-process services reached at `http://<name>.copycar.internal/…`.
//!
//! Components call the data plane through plain HTTP so they stay portable:
//! on Spin the same URL is a variable pointing at a real address. In the
//! copycar host the request is handed to the registered service directly.

use bytes::Bytes;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// A request from a component to an internal service.
pub struct ServiceRequest {
    /// Id of the calling component.
    pub caller: String,
    pub request_id: String,
    /// The calling request's deadline; work past it is wasted.
    pub deadline: std::time::Instant,
    pub request: http::Request<Bytes>,
}

pub type ServiceFuture = Pin<Box<dyn Future<Output = http::Response<Bytes>> + Send>>;

/// A host service that components reach over in-process HTTP.
pub trait InternalService: Send + Sync + 'static {
    fn handle(&self, request: ServiceRequest) -> ServiceFuture;
}

/// Services by name (`events` serves `events.copycar.internal`).
#[derive(Clone, Default)]
pub struct ServiceRegistry {
    services: HashMap<String, Arc<dyn InternalService>>,
}

impl ServiceRegistry {
    pub fn register(&mut self, name: &str, service: impl InternalService) {
        self.services.insert(name.to_string(), Arc::new(service));
    }

    pub fn get(&self, name: &str) -> Option<Arc<dyn InternalService>> {
        self.services.get(name).cloned()
    }

    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<_> = self.services.keys().map(String::as_str).collect();
        names.sort();
        names
    }
}

/// `host.copycar.internal`: facts about the running host, and an echo
/// endpoint that shows what a component sent.
pub(crate) struct HostInfoService {
    pub app_name: String,
    pub app_version: Option<String>,
    pub components: Vec<String>,
}

impl InternalService for HostInfoService {
    fn handle(&self, request: ServiceRequest) -> ServiceFuture {
        let info = serde_json::json!({
            "app": self.app_name,
            "version": self.app_version,
            "host_version": env!("CARGO_PKG_VERSION"),
            "components": self.components,
            "caller": request.caller,
            "request_id": request.request_id,
        });
        Box::pin(async move {
            let (parts, body) = request.request.into_parts();
            match (parts.method.as_str(), parts.uri.path()) {
                ("GET", "/info") => json_response(http::StatusCode::OK, &info),
                ("POST", "/echo") => {
                    let echoed = serde_json::json!({
                        "method": parts.method.as_str(),
                        "path": parts.uri.path(),
                        "body": String::from_utf8_lossy(&body),
                        "caller": info["caller"],
                    });
                    json_response(http::StatusCode::OK, &echoed)
                }
                (_, "/info" | "/echo") => json_response(
                    http::StatusCode::METHOD_NOT_ALLOWED,
                    &serde_json::json!({"error": "use GET /info or POST /echo"}),
                ),
                (_, path) => json_response(
                    http::StatusCode::NOT_FOUND,
                    &serde_json::json!({"error": format!("no endpoint {path} on host.copycar.internal")}),
                ),
            }
        })
    }
}

pub(crate) fn json_response(
    status: http::StatusCode,
    value: &serde_json::Value,
) -> http::Response<Bytes> {
    http::Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Bytes::from(value.to_string()))
        .expect("static response parts are valid")
}
