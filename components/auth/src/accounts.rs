//! Registration, login and accepting invitations.

use crate::{audit, password, sessions, validate};
use copycar_guest::http::header;
use copycar_guest::http::{ApiError, ApiResult, json_body, json_response};
use copycar_guest::locks;
use copycar_guest::store::Kv;
use copycar_identity::records::{EmailIndex, InviteRecord, TenantRecord, UserRecord, keys};
use copycar_identity::{Role, now_unix, random_id};
use serde::Deserialize;
use serde_json::json;
use spin_sdk::http::Request;

/// Failed logins allowed per e-mail address and client address within the
/// window before further attempts from that client get 429. Counting per
/// client keeps one attacker from locking everyone else out of an account.
const MAX_FAILED_LOGINS: u64 = 5;
const FAILED_LOGIN_WINDOW_SECS: u64 = 15 * 60;
/// How long a sign-up claim on an address lasts; longer than a sign-up takes.
const SIGNUP_CLAIM_SECS: u64 = 60;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RegisterBody {
    email: String,
    password: String,
    organisation: String,
}

/// `POST /register`: creates a tenant whose first user is its admin.
pub async fn register(request: &Request, kv: &Kv) -> ApiResult {
    let body: RegisterBody = json_body(request)?;
    let email = validate::email(&body.email)?;
    validate::password(&body.password)?;
    let organisation = validate::name("organisation", &body.organisation)?;
    // The claim makes concurrent sign-ups of one address take turns. Once it
    // expires, the stored address index decides.
    if !locks::claim(&format!("signup:{email}"), SIGNUP_CLAIM_SECS).await? {
        return Err(ApiError::new(
            409,
            "an account with this e-mail address already exists",
        ));
    }
    if kv.exists(&keys::email(&email))? {
        return Err(ApiError::new(
            409,
            "an account with this e-mail address already exists",
        ));
    }

    let now = now_unix();
    let tenant = TenantRecord {
        id: random_id().map_err(ApiError::storage)?,
        name: organisation,
        created_at: now,
    };
    let user = create_user(kv, &tenant.id, &email, &body.password, Role::Admin)?;
    kv.put(&keys::tenant(&tenant.id), &tenant)?;
    audit::record(kv, request, &tenant.id, "register", Some(&user.id), None);

    let mut response = sessions::start_session(kv, &tenant.id, &user.id, Role::Admin)?;
    response["tenant"] = json!({"id": tenant.id, "name": tenant.name});
    response["user"] = user_view(&user);
    Ok(json_response(201, response))
}

fn create_user(
    kv: &Kv,
    tenant_id: &str,
    email: &str,
    password_text: &str,
    role: Role,
) -> Result<UserRecord, ApiError> {
    let user = UserRecord {
        id: random_id().map_err(ApiError::storage)?,
        tenant_id: tenant_id.to_string(),
        email: email.to_string(),
        password_hash: password::hash(password_text)?,
        role,
        created_at: now_unix(),
    };
    kv.put(&keys::user(tenant_id, &user.id), &user)?;
    kv.put(
        &keys::email(email),
        &EmailIndex {
            tenant_id: tenant_id.to_string(),
            user_id: user.id.clone(),
        },
    )?;
    Ok(user)
}

