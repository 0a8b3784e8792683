//! `fermyon:spin/key-value@2.0.0` for component instances.

use crate::bindings::key_value::{self, Error};
use crate::kv::Backend;
use crate::state::HostState;
use wasmtime::component::Resource;

/// Open stores per instance; Spin returns `store-table-full` past its limit.
const MAX_OPEN_STORES: usize = 16;

/// A store an instance has opened.
pub struct OpenStore {
    label: String,
    backend: Backend,
}

impl HostState {
    fn open_store(&self, handle: &Resource<OpenStore>) -> wasmtime::Result<&OpenStore> {
        Ok(self.table.get(handle)?)
    }

    fn kv_failure(&self, label: &str, op: &str, err: crate::kv::KvError) -> Error {
        tracing::warn!(
            component = %self.component.id,
            store = %label,
            operation = op,
            error = %err,
            "key-value operation failed"
        );
        Error::Other(err.0)
    }
}

impl key_value::Host for HostState {}

impl key_value::HostStore for HostState {
    async fn open(
        &mut self,
        label: String,
    ) -> wasmtime::Result<Result<Resource<OpenStore>, Error>> {
        if !self.component.key_value_stores.contains(&label) {
            tracing::warn!(component = %self.component.id, store = %label, "key-value store not granted in manifest");
            return Ok(Err(Error::AccessDenied));
        }
        let Some(backend) = self.kv.get(&label) else {
            return Ok(Err(Error::NoSuchStore));
        };
        if self.open_stores >= MAX_OPEN_STORES {
            return Ok(Err(Error::StoreTableFull));
        }
        let store = OpenStore {
            label,
            backend: backend.clone(),
        };
        self.open_stores += 1;
        Ok(Ok(self.table.push(store)?))
    }

    async fn get(
        &mut self,
        handle: Resource<OpenStore>,
        key: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, Error>> {
        let store = self.open_store(&handle)?;
        Ok(match store.backend.get(&key).await {
            Ok(v) => Ok(v),
            Err(e) => Err(self.kv_failure(&store.label, "get", e)),
        })
    }

    async fn set(
        &mut self,
        handle: Resource<OpenStore>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), Error>> {
        let store = self.open_store(&handle)?;
        Ok(match store.backend.set(&key, &value).await {
            Ok(()) => Ok(()),
            Err(e) => Err(self.kv_failure(&store.label, "set", e)),
        })
    }

    async fn delete(
        &mut self,
        handle: Resource<OpenStore>,
        key: String,
    ) -> wasmtime::Result<Result<(), Error>> {
        let store = self.open_store(&handle)?;
        Ok(match store.backend.delete(&key).await {
            Ok(()) => Ok(()),
            Err(e) => Err(self.kv_failure(&store.label, "delete", e)),
        })
    }

    async fn exists(
        &mut self,
        handle: Resource<OpenStore>,
        key: String,
    ) -> wasmtime::Result<Result<bool, Error>> {
        let store = self.open_store(&handle)?;
        Ok(match store.backend.exists(&key).await {
            Ok(v) => Ok(v),
            Err(e) => Err(self.kv_failure(&store.label, "exists", e)),
        })
    }

    async fn get_keys(
        &mut self,
        handle: Resource<OpenStore>,
    ) -> wasmtime::Result<Result<Vec<String>, Error>> {
        let store = self.open_store(&handle)?;
        Ok(match store.backend.keys().await {
            Ok(v) => Ok(v),
            Err(e) => Err(self.kv_failure(&store.label, "get-keys", e)),
        })
    }

    async fn drop(&mut self, handle: Resource<OpenStore>) -> wasmtime::Result<()> {
        self.table.delete(handle)?;
        self.open_stores = self.open_stores.saturating_sub(1);
        Ok(())
    }
}
