//! Gateway policies applied before a request reaches its component: body
//! limits, token-bucket rate limits per client address, API key and token
//! subject, limits on failed logins per client address, and CORS.
//!
//! Policies are declared in `spin.toml` under `[application.tool.copycar]`,
//! a table Spin itself ignores:
//!
//! ```toml
//! [application.tool.copycar.gateway]
//! cors_origins = ["http://localhost:5173"]
//! signing_key_variable = "token_signing_key"   # default
//!
//! [[application.tool.copycar.gateway.routes]]
//! route = "/api/v1/auth/..."          # Spin route syntax; longest match wins
//! max_body_bytes = 16384
//! rate_per_client = "60/min"          # N/s, N/min, N/hour or N/<k>min
//! rate_per_key = "600/min"
//! rate_per_subject = "300/min"
//! failed_logins_per_client = "10/15min"   # counts 401 responses
//! max_concurrent = 8                  # requests in the component at once
//! ```
//!
//! Rate-limit state lives in this process: with several replicas each one
//! enforces the limits on its own share of the traffic.

use crate::kv::KeyValueStores;
use copycar_identity::records::{ApiKeyRecord, keys};
use copycar_identity::{AccessToken, ApiKey, SigningKey};
use copycar_manifest::{App, Router};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A rate: `capacity` requests, refilled evenly over `period`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    capacity: f64,
    per_second: f64,
}

impl Rate {
    /// Parses `N/s`, `N/min`, `N/hour`, or a multiple such as `N/15min`.
    pub fn parse(text: &str) -> Result<Rate, String> {
        let invalid = || {
            format!(
                "invalid rate `{text}`: write N/s, N/min, N/hour or N/<k>min, for example 60/min"
            )
        };
        let (count, period) = text.trim().split_once('/').ok_or_else(invalid)?;
        let count: u32 = count.trim().parse().map_err(|_| invalid())?;
        let period = period.trim();
        let digits_end = period
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(period.len());
        let multiple: u64 = if digits_end == 0 {
            1
        } else {
            period[..digits_end].parse().map_err(|_| invalid())?
        };
        let unit_secs = match &period[digits_end..] {
            "s" | "sec" | "second" => 1,
            "m" | "min" | "minute" => 60,
            "h" | "hour" => 3600,
            _ => return Err(invalid()),
        };
        let seconds = multiple * unit_secs;
        if count == 0 || seconds == 0 {
            return Err(invalid());
        }
        Ok(Rate {
            capacity: f64::from(count),
            per_second: f64::from(count) / seconds as f64,
        })
    }
}

/// Limits for one route.
#[derive(Debug, Clone, Default)]
pub struct RoutePolicy {
    pub route: String,
    pub max_body_bytes: Option<u64>,
    pub per_client: Option<Rate>,
    pub per_key: Option<Rate>,
    pub per_subject: Option<Rate>,
    pub failed_logins_per_client: Option<Rate>,
    /// Requests on this route that may run at once; more wait for a slot
    /// until their deadline. Bounds memory for costly handlers such as
    /// password hashing.
    pub max_concurrent: Option<u32>,
}

/// The parsed `[application.tool.copycar.gateway]` table.
#[derive(Debug, Clone, Default)]
pub struct GatewayConfig {
    pub cors_origins: Vec<String>,
    pub signing_key_variable: String,
    pub routes: Vec<RoutePolicy>,
}

