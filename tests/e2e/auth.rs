//! The auth component: accounts, sessions, invitations, API keys, audit,
//! and the attacks a client could try against them.

use crate::support::{Host, TEST_SIGNING_KEY, app_manifest, app_options, client};
use copycar_identity::{AccessToken, Role, SigningKey, now_unix};
use serde_json::{Value, json};

pub const PASSWORD: &str = "correct horse battery staple";

/// One request's status and JSON body.
pub struct Reply {
    pub status: u16,
    pub body: Value,
    pub headers: reqwest::header::HeaderMap,
}

pub async fn call(
    host: &Host,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Reply {
    let url = host.url(&format!("/api/v1/auth{path}"));
    let mut request = client().request(method.parse().unwrap(), url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    Reply {
        status,
        body,
        headers,
    }
}

/// A registered admin and the session from registration.
pub struct Account {
    pub tenant_id: String,
    pub user_id: String,
    pub access: String,
    pub refresh: String,
}

pub async fn register(host: &Host, email: &str, organisation: &str) -> Account {
    let reply = call(
        host,
        "POST",
        "/register",
        None,
        Some(json!({"email": email, "password": PASSWORD, "organisation": organisation})),
    )
    .await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    Account {
        tenant_id: reply.body["tenant"]["id"].as_str().unwrap().to_string(),
        user_id: reply.body["user"]["id"].as_str().unwrap().to_string(),
        access: reply.body["access_token"].as_str().unwrap().to_string(),
        refresh: reply.body["refresh_token"].as_str().unwrap().to_string(),
    }
}

pub fn start() -> Host {
    Host::start_with(&app_manifest(), app_options())
}

#[tokio::test]
async fn register_login_and_me() {
    let host = start();
    let account = register(&host, "Ada@Example.com", "Analytical Engines").await;

    let me = call(&host, "GET", "/me", Some(&account.access), None).await;
    assert_eq!(me.status, 200, "{}", me.body);
    assert_eq!(me.body["user"]["email"], "ada@example.com");
    assert_eq!(me.body["user"]["role"], "admin");
    assert_eq!(me.body["tenant"]["name"], "Analytical Engines");
    assert!(me.body["user"].get("password_hash").is_none());

    let login = call(
        &host,
        "POST",
        "/login",
        None,
        Some(json!({"email": "ada@example.com", "password": PASSWORD})),
    )
    .await;
    assert_eq!(login.status, 200, "{}", login.body);
    assert_eq!(login.body["token_type"], "Bearer");
    assert_eq!(login.body["expires_in"], 3600);
    assert_eq!(login.headers["cache-control"], "no-store");

    // Wrong password and unknown address get the same response.
    let wrong = call(
        &host,
        "POST",
        "/login",
        None,
        Some(json!({"email": "ada@example.com", "password": "not the password"})),
    )
    .await;
    let unknown = call(
        &host,
        "POST",
        "/login",
        None,
        Some(json!({"email": "nobody@example.com", "password": "not the password"})),
    )
    .await;
    assert_eq!(wrong.status, 401);
    assert_eq!(unknown.status, 401);
    assert_eq!(wrong.body["error"], unknown.body["error"]);

    let again = call(
        &host,
        "POST",
        "/register",
        None,
        Some(json!({"email": "ada@example.com", "password": PASSWORD, "organisation": "X"})),
    )
    .await;
    assert_eq!(again.status, 409, "{}", again.body);
}

#[tokio::test]
async fn refresh_rotates_and_reuse_revokes_session() {
    let host = start();
    let account = register(&host, "grace@example.com", "Navy").await;

    let first = call(
        &host,
        "POST",
        "/refresh",
        None,
        Some(json!({"refresh_token": account.refresh})),
    )
    .await;
    assert_eq!(first.status, 200, "{}", first.body);
    let second_refresh = first.body["refresh_token"].as_str().unwrap().to_string();
    let second_access = first.body["access_token"].as_str().unwrap().to_string();
    assert_ne!(second_refresh, account.refresh);
    assert_eq!(
        call(&host, "GET", "/me", Some(&second_access), None)
            .await
            .status,
        200
    );

    // Presenting the used token again revokes the whole family.
    let reuse = call(
        &host,
        "POST",
        "/refresh",
        None,
        Some(json!({"refresh_token": account.refresh})),
    )
    .await;
    assert_eq!(reuse.status, 401);
    assert!(
        reuse.body["error"]
            .as_str()
            .unwrap()
            .contains("reuse detected"),
        "{}",
        reuse.body
    );
    let after = call(
        &host,
        "POST",
        "/refresh",
        None,
        Some(json!({"refresh_token": second_refresh})),
    )
    .await;
    assert_eq!(after.status, 401, "{}", after.body);
    let me = call(&host, "GET", "/me", Some(&second_access), None).await;
    assert_eq!(
        me.status, 401,
        "access tokens of a revoked session must stop working"
    );
}

#[tokio::test]
async fn logout_revokes_the_session() {
    let host = start();
    let account = register(&host, "alan@example.com", "Bletchley").await;
    let logout = call(
        &host,
        "POST",
        "/logout",
        None,
        Some(json!({"refresh_token": account.refresh})),
    )
    .await;
    assert_eq!(logout.status, 204);
    assert_eq!(
        call(&host, "GET", "/me", Some(&account.access), None)
            .await
            .status,
        401
    );
    let refresh = call(
        &host,
        "POST",
        "/refresh",
        None,
        Some(json!({"refresh_token": account.refresh})),
    )
    .await;
    assert_eq!(refresh.status, 401);
    // Logging out twice is harmless.
    let again = call(
        &host,
        "POST",
        "/logout",
        None,
        Some(json!({"refresh_token": account.refresh})),
    )
    .await;
    assert_eq!(again.status, 204);
}

#[tokio::test]
async fn invited_member_joins_with_member_role() {
    let host = start();
    let admin = register(&host, "admin@acme.example", "Acme").await;
    let invite = call(
        &host,
        "POST",
        "/invites",
        Some(&admin.access),
        Some(json!({"email": "bob@acme.example"})),
    )
    .await;
    assert_eq!(invite.status, 201, "{}", invite.body);
    let token = invite.body["invite_token"].as_str().unwrap().to_string();

    let accept = call(
        &host,
        "POST",
        "/accept-invite",
        None,
        Some(json!({"invite_token": token, "password": PASSWORD})),
    )
    .await;
    assert_eq!(accept.status, 201, "{}", accept.body);
    assert_eq!(accept.body["user"]["role"], "member");
    let member = accept.body["access_token"].as_str().unwrap().to_string();

    let me = call(&host, "GET", "/me", Some(&member), None).await;
    assert_eq!(me.body["tenant"]["id"], admin.tenant_id);
    let members = call(&host, "GET", "/members", Some(&member), None).await;
    assert_eq!(members.body["members"].as_array().unwrap().len(), 2);

    // Members cannot manage keys or invite.
    let key = call(
        &host,
        "POST",
        "/api-keys",
        Some(&member),
        Some(json!({"name": "ci"})),
    )
    .await;
    assert_eq!(key.status, 403, "{}", key.body);
    let invite = call(
        &host,
        "POST",
        "/invites",
        Some(&member),
        Some(json!({"email": "eve@acme.example"})),
    )
    .await;
    assert_eq!(invite.status, 403);

    // An invitation works once.
    let reuse = call(
        &host,
        "POST",
        "/accept-invite",
        None,
        Some(json!({"invite_token": token, "password": PASSWORD})),
    )
    .await;
    assert_eq!(reuse.status, 404, "{}", reuse.body);
}

#[tokio::test]
async fn api_keys_show_secret_once_and_revoke() {
    let host = start();
    let admin = register(&host, "ops@acme.example", "Acme").await;
    let created = call(
        &host,
        "POST",
        "/api-keys",
        Some(&admin.access),
        Some(json!({"name": "crm sync", "role": "member"})),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let key = created.body["key"].as_str().unwrap().to_string();
    let id = created.body["id"].as_str().unwrap().to_string();
    assert!(key.starts_with("cck_"));

    let listed = call(&host, "GET", "/api-keys", Some(&admin.access), None).await;
    let keys = listed.body["api_keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["id"], id);
    let listed_text = listed.body.to_string();
    let secret = key.rsplit('_').next().unwrap();
    assert!(
        !listed_text.contains(secret),
        "the secret must never be listed"
    );
    assert!(!listed_text.contains("hash"), "{listed_text}");

    let me = call(&host, "GET", "/me", Some(&key), None).await;
    assert_eq!(me.status, 200, "{}", me.body);
    assert_eq!(me.body["api_key"]["name"], "crm sync");
    let me = client()
        .get(host.url("/api/v1/auth/me"))
        .header("x-api-key", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);

    // A key cannot create keys, even with the admin role.
    let by_key = call(
        &host,
        "POST",
        "/api-keys",
        Some(&key),
        Some(json!({"name": "x"})),
    )
    .await;
    assert_eq!(by_key.status, 403);

    let deleted = call(
        &host,
        "DELETE",
        &format!("/api-keys/{id}"),
        Some(&admin.access),
        None,
    )
    .await;
    assert_eq!(deleted.status, 204);
    assert_eq!(
        call(&host, "GET", "/me", Some(&key), None).await.status,
        401
    );
    let listed = call(&host, "GET", "/api-keys", Some(&admin.access), None).await;
    assert!(listed.body["api_keys"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn forged_and_expired_tokens_are_rejected() {
    let host = start();
    let victim = register(&host, "victim@a.example", "A").await;
    let attacker = register(&host, "attacker@b.example", "B").await;
    let key = SigningKey::new(TEST_SIGNING_KEY).unwrap();
    let other_key = SigningKey::new("some-other-signing-key-of-32-bytes-or-more").unwrap();
    let now = now_unix();

    let expired = AccessToken::issue(
        &key,
        &victim.user_id,
        &victim.tenant_id,
        Role::Admin,
        None,
        now - 7200,
        60,
    )
    .unwrap()
    .0;
    let foreign = AccessToken::issue(
        &other_key,
        &victim.user_id,
        &victim.tenant_id,
        Role::Admin,
        None,
        now,
        600,
    )
    .unwrap()
    .0;
    // The attacker's own user id with the victim's tenant id: no such user there.
    let swapped = AccessToken::issue(
        &key,
        &attacker.user_id,
        &victim.tenant_id,
        Role::Admin,
        None,
        now,
        600,
    )
    .unwrap()
    .0;
    let parts: Vec<&str> = victim.access.split('.').collect();
    let none_header = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0"; // {"alg":"none","typ":"JWT"}
    let alg_none = format!("{none_header}.{}.", parts[1]);
    let tampered = format!("{}.{}x.{}", parts[0], parts[1], parts[2]);

    for (name, token, needle) in [
        ("expired", expired.as_str(), "expired"),
        ("other key", foreign.as_str(), "signature"),
        ("swapped tenant", swapped.as_str(), "no longer exists"),
        ("alg none", alg_none.as_str(), "algorithm"),
        ("tampered", tampered.as_str(), "token"),
        ("garbage", "not-a-token", "malformed"),
        (
            "fake key",
            "cck_0123456789abcdef_AAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            "invalid API key",
        ),
    ] {
        let reply = call(&host, "GET", "/me", Some(token), None).await;
        assert_eq!(reply.status, 401, "{name}: {}", reply.body);
        assert!(
            reply.body["error"].as_str().unwrap().contains(needle),
            "{name}: {}",
            reply.body
        );
        assert_eq!(reply.headers["www-authenticate"], "Bearer", "{name}");
    }
    let missing = call(&host, "GET", "/me", None, None).await;
    assert_eq!(missing.status, 401);
    assert!(
        missing.body["error"]
            .as_str()
            .unwrap()
            .contains("missing credentials")
    );
}

#[tokio::test]
async fn bad_input_gets_clear_errors() {
    let host = start();
    let cases: Vec<(Value, u16, &str)> = vec![
        (
            json!({"email": "not-an-email", "password": PASSWORD, "organisation": "X"}),
            400,
            "email",
        ),
        (
            json!({"email": "a@b.example", "password": "short", "organisation": "X"}),
            400,
            "password",
        ),
        (
            json!({"email": "a@b.example", "password": "x".repeat(200), "organisation": "X"}),
            400,
            "password",
        ),
        (
            json!({"email": "a@b.example", "password": PASSWORD, "organisation": ""}),
            400,
            "organisation",
        ),
        (
            json!({"email": "a@b.example", "password": PASSWORD, "organisation": "X", "tenant_id": "t"}),
            400,
            "",
        ),
        (json!({"email": "a@b.example"}), 400, ""),
    ];
    for (body, status, field) in cases {
        let reply = call(&host, "POST", "/register", None, Some(body.clone())).await;
        assert_eq!(reply.status, status, "{body}: {}", reply.body);
        if !field.is_empty() {
            assert_eq!(reply.body["field"], field, "{body}: {}", reply.body);
        }
        assert!(reply.body["request_id"].is_string());
    }

    let not_json = client()
        .post(host.url("/api/v1/auth/register"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status(), 400);
    let form = client()
        .post(host.url("/api/v1/auth/login"))
        .body("email=a")
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), 415);
    let method = call(&host, "GET", "/login", None, None).await;
    assert_eq!(method.status, 405);
    let unknown = call(&host, "GET", "/nothing-here", None, None).await;
    assert_eq!(unknown.status, 404);
    let limit = call(&host, "GET", "/audit?limit=abc", None, None).await;
    assert_eq!(limit.status, 401, "authentication comes before parameters");
}

#[tokio::test]
async fn repeated_failed_logins_lock_the_account() {
    let host = start();
    register(&host, "locked@example.com", "L").await;
    for attempt in 0..5 {
        let reply = call(
            &host,
            "POST",
            "/login",
            None,
            Some(json!({"email": "locked@example.com", "password": "wrong password!"})),
        )
        .await;
        assert_eq!(reply.status, 401, "attempt {attempt}");
    }
    let blocked = call(
        &host,
        "POST",
        "/login",
        None,
        Some(json!({"email": "locked@example.com", "password": PASSWORD})),
    )
    .await;
    assert_eq!(blocked.status, 429, "{}", blocked.body);
    let retry_after: u64 = blocked.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry_after > 0, "{retry_after}");
    assert!(retry_after <= 900, "{retry_after}");
}

#[tokio::test]
async fn audit_records_security_events() {
    let host = start();
    let admin = register(&host, "audit@example.com", "Audit Co").await;
    call(
        &host,
        "POST",
        "/login",
        None,
        Some(json!({"email": "audit@example.com", "password": "wrong password!"})),
    )
    .await;
    call(
        &host,
        "POST",
        "/login",
        None,
        Some(json!({"email": "audit@example.com", "password": PASSWORD})),
    )
    .await;
    let created = call(
        &host,
        "POST",
        "/api-keys",
        Some(&admin.access),
        Some(json!({"name": "k"})),
    )
    .await;
    let id = created.body["id"].as_str().unwrap().to_string();
    call(
        &host,
        "DELETE",
        &format!("/api-keys/{id}"),
        Some(&admin.access),
        None,
    )
    .await;

    let audit = call(&host, "GET", "/audit", Some(&admin.access), None).await;
    assert_eq!(audit.status, 200, "{}", audit.body);
    let actions: Vec<&str> = audit.body["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    for expected in [
        "register",
        "login_failed",
        "login",
        "api_key_created",
        "api_key_revoked",
    ] {
        assert!(
            actions.contains(&expected),
            "{expected} missing from {actions:?}"
        );
    }
    let record = &audit.body["records"][0];
    assert_eq!(record["tenant_id"], admin.tenant_id);
    assert!(record["request_id"].is_string());
}

#[tokio::test]
async fn concurrent_wrong_passwords_are_capped() {
    let host = start();
    register(&host, "target@example.com", "T").await;
    let attempts = (0..20).map(|_| {
        call(
            &host,
            "POST",
            "/login",
            None,
            Some(json!({"email": "target@example.com", "password": "wrong password!"})),
        )
    });
    let replies = futures_util::future::join_all(attempts).await;
    let checked = replies.iter().filter(|r| r.status == 401).count();
    assert!(
        checked <= 5,
        "{checked} passwords were checked, the limit is 5"
    );
    let correct = call(
        &host,
        "POST",
        "/login",
        None,
        Some(json!({"email": "target@example.com", "password": PASSWORD})),
    )
    .await;
    assert_eq!(correct.status, 429, "{}", correct.body);
}

#[tokio::test]
async fn lockout_is_per_client_address() {
    let host = start();
    register(&host, "shared@example.com", "S").await;
    for _ in 0..5 {
        call(
            &host,
            "POST",
            "/login",
            None,
            Some(json!({"email": "shared@example.com", "password": "wrong password!"})),
        )
        .await;
    }
    let locked = call(
        &host,
        "POST",
        "/login",
        None,
        Some(json!({"email": "shared@example.com", "password": PASSWORD})),
    )
    .await;
    assert_eq!(locked.status, 429);
    // The owner, logging in from another address, is not locked out.
    let other = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .build()
        .unwrap();
    let reply = other
        .post(host.url("/api/v1/auth/login"))
        .json(&json!({"email": "shared@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200);
}

#[tokio::test]
async fn concurrent_refresh_with_one_token_succeeds_once() {
    let host = start();
    let mut refresh = register(&host, "racer@example.com", "R").await.refresh;
    for round in 0..8 {
        let body = json!({"refresh_token": refresh});
        let (a, b) = tokio::join!(
            call(&host, "POST", "/refresh", None, Some(body.clone())),
            call(&host, "POST", "/refresh", None, Some(body))
        );
        let wins = [a.status, b.status].iter().filter(|s| **s == 200).count();
        assert!(
            wins <= 1,
            "round {round}: both exchanges of one token succeeded"
        );
        if wins == 0 {
            break;
        }
        // Reuse was detected, so the session is gone: log in again.
        let login = call(
            &host,
            "POST",
            "/login",
            None,
            Some(json!({"email": "racer@example.com", "password": PASSWORD})),
        )
        .await;
        refresh = login.body["refresh_token"].as_str().unwrap().to_string();
    }
}

#[tokio::test]
async fn concurrent_signups_of_one_address_create_one_account() {
    let host = start();
    let attempts = (0..5).map(|i| {
        call(&host, "POST", "/register", None, Some(json!({"email": "dup@example.com", "password": PASSWORD, "organisation": format!("Org {i}")})))
    });
    let replies = futures_util::future::join_all(attempts).await;
    let created = replies.iter().filter(|r| r.status == 201).count();
    assert_eq!(
        created,
        1,
        "{:?}",
        replies.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    assert!(replies.iter().all(|r| r.status == 201 || r.status == 409));
}

#[tokio::test]
async fn concurrent_accepts_of_one_invitation_create_one_member() {
    let host = start();
    let admin = register(&host, "boss@inv.example", "Inv").await;
    let invite = call(
        &host,
        "POST",
        "/invites",
        Some(&admin.access),
        Some(json!({"email": "new@inv.example"})),
    )
    .await;
    let token = invite.body["invite_token"].as_str().unwrap().to_string();
    let attempts = (0..4).map(|_| {
        call(
            &host,
            "POST",
            "/accept-invite",
            None,
            Some(json!({"invite_token": token, "password": PASSWORD})),
        )
    });
    let replies = futures_util::future::join_all(attempts).await;
    assert_eq!(replies.iter().filter(|r| r.status == 201).count(), 1);
    let members = call(&host, "GET", "/members", Some(&admin.access), None).await;
    let count = members.body["members"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["email"] == "new@inv.example")
        .count();
    assert_eq!(count, 1);
}

#[tokio::test]
async fn invites_do_not_reveal_existing_accounts() {
    let host = start();
    let a = register(&host, "a@probe.example", "A").await;
    register(&host, "victim@other.example", "Other").await;
    let existing = call(
        &host,
        "POST",
        "/invites",
        Some(&a.access),
        Some(json!({"email": "victim@other.example"})),
    )
    .await;
    let fresh = call(
        &host,
        "POST",
        "/invites",
        Some(&a.access),
        Some(json!({"email": "nobody@other.example"})),
    )
    .await;
    assert_eq!(existing.status, fresh.status);
    assert_eq!(existing.status, 201);
    // Accepting the first reports the conflict to the invitee.
    let token = existing.body["invite_token"].as_str().unwrap();
    let accept = call(
        &host,
        "POST",
        "/accept-invite",
        None,
        Some(json!({"invite_token": token, "password": PASSWORD})),
    )
    .await;
    assert_eq!(accept.status, 409, "{}", accept.body);
}

#[tokio::test]
async fn credential_headers_are_read_strictly() {
    let host = start();
    let account = register(&host, "strict@example.com", "S").await;
    // A JWT is not an API key.
    let jwt_as_key = client()
        .get(host.url("/api/v1/auth/me"))
        .header("x-api-key", &account.access)
        .send()
        .await
        .unwrap();
    assert_eq!(jwt_as_key.status(), 401);
    let lookalike = client()
        .post(host.url("/api/v1/auth/login"))
        .header("content-type", "application/jsonx")
        .body(json!({"email": "strict@example.com", "password": PASSWORD}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(lookalike.status(), 415);
    // Unicode case is folded, so these are one address.
    register(&host, "ÄDA@umlaut.example", "U").await;
    let again = call(
        &host,
        "POST",
        "/register",
        None,
        Some(json!({"email": "äda@umlaut.example", "password": PASSWORD, "organisation": "U2"})),
    )
    .await;
    assert_eq!(again.status, 409, "{}", again.body);
}
