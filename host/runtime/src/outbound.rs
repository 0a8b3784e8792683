//! Outbound HTTP from components.
//!
//! Every request a component sends passes [`OutboundHooks::send_request`]:
//!
//! 1. The URL's scheme, host and port must match an `allowed_outbound_hosts`
//!    entry; an empty list means no network at all.
//! 2. `http://<name>.copycar.internal/…` goes to the in-process service
//!    registered under `<name>`, `http://<id>.spin.internal/…` to component
//!    `<id>` (private ones included) and `http://self/…` or a URL without a
//!    host through the application's router. None of these opens a socket,
//!    and only an entry naming them grants them: a catch-all does not.
//! 3. Other hosts are resolved here, and every address is checked: loopback
//!    and private addresses are refused unless an allow-list entry names
//!    that exact host, link-local and metadata addresses unless the entry is
//!    that IP literal. The connection then goes to a checked address, so a
//!    second DNS answer cannot swap it. Redirects are not followed by the
//!    host; a component that follows one sends a new request, which is
//!    checked again.

use crate::address::{is_link_local_or_metadata, restricted_reason};
use crate::runtime::{CallContext, Runtime};
use crate::state::ComponentSettings;
use bytes::Bytes;
use copycar_manifest::HostPattern;
use http_body_util::BodyExt;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::net::TcpStream;
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

/// Calls through `*.spin.internal` and `self` nest; past this depth a call
/// is treated as a loop.
const MAX_CALL_DEPTH: u8 = 8;
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const DNS_TIMEOUT: Duration = Duration::from_secs(5);

type ResponseFuture = Box<
    dyn Future<
            Output = Result<
                (
                    http::Response<WasiBody>,
                    Box<dyn Future<Output = Result<(), HttpError>> + Send>,
                ),
                HttpError,
            >,
        > + Send,
>;

/// The `wasi:http` hooks of one instance.
pub(crate) struct OutboundHooks {
    pub runtime: Arc<Runtime>,
    pub component: Arc<ComponentSettings>,
    pub call: CallContext,
}

/// The target of an outbound request, decided before any I/O.
#[derive(Debug, PartialEq, Eq)]
enum Destination {
    Service(String),
    Component(String),
    SelfApp,
    External {
        scheme: String,
        host: String,
        port: u16,
        exact: bool,
    },
}

impl OutboundHooks {
    fn deny(&self, url: &str, reason: &str) -> HttpError {
        tracing::warn!(
            component = %self.component.id,
            request_id = %self.call.request_id,
            url.full = %url,
            reason,
            "outbound request denied"
        );
        self.runtime
            .metrics()
            .outbound(&self.component.id, "denied");
        HttpError::HttpRequestDenied
    }

    fn destination(&self, uri: &http::Uri) -> Result<Destination, &'static str> {
        let scheme = uri.scheme_str().unwrap_or("http").to_ascii_lowercase();
        // A URL without a host (`/path`) addresses the application itself.
        let authority = uri.authority().filter(|a| !a.host().is_empty());
        let Some(authority) = authority else {
            self.check_internal("http", "self", None)?;
            return Ok(Destination::SelfApp);
        };
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        let port = authority.port_u16();

