//! The one place the service calls a webhook receiver: one signed POST per attempt, with a deadline, no
//! redirects followed, and nothing of the URL or the secret in what it reports.

mod signature;

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header::{CONTENT_TYPE, HeaderValue};

pub use signature::{KeyError, MIN_KEY_BYTES, SigningKey};

use crate::config::{Secret, WebhookConfig};

/// Where events go and how they are signed; `None` from [`WebhookSender::from_config`] means webhooks are off.
#[derive(Clone)]
pub struct WebhookSender {
    http: reqwest::Client,
    url: Arc<reqwest::Url>,
    key: Arc<SigningKey>,
    timeout: Duration,
    max_age: Duration,
}

impl std::fmt::Debug for WebhookSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry credentials (userinfo, a token in the query): only its host is shown.
        f.debug_struct("WebhookSender")
            .field("host", &self.url.host_str())
            .field("timeout", &self.timeout)
            .field("max_age", &self.max_age)
            .finish_non_exhaustive()
    }
}

/// What one delivery attempt found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// The receiver's status, when it answered.
    pub status: Option<u16>,
    /// Why it is not delivered; `None` for a 2xx.
    pub error: Option<String>,
    pub duration: Duration,
}

impl Attempt {
    pub fn delivered(&self) -> bool {
        self.error.is_none()
    }
}

impl WebhookSender {
    /// The sender `WEBHOOK_*` describe; `None` without `WEBHOOK_URL`. A URL without a secret, a secret without
    /// a URL, or a bad value of either is an error naming the variable.
    pub fn from_config(config: &WebhookConfig) -> anyhow::Result<Option<Self>> {
        let secret = Secret::load(
            "WEBHOOK_SECRET",
            config.webhook_secret.as_ref(),
            config.webhook_secret_file.as_deref(),
            MIN_KEY_BYTES,
        )?;
        let (url, secret) = match (&config.webhook_url, secret) {
            (None, None) => return Ok(None),
            (None, Some(_)) => anyhow::bail!("WEBHOOK_SECRET is set but WEBHOOK_URL is not"),
            (Some(_), None) => anyhow::bail!("WEBHOOK_URL needs WEBHOOK_SECRET or WEBHOOK_SECRET_FILE to sign events"),
            (Some(url), Some(secret)) => (url, secret),
        };
        let url = reqwest::Url::parse(url)
            .ok()
            .filter(|url| matches!(url.scheme(), "http" | "https") && url.host().is_some())
            .ok_or_else(|| anyhow::anyhow!("WEBHOOK_URL must be an http or https URL"))?;
        let key = SigningKey::from_secret(&secret)?;
        // reqwest is built without a TLS provider of its own: the workspace's is ring. Installed already is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(config.webhook_timeout)
            .connect_timeout(config.webhook_timeout.min(Duration::from_secs(5)))
            // A redirect is not a delivery, and following one would send the signed event elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("uploads-webhooks/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Some(Self {
            http,
            url: Arc::new(url),
            key: Arc::new(key),
            timeout: config.webhook_timeout,
            max_age: config.webhook_max_age,
        }))
    }

    /// How long an event is tried before it is dead.
    pub fn max_age(&self) -> Duration {
        self.max_age
    }

    /// POSTs `body` as message `id`, signed now; a 2xx within `WEBHOOK_TIMEOUT` is delivered.
    #[tracing::instrument(skip_all, fields(webhook_id = id))]
    pub async fn send(&self, id: &str, body: Vec<u8>) -> Attempt {
        let timestamp = chrono::Utc::now().timestamp();
        let signature = self.key.sign(id, timestamp, &body);
        let started = Instant::now();
        let sent = self
            .http
            .post(self.url.as_ref().clone())
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .header("webhook-id", id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(body)
            .send()
            .await;
        let duration = started.elapsed();
        match sent {
            Ok(response) if response.status().is_success() => {
                Attempt { status: Some(response.status().as_u16()), error: None, duration }
            }
            Ok(response) => Attempt {
                status: Some(response.status().as_u16()),
                error: Some(format!("the receiver answered {}", response.status())),
                duration,
            },
            Err(err) if err.is_timeout() => Attempt {
                status: None,
                error: Some(format!("no answer within WEBHOOK_TIMEOUT ({})", humantime::format_duration(self.timeout))),
                duration,
            },
            Err(err) => Attempt { status: None, error: Some(describe(err)), duration },
        }
    }
}

/// The error and its causes, without the URL reqwest puts in its message.
fn describe(err: reqwest::Error) -> String {
    let err = err.without_url();
    let mut text = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(url: Option<&str>, secret: Option<&str>) -> WebhookConfig {
        WebhookConfig {
            webhook_url: url.map(String::from),
            webhook_secret: secret.map(|s| s.parse().unwrap()),
            ..WebhookConfig::default()
        }
    }

    #[test]
    fn webhooks_are_off_without_a_url_and_refused_half_configured() {
        let secret = Some("0123456789abcdef0123456789abcdef");
        let url = Some("https://hooks.example.com/uploads?token=abc");
        let cases: [(WebhookConfig, Result<bool, &str>); 7] = [
            (config(None, None), Ok(false)),
            (config(url, secret), Ok(true)),
            (config(Some("http://127.0.0.1:9000/hooks"), secret), Ok(true)),
            (config(url, None), Err("WEBHOOK_URL needs WEBHOOK_SECRET or WEBHOOK_SECRET_FILE to sign events")),
            (config(None, secret), Err("WEBHOOK_SECRET is set but WEBHOOK_URL is not")),
            (config(Some("ftp://hooks.example.com/"), secret), Err("WEBHOOK_URL must be an http or https URL")),
            (config(url, Some("short")), Err("WEBHOOK_SECRET must hold at least 24 bytes")),
        ];
        for (config, expected) in cases {
            let result = WebhookSender::from_config(&config).map(|sender| sender.is_some()).map_err(|e| e.to_string());
            match expected {
                Ok(on) => assert_eq!(result.as_ref().ok(), Some(&on), "{config:?}: {result:?}"),
                Err(start) => assert!(result.as_ref().is_err_and(|e| e.starts_with(start)), "{config:?}: {result:?}"),
            }
        }
    }

    #[test]
    fn the_secret_comes_from_a_file_too_and_nothing_secret_is_printed() {
        let path = std::env::temp_dir().join(format!("webhook-secret-{}", uuid::Uuid::new_v4()));
        std::fs::write(&path, "whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3\n").unwrap();
        let config = WebhookConfig {
            webhook_url: Some("https://user:password@hooks.example.com/in?token=abc".into()),
            webhook_secret_file: Some(path.clone()),
            ..WebhookConfig::default()
        };
        let sender = WebhookSender::from_config(&config).unwrap().expect("webhooks on");
        std::fs::remove_file(path).unwrap();
        let printed = format!("{sender:?}");
        assert!(printed.contains("hooks.example.com"), "{printed}");
        let inline =
            WebhookConfig { webhook_secret: Some("whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3".parse().unwrap()), ..config };
        for printed in [printed, format!("{inline:?}")] {
            for secret in ["password", "token", "abc", "whsec", "MDEy"] {
                assert!(!printed.contains(secret), "{printed}");
            }
        }
    }
}
