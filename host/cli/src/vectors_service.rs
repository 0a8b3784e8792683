//! `vectors.copycar.internal`: a vector index per tenant and collection,
//! served in process to components, which authenticate callers and pass the
//! tenant along.
//!
//! - `POST /v1/upsert` `{"tenant", "collection", "items": [{"id", "model",
//!   "vector", "metadata"?}]}` stores unit-length copies of the vectors.
//! - `POST /v1/query` `{"tenant", "collection", "k", "id" | ("vector",
//!   "model")}` returns the `k` nearest items by cosine similarity, never the
//!   queried id itself. Only vectors of the same model are compared.
//! - `POST /v1/delete` `{"tenant", "collection", "ids"}`.
//! - `GET /v1/stats?tenant=T&collection=C` counts the items per model.
//!
//! Vectors are kept in memory for search and written through to a redb
//! file, so they survive a restart. Search is exact: a scan of the
//! collection, which returns in well under a millisecond for the tens of
//! thousands of accounts a team researches.

use crate::service_reply::reply;
use bytes::Bytes;
use copycar_runtime::{InternalService, ServiceFuture, ServiceRequest};
use redb::{Database, ReadableTable, TableDefinition};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::{BinaryHeap, HashMap};
use std::path::Path;
use std::sync::{Arc, RwLock};

const TABLE: TableDefinition<&str, &[u8]> = TableDefinition::new("vectors");
const MAX_DIMS: usize = 4096;
const MAX_ITEMS: usize = 1000;
const MAX_K: usize = 100;
const MAX_PER_COLLECTION: usize = 200_000;
const MAX_METADATA_BYTES: usize = 4096;

struct Entry {
    id: String,
    model: String,
    vector: Vec<f32>,
    metadata: Value,
}

#[derive(Default)]
struct Collection {
    positions: HashMap<String, usize>,
    entries: Vec<Entry>,
}

impl Collection {
    fn insert(&mut self, entry: Entry) {
        match self.positions.get(&entry.id) {
            Some(&at) => self.entries[at] = entry,
            None => {
                self.positions.insert(entry.id.clone(), self.entries.len());
                self.entries.push(entry);
            }
        }
    }

    fn remove(&mut self, id: &str) -> bool {
        let Some(at) = self.positions.remove(id) else {
            return false;
        };
        self.entries.swap_remove(at);
        if let Some(moved) = self.entries.get(at) {
            self.positions.insert(moved.id.clone(), at);
        }
        true
    }
}

type Key = (String, String);

#[derive(Clone)]
pub(crate) struct VectorsService {
    inner: Arc<Inner>,
}

struct Inner {
    db: Database,
    collections: RwLock<HashMap<Key, Collection>>,
}

fn storage_key(tenant: &str, collection: &str, id: &str) -> String {
    format!("{tenant}\u{1f}{collection}\u{1f}{id}")
}

fn encode(entry: &Entry) -> Vec<u8> {
    let metadata = entry.metadata.to_string();
    let mut out =
        Vec::with_capacity(12 + entry.model.len() + entry.vector.len() * 4 + metadata.len());
    out.extend_from_slice(&(entry.model.len() as u32).to_le_bytes());
    out.extend_from_slice(entry.model.as_bytes());
    out.extend_from_slice(&(entry.vector.len() as u32).to_le_bytes());
    for value in &entry.vector {
        out.extend_from_slice(&value.to_le_bytes());
    }
    out.extend_from_slice(metadata.as_bytes());
    out
}

fn decode(id: String, bytes: &[u8]) -> Option<Entry> {
    let take_u32 = |at: usize| -> Option<usize> {
        Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?) as usize)
    };
    let model_len = take_u32(0)?;
    let model = std::str::from_utf8(bytes.get(4..4 + model_len)?)
        .ok()?
        .to_string();
    let dims_at = 4 + model_len;
    let dims = take_u32(dims_at)?;
    let start = dims_at + 4;
    let raw = bytes.get(start..start + dims * 4)?;
    let vector = raw
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().expect("chunks of four")))
        .collect();
    let metadata = serde_json::from_slice(&bytes[start + dims * 4..]).ok()?;
    Some(Entry {
        id,
        model,
        vector,
        metadata,
    })
}