        if let Some(name) = host.strip_suffix(".copycar.internal") {
            self.check_internal(&scheme, &host, port)?;
            return Ok(Destination::Service(name.to_string()));
        }
        if let Some(id) = host.strip_suffix(".spin.internal") {
            self.check_internal(&scheme, &host, port)?;
            return Ok(Destination::Component(id.to_string()));
        }
        if host == "self" || host == "self.alt" {
            self.check_internal(&scheme, &host, port)?;
            return Ok(Destination::SelfApp);
        }
        let port = port.unwrap_or(if scheme == "https" { 443 } else { 80 });
        let exact = self.check_allowed(&scheme, &host, port)?;
        Ok(Destination::External {
            scheme,
            host,
            port,
            exact,
        })
    }

    /// In-process destinations (`self`, `*.spin.internal`,
    /// `*.copycar.internal`) are plain `http` on the default port, and only
    /// an entry that names them grants them: `http://self`,
    /// `http://<id>.spin.internal` or `http://*.spin.internal`. A catch-all
    /// such as `*://*:*` does not, as in Spin.
    fn check_internal(
        &self,
        scheme: &str,
        host: &str,
        port: Option<u16>,
    ) -> Result<(), &'static str> {
        if scheme != "http" || port.is_some_and(|p| p != 80) {
            return Err("in-process hosts are reached over http on the default port only");
        }
        let granted = self.component.allowed_hosts.entries().iter().any(|entry| {
            entry.allows("http", host, 80)
                && match entry.host() {
                    HostPattern::Any => false,
                    HostPattern::Exact(_) => true,
                    HostPattern::Subdomains(suffix) => {
                        suffix == ".spin.internal" || suffix == ".copycar.internal"
                    }
                }
        });
        if granted {
            Ok(())
        } else {
            Err("not in allowed_outbound_hosts (a wildcard does not grant in-process hosts)")
        }
    }

    /// Returns whether the matching entry names the host exactly.
    fn check_allowed(&self, scheme: &str, host: &str, port: u16) -> Result<bool, &'static str> {
        let hosts = &self.component.allowed_hosts;
        if hosts.is_empty() {
            return Err("the component has no allowed_outbound_hosts");
        }
        if hosts.find(scheme, host, port).is_none() {
            return Err("not in allowed_outbound_hosts");
        }
        Ok(hosts.names_exactly(scheme, host, port))
    }
}

impl WasiHttpHooks for OutboundHooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ) -> ResponseFuture {
        let url = request.uri().to_string();
        let destination = match self.destination(request.uri()) {
            Ok(d) => d,
            Err(reason) => {
                let err = self.deny(&url, reason);
                return Box::new(async move { Err(err) });
            }
        };
        let runtime = self.runtime.clone();
        let caller = self.component.id.clone();
        let call = self.call.nested();
        if call.depth > MAX_CALL_DEPTH && !matches!(destination, Destination::External { .. }) {
            tracing::warn!(component = %caller, request_id = %call.request_id, "component call depth exceeded; treating as a loop");
            return Box::new(async { Err(HttpError::LoopDetected) });
        }
        runtime.metrics().outbound(&caller, destination.kind());
        tracing::debug!(component = %caller, request_id = %call.request_id, url.full = %url, ?destination, "outbound request");

        Box::new(async move {
            let response = match destination {
                Destination::Service(name) => {
                    runtime.call_service(&name, &caller, &call, request).await?
                }
                Destination::Component(id) => runtime.call_component(&id, request, call).await?,
                Destination::SelfApp => runtime.call_self(request, call).await?,
                Destination::External {
                    scheme,
                    host,
                    port,
                    exact,
                } => {
                    send_external(
                        &caller, &call, request, options, &scheme, &host, port, exact,
                    )
                    .await?
                }
            };
            let done: Box<dyn Future<Output = Result<(), HttpError>> + Send> =
                Box::new(async { Ok(()) });
            Ok((response, done))
        })
    }
}

impl Destination {
    fn kind(&self) -> &'static str {
        match self {
            Destination::Service(_) => "service",
            Destination::Component(_) => "component",
            Destination::SelfApp => "self",
            Destination::External { .. } => "external",
        }
    }
}

/// Resolves `host`, keeps only addresses the component may reach and
/// returns them in resolver order.
async fn permitted_addresses(
    caller: &str,
    call: &CallContext,
    host: &str,
    port: u16,
    exact: bool,
) -> Result<Vec<SocketAddr>, HttpError> {
    let resolved: Vec<SocketAddr> = match host.parse::<std::net::IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => {
            match tokio::time::timeout(DNS_TIMEOUT, tokio::net::lookup_host((host, port))).await {
                Err(_) => return Err(HttpError::DnsTimeout),
                Ok(Err(e)) => {
                    tracing::warn!(component = %caller, request_id = %call.request_id, server.address = %host, error = %e, "outbound DNS lookup failed");
                    return Err(HttpError::DnsError {
                        rcode: Some(e.to_string()),
                        info_code: None,
                    });
                }
                Ok(Ok(addrs)) => addrs.collect(),
            }
        }
    };
    let host_is_ip_literal = host.parse::<std::net::IpAddr>().is_ok();
    let mut permitted = Vec::new();
    for addr in resolved {
        let reason = restricted_reason(addr.ip());
        // An entry naming the host exactly opts in to loopback and private
        // addresses, but a DNS name never reaches metadata services.
        let refused = reason.is_some()
            && (!exact || (!host_is_ip_literal && is_link_local_or_metadata(addr.ip())));
        match reason {
            Some(reason) if refused => {
                tracing::warn!(
                    component = %caller,
                    request_id = %call.request_id,
                    server.address = %host,
                    network.peer.address = %addr.ip(),
                    reason,
                    "outbound request to a restricted address refused; name the exact host in allowed_outbound_hosts to permit it"
                );
            }
            _ => permitted.push(addr),
        }
    }
    if permitted.is_empty() {
        return Err(HttpError::DestinationIpProhibited);
    }
    Ok(permitted)
}