impl GatewayConfig {
    /// Reads the gateway table of `app`; an absent table means no policies.
    pub fn from_app(app: &App) -> anyhow::Result<Self> {
        let file = app.manifest_path().display().to_string();
        let mut config = GatewayConfig {
            signing_key_variable: "token_signing_key".into(),
            ..Default::default()
        };
        let Some(table) = app.tool("copycar").and_then(|t| t.get("gateway")) else {
            return Ok(config);
        };
        let field = |name: &str, message: String| {
            anyhow::anyhow!(
                "invalid manifest {file}: field `application.tool.copycar.gateway.{name}`: {message}"
            )
        };
        let table = table
            .as_table()
            .ok_or_else(|| field("", "must be a table".into()))?;
        for key in table.keys() {
            if !["cors_origins", "signing_key_variable", "routes"].contains(&key.as_str()) {
                return Err(field(
                    key,
                    "unknown field; expected cors_origins, signing_key_variable or routes".into(),
                ));
            }
        }
        if let Some(origins) = table.get("cors_origins") {
            let origins = origins
                .as_array()
                .ok_or_else(|| field("cors_origins", "must be a list of origins".into()))?;
            for origin in origins {
                let origin = origin
                    .as_str()
                    .ok_or_else(|| field("cors_origins", "must be a list of strings".into()))?;
                let host = origin
                    .strip_prefix("https://")
                    .or_else(|| origin.strip_prefix("http://"));
                let is_origin =
                    host.is_some_and(|h| !h.is_empty() && !h.contains(['/', ' ', '?', '#']));
                if !is_origin && origin != "*" {
                    return Err(field(
                        "cors_origins",
                        format!("`{origin}` is not an origin such as https://app.example.com"),
                    ));
                }
                config.cors_origins.push(origin.to_string());
            }
        }
        if let Some(variable) = table.get("signing_key_variable") {
            config.signing_key_variable = variable
                .as_str()
                .ok_or_else(|| field("signing_key_variable", "must be a variable name".into()))?
                .to_string();
        }
        if let Some(routes) = table.get("routes") {
            let routes = routes
                .as_array()
                .ok_or_else(|| field("routes", "must be an array of tables".into()))?;
            for (index, route) in routes.iter().enumerate() {
                let at = format!("routes[{index}]");
                let route = route
                    .as_table()
                    .ok_or_else(|| field(&at, "must be a table".into()))?;
                config.routes.push(
                    parse_route(route)
                        .map_err(|(key, message)| field(&format!("{at}.{key}"), message))?,
                );
            }
        }
        let routes = config
            .routes
            .iter()
            .map(|r| (r.route.as_str(), r.route.as_str()));
        Router::build(routes)
            .map_err(|dup| field("routes", format!("route `{}` has two policies", dup.route)))?;
        Ok(config)
    }
}

fn parse_route(table: &toml::Table) -> Result<RoutePolicy, (String, String)> {
    let mut policy = RoutePolicy::default();
    for (key, value) in table {
        let rate = |v: &toml::Value| -> Result<Rate, (String, String)> {
            let text = v.as_str().ok_or_else(|| {
                (
                    key.clone(),
                    "must be a string such as \"60/min\"".to_string(),
                )
            })?;
            Rate::parse(text).map_err(|e| (key.clone(), e))
        };
        match key.as_str() {
            "route" => {
                let route = value.as_str().unwrap_or("");
                if !route.starts_with('/') {
                    return Err((key.clone(), "must be a route starting with `/`".into()));
                }
                policy.route = route.to_string();
            }
            "max_body_bytes" => {
                let n = value
                    .as_integer()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| (key.clone(), "must be a positive integer".to_string()))?;
                policy.max_body_bytes = Some(n as u64);
            }
            "rate_per_client" => policy.per_client = Some(rate(value)?),
            "rate_per_key" => policy.per_key = Some(rate(value)?),
            "rate_per_subject" => policy.per_subject = Some(rate(value)?),
            "failed_logins_per_client" => policy.failed_logins_per_client = Some(rate(value)?),
            "max_concurrent" => {
                let n = value
                    .as_integer()
                    .filter(|n| (1..=10_000).contains(n))
                    .ok_or_else(|| {
                        (
                            key.clone(),
                            "must be an integer from 1 to 10000".to_string(),
                        )
                    })?;
                policy.max_concurrent = Some(n as u32);
            }
            _ => return Err((key.clone(), "unknown field".into())),
        }
    }
    if policy.route.is_empty() {
        return Err(("route".into(), "is required".into()));
    }
    Ok(policy)
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl Bucket {
    fn refill(&mut self, rate: Rate, now: Instant) {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate.per_second).min(rate.capacity);
        self.updated = now;
    }

    /// Seconds until one token is available.
    fn wait(&self, rate: Rate) -> u64 {
        ((1.0 - self.tokens) / rate.per_second).ceil().max(1.0) as u64
    }
}

