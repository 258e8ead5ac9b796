//! What a running server shares between requests: the configuration, the store, and views of
//! the store kept current from its change stream (today: the published signing keys, so a
//! `jwtgate key rotate` shows up without a restart). Passed to handlers, never global.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use anyhow::Result;
use jwtgate_core::{KeySet, Rules};

use crate::access::Directory;
use crate::config::Config;
use crate::model::Model;
use crate::store::{Event, Kind};

/// Cloned for every request (axum's `State`), so one reference count to bump.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

pub struct Shared {
    pub config: Arc<Config>,
    pub model: Model,
    /// The gateway's routes and providers, ready to serve.
    pub gateway: Arc<crate::gateway::Runtime>,
    /// What jwtgate's own tokens must satisfy, built once from the config.
    rules: Arc<Rules>,
    keys: Arc<RwLock<Arc<PublishedKeys>>>,
    directory: Arc<RwLock<Directory>>,
    /// Held from reading the store to applying what was read, by every directory update: a
    /// read taken before a write can then never be applied after that write's own update
    /// (which would undo a lock or a revocation the API has already confirmed).
    refreshing: Arc<tokio::sync::Mutex<()>>,
    /// Bumped on every change to users, roles, revocations or keys: cached verdicts from an
    /// older generation are not used.
    generation: Arc<AtomicU64>,
    /// A change could not be read (the store was unavailable) and was applied failing closed:
    /// the view needs a full reload, which `spawn_refresh` tries until one succeeds.
    stale: Arc<AtomicBool>,
    cache: Arc<Mutex<HashMap<String, Arc<Accepted>>>>,
    challenges: Arc<Mutex<HashMap<String, Challenge>>>,
    pub throttle: Arc<crate::throttle::Throttle>,
    pub metrics: Arc<crate::metrics::Metrics>,
    hashing: Arc<tokio::sync::Semaphore>,
    /// A hash of a random password, checked for unknown users so that they cost what a real
    /// user costs (no user enumeration by timing).
    dummy_hash: Arc<str>,
}

/// A pending TOTP challenge (`428` from `/login`), answered once at `/totp/validate`.
#[derive(Clone, Debug)]
pub struct Challenge {
    pub user: String,
    pub expires: i64,
    /// The token lifetime the login asked for.
    pub ttl: i64,
    pub audience: Option<String>,
}

/// Password checks (argon2, 19 MiB each) running at once: half the cores, at least one, at
/// most 8 (152 MiB). The rest of the cores stay free for token checks, so a login flood
/// cannot starve `/auth` (BENCHMARKS.md measures /auth during one); on one core the two share.
fn hashing_slots() -> usize {
    std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).clamp(1, 8))
}

/// Pending challenges kept at most; the oldest expire first, so a full table drops expired ones
/// and then refuses new ones rather than growing without bound.
const CHALLENGES: usize = 10_000;

/// A token `/auth` accepted: what it needs to answer again without verifying.
#[derive(Clone, Debug)]
pub struct Accepted {
    pub user: String,
    pub roles: Vec<String>,
    /// `exp`, if the token has one; the entry is not used at or after it.
    pub exp: Option<i64>,
    pub iat: Option<i64>,
    pub jti: Option<String>,
    /// The first `aud`, kept for a renewal.
    pub audience: Option<String>,
    /// A gate token's scope: such a token opens its paths and nothing else (no roles, no
    /// permissions, no admin API).
    pub scope: Option<Arc<Scope>>,
    generation: u64,
}

/// A gate token's `URLs` and `verbs` claims.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scope {
    pub urls: Vec<String>,
    pub verbs: Option<Vec<String>>,
}

impl Scope {
    /// Whether the scope allows `method` on the normalised `path`.
    pub fn allows(&self, method: &str, path: &str) -> bool {
        jwtgate_core::scope::url_allowed(self.urls.iter().map(String::as_str), path)
            && jwtgate_core::scope::verb_allowed(
                self.verbs.as_ref().map(|v| v.iter().map(String::as_str)),
                method,
            )
    }
}

impl Accepted {
    /// The verdict as reached at `generation` of the directory.
    pub fn at(mut self, generation: u64) -> Accepted {
        self.generation = generation;
        self
    }

