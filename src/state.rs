//! What a running server shares between requests: the configuration, the store, and views of
//! the store kept current from its change stream (today: the published signing keys, so a
//! `jwtgate key rotate` shows up without a restart). Passed to handlers, never global.

use std::sync::{Arc, RwLock};

use anyhow::Result;
use jwtgate_core::KeySet;

use crate::config::Config;
use crate::model::Model;
use crate::store::Kind;

#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub model: Model,
    keys: Arc<RwLock<Arc<PublishedKeys>>>,
}

/// The signing keys as verifiers see them.
pub struct PublishedKeys {
    pub keyset: KeySet,
    /// The public JWKS, serialised once per change.
    pub jwks: String,
    /// The algorithms of the published keys, for the discovery document.
    pub algs: Vec<&'static str>,
}

impl PublishedKeys {
    async fn load(model: &Model) -> Result<PublishedKeys> {
        let keyset = model.keyset().await?.to_keyset()?;
        let jwks = keyset.public_jwks().to_json_pretty();
        let mut algs: Vec<&'static str> = keyset.keys().iter().map(|k| k.alg().name()).collect();
        algs.sort_unstable();
        algs.dedup();
        Ok(PublishedKeys { keyset, jwks, algs })
    }
}

impl AppState {
    pub async fn new(config: Config, model: Model) -> Result<AppState> {
        let keys = PublishedKeys::load(&model).await?;
        Ok(AppState {
            config: Arc::new(config),
            model,
            keys: Arc::new(RwLock::new(Arc::new(keys))),
        })
    }

    /// The current published keys.
    pub fn keys(&self) -> Arc<PublishedKeys> {
        match self.keys.read() {
            Ok(guard) => Arc::clone(&guard),
            // A writer panicked mid-swap; the Arc inside is still whole.
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Keeps the views current: reloads the keys whenever the keyset changes in the store
    /// (written by this server or by the CLI).
    pub fn spawn_refresh(&self) {
        let state = self.clone();
        let mut changes = self.model.store().watch();
        tokio::spawn(async move {
            while let Some(change) = changes.recv().await {
                if change.kind != Kind::Keyset {
                    continue;
                }
                match PublishedKeys::load(&state.model).await {
                    Ok(keys) => {
                        let mut slot = match state.keys.write() {
                            Ok(guard) => guard,
                            Err(poisoned) => poisoned.into_inner(),
                        };
                        *slot = Arc::new(keys);
                    }
                    // Keep serving the last good keys; say why once per failed change.
                    Err(e) => eprintln!("jwtgate: keeping the previous keys: {e:#}"),
                }
            }
        });
    }
}