/// The limit a bucket belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Dimension {
    Client(String),
    Key(String),
    Subject(String),
    FailedLogin(String),
}

/// A rejected request: which limit, and when to retry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limited {
    pub reason: &'static str,
    pub retry_after_secs: u64,
}

/// The identity the gateway could verify, used to pick rate-limit buckets
/// and to account language-model usage; components still authenticate
/// every request themselves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    Anonymous,
    /// An API key, by key id.
    ApiKey {
        id: String,
        tenant: String,
    },
    /// A user with a verified access token.
    Subject {
        tenant: String,
        subject: String,
    },
}

impl Principal {
    /// Returns the tenant the credential belongs to.
    pub fn tenant(&self) -> Option<&str> {
        match self {
            Principal::Anonymous => None,
            Principal::ApiKey { tenant, .. } | Principal::Subject { tenant, .. } => Some(tenant),
        }
    }
}

/// Gateway state: the compiled policy table and the token buckets.
pub struct Gateway {
    config: GatewayConfig,
    router: Router,
    signing_key: Option<SigningKey>,
    buckets: Mutex<HashMap<(usize, Dimension), Bucket>>,
    /// One semaphore per policy with `max_concurrent`, by policy index.
    slots: Vec<Option<std::sync::Arc<tokio::sync::Semaphore>>>,
}

/// Buckets kept before idle ones are pruned.
const MAX_BUCKETS: usize = 100_000;

impl Gateway {
    pub fn new(config: GatewayConfig, signing_key: Option<SigningKey>) -> Self {
        // The router maps each route to the index of its policy.
        let names: Vec<String> = (0..config.routes.len()).map(|i| i.to_string()).collect();
        let router = Router::build(
            config
                .routes
                .iter()
                .zip(&names)
                .map(|(r, n)| (r.route.as_str(), n.as_str())),
        )
        .expect("routes were checked for duplicates when the config was read");
        let slots = config
            .routes
            .iter()
            .map(|r| {
                r.max_concurrent
                    .map(|n| std::sync::Arc::new(tokio::sync::Semaphore::new(n as usize)))
            })
            .collect();
        Gateway {
            config,
            router,
            signing_key,
            buckets: Mutex::new(HashMap::new()),
            slots,
        }
    }

    /// Returns the route's concurrency limit, if it has one.
    pub fn slots(
        &self,
        policy: (usize, &RoutePolicy),
    ) -> Option<std::sync::Arc<tokio::sync::Semaphore>> {
        self.slots.get(policy.0).cloned().flatten()
    }

    pub fn cors_origins(&self) -> &[String] {
        &self.config.cors_origins
    }

    /// Finds the policy for a request path, if any.
    pub fn policy(&self, path: &str) -> Option<(usize, &RoutePolicy)> {
        let matched = self.router.route(path)?;
        let index: usize = matched.component.parse().ok()?;
        Some((index, &self.config.routes[index]))
    }

    /// Identifies the caller from `Authorization: Bearer` or `x-api-key`.
    /// Credentials that do not verify count as anonymous.
    pub async fn principal(
        &self,
        headers: &http::HeaderMap,
        kv: &KeyValueStores,
        now_unix: u64,
    ) -> Principal {
        let credential = match headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
        {
            Some(value) => match value.trim().split_once(' ') {
                Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => {
                    token.trim().to_string()
                }
                _ => return Principal::Anonymous,
            },
            None => match headers.get("x-api-key").and_then(|v| v.to_str().ok()) {
                Some(key) => key.trim().to_string(),
                None => return Principal::Anonymous,
            },
        };
        if ApiKey::looks_like(&credential) {
            let Ok(key) = ApiKey::parse(&credential) else {
                return Principal::Anonymous;
            };
            let Some(store) = kv.get("default") else {
                return Principal::Anonymous;
            };
            let Ok(Some(bytes)) = store.get(&keys::api_key(&key.id)).await else {
                return Principal::Anonymous;
            };
            let Ok(record) = serde_json::from_slice::<ApiKeyRecord>(&bytes) else {
                return Principal::Anonymous;
            };
            return match key.verify(&record.secret_hash) {
                Ok(()) => Principal::ApiKey {
                    id: record.id,
                    tenant: record.tenant_id,
                },
                Err(_) => Principal::Anonymous,
            };
        }
        match &self.signing_key {
            Some(signing_key) => match AccessToken::verify(signing_key, &credential, now_unix) {
                Ok(claims) => Principal::Subject {
                    tenant: claims.tid,
                    subject: claims.sub,
                },
                Err(_) => Principal::Anonymous,
            },
            None => Principal::Anonymous,
        }
    }

