//! RS256 and ES256 tokens checked against a JWKS served over real HTTP: the keys are fetched, kept, fetched
//! again for a new `kid` (at most once per interval), and a key set that cannot be fetched is a 503, never a
//! pass. Keys are made by `openssl` for each run.

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use api::auth::config::AuthConfig;
use api::auth::jwks::JwksSettings;
use api::auth::{AuthError, Authenticator};
use e2e::TestApp;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header, get_current_timestamp};
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use serde_json::{Value, json};

use crate::lifecycle::answer;

const AUDIENCE: &str = "uploads";
const ISSUER: &str = "https://id.test";

/// A signing key of the identity provider.
struct SigningKey {
    kid: String,
    algorithm: Algorithm,
    key: EncodingKey,
}

impl SigningKey {
    fn new(kid: &str, algorithm: Algorithm) -> Self {
        let args: &[&str] = match algorithm {
            Algorithm::ES256 => &["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
            _ => &["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
        };
        let output = Command::new("openssl").args(args).output().expect("openssl runs");
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        let key = match algorithm {
            Algorithm::ES256 => EncodingKey::from_ec_pem(&output.stdout),
            _ => EncodingKey::from_rsa_pem(&output.stdout),
        };
        Self { kid: kid.into(), algorithm, key: key.expect("a PEM private key") }
    }

    fn jwk(&self) -> Jwk {
        let mut jwk = Jwk::from_encoding_key(&self.key, self.algorithm).expect("public JWK");
        jwk.common.key_id = Some(self.kid.clone());
        jwk
    }

    fn sign(&self, claims: Value) -> String {
        let mut header = Header::new(self.algorithm);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, &claims, &self.key).expect("sign")
    }
}

fn claims(sub: &str) -> Value {
    json!({ "sub": sub, "exp": get_current_timestamp() + 600, "aud": AUDIENCE, "iss": ISSUER })
}

/// The identity provider's JWKS endpoint: what it serves can change, and it counts the fetches.
#[derive(Clone)]
struct KeySetServer {
    url: String,
    keys: Arc<Mutex<Value>>,
    fetches: Arc<AtomicUsize>,
}

impl KeySetServer {
    async fn start(keys: Value, delay: Duration) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/.well-known/jwks.json", listener.local_addr().unwrap());
        let server = Self { url, keys: Arc::new(Mutex::new(keys)), fetches: Arc::default() };
        let state = server.clone();
        let app = axum::Router::new().route(
            "/.well-known/jwks.json",
            axum::routing::get(move || {
                let state = state.clone();
                async move {
                    state.fetches.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(delay).await;
                    axum::Json(state.keys.lock().unwrap().clone())
                }
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        server
    }

    fn serve(&self, keys: &[&SigningKey]) {
        *self.keys.lock().unwrap() = json!(JwkSet { keys: keys.iter().map(|k| k.jwk()).collect() });
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

fn bearer(token: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(AUTHORIZATION, HeaderValue::from_str(&format!("Bearer {token}")).unwrap());
    headers
}

#[tokio::test]
async fn rs256_and_es256_tokens_of_the_key_set_are_owners_and_others_are_named() {
    let (rsa, ec) = (SigningKey::new("rsa-1", Algorithm::RS256), SigningKey::new("ec-1", Algorithm::ES256));
    let stranger = SigningKey::new("rsa-1", Algorithm::RS256);
    let unlisted = SigningKey::new("rsa-2", Algorithm::RS256);
    let idp = KeySetServer::start(json!({}), Duration::ZERO).await;
    idp.serve(&[&rsa, &ec]);
    let app = TestApp::spawn_with(|c| {
        c.auth.auth_jwks_url = Some(idp.url.clone());
        c.auth.auth_audience = Some(AUDIENCE.into());
        c.auth.auth_issuer = Some(ISSUER.into());
    })
    .await;
    let mut wrong_audience = claims("erin");
    wrong_audience["aud"] = json!("someone-else");
    let mut wrong_issuer = claims("erin");
    wrong_issuer["iss"] = json!("https://evil.test");

    let cases = [
        ("RS256", rsa.sign(claims("erin")), 201, None),
        ("ES256", ec.sign(claims("frank")), 201, None),
        ("wrong aud", rsa.sign(wrong_audience), 401, Some("token_wrong_audience")),
        ("wrong iss", ec.sign(wrong_issuer), 401, Some("token_wrong_issuer")),
        ("a key id of the set, another key", stranger.sign(claims("erin")), 401, Some("token_invalid_signature")),
        ("a key id not in the set", unlisted.sign(claims("erin")), 401, Some("token_unknown_key")),
        // The HS256 secret still works beside the key set, under the same aud and iss rules.
        ("HS256 without aud", app.token_for("gina"), 401, Some("token_wrong_audience")),
    ];
    for (name, token, status, code) in cases {
        let request = app.plain.post(app.url("/v1/uploads")).bearer_auth(token);
        let (got, body) = answer(request.json(&json!({ "filename": "a", "size": 1 })).send().await.unwrap()).await;
        assert_eq!(got.as_u16(), status, "{name}: {body}");
        if let Some(code) = code {
            assert_eq!(body["code"], code, "{name}");
        }
    }
    let mut owners: Vec<String> = sqlx::query_scalar("SELECT owner FROM uploads").fetch_all(&app.pool).await.unwrap();
    owners.sort();
    assert_eq!(owners, ["erin", "frank"]);
    // The unknown kid came within the refresh interval of the first fetch: it did not cause another.
    assert_eq!(idp.fetches(), 1);
    app.finish().await;
}

fn jwks_config(url: &str) -> AuthConfig {
    AuthConfig {
        auth: api::auth::config::AuthMode::Jwt,
        secret: Default::default(),
        auth_jwks_url: Some(url.into()),
        auth_audience: Some(AUDIENCE.into()),
        auth_issuer: Some(ISSUER.into()),
    }
}

#[tokio::test]
async fn a_new_key_id_refreshes_the_set_at_most_once_per_interval() {
    let (first, rotated) = (SigningKey::new("k1", Algorithm::RS256), SigningKey::new("k2", Algorithm::ES256));
    let idp = KeySetServer::start(json!({}), Duration::ZERO).await;
    idp.serve(&[&first]);
    // Signed before the clock starts: an RSA signature in a debug build on a busy CI machine can take longer
    // than a short interval, and the refresh would be due before the rotated token is tried.
    let (known, token) = (first.sign(claims("hana")), rotated.sign(claims("ivan")));
    let interval = Duration::from_secs(1);
    let settings = JwksSettings { min_refresh_interval: interval, ..JwksSettings::default() };
    let auth = Authenticator::with_jwks_settings(&jwks_config(&idp.url), settings).unwrap();

    assert_eq!(auth.authenticate(&bearer(&known)).await.unwrap().as_str(), "hana");
    assert_eq!(auth.authenticate(&bearer(&known)).await.unwrap().as_str(), "hana");
    assert_eq!(idp.fetches(), 1, "the set is kept between tokens");

    // The provider rotates: a token of the new key right away finds the refresh not due yet.
    idp.serve(&[&first, &rotated]);
    assert!(matches!(auth.authenticate(&bearer(&token)).await, Err(AuthError::UnknownKey)));
    assert_eq!(idp.fetches(), 1);
    tokio::time::sleep(interval + Duration::from_millis(100)).await;
    assert_eq!(auth.authenticate(&bearer(&token)).await.unwrap().as_str(), "ivan");
    assert_eq!(idp.fetches(), 2);

    // A flood of made-up key ids costs at most one fetch per interval (here a minute: the whole flood).
    let settings = JwksSettings { min_refresh_interval: Duration::from_secs(60), ..JwksSettings::default() };
    let auth = Authenticator::with_jwks_settings(&jwks_config(&idp.url), settings).unwrap();
    let mut made_up = SigningKey::new("x", Algorithm::ES256);
    for n in 0..50 {
        made_up.kid = format!("made-up-{n}");
        let refused = auth.authenticate(&bearer(&made_up.sign(claims("mallory")))).await;
        assert!(matches!(refused, Err(AuthError::UnknownKey)), "{refused:?}");
    }
    assert_eq!(idp.fetches(), 3, "50 unknown key ids in a row fetched the set once");
}

#[tokio::test]
async fn a_key_set_that_cannot_be_fetched_answers_503_never_a_pass() {
    let key = SigningKey::new("k1", Algorithm::RS256);
    // Nothing listens on the port: refused at once.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let app = TestApp::spawn_with(|c| {
        c.auth.auth_jwks_url = Some(format!("http://{closed}/jwks.json"));
        c.auth.auth_audience = Some(AUDIENCE.into());
        c.auth.auth_issuer = Some(ISSUER.into());
    })
    .await;
    let response = app.plain.get(app.url("/v1/uploads/019ab2c4-7f7e-7c3a-9d3e-2f1b0a1c2d3e"));
    let response = response.bearer_auth(key.sign(claims("jo"))).send().await.unwrap();
    assert_eq!(response.headers().get("retry-after").map(|v| v.to_str().unwrap()), Some("1"));
    let (status, body) = answer(response).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::SERVICE_UNAVAILABLE, Some("auth_unavailable")));

