//! The public keys of an identity provider, from its JWKS URL: fetched on first use, kept, and fetched again
//! when a token names a key id not in the set (keys rotate) or the set is old, at most once per
//! `min_refresh_interval` so that tokens with made-up key ids cannot turn the service into a flood of fetches.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey};
use tokio::sync::{Mutex, RwLock};
use tokio::time::Instant;

/// How the key set is fetched and kept.
#[derive(Debug, Clone, Copy)]
pub struct JwksSettings {
    /// A fetch that takes longer fails (the request is answered 503).
    pub fetch_timeout: Duration,
    /// Fewest seconds between two fetches, whatever tokens arrive.
    pub min_refresh_interval: Duration,
    /// A set older than this is fetched again on next use (so revoked keys go away).
    pub max_age: Duration,
}

impl Default for JwksSettings {
    fn default() -> Self {
        Self {
            fetch_timeout: Duration::from_secs(5),
            min_refresh_interval: Duration::from_secs(30),
            max_age: Duration::from_secs(15 * 60),
        }
    }
}

/// A verification key of the set.
#[derive(Clone)]
pub struct PublicKey {
    pub key: DecodingKey,
    /// The `alg` the set pins for the key, if it does.
    pub algorithm: Option<Algorithm>,
}

#[derive(Debug, thiserror::Error)]
#[error("the key set at AUTH_JWKS_URL cannot be fetched: {0}")]
pub struct JwksUnavailable(pub String);

#[derive(Default)]
struct KeySet {
    by_kid: HashMap<String, PublicKey>,
    /// Keys without a `kid`: a token without one may use the set's only key.
    unnamed: Vec<PublicKey>,
    fetched_at: Option<Instant>,
}

pub struct Jwks {
    url: String,
    http: reqwest::Client,
    settings: JwksSettings,
    keys: RwLock<Arc<KeySet>>,
    /// Held while fetching; remembers when the last fetch began, successful or not.
    last_attempt: Mutex<Option<Instant>>,
}

impl Jwks {
    pub fn new(url: String, settings: JwksSettings) -> anyhow::Result<Self> {
        // reqwest is built without a TLS provider of its own: the workspace's is ring. Installed already is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(settings.fetch_timeout)
            .build()
            .map_err(|e| anyhow::anyhow!("AUTH_JWKS_URL: cannot build an HTTP client: {e}"))?;
        Ok(Self { url, http, settings, keys: RwLock::default(), last_attempt: Mutex::new(None) })
    }

    /// The key a token's `kid` names (or, without a `kid`, the set's only key). `Ok(None)`: no such key, even
    /// after fetching the set again (or a fetch was not due yet).
    pub async fn key(&self, kid: Option<&str>) -> Result<Option<PublicKey>, JwksUnavailable> {
        let current = self.keys.read().await.clone();
        let stale = current.fetched_at.is_none_or(|at| at.elapsed() >= self.settings.max_age);
        if let Some(key) = find(&current, kid).filter(|_| !stale) {
            return Ok(Some(key));
        }
        let refreshed = self.refresh(current.fetched_at).await;
        let keys = self.keys.read().await.clone();
        match (find(&keys, kid), refreshed) {
            (Some(key), _) => Ok(Some(key)),
            // Never fetched successfully: the service cannot tell a good token from a bad one.
            (None, Err(err)) if keys.fetched_at.is_none() => Err(err),
            (None, _) => Ok(None),
        }
    }

    /// Fetches the set unless another task did since `seen` or the last attempt is too recent.
    async fn refresh(&self, seen: Option<Instant>) -> Result<(), JwksUnavailable> {
        let mut last_attempt = self.last_attempt.lock().await;
        if self.keys.read().await.fetched_at != seen {
            return Ok(());
        }
        if last_attempt.is_some_and(|at| at.elapsed() < self.settings.min_refresh_interval) {
            return Ok(());
        }
        *last_attempt = Some(Instant::now());
        match self.fetch().await {
            Ok(set) => {
                tracing::info!(keys = set.by_kid.len() + set.unnamed.len(), "JWKS fetched");
                *self.keys.write().await = Arc::new(set);
                Ok(())
            }
            Err(err) => {
                tracing::warn!(error = %err, "JWKS fetch failed; keeping the keys held");
                Err(err)
            }
        }
    }

    async fn fetch(&self) -> Result<KeySet, JwksUnavailable> {
        let failed = |e: reqwest::Error| JwksUnavailable(e.without_url().to_string());
        let response = self.http.get(&self.url).send().await.map_err(failed)?;
        let response = response.error_for_status().map_err(failed)?;
        let set: JwkSet = response.json().await.map_err(failed)?;
        let mut keys = KeySet { fetched_at: Some(Instant::now()), ..KeySet::default() };
        for jwk in &set.keys {
            // Signature keys of the asymmetric families only: an `oct` key here would let anyone who reads the
            // (public) set sign tokens.
            let asymmetric =
                matches!(jwk.algorithm, AlgorithmParameters::RSA(_) | AlgorithmParameters::EllipticCurve(_));
            let for_signing = !matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption));
            if !asymmetric || !for_signing {
                continue;
            }
            let Ok(key) = DecodingKey::from_jwk(jwk) else { continue };
            let algorithm = jwk.common.key_algorithm.and_then(|a| Algorithm::from_str(&a.to_string()).ok());
            let key = PublicKey { key, algorithm };
            match &jwk.common.key_id {
                Some(kid) => {
                    keys.by_kid.insert(kid.clone(), key);
                }
                None => keys.unnamed.push(key),
            }
        }
        Ok(keys)
    }
}

fn find(keys: &KeySet, kid: Option<&str>) -> Option<PublicKey> {
    match kid {
        Some(kid) => keys.by_kid.get(kid).cloned(),
        None if keys.by_kid.len() + keys.unnamed.len() == 1 => {
            keys.by_kid.values().chain(&keys.unnamed).next().cloned()
        }
        None => None,
    }
}

/// Whether a token signed with `algorithm` may be checked with `key`: the set's pinned `alg`, or else the
/// key's family.
pub fn fits(key: &PublicKey, algorithm: Algorithm) -> bool {
    match key.algorithm {
        Some(pinned) => pinned == algorithm,
        None => key.key.family() == algorithm.family() && algorithm.family() != AlgorithmFamily::Hmac,
    }
}
