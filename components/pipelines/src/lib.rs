//! Streaming SQL pipelines for authenticated callers under
//! `/api/v1/pipelines`.
//!
//! - `GET /api/v1/pipelines`: the shipped pipelines and the tenant's own,
//!   with state, outputs and figures (events read, events per second, lag).
//! - `POST /api/v1/pipelines` `{"name", "sql"}` (admin): creates a pipeline
//!   over the tenant's events. Invalid SQL gets a 400 with `line` and
//!   `column`.
//! - `GET /api/v1/pipelines/{name}`: one pipeline with its SQL.
//! - `POST /api/v1/pipelines/{name}/pause` and `/resume`, `DELETE
//!   /api/v1/pipelines/{name}` (admin): the tenant's own pipelines only.
//! - `GET /api/v1/pipelines/{name}/results?output=&limit=&closed=&after=`:
//!   current rows, newest window first. A truncated page carries `next`,
//!   which `after` takes to fetch the rows that follow.
//! - `GET /api/v1/pipelines/{name}/stream?output=`: server-sent events. The
//!   stream opens with a `snapshot` event (the current rows), then sends an
//!   `update` event per row change. Event ids are `<epoch>:<seq>`; a client
//!   that reconnects with `Last-Event-ID` gets the changes it missed, or a
//!   new snapshot when they are no longer kept. A stream ends after
//!   `pipeline_stream_secs` (below the host's request time limit), and
//!   clients reconnect as server-sent events do.
//!
//! The tenant always comes from the credential. The pipelines run in the
//! host's data plane at `pipelines.copycar.internal` (the `pipelines_url`
//! variable).

use copycar_guest::caller::{Caller, authenticate};
use copycar_guest::http::{ApiError, ApiResult, finish, header, json_response};
use copycar_guest::service::Service;
use copycar_guest::store::Kv;
use futures::SinkExt;
use serde_json::{Value, json};
use spin_sdk::http::{Fields, Method, OutgoingResponse, Request, Response, ResponseOutparam};
use spin_sdk::http_component;
use std::time::{Duration, Instant};

const SERVICE: Service = Service {
    url_variable: "pipelines_url",
    default_url: "http://pipelines.copycar.internal",
    name: "pipeline service",
};

/// Largest pipeline SQL, in bytes.
const MAX_SQL_BYTES: usize = 64 * 1024;
/// Maximum wait of one long poll to the service, in milliseconds.
const POLL_MS: u64 = 10_000;
/// Stream length when the variable is unset, in seconds.
const DEFAULT_STREAM_SECS: u64 = 25;

#[http_component]
async fn handle(request: Request, out: ResponseOutparam) {
    let path = path_of(&request);
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    if *request.method() == Method::Get && matches!(segments.as_slice(), [_, "stream"]) {
        match open_stream(&request, segments[0]).await {
            Ok(stream) => stream.run(out).await,
            // Nothing was sent yet, so the error becomes the response.
            Err(error) => send(out, finish("pipelines", &request, Err(error))).await,
        }
        return;
    }
    let result = route(&request, &segments).await;
    send(out, finish("pipelines", &request, result)).await;
}

/// Returns the part of the path after `/api/v1/pipelines`, without a
/// trailing `/`.
fn path_of(request: &Request) -> String {
    header(request, "spin-path-info")
        .unwrap_or("")
        .trim_end_matches('/')
        .to_string()
}

/// Writes a whole response to the out-parameter.
async fn send(out: ResponseOutparam, mut response: Response) {
    let body = std::mem::take(response.body_mut());
    match OutgoingResponse::try_from(response) {
        Ok(outgoing) => {
            if let Err(e) = out.set_with_body(outgoing, body).await {
                eprintln!("pipelines: writing the response failed: {e}");
            }
        }
        Err(e) => eprintln!("pipelines: building the response failed: {e}"),
    }
}