    /// Takes one token from every bucket that applies, or reports the
    /// first limit that is exhausted (taking nothing in that case).
    pub fn admit(
        &self,
        policy: (usize, &RoutePolicy),
        client: &str,
        principal: &Principal,
    ) -> Result<(), Limited> {
        let (index, policy) = policy;
        let mut wanted: Vec<(Dimension, Rate, &'static str)> = Vec::new();
        if let Some(rate) = policy.failed_logins_per_client {
            wanted.push((
                Dimension::FailedLogin(client.to_string()),
                rate,
                "too many failed logins from this address",
            ));
        }
        if let Some(rate) = policy.per_client {
            wanted.push((
                Dimension::Client(client.to_string()),
                rate,
                "rate limit for this client address exceeded",
            ));
        }
        match principal {
            Principal::ApiKey { id, .. } => {
                if let Some(rate) = policy.per_key {
                    wanted.push((
                        Dimension::Key(id.clone()),
                        rate,
                        "rate limit for this API key exceeded",
                    ));
                }
            }
            Principal::Subject { tenant, subject } => {
                if let Some(rate) = policy.per_subject {
                    wanted.push((
                        Dimension::Subject(format!("{tenant}/{subject}")),
                        rate,
                        "rate limit for this user exceeded",
                    ));
                }
            }
            Principal::Anonymous => {}
        }
        if wanted.is_empty() {
            return Ok(());
        }

        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap();
        if buckets.len() > MAX_BUCKETS {
            prune(&mut buckets, now);
        }
        for (dimension, rate, reason) in &wanted {
            let bucket = buckets.entry((index, dimension.clone())).or_insert(Bucket {
                tokens: rate.capacity,
                updated: now,
            });
            bucket.refill(*rate, now);
            if bucket.tokens < 1.0 {
                return Err(Limited {
                    reason,
                    retry_after_secs: bucket.wait(*rate),
                });
            }
        }
        for (dimension, _, _) in wanted {
            if let Some(bucket) = buckets.get_mut(&(index, dimension)) {
                bucket.tokens -= 1.0;
            }
        }
        Ok(())
    }

    /// Settles the failed-login budget after a response. Admission took one
    /// token from the client's failed-login bucket, so concurrent attempts
    /// cannot all pass before any of them fails. A response other than 401
    /// gives the token back.
    pub fn record_response(&self, policy: (usize, &RoutePolicy), client: &str, status: u16) {
        let (index, policy) = policy;
        let Some(rate) = policy.failed_logins_per_client else {
            return;
        };
        if status == 401 {
            return;
        }
        let mut buckets = self.buckets.lock().unwrap();
        if let Some(bucket) = buckets.get_mut(&(index, Dimension::FailedLogin(client.to_string())))
        {
            bucket.tokens = (bucket.tokens + 1.0).min(rate.capacity);
        }
    }
}

/// Drops buckets idle long enough to be full again; they carry no state.
fn prune(buckets: &mut HashMap<(usize, Dimension), Bucket>, now: Instant) {
    buckets.retain(|_, bucket| {
        now.saturating_duration_since(bucket.updated) < Duration::from_secs(3600)
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(per_client: &str) -> RoutePolicy {
        RoutePolicy {
            route: "/x".into(),
            per_client: Some(Rate::parse(per_client).unwrap()),
            ..Default::default()
        }
    }

    #[test]
    fn rates_parse_units_and_multiples() {
        assert_eq!(
            Rate::parse("60/min").unwrap(),
            Rate {
                capacity: 60.0,
                per_second: 1.0
            }
        );
        assert_eq!(
            Rate::parse("10/s").unwrap(),
            Rate {
                capacity: 10.0,
                per_second: 10.0
            }
        );
        assert_eq!(
            Rate::parse("10/15min").unwrap(),
            Rate {
                capacity: 10.0,
                per_second: 10.0 / 900.0
            }
        );
        assert_eq!(Rate::parse("3600/hour").unwrap().per_second, 1.0);
        for bad in [
            "",
            "10",
            "0/min",
            "x/min",
            "10/fortnight",
            "10/0min",
            "-1/s",
        ] {
            assert!(Rate::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bucket_allows_burst_then_limits() {
        let gateway = Gateway::new(
            GatewayConfig {
                routes: vec![policy("3/hour")],
                ..Default::default()
            },
            None,
        );
        let p = gateway.policy("/x").unwrap();
        for _ in 0..3 {
            assert!(gateway.admit(p, "1.2.3.4", &Principal::Anonymous).is_ok());
        }
        let limited = gateway
            .admit(p, "1.2.3.4", &Principal::Anonymous)
            .unwrap_err();
        assert_eq!(
            limited.reason,
            "rate limit for this client address exceeded"
        );
        assert!(limited.retry_after_secs > 1000, "{limited:?}");
        // Another client has its own bucket.
        assert!(gateway.admit(p, "5.6.7.8", &Principal::Anonymous).is_ok());
    }

    #[test]
    fn failed_logins_block_after_limit() {
        let route = RoutePolicy {
            route: "/login".into(),
            failed_logins_per_client: Some(Rate::parse("2/hour").unwrap()),
            ..Default::default()
        };
        let gateway = Gateway::new(
            GatewayConfig {
                routes: vec![route],
                ..Default::default()
            },
            None,
        );
        let p = gateway.policy("/login").unwrap();
        // A failure keeps the token admission took; a success returns it.
        assert!(gateway.admit(p, "c", &Principal::Anonymous).is_ok());
        gateway.record_response(p, "c", 401);
        assert!(gateway.admit(p, "c", &Principal::Anonymous).is_ok());
        gateway.record_response(p, "c", 200);
        assert!(gateway.admit(p, "c", &Principal::Anonymous).is_ok());
        gateway.record_response(p, "c", 401);
        let limited = gateway.admit(p, "c", &Principal::Anonymous).unwrap_err();
        assert_eq!(limited.reason, "too many failed logins from this address");
        // Concurrent attempts cannot all pass before any of them fails.
        assert!(gateway.admit(p, "d", &Principal::Anonymous).is_ok());
        assert!(gateway.admit(p, "d", &Principal::Anonymous).is_ok());
        assert!(gateway.admit(p, "d", &Principal::Anonymous).is_err());
    }

    #[test]
    fn route_tables_parse_and_reject_bad_values() {
        let table: toml::Table =
            toml::from_str("route = \"/a\"\nmax_concurrent = 4\nrate_per_key = \"5/s\"").unwrap();
        let policy = parse_route(&table).unwrap();
        assert_eq!(policy.max_concurrent, Some(4));
        assert_eq!(policy.per_key, Some(Rate::parse("5/s").unwrap()));
        for bad in [
            "route = \"/a\"\nmax_concurrent = 0",
            "route = \"a\"",
            "max_body_bytes = 5",
            "route = \"/a\"\nspeed = 1",
        ] {
            let table: toml::Table = toml::from_str(bad).unwrap();
            assert!(parse_route(&table).is_err(), "{bad}");
        }
    }

    #[test]
    fn longest_policy_route_wins() {
        let mut login = policy("1/s");
        login.route = "/api/login".into();
        let mut api = policy("100/s");
        api.route = "/api/...".into();
        let gateway = Gateway::new(
            GatewayConfig {
                routes: vec![api, login],
                ..Default::default()
            },
            None,
        );
        assert_eq!(gateway.policy("/api/login").unwrap().1.route, "/api/login");
        assert_eq!(gateway.policy("/api/other").unwrap().1.route, "/api/...");
        assert!(gateway.policy("/elsewhere").is_none());
    }
}
