//! Audit records of logins, failed logins, key creation and revocation.
//!
//! Each record is stored in the key-value store for `GET /audit`. Once the
//! request's response is ready, it is also published to the event log as an
//! `audit` event whose event id is the record's id, so the streaming
//! pipelines and the history include it.

use copycar_guest::http::{ApiError, header};
use copycar_guest::service::{Service, encode_query_value};
use copycar_guest::store::Kv;
use copycar_identity::records::{AuditRecord, keys};
use copycar_identity::{now_unix, random_id};
use serde_json::json;
use spin_sdk::http::{Method, Request};
use std::cell::RefCell;

const EVENT_LOG: Service = Service {
    url_variable: "events_url",
    default_url: "http://events.copycar.internal",
    name: "event log",
};

thread_local! {
    /// Records of the current request, waiting to be published.
    static PENDING: RefCell<Vec<AuditRecord>> = const { RefCell::new(Vec::new()) };
}

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
        kv.put(&keys::audit(tenant_id, at, &id), &record)?;
        PENDING.with(|pending| pending.borrow_mut().push(record));
        Ok(())
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

/// Publishes the request's audit records to the event log, one batch per
/// tenant. A failure is logged: the records stay in the key-value store.
pub async fn publish() {
    let records = PENDING.with(|pending| std::mem::take(&mut *pending.borrow_mut()));
    let mut tenants: Vec<&str> = records.iter().map(|r| r.tenant_id.as_str()).collect();
    tenants.sort_unstable();
    tenants.dedup();
    for tenant in tenants {
        let events: Vec<_> = records
            .iter()
            .filter(|r| r.tenant_id == tenant)
            .map(|r| {
                json!({
                    "type": "audit",
                    "event_id": format!("audit-{}", r.id),
                    "occurred_at": r.at * 1000,
                    "properties": {
                        "action": r.action,
                        "actor": r.actor,
                        "subject": r.subject,
                        "request_id": r.request_id,
                    },
                })
            })
            .collect();
        let body = json!({ "events": events });
        let path = format!("/v1/events?tenant={}", encode_query_value(&tenant));
        match EVENT_LOG
            .call(Method::Post, &path, body.to_string().into_bytes())
            .await
        {
            Ok((200, _)) => {}
            Ok((status, reply)) => {
                eprintln!("auth: audit events not published for tenant {tenant}: {status} {reply}")
            }
            Err(e) => eprintln!(
                "auth: audit events not published for tenant {tenant}: {}",
                e.message
            ),
        }
    }
}