impl VectorsService {
    /// Opens (or creates) the index file and loads every vector.
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        let db = Database::create(path)
            .map_err(|e| anyhow::anyhow!("cannot open the vector index {}: {e}", path.display()))?;
        let mut collections: HashMap<Key, Collection> = HashMap::new();
        let txn = db.begin_write()?;
        {
            let table = txn.open_table(TABLE)?;
            for row in table.iter()? {
                let (key, value) = row?;
                let key = key.value();
                let mut parts = key.splitn(3, '\u{1f}');
                let (Some(tenant), Some(collection), Some(id)) =
                    (parts.next(), parts.next(), parts.next())
                else {
                    tracing::warn!(key, "skipping a malformed vector key");
                    continue;
                };
                match decode(id.to_string(), value.value()) {
                    Some(entry) => collections
                        .entry((tenant.to_string(), collection.to_string()))
                        .or_default()
                        .insert(entry),
                    None => tracing::warn!(key, "skipping a damaged vector record"),
                }
            }
        }
        txn.commit()?;
        let count: usize = collections.values().map(|c| c.entries.len()).sum();
        tracing::info!(vectors = count, path = %path.display(), "vector index loaded");
        Ok(VectorsService {
            inner: Arc::new(Inner {
                db,
                collections: RwLock::new(collections),
            }),
        })
    }
}


fn bad(field: &str, message: impl Into<String>) -> http::Response<Bytes> {
    reply(400, json!({"error": message.into(), "field": field}))
}

impl InternalService for VectorsService {
    fn handle(&self, request: ServiceRequest) -> ServiceFuture {
        let inner = self.inner.clone();
        Box::pin(async move {
            let (parts, body) = request.request.into_parts();
            let path = parts.uri.path().to_string();
            let method = parts.method.as_str().to_string();
            let query = parts.uri.query().unwrap_or("").to_string();
            // Writes touch the disk and searches scan memory: both run off
            // the async threads.
            tokio::task::spawn_blocking(move || match (method.as_str(), path.as_str()) {
                ("POST", "/v1/upsert") => upsert(&inner, &body),
                ("POST", "/v1/query") => query_nearest(&inner, &body),
                ("POST", "/v1/delete") => delete(&inner, &body),
                ("GET", "/v1/stats") => stats(&inner, &query),
                (_, "/v1/upsert" | "/v1/query" | "/v1/delete") => {
                    reply(405, json!({"error": format!("use POST {path}")}))
                }
                (_, path) => reply(
                    404,
                    json!({"error": format!("no endpoint {path} on vectors.copycar.internal")}),
                ),
            })
            .await
            .unwrap_or_else(|e| {
                tracing::error!(error = %e, "vector index task failed");
                reply(500, json!({"error": "the vector index failed"}))
            })
        })
    }
}

fn check_scope(tenant: &str, collection: &str) -> Result<(), http::Response<Bytes>> {
    if tenant.is_empty() || tenant.len() > 128 || tenant.contains('\u{1f}') {
        return Err(bad("tenant", "tenant must be 1 to 128 characters"));
    }
    let valid = !collection.is_empty()
        && collection.len() <= 64
        && collection
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if !valid {
        return Err(bad(
            "collection",
            "collection must be 1 to 64 of a-z, 0-9, _ and -",
        ));
    }
    Ok(())
}

/// Scales `vector` to unit length; refuses empty, oversized, non-finite and
/// zero vectors.
fn unit(vector: Vec<f32>) -> Result<Vec<f32>, String> {
    if vector.is_empty() || vector.len() > MAX_DIMS {
        return Err(format!("a vector has 1 to {MAX_DIMS} dimensions"));
    }
    if vector.iter().any(|v| !v.is_finite()) {
        return Err("a vector holds only finite numbers".into());
    }
    let norm = vector.iter().map(|v| v * v).sum::<f32>().sqrt();
    if norm == 0.0 {
        return Err("a vector of zeros has no direction to compare".into());
    }
    Ok(vector.into_iter().map(|v| v / norm).collect())
}

