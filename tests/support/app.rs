use std::time::Duration;

use api::auth::config::{AuthConfig, AuthMode, JwtSecretArgs};
use api::auth::mint::{TokenRequest, mint_hs256};
use api::config::{ApiConfig, DownloadConfig, HttpConfig, LinkConfig};
use api::state::AppState;
use aws_sdk_s3::types::{CorsConfiguration, CorsRule};
use sqlx::postgres::PgPoolOptions;
use sqlx::{Executor, PgPool};
use tokio::sync::oneshot;
use uploads::config::{DatabaseConfig, LogConfig, LogFormat, S3Config, ServiceConfig, UploadPolicy, WebhookConfig};
use uploads::storage::Storage;
use uuid::Uuid;

use crate::contract::{self, Violations};
use crate::teardown::Owned;

/// Where `make test` (or `make services`) put the shared Postgres and LocalStack.
#[derive(Debug, Clone)]
pub struct TestEnv {
    pub admin_database_url: String,
    pub s3_endpoint: String,
}

impl TestEnv {
    pub fn from_env() -> Self {
        let var = |name: &str| {
            std::env::var(name).unwrap_or_else(|_| {
                panic!("{name} is not set: run the suite with `make test`, which starts Postgres and LocalStack")
            })
        };
        Self { admin_database_url: var("TEST_DATABASE_URL"), s3_endpoint: var("TEST_S3_ENDPOINT") }
    }

    /// A new, empty database; returns its URL.
    pub async fn fresh_database(&self) -> String {
        let name = format!("test_{}", Uuid::new_v4().simple());
        let admin =
            PgPoolOptions::new().max_connections(1).connect(&self.admin_database_url).await.expect("admin connection");
        admin.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).await.expect("create database");
        admin.close().await;
        let (base, _) = self.admin_database_url.rsplit_once('/').expect("database URL with a path");
        format!("{base}/{name}")
    }

    /// A new bucket with the CORS rule browsers need (as `localstack/init.py` sets for `make run`).
    pub async fn fresh_bucket(&self, storage_config: &S3Config) -> Storage {
        let storage = Storage::connect(storage_config).await.expect("S3 configuration");
        let s3 = storage.client();
        // A test may share another app's bucket (under its own key prefix).
        if let Err(err) = s3.create_bucket().bucket(storage.bucket()).send().await {
            let code = aws_sdk_s3::error::ProvideErrorMetadata::code(&err).map(String::from);
            assert_eq!(code.as_deref(), Some("BucketAlreadyOwnedByYou"), "create bucket: {err:?}");
        }
        let rule = CorsRule::builder()
            .allowed_origins("*")
            .allowed_methods("PUT")
            .allowed_methods("POST")
            .allowed_methods("GET")
            .allowed_methods("HEAD")
            .allowed_headers("*")
            .expose_headers("ETag")
            .expose_headers("Content-Range")
            .build()
            .expect("cors rule");
        s3.put_bucket_cors()
            .bucket(storage.bucket())
            .cors_configuration(CorsConfiguration::builder().cors_rules(rule).build().expect("cors"))
            .send()
            .await
            .expect("put bucket cors");
        storage
    }

    pub fn s3_config(&self, bucket: String) -> S3Config {
        S3Config::local(&self.s3_endpoint, &bucket)
    }
}

/// One running API with its own database and bucket, authentication on (HS256). Dropping it stops the server.
pub struct TestApp {
    pub env: TestEnv,
    pub config: ApiConfig,
    pub base_url: String,
    /// Sends [`TestApp::OWNER`]'s bearer token with every request.
    pub http: reqwest::Client,
    /// Sends no token: for S3's presigned URLs, which must never see one, and for unauthenticated requests.
    pub plain: reqwest::Client,
    /// [`TestApp::OWNER`]'s token, valid for an hour.
    pub token: String,
    pub state: AppState,
    pub pool: PgPool,
    pub storage: Storage,
    stop: Option<oneshot::Sender<()>>,
    /// Answers that openapi.yaml does not describe; the test fails with them when the app is dropped.
    pub contract_violations: Violations,
    pub server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    /// The test's own database and bucket, for [`TestApp::finish`].
    owned: Owned,
    /// Uploads whose object a test deleted behind the service: their jobs may fail (see `finish`).
    vanished: std::sync::Mutex<Vec<Uuid>>,
    finished: bool,
}

impl TestApp {
    /// The owner of what the helpers create.
    pub const OWNER: &'static str = "alice";

    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    /// Spawns with a tweaked configuration (short TTLs, small limits, ...).
    pub async fn spawn_with(tweak: impl FnOnce(&mut ApiConfig)) -> Self {
        Self::spawn_in(TestEnv::from_env(), tweak).await
    }