async fn route(request: &Request, segments: &[&str]) -> ApiResult {
    let caller = authenticate(request, &Kv::open()?)?;
    let tenant = caller.tenant_id.as_str();
    let method = request.method().clone();
    let (method, path, body) = match (&method, segments) {
        (Method::Get, []) => (
            Method::Get,
            format!("/v1/pipelines?tenant={tenant}"),
            vec![],
        ),
        (Method::Post, []) => {
            caller.require_admin()?;
            let body = create_body(request, &caller)?;
            (Method::Post, "/v1/pipelines".to_string(), body)
        }
        (Method::Get, [name]) => {
            check_name(name)?;
            (
                Method::Get,
                format!("/v1/pipelines/{name}?tenant={tenant}"),
                vec![],
            )
        }
        (Method::Delete, [name]) => {
            check_name(name)?;
            caller.require_admin()?;
            (
                Method::Delete,
                format!("/v1/pipelines/{name}?tenant={tenant}"),
                vec![],
            )
        }
        (Method::Post, [name, action @ ("pause" | "resume")]) => {
            check_name(name)?;
            caller.require_admin()?;
            (
                Method::Post,
                format!("/v1/pipelines/{name}/{action}?tenant={tenant}"),
                vec![],
            )
        }
        (Method::Get, [name, "results"]) => {
            check_name(name)?;
            let query = forwarded_query(request, &["output", "limit", "closed", "after"])?;
            (
                Method::Get,
                format!("/v1/pipelines/{name}/results?tenant={tenant}{query}"),
                vec![],
            )
        }
        (_, [] | [_] | [_, "pause" | "resume" | "results" | "stream"]) => {
            return Err(ApiError::new(
                405,
                format!("method {method} is not allowed here"),
            ));
        }
        _ => {
            let path = path_of(request);
            return Err(ApiError::not_found(&format!(
                "endpoint /api/v1/pipelines{path}"
            )));
        }
    };
    let (status, mut reply) = SERVICE.call(method, &path, body).await?;
    // Errors carry the request id like the component's own errors do.
    if status >= 400
        && let Some(object) = reply.as_object_mut()
    {
        let request_id = header(request, "x-request-id").unwrap_or("");
        object.insert("request_id".into(), json!(request_id));
    }
    Ok(json_response(status, reply))
}

/// Checks `{"name", "sql"}` and adds the caller's tenant.
fn create_body(request: &Request, caller: &Caller) -> Result<Vec<u8>, ApiError> {
    let body: Value = copycar_guest::http::json_body_up_to(request, MAX_SQL_BYTES + 4096)?;
    let Some(object) = body.as_object() else {
        return Err(ApiError::new(
            400,
            "send a JSON object with `name` and `sql`",
        ));
    };
    if let Some(key) = object.keys().find(|k| *k != "name" && *k != "sql") {
        return Err(ApiError::bad_field(
            "body",
            format!("unknown field `{key}`; use name and sql"),
        ));
    }
    let name = match object.get("name") {
        Some(Value::String(name)) => name.as_str(),
        Some(_) => return Err(ApiError::bad_field("name", "name must be a string")),
        None => return Err(ApiError::bad_field("name", "name is required")),
    };
    check_name(name)?;
    let sql = match object.get("sql") {
        Some(Value::String(sql)) => sql.as_str(),
        Some(_) => return Err(ApiError::bad_field("sql", "sql must be a string")),
        None => return Err(ApiError::bad_field("sql", "sql is required")),
    };
    if sql.trim().is_empty() {
        return Err(ApiError::bad_field("sql", "sql is empty"));
    }
    if sql.len() > MAX_SQL_BYTES {
        return Err(ApiError::bad_field(
            "sql",
            format!("sql is longer than {MAX_SQL_BYTES} bytes"),
        ));
    }
    Ok(
        json!({"tenant": caller.tenant_id, "name": name, "sql": sql})
            .to_string()
            .into_bytes(),
    )
}

fn check_name(name: &str) -> Result<(), ApiError> {
    let valid = !name.is_empty()
        && name.len() <= 48
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if valid {
        Ok(())
    } else {
        Err(ApiError::bad_field(
            "name",
            "a pipeline name is 1 to 48 lowercase letters, digits and underscores, starting with a letter",
        ))
    }
}

/// Returns the request's query parameters, percent-decoded.
fn query_pairs(request: &Request) -> Result<Vec<(String, String)>, ApiError> {
    let query = request
        .path_and_query()
        .and_then(|p| p.split_once('?'))
        .map(|(_, q)| q)
        .unwrap_or("");
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            Ok((decode(key)?, decode(value)?))
        })
        .collect()
}

/// Re-encodes the allowed query parameters as `&key=value...`, so nothing
/// a client writes can add parameters (such as another tenant).
fn forwarded_query(request: &Request, allowed: &[&'static str]) -> Result<String, ApiError> {
    let mut out = String::new();
    let mut seen: Vec<&'static str> = Vec::new();
    for (key, value) in query_pairs(request)? {
        let Some(&name) = allowed.iter().find(|a| **a == key) else {
            let message = format!(
                "unknown query parameter `{key}`; use {}",
                allowed.join(", ")
            );
            return Err(ApiError::bad_field(key, message));
        };
        // The service reads one value per name, so a second one would be
        // ignored without a word.
        if seen.contains(&name) {
            return Err(ApiError::bad_field(
                name,
                format!("query parameter `{name}` is given more than once"),
            ));
        }
        seen.push(name);
        out.push('&');
        out.push_str(&key);
        out.push('=');
        out.push_str(&encode(&value));
    }
    Ok(out)
}

fn decode(text: &str) -> Result<String, ApiError> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = text
                    .get(i + 1..i + 3)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| ApiError::new(400, "invalid percent-encoding in the query"))?;
                out.push(hex);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| ApiError::new(400, "the query is not valid UTF-8"))
}

fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Reads a reconnecting client's position, `<epoch>:<seq>`.
fn last_event_id(request: &Request) -> Option<(String, u64)> {
    let text = header(request, "last-event-id")?;
    let (epoch, seq) = text.trim().split_once(':')?;
    let seq = seq.parse().ok()?;
    (!epoch.is_empty() && epoch.len() <= 32 && epoch.chars().all(|c| c.is_ascii_hexdigit()))
        .then(|| (epoch.to_string(), seq))
}

fn stream_duration() -> Duration {
    let secs = spin_sdk::variables::get("pipeline_stream_secs")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|s| (1..=3600).contains(s))
        .unwrap_or(DEFAULT_STREAM_SECS);
    Duration::from_secs(secs)
}

/// Formats one server-sent event.
fn event(kind: &str, id: &str, data: &Value) -> Vec<u8> {
    format!("event: {kind}\nid: {id}\ndata: {data}\n\n").into_bytes()
}

/// Calls the service without a body and turns any status but 200 into an
/// error with the service's message.
async fn call_ok(method: Method, path: &str) -> Result<Value, ApiError> {
    let (status, reply) = SERVICE.call(method, path, vec![]).await?;
    if status != 200 {
        let message = reply["error"]
            .as_str()
            .unwrap_or("the pipeline service failed");
        return Err(ApiError::new(status, message.to_string()));
    }
    Ok(reply)
}

async fn snapshot(name: &str, tenant: &str, query: &str) -> Result<Value, ApiError> {
    call_ok(
        Method::Get,
        &format!("/v1/pipelines/{name}/results?tenant={tenant}{query}"),
    )
    .await
}

/// A stream that passed its checks: the pipeline exists and the caller
/// may read it.
struct Stream {
    name: String,
    tenant: String,
    /// `&output=...` for the service, or empty.
    query: String,
    output: Option<String>,
    epoch: String,
    after: u64,
    /// The opening snapshot, unless the client resumes.
    first: Option<Value>,
    /// The host's lease on a place for this stream.
    lease: String,
}

async fn open_stream(request: &Request, name: &str) -> Result<Stream, ApiError> {
    check_name(name)?;
    let caller = authenticate(request, &Kv::open()?)?;
    let tenant = caller.tenant_id.clone();
    let query = forwarded_query(request, &["output"])?;
    let output = query_pairs(request)?
        .into_iter()
        .find(|(k, _)| k == "output")
        .map(|(_, v)| v);
    // A place among the host's open streams; refused when the tenant or the
    // host has too many.
    let reply = call_ok(
        Method::Post,
        &format!("/v1/pipelines/{name}/streams?tenant={tenant}"),
    )
    .await?;
    let lease = reply["lease"].as_str().unwrap_or_default().to_string();
    let opened = open_position(request, name, &tenant, &query).await;
    if opened.is_err() {
        release(name, &tenant, &lease).await;
    }
    let (epoch, after, first) = opened?;
    Ok(Stream {
        name: name.to_string(),
        tenant,
        query,
        output,
        epoch,
        after,
        first,
        lease,
    })
}

/// Gives a lease back so its place frees at once.
async fn release(name: &str, tenant: &str, lease: &str) {
    let path = format!("/v1/pipelines/{name}/streams/{lease}?tenant={tenant}");
    if let Err(e) = SERVICE.call(Method::Delete, &path, vec![]).await {
        eprintln!("pipelines: releasing a stream lease failed: {}", e.message);
    }
}

/// Finds the stream's starting point: the client's `Last-Event-ID`, or a
/// new snapshot.
async fn open_position(
    request: &Request,
    name: &str,
    tenant: &str,
    query: &str,
) -> Result<(String, u64, Option<Value>), ApiError> {
    match last_event_id(request) {
        Some((epoch, after)) => {
            // The pipeline must still exist.
            call_ok(
                Method::Get,
                &format!("/v1/pipelines/{name}?tenant={tenant}"),
            )
            .await?;
            Ok((epoch, after, None))
        }
        None => {
            let snap = snapshot(name, tenant, query).await?;
            let epoch = snap["epoch"].as_str().unwrap_or_default().to_string();
            let after = snap["seq"].as_u64().unwrap_or(0);
            Ok((epoch, after, Some(snap)))
        }
    }
}

