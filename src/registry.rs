//! The registry of providers, one per storage type.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::RwLock;

use crate::error::RegistryError;
use crate::provider::StorageProvider;
use crate::types::StorageType;

/// Holds the provider of each storage type. Providers are shared
/// (`Arc`), so handing one out never copies it.
#[derive(Default)]
pub struct StorageProviderRegistry {
    providers: RwLock<HashMap<StorageType, Arc<dyn StorageProvider>>>,
}

impl std::fmt::Debug for StorageProviderRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut types: Vec<_> = self.providers.read().keys().copied().collect();
        types.sort();
        f.debug_struct("StorageProviderRegistry")
            .field("types", &types)
            .finish()
    }
}

impl StorageProviderRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `provider` for its storage type;
    /// [`RegistryError::AlreadyExists`] if the type has one.
    pub fn register_provider(
        &self,
        provider: Arc<dyn StorageProvider>,
    ) -> Result<(), RegistryError> {
        let t = provider.storage_type();
        let mut map = self.providers.write();
        if map.contains_key(&t) {
            return Err(RegistryError::AlreadyExists(t));
        }
        map.insert(t, provider);
        Ok(())
    }

    /// The provider of `t`; [`RegistryError::NotFound`] without one.
    pub fn get_provider(&self, t: StorageType) -> Result<Arc<dyn StorageProvider>, RegistryError> {
        self.providers
            .read()
            .get(&t)
            .cloned()
            .ok_or(RegistryError::NotFound(t))
    }

    /// The storage types with a provider.
    pub fn types(&self) -> Vec<StorageType> {
        let mut v: Vec<_> = self.providers.read().keys().copied().collect();
        v.sort();
        v
    }
}
