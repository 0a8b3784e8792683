//! Token and cost accounting per tenant and per provider, kept in memory
//! since start-up.

use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

/// Totals of successful requests.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct UsageTotals {
    pub requests: u64,
    pub prompt_tokens: u64,
    pub generated_tokens: u64,
    pub cost_usd: f64,
}

impl UsageTotals {
    fn add(&mut self, prompt_tokens: u32, generated_tokens: u32, cost_usd: f64) {
        self.requests += 1;
        self.prompt_tokens += prompt_tokens as u64;
        self.generated_tokens += generated_tokens as u64;
        self.cost_usd += cost_usd;
    }
}

/// One tenant's totals, overall and split by provider.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TenantUsage {
    pub tenant: String,
    #[serde(flatten)]
    pub totals: UsageTotals,
    pub by_provider: BTreeMap<String, UsageTotals>,
}

/// Tenants tracked before new ones are folded into one bucket, so callers
/// that invent tenant ids cannot grow the ledger without bound.
const MAX_TENANTS: usize = 100_000;
/// Bucket for tenants past `MAX_TENANTS`.
const OVERFLOW_TENANT: &str = "(other)";

#[derive(Default)]
pub(crate) struct Ledger {
    tenants: Mutex<HashMap<String, TenantUsage>>,
    providers: Mutex<BTreeMap<String, UsageTotals>>,
}

impl Ledger {
    pub(crate) fn record(
        &self,
        tenant: &str,
        provider: &str,
        prompt_tokens: u32,
        generated_tokens: u32,
        cost_usd: f64,
    ) {
        {
            let mut tenants = self.tenants.lock().unwrap();
            let key = if tenants.len() >= MAX_TENANTS && !tenants.contains_key(tenant) {
                OVERFLOW_TENANT
            } else {
                tenant
            };
            let usage = tenants
                .entry(key.to_string())
                .or_insert_with(|| TenantUsage {
                    tenant: key.to_string(),
                    ..Default::default()
                });
            usage.totals.add(prompt_tokens, generated_tokens, cost_usd);
            usage
                .by_provider
                .entry(provider.to_string())
                .or_default()
                .add(prompt_tokens, generated_tokens, cost_usd);
        }
        self.providers
            .lock()
            .unwrap()
            .entry(provider.to_string())
            .or_default()
            .add(prompt_tokens, generated_tokens, cost_usd);
    }

    /// Returns the tenant's usage; zero for a tenant never seen.
    pub(crate) fn tenant(&self, tenant: &str) -> TenantUsage {
        self.tenants
            .lock()
            .unwrap()
            .get(tenant)
            .cloned()
            .unwrap_or_else(|| TenantUsage {
                tenant: tenant.to_string(),
                ..Default::default()
            })
    }

    pub(crate) fn provider(&self, provider: &str) -> UsageTotals {
        self.providers
            .lock()
            .unwrap()
            .get(provider)
            .cloned()
            .unwrap_or_default()
    }
}

/// Cost of one request at per-1k-token prices.
pub(crate) fn cost_usd(
    prompt_tokens: u32,
    generated_tokens: u32,
    price_per_1k_prompt: f64,
    price_per_1k_generated: f64,
) -> f64 {
    prompt_tokens as f64 / 1000.0 * price_per_1k_prompt
        + generated_tokens as f64 / 1000.0 * price_per_1k_generated
}