fn upsert(inner: &Inner, body: &[u8]) -> http::Response<Bytes> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Item {
        id: String,
        model: String,
        vector: Vec<f32>,
        #[serde(default)]
        metadata: Value,
    }
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Upsert {
        tenant: String,
        collection: String,
        items: Vec<Item>,
    }
    let request: Upsert = match serde_json::from_slice(body) {
        Ok(r) => r,
        Err(e) => return reply(400, json!({"error": format!("invalid JSON body: {e}")})),
    };
    if let Err(response) = check_scope(&request.tenant, &request.collection) {
        return response;
    }
    if request.items.is_empty() || request.items.len() > MAX_ITEMS {
        return bad("items", format!("send 1 to {MAX_ITEMS} items"));
    }
    let mut entries = Vec::with_capacity(request.items.len());
    for (index, item) in request.items.into_iter().enumerate() {
        if item.id.is_empty() || item.id.len() > 256 {
            return bad("items", format!("items[{index}].id must be 1 to 256 bytes"));
        }
        if item.model.is_empty() || item.model.len() > 128 {
            return bad(
                "items",
                format!("items[{index}].model must be 1 to 128 bytes"),
            );
        }
        if item.metadata.to_string().len() > MAX_METADATA_BYTES {
            return bad(
                "items",
                format!("items[{index}].metadata is over {MAX_METADATA_BYTES} bytes"),
            );
        }
        let vector = match unit(item.vector) {
            Ok(v) => v,
            Err(message) => return bad("items", format!("items[{index}].vector: {message}")),
        };
        entries.push(Entry {
            id: item.id,
            model: item.model,
            vector,
            metadata: item.metadata,
        });
    }

    let key = (request.tenant.clone(), request.collection.clone());
    let mut collections = inner.collections.write().expect("vector index lock");
    let collection = collections.entry(key).or_default();
    let new = entries
        .iter()
        .filter(|e| !collection.positions.contains_key(&e.id))
        .count();
    if collection.entries.len() + new > MAX_PER_COLLECTION {
        return reply(
            409,
            json!({"error": format!("a collection holds at most {MAX_PER_COLLECTION} vectors; delete some first")}),
        );
    }
    // Durable first, then visible.
    let written = (|| -> Result<(), redb::Error> {
        let txn = inner.db.begin_write()?;
        {
            let mut table = txn.open_table(TABLE)?;
            for entry in &entries {
                let key = storage_key(&request.tenant, &request.collection, &entry.id);
                table.insert(key.as_str(), encode(entry).as_slice())?;
            }
        }
        txn.commit()?;
        Ok(())
    })();
    if let Err(e) = written {
        tracing::error!(error = %e, "vector index write failed");
        return reply(
            503,
            json!({"error": "the vector index could not store the items"}),
        );
    }
    let count = entries.len();
    for entry in entries {
        collection.insert(entry);
    }
    reply(
        200,
        json!({"upserted": count, "size": collection.entries.len()}),
    )
}

/// A candidate in the top-k heap, ordered so the heap's top is the worst.
struct Scored(f32, usize);
impl PartialEq for Scored {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}
impl Eq for Scored {}
impl PartialOrd for Scored {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scored {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        other.0.total_cmp(&self.0)
    }
}