pub fn user_view(user: &UserRecord) -> serde_json::Value {
    json!({"id": user.id, "email": user.email, "role": user.role, "created_at": user.created_at})
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginBody {
    email: String,
    password: String,
}

/// `POST /login`: checks the password and starts a session. Unknown
/// addresses and wrong passwords get the same response, in the same time.
pub async fn login(request: &Request, kv: &Kv) -> ApiResult {
    let body: LoginBody = json_body(request)?;
    let email = validate::email(&body.email)?;
    if body.password.is_empty() || body.password.chars().count() > 128 {
        return Err(ApiError::bad_field(
            "password",
            "password must be 1 to 128 characters",
        ));
    }

    // Take the attempt from the budget before checking the password, so
    // concurrent guesses cannot all run before any of them is counted.
    let client = header(request, "spin-client-addr")
        .and_then(|a| a.parse::<std::net::SocketAddr>().ok())
        .map_or_else(|| "unknown".to_string(), |a| a.ip().to_string());
    let failures_key = format!("failed-login:{email}:{client}");
    let attempt = locks::count(
        &failures_key,
        FAILED_LOGIN_WINDOW_SECS,
        MAX_FAILED_LOGINS,
        true,
    )
    .await?;
    if attempt.limited {
        let mut error = ApiError::new(
            429,
            "too many failed logins for this account; try again later",
        );
        error.retry_after = Some(attempt.retry_after_secs);
        return Err(error);
    }

    let user = match kv.get::<EmailIndex>(&keys::email(&email))? {
        Some(index) => kv.get::<UserRecord>(&keys::user(&index.tenant_id, &index.user_id))?,
        None => None,
    };
    let verified = match &user {
        Some(user) => password::verify(&body.password, &user.password_hash),
        None => {
            password::spend_verification_time(&body.password);
            false
        }
    };
    let Some(user) = user.filter(|_| verified) else {
        match kv.get::<EmailIndex>(&keys::email(&email))? {
            Some(index) => audit::record(
                kv,
                request,
                &index.tenant_id,
                "login_failed",
                Some(&index.user_id),
                None,
            ),
            None => eprintln!("auth: failed login for unknown address"),
        }
        return Err(ApiError::unauthorized("invalid e-mail address or password"));
    };

    locks::reset(&failures_key).await?;
    audit::record(kv, request, &user.tenant_id, "login", Some(&user.id), None);
    let mut response = sessions::start_session(kv, &user.tenant_id, &user.id, user.role)?;
    response["user"] = user_view(&user);
    Ok(json_response(200, response))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AcceptBody {
    invite_token: String,
    password: String,
}

/// `POST /accept-invite`: creates the invited member and starts a session.
pub async fn accept_invite(request: &Request, kv: &Kv) -> ApiResult {
    let body: AcceptBody = json_body(request)?;
    validate::password(&body.password)?;
    if body.invite_token.is_empty() || body.invite_token.len() > 128 {
        return Err(ApiError::bad_field("invite_token", "invalid invitation"));
    }
    let invite_key = keys::invite(&crate::members::hash_invite(&body.invite_token));
    let invite: InviteRecord = kv
        .get(&invite_key)?
        .ok_or_else(|| ApiError::new(404, "invitation not found or already used"))?;
    if invite.expires_at < now_unix() {
        kv.delete(&invite_key)?;
        return Err(ApiError::new(410, "invitation expired; ask for a new one"));
    }
    // One invitation creates one member, however many accept at once.
    if !locks::claim(
        &format!("invite:{invite_key}"),
        invite.expires_at.saturating_sub(now_unix()).max(1),
    )
    .await?
    {
        return Err(ApiError::new(404, "invitation not found or already used"));
    }
    if !locks::claim(&format!("signup:{}", invite.email), SIGNUP_CLAIM_SECS).await?
        || kv.exists(&keys::email(&invite.email))?
    {
        return Err(ApiError::new(
            409,
            "an account with this e-mail address already exists",
        ));
    }
    if !kv.exists(&keys::tenant(&invite.tenant_id))? {
        return Err(ApiError::new(404, "invitation not found or already used"));
    }
    kv.delete(&invite_key)?;
    let user = create_user(
        kv,
        &invite.tenant_id,
        &invite.email,
        &body.password,
        invite.role,
    )?;
    audit::record(
        kv,
        request,
        &invite.tenant_id,
        "invite_accepted",
        Some(&user.id),
        Some(&invite.invited_by),
    );

    let mut response = sessions::start_session(kv, &user.tenant_id, &user.id, user.role)?;
    response["user"] = user_view(&user);
    Ok(json_response(201, response))
}
