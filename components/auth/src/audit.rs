//! Audit records of logins, failed logins, key creation and revocation.

use copycar_guest::http::{ApiError, header};
use copycar_guest::store::Kv;
use copycar_identity::records::{AuditRecord, keys};
use copycar_identity::{now_unix, random_id};
use spin_sdk::http::Request;

/// Stores one audit record. A failure to store is logged, never fatal to
/// the request it describes.
pub fn record(
    kv: &Kv,
    request: &Request,
    tenant_id: &str,
    action: &str,
    actor: Option<&str>,
    subject: Option<&str>,
) {
    let result = (|| -> Result<(), ApiError> {
        let id = random_id().map_err(ApiError::storage)?;
        let at = now_unix();
        let record = AuditRecord {
            id: id.clone(),
            tenant_id: tenant_id.to_string(),
            at,
            action: action.to_string(),
            actor: actor.map(str::to_string),
            subject: subject.map(str::to_string),
            client_addr: header(request, "spin-client-addr").map(str::to_string),
            request_id: header(request, "x-request-id").map(str::to_string),
        };
        kv.put(&keys::audit(tenant_id, at, &id), &record)
    })();
    match result {
        Ok(()) => eprintln!(
            "auth: audit action={action} tenant={tenant_id} actor={}",
            actor.unwrap_or("-")
        ),
        Err(e) => eprintln!(
            "auth: failed to store audit record action={action} tenant={tenant_id}: {}",
            e.message
        ),
    }
}

/// Returns the tenant's newest `limit` audit records, newest first.
pub fn list(kv: &Kv, tenant_id: &str, limit: usize) -> Result<Vec<AuditRecord>, ApiError> {
    let keys = kv.keys_with_prefix(&keys::audit_prefix(tenant_id))?;
    let mut records = Vec::new();
    for key in keys.iter().rev().take(limit) {
        if let Some(record) = kv.get::<AuditRecord>(key)? {
            records.push(record);
        }
    }
    Ok(records)
}