    /// A verdict just reached (not from the cache), for `user` with `roles`.
    pub fn new(user: String, roles: Vec<String>, claims: &jwtgate_core::Claims) -> Accepted {
        let scope = claims.urls().map(|urls| {
            Arc::new(Scope {
                urls: urls.to_vec(),
                verbs: claims.verbs().map(|v| v.to_vec()),
            })
        });
        Accepted {
            user,
            // A gate token's rights are its scope, never its creator's roles.
            roles: if scope.is_some() { Vec::new() } else { roles },
            scope,
            exp: claims.exp(),
            iat: claims.iat(),
            jti: claims.jti().map(str::to_owned),
            audience: claims.aud().and_then(|mut a| a.next()).map(str::to_owned),
            generation: 0,
        }
    }
}

/// Cached verdicts kept at most; the cache is emptied when full (simple, and a refill costs
/// one verification per token).
const CACHE_ENTRIES: usize = 10_000;

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
    pub async fn new(
        config: Config,
        model: Model,
        gateway: Arc<crate::gateway::Runtime>,
    ) -> Result<AppState> {
        let keys = PublishedKeys::load(&model).await?;
        let directory = Directory::load(&model).await?;
        let dummy_hash = tokio::task::spawn_blocking(|| {
            let password = crate::init::generate_password()?;
            Ok::<_, anyhow::Error>(jwtgate_core::password::hash(&password)?)
        })
        .await??;
        // jwtgate issues tokens without exp on request (revocable), and with an audience only
        // when the client asked for one of the configured ones; its own iss only.
        let rules = Rules::default()
            .leeway(config.leeway)
            .issuer(config.issuer.clone())
            .audiences(config.login.audiences.clone())
            .allow_missing_audience()
            .allow_missing_exp();
        Ok(AppState(Arc::new(Shared {
            rules: Arc::new(rules),
            config: Arc::new(config),
            model,
            gateway,
            keys: Arc::new(RwLock::new(Arc::new(keys))),
            directory: Arc::new(RwLock::new(directory)),
            refreshing: Arc::default(),
            generation: Arc::new(AtomicU64::new(0)),
            stale: Arc::default(),
            cache: Arc::new(Mutex::new(HashMap::new())),
            challenges: Arc::new(Mutex::new(HashMap::new())),
            throttle: Arc::default(),
            metrics: Arc::default(),
            hashing: Arc::new(tokio::sync::Semaphore::new(hashing_slots())),
            dummy_hash: dummy_hash.into(),
        })))
    }

    /// The rules tokens this server issued must pass.
    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    /// Whether `password` matches the PHC `hash`. Runs on the blocking pool, at most
    /// `hashing_slots()` at once, so token checks never wait behind argon2.
    pub async fn check_password(&self, password: String, hash: String) -> bool {
        let Ok(_permit) = self.hashing.acquire().await else {
            return false;
        };
        self.metrics.password_check();
        tokio::task::spawn_blocking(move || jwtgate_core::password::check(&password, &hash))
            .await
            .unwrap_or(false)
    }

    /// Hashes a new password (argon2id), like `check_password` off the event loop.
    pub async fn hash_password(&self, password: String) -> Result<String> {
        let _permit = self.hashing.acquire().await?;
        Ok(tokio::task::spawn_blocking(move || jwtgate_core::password::hash(&password)).await??)
    }

    /// Whether `id` is a pending challenge for `user` (without using it up).
    pub fn has_challenge(&self, id: &str, user: &str) -> bool {
        self.challenges
            .lock()
            .map(|table| table.get(id).is_some_and(|c| c.user == user))
            .unwrap_or(false)
    }

    pub fn dummy_hash(&self) -> &str {
        &self.dummy_hash
    }

    /// Stores a challenge; returns its id (128 random bits, hex).
    pub fn new_challenge(&self, challenge: Challenge) -> String {
        let mut random = [0u8; 16];
        // Without randomness no challenge can be safe: an id nobody can answer.
        if jwtgate_core::random::fill(&mut random).is_err() {
            return String::new();
        }
        let id: String = random.iter().map(|b| format!("{b:02x}")).collect();
        if let Ok(mut table) = self.challenges.lock() {
            let now = crate::cli::now();
            if table.len() >= CHALLENGES {
                table.retain(|_, c| c.expires > now);
            }
            if table.len() < CHALLENGES {
                table.insert(id.clone(), challenge);
            }
        }
        id
    }

    /// Removes and returns a challenge: each can be answered once.
    pub fn take_challenge(&self, id: &str) -> Option<Challenge> {
        self.challenges.lock().ok()?.remove(id)
    }

    /// Runs `f` on the current directory.
    pub fn with_directory<T>(&self, f: impl FnOnce(&Directory) -> T) -> T {
        match self.directory.read() {
            Ok(guard) => f(&guard),
            Err(poisoned) => f(&poisoned.into_inner()),
        }
    }

    /// A cached verdict for `token`, if it is from the current generation and unexpired.
    pub fn cached(&self, token: &str, now: i64) -> Option<Arc<Accepted>> {
        if !self.config.verdict_cache {
            return None;
        }
        let generation = self.generation.load(Ordering::Acquire);
        let cache = self.cache.lock().ok()?;
        cache
            .get(token)
            .filter(|a| a.generation == generation && a.exp.is_none_or(|exp| now < exp))
            .cloned()
    }

    /// Remembers that `token` was accepted. Its generation is the one read before verifying
    /// (`Accepted::at`), so a change that landed meanwhile makes the entry stale at once.
    pub fn remember(&self, token: &str, accepted: &Arc<Accepted>) {
        if !self.config.verdict_cache {
            return;
        }
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() >= CACHE_ENTRIES {
                cache.clear();
            }
            cache.insert(token.to_owned(), Arc::clone(accepted));
        }
    }

    /// Denylists `jti` in this server's directory at once (the store has it already), so
    /// the next request sees it without waiting for the change stream.
    pub async fn apply_revocation(&self, jti: &str) {
        let _serial = self.refreshing.lock().await;
        match self.directory.write() {
            Ok(mut directory) => directory.revoke(jti),
            Err(poisoned) => poisoned.into_inner().revoke(jti),
        }
        self.changed();
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Marks every cached verdict stale.
    fn changed(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        if let Ok(mut cache) = self.cache.lock() {
            cache.clear();
        }
    }

    /// The current published keys.
    pub fn keys(&self) -> Arc<PublishedKeys> {
        match self.keys.read() {
            Ok(guard) => Arc::clone(&guard),
            // A writer panicked mid-swap; the Arc inside is still whole.
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Keeps the views current: reloads the keys when the keyset changes and the changed
    /// record into the directory otherwise (written by this server or by the CLI), and makes
    /// cached verdicts stale.
    pub fn spawn_refresh(&self) {
        let state = self.clone();
        let mut changes = self.model.store().watch();
        tokio::spawn(async move {
            // The watch says `Reload` once it runs (what changed since `new` loaded is then
            // read again) and whenever it lost track (etcd compacted what it needed). A reload
            // that failed, or a change that could not be read (here or by an admin write), marks
            // the view stale: reloads are tried after 1 s, then 2, 4, at most 5 s apart, until
            // one succeeds. A full reload now and then (`[store] reload_seconds`) is a backstop
            // for anything else.
            use std::time::Duration;
            let mut resync = tokio::time::interval(state.config.store_reload);
            resync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            resync.tick().await;
            let mut backoff = Duration::from_secs(1);
            // A deadline, not a sleep made anew each turn: a busy change stream must not
            // keep postponing the retry.
            let mut retry_at: Option<tokio::time::Instant> = None;
            loop {
                if state.stale.load(Ordering::Acquire) {
                    retry_at.get_or_insert_with(|| tokio::time::Instant::now() + backoff);
                } else {
                    retry_at = None;
                    backoff = Duration::from_secs(1);
                }
                let due = retry_at.unwrap_or_else(tokio::time::Instant::now);
                tokio::select! {
                    event = changes.recv() => match event {
                        None => return,
                        Some(Event::Changed(change)) => {
                            state.apply_change(change.kind, &change.name).await;
                        }
                        Some(Event::Reload) => state.reload().await,
                    },
                    _ = tokio::time::sleep_until(due), if retry_at.is_some() => {
                        state.reload().await;
                        retry_at = None;
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                    }
                    _ = resync.tick() => state.reload().await,
                }
            }
        });
    }

    /// Reads one changed record and applies it (the change stream calls this; so do admin
    /// writes, so that their effect does not wait for the stream). When the store could not
    /// be read, the change is applied failing closed (the record counts as gone, a revocation
    /// as made) and the view is marked stale: only reading everything again brings it back.
    pub async fn apply_change(&self, kind: Kind, name: &str) {
        if kind == Kind::Keyset {
            if !self.reload_keys().await {
                self.stale.store(true, Ordering::Release);
            }
            return;
        }
        // One refresh at a time, each reading after the previous one applied: a stale read
        // cannot overwrite a newer state (a lock, a logout) that was applied meanwhile.
        let _serial = self.refreshing.lock().await;
        let (update, lost) = Directory::fetch(&self.model, kind, name).await;
        let relevant = match self.directory.write() {
            Ok(mut directory) => directory.apply(update),
            Err(poisoned) => poisoned.into_inner().apply(update),
        };
        if relevant {
            self.changed();
        }
        if lost {
            // Not the name: a revocation's is a token's jti.
            tracing::warn!(
                record = kind.noun(),
                "cannot read a changed record; it counts as gone (a revocation as made) until the store answers"
            );
            self.stale.store(true, Ordering::Release);
        }
    }

    /// A full reload that marks the view stale when it fails, and fresh when it succeeds.
    async fn reload(&self) {
        // Cleared first: a change that fails while the reload runs sets it again.
        let was_stale = self.stale.swap(false, Ordering::AcqRel);
        if !self.resync().await {
            self.stale.store(true, Ordering::Release);
        } else if was_stale {
            tracing::info!("the store answers again; the view is whole");
        }
    }

    /// Reloads the keys; makes cached verdicts stale only if the published keys changed (a
    /// keyset write that only records a signed token's `exp` does not). False when they could
    /// not be read.
    async fn reload_keys(&self) -> bool {
        match PublishedKeys::load(&self.model).await {
            Ok(keys) => {
                let same = self.keys().jwks == keys.jwks;
                match self.keys.write() {
                    Ok(mut slot) => *slot = Arc::new(keys),
                    Err(poisoned) => *poisoned.into_inner() = Arc::new(keys),
                }
                if !same {
                    self.changed();
                }
                true
            }
            // Keep serving the last good keys; say why once per failed change.
            Err(e) => {
                tracing::warn!(error = %loggable(&e), "keeping the previous keys");
                false
            }
        }
    }

    /// Reads everything again; false (and a warning) when the store could not be read.
    async fn resync(&self) -> bool {
        let keys = self.reload_keys().await;
        let _serial = self.refreshing.lock().await;
        let fresh = match Directory::load(&self.model).await {
            Ok(fresh) => fresh,
            Err(e) => {
                tracing::warn!(error = %loggable(&anyhow::Error::new(e)), "cannot reload users, roles and revocations; keeping the current view");
                return false;
            }
        };
        let differs = self.with_directory(|current| *current != fresh);
        if differs {
            match self.directory.write() {
                Ok(mut slot) => *slot = fresh,
                Err(poisoned) => *poisoned.into_inner() = fresh,
            }
            self.changed();
        }
        keys
    }
}

/// An error for the log, without what a stored record's path or contents could reveal: a
/// revocation's name is a token's jti, and a corrupt record's reason may quote its values
/// (a keyset's are private keys).
fn loggable(e: &anyhow::Error) -> String {
    use crate::store::StoreError;
    let collection = |path: &std::path::Path| {
        path.parent()
            .and_then(|p| p.file_name())
            .map(|d| d.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    match e.chain().find_map(|c| c.downcast_ref::<StoreError>()) {
        Some(StoreError::Corrupt { path, .. }) => {
            format!("a stored record in '{}' is corrupt", collection(path))
        }
        Some(StoreError::Io { path, cause }) => format!(
            "cannot read a stored record in '{}': {}",
            collection(path),
            cause.kind()
        ),
        _ => format!("{e:#}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreError;

    #[test]
    fn store_errors_in_the_log_name_no_record_and_quote_no_value() {
        let corrupt = StoreError::Corrupt {
            path: "/jwtgate/revoked/jti-4f2a9c".into(),
            reason: "invalid type: string \"MC4CAQAwBQYDK2VwBCIEI\"".into(),
        };
        let logged = loggable(&anyhow::Error::new(corrupt).context("cannot load"));
        assert_eq!(logged, "a stored record in 'revoked' is corrupt");
        let io = StoreError::Io {
            path: "./jwtgate-data/revoked/jti-4f2a9c.json".into(),
            cause: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
        };
        let logged = loggable(&anyhow::Error::new(io));
        assert_eq!(
            logged,
            "cannot read a stored record in 'revoked': permission denied"
        );
        // Anything else is told whole: it names no record.
        let down = StoreError::Unavailable("no etcd member answered".into());
        assert!(loggable(&anyhow::Error::new(down)).contains("no etcd member answered"));
    }
}