    /// Spawns on another Postgres or S3 than the shared ones (a private Postgres a test stops, say).
    pub async fn spawn_in(env: TestEnv, tweak: impl FnOnce(&mut ApiConfig)) -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let database_url = env.fresh_database().await;
        let bucket = format!("t-{}", Uuid::new_v4().simple());
        let own_bucket = bucket.clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let mut config = ApiConfig {
            service: ServiceConfig {
                database: DatabaseConfig {
                    database_url: Some(database_url),
                    database_url_file: None,
                    database_max_connections: 10,
                    database_statement_timeout: Duration::from_secs(10),
                    database_acquire_timeout: Duration::from_secs(5),
                },
                s3: env.s3_config(bucket),
                policy: UploadPolicy {
                    presign_ttl: Duration::from_secs(900),
                    completion_lease: Duration::from_secs(15),
                    upload_ttl: Duration::from_secs(86_400),
                    max_upload_size: 5 * 1024 * 1024 * 1024 * 1024,
                    max_active_uploads: 100,
                    max_active_bytes: 10 * 1024 * 1024 * 1024 * 1024,
                },
                log: LogConfig { log_format: LogFormat::Pretty },
                webhooks: WebhookConfig::default(),
            },
            downloads: DownloadConfig::default(),
            links: LinkConfig {
                link_signing_key: Some(hex::encode(crate::random_bytes(32)).parse().expect("a secret")),
                link_signing_key_file: None,
                max_link_ttl: Duration::from_secs(7 * 86_400),
                download_link_ttl: Duration::from_secs(3600),
                uppy_endpoint_ttl: Duration::from_secs(3600),
            },
            http: HttpConfig::default(),
            auth: AuthConfig {
                auth: AuthMode::Jwt,
                secret: JwtSecretArgs {
                    auth_jwt_secret: Some(hex::encode(rand::random::<[u8; 32]>()).into()),
                    auth_jwt_secret_file: None,
                },
                auth_jwks_url: None,
                auth_audience: None,
                auth_issuer: None,
            },
            bind_addr: addr,
            public_base_url: Some(format!("http://{addr}")),
            shutdown_grace: Duration::from_secs(5),
        };
        let direct_database_url = database_url_of(&config);
        tweak(&mut config);
        let owned = Owned {
            admin_database_url: env.admin_database_url.clone(),
            database: direct_database_url.rsplit_once('/').expect("database URL with a path").1.to_string(),
            database_url: direct_database_url,
            s3: direct_s3(&env, &config),
            // A test that shares another app's bucket leaves it to that app.
            owns_bucket: config.service.s3.s3_bucket == own_bucket,
        };
        let storage = env.fresh_bucket(&config.service.s3).await;
        let state = api::build_state(&config).await.expect("api state");
        let pool = state.uploads.repository().pool().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let contract_violations = Violations::default();
        let mut served = api::app(state.clone());
        served.router = contract::checked(served.router, contract_violations.clone());
        let server = tokio::spawn(api::serve(listener, served, async move {
            let _ = stopped.await;
        }));
        let mut app = Self {
            env,
            base_url: format!("http://{addr}"),
            config,
            http: reqwest::Client::new(),
            plain: client(None),
            token: String::new(),
            state,
            pool,
            storage,
            stop: Some(stop),
            server: Some(server),
            contract_violations,
            owned,
            vanished: Default::default(),
            finished: false,
        };
        if app.config.auth.auth == AuthMode::Jwt {
            app.token = app.token_for(Self::OWNER);
        }
        app.http = app.client_for(Self::OWNER);
        app
    }

    /// The HS256 secret the API verifies tokens with (`None` with `AUTH=none`).
    pub fn jwt_secret(&self) -> Option<&[u8]> {
        self.config
            .auth
            .secret
            .auth_jwt_secret
            .as_ref()
            .filter(|_| self.config.auth.auth == AuthMode::Jwt)
            .map(|s| s.expose().as_bytes())
    }

    /// A token for `sub`, valid for an hour.
    pub fn token_for(&self, sub: &str) -> String {
        self.token_with(sub, Duration::from_secs(3600))
    }

    /// A token for `sub` valid for `ttl` from now.
    pub fn token_with(&self, sub: &str, ttl: Duration) -> String {
        let secret = self.jwt_secret().expect("authentication is on");
        let request = TokenRequest { subject: sub, ttl, audience: None, issuer: None };
        mint_hs256(secret, request).expect("sign a token")
    }

    /// A client that sends `sub`'s token with every request (none with `AUTH=none`).
    pub fn client_for(&self, sub: &str) -> reqwest::Client {
        client(self.jwt_secret().map(|_| self.token_for(sub)))
    }

    /// The environment that gives an api process this app's authentication.
    pub fn auth_env(&self) -> Vec<(&'static str, String)> {
        match self.jwt_secret() {
            Some(secret) => vec![("AUTH_JWT_SECRET", String::from_utf8(secret.to_vec()).expect("a hex secret"))],
            None => vec![("AUTH", "none".into())],
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// This app's own database.
    pub fn database_url(&self) -> &str {
        self.config.service.database.database_url.as_deref().expect("tests set DATABASE_URL")
    }

    /// Stops accepting and waits for in-flight requests, as on SIGTERM.
    pub async fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
    }

    /// Deletes a completed upload's object behind the service's back (as a lost bucket or an operator
    /// would): downloads then fail, and so may its verification, which the teardown then lets be.
    pub async fn delete_object_behind_the_service(&self, id: Uuid) {
        let delete = self.storage.client().delete_object().bucket(self.storage.bucket()).key(format!("uploads/{id}"));
        delete.send().await.expect("delete the object");
        self.vanished.lock().unwrap().push(id);
    }

    /// The name of this test's database in the shared Postgres.
    pub fn database_name(&self) -> &str {
        &self.owned.database
    }

    /// Puts upload `id`'s deadline in the past, as if it had stayed idle past `UPLOAD_TTL`.
    pub async fn lapse_deadline(&self, id: Uuid) {
        sqlx::query("UPDATE uploads SET expires_at = now() - interval '1 second' WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await
            .unwrap();
    }

    /// Ends the test: stops the server, asserts the job queue is in order (nothing leased, nothing due that a
    /// worker cannot run to the end; see `teardown.rs`), and drops the test's database and bucket. Every test
    /// calls it last; dropping a `TestApp` without it fails the test.
    pub async fn finish(mut self) {
        self.shutdown().await;
        self.pool.close().await;
        let vanished = std::mem::take(&mut *self.vanished.lock().unwrap());
        self.owned.finish(&self.config.service, &vanished).await;
        self.finished = true;
    }
}

/// A second API on the same database and bucket, with its own configuration; stops when dropped.
pub struct Sibling {
    pub base_url: String,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Sibling {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }
}

impl Drop for Sibling {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl TestApp {
    /// Starts another API on this app's database and bucket, its configuration tweaked (e.g. `AUTH=none`).
    pub async fn sibling(&self, tweak: impl FnOnce(&mut ApiConfig)) -> Sibling {
        let mut config = self.config.clone();
        tweak(&mut config);
        let state = api::build_state(&config).await.expect("sibling state");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base_url = format!("http://{}", listener.local_addr().expect("local addr"));
        let router = contract::checked(api::router(state), self.contract_violations.clone());
        let server = tokio::spawn(api::serve(listener, router, std::future::pending()));
        Sibling { base_url, server }
    }
}

/// The app's S3 settings (bucket, key prefix, ...) straight to the shared S3, bypassing any proxy the test
/// put in front of it, with the usual timeouts.
fn direct_s3(env: &TestEnv, config: &ApiConfig) -> S3Config {
    let direct = env.s3_config(config.service.s3.s3_bucket.clone());
    S3Config {
        s3_endpoint: direct.s3_endpoint,
        s3_public_endpoint: None,
        s3_operation_timeout: direct.s3_operation_timeout,
        s3_complete_timeout: direct.s3_complete_timeout,
        ..config.service.s3.clone()
    }
}

fn database_url_of(config: &ApiConfig) -> String {
    config.service.database.database_url.clone().expect("tests set DATABASE_URL")
}

fn client(token: Option<String>) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(token) = token {
        let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}")).expect("a header value");
        value.set_sensitive(true);
        headers.insert(reqwest::header::AUTHORIZATION, value);
    }
    // reqwest drops the Authorization header on a redirect to another host, such as S3's presigned URL.
    let builder = reqwest::Client::builder().timeout(Duration::from_secs(120)).default_headers(headers);
    builder.build().expect("http client")
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        // A second panic while unwinding would abort the whole test process: the first failure says enough.
        let violations = std::mem::take(&mut *self.contract_violations.lock().expect("violations"));
        if !violations.is_empty() && !std::thread::panicking() {
            panic!("answers that openapi.yaml does not describe:\n{}", violations.join("\n"));
        }
        if self.finished {
            return;
        }
        if std::thread::panicking() {
            // Kept for a post-mortem; `make test` throws the whole Postgres away.
            eprintln!(
                "the failed test's database {} and bucket {} are kept",
                self.owned.database, self.owned.s3.s3_bucket
            );
        } else {
            panic!("TestApp dropped without `app.finish().await`: the queue went unchecked and the database stays");
        }
    }
}