#[allow(clippy::too_many_arguments)]
async fn send_external(
    caller: &str,
    call: &CallContext,
    mut request: http::Request<WasiBody>,
    options: Option<RequestOptions>,
    scheme: &str,
    host: &str,
    port: u16,
    exact: bool,
) -> Result<http::Response<WasiBody>, HttpError> {
    let addrs = permitted_addresses(caller, call, host, port, exact).await?;
    let connect_timeout = options
        .and_then(|o| o.connect_timeout)
        .unwrap_or(DEFAULT_CONNECT_TIMEOUT);

    let mut last_error = HttpError::ConnectionRefused;
    let mut stream = None;
    for addr in addrs {
        match tokio::time::timeout(connect_timeout, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => {
                stream = Some(s);
                break;
            }
            Ok(Err(e)) => last_error = HttpError::Connect(e),
            Err(_) => last_error = HttpError::ConnectionTimeout,
        }
    }
    let stream = stream.ok_or(last_error)?;

    // The request line carries only the path; the authority is in `host`.
    let path = request
        .uri()
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/")
        .to_string();
    *request.uri_mut() = http::Uri::builder()
        .path_and_query(path)
        .build()
        .map_err(|_| HttpError::HttpRequestUriInvalid)?;

    let response = if scheme == "https" {
        let server_name = rustls::pki_types::ServerName::try_from(host.to_string())
            .map_err(|_| HttpError::TlsCertificateError)?;
        let tls = tokio::time::timeout(
            connect_timeout,
            tls_connector().connect(server_name, stream),
        )
        .await
        .map_err(|_| HttpError::ConnectionTimeout)?
        .map_err(HttpError::Tls)?;
        exchange(TokioIo::new(tls), request).await?
    } else if scheme == "http" {
        exchange(TokioIo::new(stream), request).await?
    } else {
        return Err(HttpError::HttpProtocolError);
    };
    Ok(response)
}

/// Runs one HTTP/1.1 exchange on a fresh connection.
async fn exchange<IO>(
    io: IO,
    request: http::Request<WasiBody>,
) -> Result<http::Response<WasiBody>, HttpError>
where
    IO: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "outbound connection closed with an error");
        }
    });
    let response = sender.send_request(request).await?;
    Ok(response.map(|body| body.map_err(HttpError::from).boxed_unsync()))
}

fn tls_connector() -> tokio_rustls::TlsConnector {
    static CONNECTOR: OnceLock<tokio_rustls::TlsConnector> = OnceLock::new();
    CONNECTOR
        .get_or_init(|| {
            let roots = rustls::RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.into(),
            };
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .expect("ring supports the default TLS versions")
                .with_root_certificates(roots)
                .with_no_client_auth();
            tokio_rustls::TlsConnector::from(Arc::new(config))
        })
        .clone()
}

/// Collects a body up to `limit` bytes.
pub(crate) async fn collect_limited(body: WasiBody, limit: u64) -> Result<Bytes, HttpError> {
    let limited = http_body_util::Limited::new(body, limit as usize);
    match limited.collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            Err(HttpError::HttpRequestBodySize(Some(limit)))
        }
        Err(e) => Err(HttpError::InternalError(Some(e.to_string()))),
    }
}
