//! HTTP routing with Spin's rules: a route is either exact (`/health`) or a
//! trailing wildcard (`/api/...`, which also matches `/api` itself). An
//! exact route beats any wildcard, and among wildcards the longest prefix
//! wins. Private components have no route and are reachable only from other
//! components.

use std::collections::HashMap;

/// The route table of one application.
#[derive(Clone, Debug, Default)]
pub struct Router {
    exact: HashMap<String, Entry>,
    /// Sorted by prefix length, longest first.
    wildcards: Vec<(String, Entry)>,
}

#[derive(Clone, Debug)]
struct Entry {
    component: String,
    raw_route: String,
}

/// The outcome of routing one request path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteMatch {
    /// The component that handles the request.
    pub component: String,
    /// The route as declared, for example `/api/...` (Spin's `spin-matched-route`).
    pub matched_route: String,
    /// The route without its wildcard, for example `/api` (Spin's `spin-component-route`).
    pub component_route: String,
    /// The part of the path after `component_route` (Spin's `spin-path-info`).
    pub path_info: String,
}

/// A route string that two triggers both declare.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DuplicateRoute {
    pub route: String,
    pub first: String,
    pub second: String,
}

impl Router {
    /// Builds the table from `(route, component)` pairs. Routes must already
    /// carry the base path and start with `/`.
    pub fn build<'a>(
        routes: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, DuplicateRoute> {
        let mut router = Router::default();
        for (route, component) in routes {
            let entry = Entry {
                component: component.to_string(),
                raw_route: route.to_string(),
            };
            let duplicate = |other: &Entry| DuplicateRoute {
                route: route.to_string(),
                first: other.component.clone(),
                second: component.to_string(),
            };
            match wildcard_prefix(route) {
                Some(prefix) => {
                    if let Some((_, other)) = router.wildcards.iter().find(|(p, _)| p == prefix) {
                        return Err(duplicate(other));
                    }
                    router.wildcards.push((prefix.to_string(), entry));
                }
                None => {
                    let key = trim_trailing_slash(route).to_string();
                    if let Some(other) = router.exact.get(&key) {
                        return Err(duplicate(other));
                    }
                    router.exact.insert(key, entry);
                }
            }
        }
        router
            .wildcards
            .sort_by_key(|(prefix, _)| std::cmp::Reverse(prefix.len()));
        Ok(router)
    }

    /// Finds the component for a request path (without the query string).
    pub fn route(&self, path: &str) -> Option<RouteMatch> {
        let path = if path.is_empty() { "/" } else { path };
        if let Some(entry) = self.exact.get(trim_trailing_slash(path)) {
            return Some(RouteMatch {
                component: entry.component.clone(),
                matched_route: entry.raw_route.clone(),
                component_route: trim_trailing_slash(&entry.raw_route).to_string(),
                path_info: String::new(),
            });
        }
        self.wildcards.iter().find_map(|(prefix, entry)| {
            let rest = path.strip_prefix(prefix.as_str())?;
            if !(rest.is_empty() || rest.starts_with('/')) {
                return None;
            }
            Some(RouteMatch {
                component: entry.component.clone(),
                matched_route: entry.raw_route.clone(),
                component_route: prefix.clone(),
                path_info: rest.to_string(),
            })
        })
    }

    /// Lists every declared route with its component, exact routes first.
    pub fn routes(&self) -> Vec<(&str, &str)> {
        let mut exact: Vec<_> = self
            .exact
            .values()
            .map(|e| (e.raw_route.as_str(), e.component.as_str()))
            .collect();
        exact.sort();
        exact.extend(
            self.wildcards
                .iter()
                .map(|(_, e)| (e.raw_route.as_str(), e.component.as_str())),
        );
        exact
    }
}

/// `/api/...` → `/api`, `/...` → `` (matches everything); `None` for exact routes.
fn wildcard_prefix(route: &str) -> Option<&str> {
    route
        .strip_suffix("/...")
        .or_else(|| (route == "...").then_some(""))
}

/// Spin treats `/a/` and `/a` as the same exact route.
fn trim_trailing_slash(path: &str) -> &str {
    if path.len() > 1 {
        path.trim_end_matches('/')
    } else {
        path
    }
}

/// Joins the application's base path and a trigger's route, as Spin does:
/// `("/", "/health")` → `/health`, `("/v1", "/items/...")` → `/v1/items/...`.
pub(crate) fn join_base(base: &str, route: &str) -> String {
    let base = base.trim_end_matches('/');
    let route = route.trim_start_matches('/');
    format!("{base}/{route}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router(routes: &[(&str, &str)]) -> Router {
        Router::build(routes.iter().copied()).unwrap()
    }

    #[test]
    fn exact_route_matches_only_itself() {
        let r = router(&[("/health", "health")]);
        let m = r.route("/health").unwrap();
        assert_eq!(m.component, "health");
        assert_eq!(m.path_info, "");
        assert_eq!(m.matched_route, "/health");
        assert!(r.route("/health/x").is_none());
        assert!(r.route("/healthz").is_none());
    }

    #[test]
    fn wildcard_matches_prefix_and_itself() {
        let r = router(&[("/api/...", "api")]);
        let m = r.route("/api/users/7").unwrap();
        assert_eq!(m.component, "api");
        assert_eq!(m.component_route, "/api");
        assert_eq!(m.path_info, "/users/7");
        assert_eq!(r.route("/api").unwrap().path_info, "");
        assert!(
            r.route("/apix").is_none(),
            "a prefix must end at a segment boundary"
        );
    }

    #[test]
    fn longest_wildcard_wins() {
        let r = router(&[("/...", "root"), ("/api/...", "api"), ("/api/v1/...", "v1")]);
        assert_eq!(r.route("/api/v1/x").unwrap().component, "v1");
        assert_eq!(r.route("/api/v2/x").unwrap().component, "api");
        assert_eq!(r.route("/other").unwrap().component, "root");
        assert_eq!(r.route("/").unwrap().component, "root");
        assert_eq!(r.route("/other").unwrap().path_info, "/other");
    }

    #[test]
    fn exact_beats_wildcard() {
        let r = router(&[("/api/...", "api"), ("/api/health", "health")]);
        assert_eq!(r.route("/api/health").unwrap().component, "health");
        assert_eq!(r.route("/api/healthy").unwrap().component, "api");
    }

    #[test]
    fn trailing_slash_is_ignored_for_exact_routes() {
        let r = router(&[("/a", "a")]);
        assert_eq!(r.route("/a/").unwrap().component, "a");
    }

    #[test]
    fn duplicate_routes_are_rejected() {
        let err = Router::build([("/a/...", "x"), ("/a/...", "y")]).unwrap_err();
        assert_eq!(err.first, "x");
        assert_eq!(err.second, "y");
        assert!(Router::build([("/a", "x"), ("/a/", "y")]).is_err());
    }

    #[test]
    fn base_path_is_joined() {
        assert_eq!(join_base("/", "/health"), "/health");
        assert_eq!(join_base("/v1/", "/items/..."), "/v1/items/...");
        assert_eq!(join_base("/", "/..."), "/...");
    }
}