fn query_nearest(inner: &Inner, body: &[u8]) -> http::Response<Bytes> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Query {
        tenant: String,
        collection: String,
        k: usize,
        id: Option<String>,
        vector: Option<Vec<f32>>,
        model: Option<String>,
    }
    let request: Query = match serde_json::from_slice(body) {
        Ok(r) => r,
        Err(e) => return reply(400, json!({"error": format!("invalid JSON body: {e}")})),
    };
    if let Err(response) = check_scope(&request.tenant, &request.collection) {
        return response;
    }
    if request.k == 0 || request.k > MAX_K {
        return bad("k", format!("k must be 1 to {MAX_K}"));
    }
    let collections = inner.collections.read().expect("vector index lock");
    let collection = collections.get(&(request.tenant.clone(), request.collection.clone()));
    let (vector, model, exclude) = match (request.id, request.vector, request.model) {
        (Some(id), None, None) => {
            let Some(entry) =
                collection.and_then(|c| c.positions.get(&id).map(|&at| &c.entries[at]))
            else {
                return reply(404, json!({"error": format!("no vector with id {id}")}));
            };
            (entry.vector.clone(), entry.model.clone(), Some(id))
        }
        (None, Some(vector), Some(model)) => match unit(vector) {
            Ok(v) => (v, model, None),
            Err(message) => return bad("vector", message),
        },
        _ => return bad("id", "give either `id`, or `vector` with `model`"),
    };
    let Some(collection) = collection else {
        return reply(200, json!({"model": model, "matches": []}));
    };
    let mut heap: BinaryHeap<Scored> = BinaryHeap::with_capacity(request.k + 1);
    for (at, entry) in collection.entries.iter().enumerate() {
        if entry.model != model
            || entry.vector.len() != vector.len()
            || exclude.as_deref() == Some(entry.id.as_str())
        {
            continue;
        }
        let score: f32 = entry.vector.iter().zip(&vector).map(|(a, b)| a * b).sum();
        heap.push(Scored(score, at));
        if heap.len() > request.k {
            heap.pop();
        }
    }
    let mut best = heap.into_vec();
    best.sort_by(|a, b| b.0.total_cmp(&a.0));
    let matches: Vec<Value> = best
        .into_iter()
        .map(|Scored(score, at)| {
            let entry = &collection.entries[at];
            json!({"id": entry.id, "score": score, "metadata": entry.metadata})
        })
        .collect();
    reply(200, json!({"model": model, "matches": matches}))
}

fn delete(inner: &Inner, body: &[u8]) -> http::Response<Bytes> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Delete {
        tenant: String,
        collection: String,
        ids: Vec<String>,
    }
    let request: Delete = match serde_json::from_slice(body) {
        Ok(r) => r,
        Err(e) => return reply(400, json!({"error": format!("invalid JSON body: {e}")})),
    };
    if let Err(response) = check_scope(&request.tenant, &request.collection) {
        return response;
    }
    if request.ids.is_empty() || request.ids.len() > MAX_ITEMS {
        return bad("ids", format!("send 1 to {MAX_ITEMS} ids"));
    }
    let mut collections = inner.collections.write().expect("vector index lock");
    let written = (|| -> Result<(), redb::Error> {
        let txn = inner.db.begin_write()?;
        {
            let mut table = txn.open_table(TABLE)?;
            for id in &request.ids {
                table.remove(storage_key(&request.tenant, &request.collection, id).as_str())?;
            }
        }
        txn.commit()?;
        Ok(())
    })();
    if let Err(e) = written {
        tracing::error!(error = %e, "vector index delete failed");
        return reply(
            503,
            json!({"error": "the vector index could not delete the items"}),
        );
    }
    let mut deleted = 0;
    if let Some(collection) = collections.get_mut(&(request.tenant, request.collection)) {
        for id in &request.ids {
            deleted += usize::from(collection.remove(id));
        }
    }
    reply(200, json!({"deleted": deleted}))
}

