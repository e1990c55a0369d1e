//! A per-container cache of what requests read again and again (API keys, tenants): entries
//! live for a fixed time, so a change made elsewhere is seen within that bound.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::domain::tenant::Tenant;
use crate::error::Result;
use crate::store::TenantStore;

/// Entries kept at most; past this the cache starts over (a bound on memory, not a policy).
const MAX_CACHED: usize = 10_000;

pub struct Cache<V> {
    ttl: Duration,
    entries: Mutex<HashMap<String, (Instant, V)>>,
}

impl<V: Clone> Cache<V> {
    /// A cache whose entries live `ttl` (zero: nothing is kept).
    pub fn new(ttl: Duration) -> Self {
        Cache {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    pub fn get(&self, key: &str) -> Option<V> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .get(key)
            .filter(|(at, _)| at.elapsed() < self.ttl)
            .map(|(_, value)| value.clone())
    }

    pub fn put(&self, key: &str, value: V) {
        if self.ttl.is_zero() {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= MAX_CACHED {
            entries.clear();
        }
        entries.insert(key.to_owned(), (Instant::now(), value));
    }

    pub fn forget(&self, key: &str) {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }
}

/// Tenants by id through the cache: one `GetItem` per tenant and container per cache lifetime.
/// `None` is a tenant the operator never created (the engine's defaults apply to it).
pub struct TenantDirectory<S> {
    store: S,
    cache: Cache<Option<Arc<Tenant>>>,
}

impl<S: TenantStore> TenantDirectory<S> {
    pub fn new(store: S, ttl: Duration) -> Self {
        TenantDirectory {
            store,
            cache: Cache::new(ttl),
        }
    }

    pub async fn get(&self, id: &str) -> Result<Option<Arc<Tenant>>> {
        if let Some(tenant) = self.cache.get(id) {
            return Ok(tenant);
        }
        let tenant = self.store.get_tenant(id).await?.map(Arc::new);
        self.cache.put(id, tenant.clone());
        Ok(tenant)
    }

    pub fn forget(&self, id: &str) {
        self.cache.forget(id);
    }
}