fn snapshot_event(epoch: &str, seq: u64, snap: &Value) -> Vec<u8> {
    event(
        "snapshot",
        &format!("{epoch}:{seq}"),
        &json!({"rows": snap["rows"], "truncated": snap["truncated"]}),
    )
}

impl Stream {
    /// Sends the stream, then gives its lease back.
    async fn run(mut self, out: ResponseOutparam) {
        self.send_until_done(out).await;
        release(&self.name, &self.tenant, &self.lease).await;
    }

    /// Sends the stream until its time is up or the client leaves. Errors
    /// from here on end the stream, since the status is already sent.
    async fn send_until_done(&mut self, out: ResponseOutparam) {
        let started = Instant::now();
        let length = stream_duration();
        let headers = match Fields::from_list(&[
            ("content-type".to_string(), b"text/event-stream".to_vec()),
            ("cache-control".to_string(), b"no-store".to_vec()),
        ]) {
            Ok(headers) => headers,
            Err(e) => {
                eprintln!("pipelines: building stream headers failed: {e}");
                return;
            }
        };
        let response = OutgoingResponse::new(headers);
        if response.set_status_code(200).is_err() {
            return;
        }
        let mut body = response.take_body();
        out.set(response);

        let mut frames = b"retry: 1000\n\n".to_vec();
        if let Some(snap) = self.first.take() {
            frames.extend(snapshot_event(&self.epoch, self.after, &snap));
        }
        if body.send(frames).await.is_err() {
            return;
        }
        let name = self.name.clone();
        loop {
            let left = length.saturating_sub(started.elapsed());
            if left.is_zero() {
                break;
            }
            let frames = match self.poll(left).await {
                Ok(frames) => frames,
                Err(frames) => {
                    let _ = body.send(frames).await;
                    break;
                }
            };
            if body.send(frames).await.is_err() {
                // The client went away.
                return;
            }
        }
        if let Err(e) = body.flush().await {
            eprintln!("pipelines: ending the stream of {name} failed: {e}");
        }
        let _ = body.close().await;
    }

    /// Runs one long poll and returns the frames to send, or as an error
    /// the last frames before the stream ends.
    async fn poll(&mut self, left: Duration) -> Result<Vec<u8>, Vec<u8>> {
        let wait = (left.as_millis() as u64).min(POLL_MS);
        let (name, tenant) = (&self.name, &self.tenant);
        let path = format!(
            "/v1/pipelines/{name}/updates?tenant={tenant}&after={}&epoch={}&wait_ms={wait}&lease={}",
            self.after, self.epoch, self.lease
        );
        let (status, reply) = match SERVICE.call(Method::Get, &path, vec![]).await {
            Ok(answer) => answer,
            Err(e) => {
                eprintln!("pipelines: stream of {name} stopped: {}", e.message);
                return Err(Vec::new());
            }
        };
        if status != 200 {
            // The pipeline was deleted, or the service failed.
            let data = json!({"error": reply["error"], "status": status});
            return Err(event(
                "error",
                &format!("{}:{}", self.epoch, self.after),
                &data,
            ));
        }
        let mut frames = Vec::new();
        if reply["reset"] == json!(true) {
            let snap = match snapshot(name, tenant, &self.query).await {
                Ok(snap) => snap,
                Err(e) => {
                    eprintln!("pipelines: stream of {name} stopped: {}", e.message);
                    return Err(Vec::new());
                }
            };
            self.epoch = snap["epoch"].as_str().unwrap_or_default().to_string();
            self.after = snap["seq"].as_u64().unwrap_or(0);
            frames.extend(snapshot_event(&self.epoch, self.after, &snap));
            return Ok(frames);
        }
        for update in reply["updates"].as_array().into_iter().flatten() {
            if let Some(output) = &self.output
                && update["output"].as_str() != Some(output)
            {
                continue;
            }
            let seq = update["seq"].as_u64().unwrap_or(self.after);
            let mut data = update.clone();
            if let Some(object) = data.as_object_mut() {
                object.remove("seq");
            }
            frames.extend(event("update", &format!("{}:{seq}", self.epoch), &data));
        }
        self.after = reply["next"].as_u64().unwrap_or(self.after).max(self.after);
        if frames.is_empty() {
            frames.extend_from_slice(b": keep-alive\n\n");
        }
        Ok(frames)
    }
}