fn stats(inner: &Inner, query: &str) -> http::Response<Bytes> {
    let mut tenant = None;
    let mut collection = None;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("tenant", v)) => tenant = Some(v.to_string()),
            Some(("collection", v)) => collection = Some(v.to_string()),
            _ => return bad("query", format!("unknown parameter in `{pair}`")),
        }
    }
    let (Some(tenant), Some(collection)) = (tenant, collection) else {
        return bad("query", "give tenant and collection");
    };
    if let Err(response) = check_scope(&tenant, &collection) {
        return response;
    }
    let collections = inner.collections.read().expect("vector index lock");
    let mut models: HashMap<&str, usize> = HashMap::new();
    if let Some(c) = collections.get(&(tenant, collection)) {
        for entry in &c.entries {
            *models.entry(entry.model.as_str()).or_default() += 1;
        }
    }
    reply(200, json!({"models": models}))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(service: &VectorsService, method: &str, path: &str, body: Value) -> (u16, Value) {
        let request = http::Request::builder()
            .method(method)
            .uri(format!("http://vectors.copycar.internal{path}"))
            .body(Bytes::from(body.to_string()))
            .unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let response = runtime.block_on(service.handle(ServiceRequest {
            caller: "test".into(),
            request_id: "r".into(),
            deadline: std::time::Instant::now() + std::time::Duration::from_secs(5),
            request,
        }));
        let status = response.status().as_u16();
        (status, serde_json::from_slice(response.body()).unwrap())
    }

    #[test]
    fn neighbours_survive_reopen_per_tenant() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vectors.redb");
        let service = VectorsService::open(&path).unwrap();
        let items = json!([
            {"id": "a", "model": "m", "vector": [1.0, 0.0, 0.0], "metadata": {"name": "A"}},
            {"id": "b", "model": "m", "vector": [0.9, 0.1, 0.0]},
            {"id": "c", "model": "m", "vector": [0.0, 1.0, 0.0]},
            {"id": "d", "model": "other", "vector": [1.0, 0.0, 0.0]},
        ]);
        let (status, _) = call(
            &service,
            "POST",
            "/v1/upsert",
            json!({"tenant": "t1", "collection": "accounts", "items": items}),
        );
        assert_eq!(status, 200);
        call(
            &service,
            "POST",
            "/v1/upsert",
            json!({"tenant": "t2", "collection": "accounts", "items": [{"id": "x", "model": "m", "vector": [1.0, 0.0, 0.0]}]}),
        );
        drop(service);

        let service = VectorsService::open(&path).unwrap();
        let (status, answer) = call(
            &service,
            "POST",
            "/v1/query",
            json!({"tenant": "t1", "collection": "accounts", "id": "a", "k": 5}),
        );
        assert_eq!(status, 200, "{answer}");
        let ids: Vec<&str> = answer["matches"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap())
            .collect();
        assert_eq!(
            ids,
            ["b", "c"],
            "same model only, not itself, not another tenant's"
        );

        let (_, answer) = call(
            &service,
            "POST",
            "/v1/delete",
            json!({"tenant": "t1", "collection": "accounts", "ids": ["b", "zz"]}),
        );
        assert_eq!(answer["deleted"], 1);
        let (_, answer) = call(
            &service,
            "POST",
            "/v1/query",
            json!({"tenant": "t1", "collection": "accounts", "vector": [2.0, 0.0, 0.0], "model": "m", "k": 1}),
        );
        assert_eq!(answer["matches"][0]["id"], "a");
        assert!((answer["matches"][0]["score"].as_f64().unwrap() - 1.0).abs() < 1e-6);
        let (_, stats) = call(
            &service,
            "GET",
            "/v1/stats?tenant=t1&collection=accounts",
            json!(null),
        );
        assert_eq!(stats["models"], json!({"m": 2, "other": 1}));
    }

    #[test]
    fn bad_input_gets_a_400_naming_the_field() {
        let dir = tempfile::tempdir().unwrap();
        let service = VectorsService::open(&dir.path().join("v.redb")).unwrap();
        let cases = [
            (
                "/v1/upsert",
                json!({"tenant": "t", "collection": "Bad Name", "items": []}),
                "collection",
            ),
            (
                "/v1/upsert",
                json!({"tenant": "t", "collection": "c", "items": []}),
                "items",
            ),
            (
                "/v1/upsert",
                json!({"tenant": "t", "collection": "c", "items": [{"id": "a", "model": "m", "vector": [0.0, 0.0]}]}),
                "items",
            ),
            (
                "/v1/query",
                json!({"tenant": "t", "collection": "c", "k": 0, "id": "a"}),
                "k",
            ),
            (
                "/v1/query",
                json!({"tenant": "t", "collection": "c", "k": 1}),
                "id",
            ),
            (
                "/v1/delete",
                json!({"tenant": "", "collection": "c", "ids": ["a"]}),
                "tenant",
            ),
        ];
        for (path, body, field) in cases {
            let (status, answer) = call(&service, "POST", path, body.clone());
            assert_eq!(
                (status, answer["field"].as_str()),
                (400, Some(field)),
                "{body} → {answer}"
            );
        }
        let (status, _) = call(
            &service,
            "POST",
            "/v1/query",
            json!({"tenant": "t", "collection": "c", "k": 1, "id": "missing"}),
        );
        assert_eq!(status, 404);
    }
}