    // A provider slower than the fetch timeout is as good as down.
    let slow = KeySetServer::start(json!({}), Duration::from_secs(3)).await;
    slow.serve(&[&key]);
    let settings = JwksSettings { fetch_timeout: Duration::from_millis(300), ..JwksSettings::default() };
    let auth = Authenticator::with_jwks_settings(&jwks_config(&slow.url), settings).unwrap();
    let refused = auth.authenticate(&bearer(&key.sign(claims("jo")))).await;
    assert!(matches!(refused, Err(AuthError::KeysUnavailable(_))), "{refused:?}");
    app.finish().await;
}

#[tokio::test]
async fn a_symmetric_key_in_the_set_signs_nothing() {
    // Anyone can read a JWKS: an `oct` key published there must not verify tokens, nor may an HS256 token pick
    // a key of the set by its kid.
    let secret = b"published-symmetric-key-0123456789";
    use base64::Engine;
    let oct =
        json!({ "kty": "oct", "kid": "sym", "k": base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret) });
    let idp = KeySetServer::start(json!({ "keys": [oct] }), Duration::ZERO).await;
    let auth = Authenticator::from_config(&jwks_config(&idp.url)).unwrap();
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("sym".into());
    let token = jsonwebtoken::encode(&header, &claims("mallory"), &EncodingKey::from_secret(secret).unwrap()).unwrap();
    let refused = auth.authenticate(&bearer(&token)).await;
    assert!(matches!(refused, Err(AuthError::Malformed(_))), "{refused:?}");
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("sym".into());
    let forged = format!("{}.{}", token.rsplit_once('.').unwrap().0, "c2ln");
    let forged = forged.replacen(token.split('.').next().unwrap(), &jwt_part(&json!(header)), 1);
    let refused = auth.authenticate(&bearer(&forged)).await;
    assert!(matches!(refused, Err(AuthError::UnknownKey)), "{refused:?}");
}

fn jwt_part(value: &Value) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value.to_string())
}
