//! Tenant isolation: every endpoint that touches stored objects, tried with
//! another tenant's credentials and identifiers, must return 401, 403 or
//! 404 and leave the other tenant's data as it was.

use crate::auth::{call, register, start};
use serde_json::json;

#[tokio::test]
async fn tenants_cannot_reach_each_others_objects() {
    let host = start();
    let a = register(&host, "owner@a.example", "Tenant A").await;
    let b = register(&host, "owner@b.example", "Tenant B").await;
    let a_key = call(
        &host,
        "POST",
        "/api-keys",
        Some(&a.access),
        Some(json!({"name": "a-key"})),
    )
    .await;
    let a_key_id = a_key.body["id"].as_str().unwrap().to_string();
    let a_key_secret = a_key.body["key"].as_str().unwrap().to_string();
    call(
        &host,
        "POST",
        "/invites",
        Some(&a.access),
        Some(json!({"email": "new@a.example"})),
    )
    .await;

    // Reads with B's credentials see only B.
    let me = call(&host, "GET", "/me", Some(&b.access), None).await;
    assert_eq!(me.body["tenant"]["id"], b.tenant_id);
    let members = call(&host, "GET", "/members", Some(&b.access), None).await;
    let emails: Vec<&str> = members.body["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["email"].as_str().unwrap())
        .collect();
    assert_eq!(emails, ["owner@b.example"]);
    let keys = call(&host, "GET", "/api-keys", Some(&b.access), None).await;
    assert!(
        keys.body["api_keys"].as_array().unwrap().is_empty(),
        "{}",
        keys.body
    );
    let audit = call(&host, "GET", "/audit", Some(&b.access), None).await;
    for record in audit.body["records"].as_array().unwrap() {
        assert_eq!(record["tenant_id"], b.tenant_id, "{record}");
    }

    // Writes on A's objects with B's credentials find nothing.
    let delete = call(
        &host,
        "DELETE",
        &format!("/api-keys/{a_key_id}"),
        Some(&b.access),
        None,
    )
    .await;
    assert_eq!(delete.status, 404, "{}", delete.body);
    assert_eq!(
        call(&host, "GET", "/me", Some(&a_key_secret), None)
            .await
            .status,
        200,
        "A's key must survive"
    );

    // A tenant id in the body is not a parameter anywhere.
    for (path, body) in [
        ("/api-keys", json!({"name": "x", "tenant_id": a.tenant_id})),
        (
            "/invites",
            json!({"email": "x@b.example", "tenant_id": a.tenant_id}),
        ),
    ] {
        let reply = call(&host, "POST", path, Some(&b.access), Some(body)).await;
        assert_eq!(reply.status, 400, "{path}: {}", reply.body);
    }

    // A's refresh token cannot be used to log B out or the other way round
    // without holding it; B's logout leaves A's session alive.
    let logout = call(
        &host,
        "POST",
        "/logout",
        None,
        Some(json!({"refresh_token": b.refresh})),
    )
    .await;
    assert_eq!(logout.status, 204);
    assert_eq!(
        call(&host, "GET", "/me", Some(&a.access), None)
            .await
            .status,
        200
    );

    // B's API key (admin role) cannot act on A either.
    let b2 = register(&host, "second@b.example", "Tenant B2").await;
    let b_key = call(
        &host,
        "POST",
        "/api-keys",
        Some(&b2.access),
        Some(json!({"name": "b-admin", "role": "admin"})),
    )
    .await;
    let b_key_secret = b_key.body["key"].as_str().unwrap().to_string();
    let delete = call(
        &host,
        "DELETE",
        &format!("/api-keys/{a_key_id}"),
        Some(&b_key_secret),
        None,
    )
    .await;
    assert_eq!(delete.status, 404, "{}", delete.body);
    let keys = call(&host, "GET", "/api-keys", Some(&b_key_secret), None).await;
    let ids: Vec<&str> = keys.body["api_keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["id"].as_str().unwrap())
        .collect();
    assert!(!ids.contains(&a_key_id.as_str()));
}
