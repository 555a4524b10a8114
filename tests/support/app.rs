use std::time::Duration;

use api::config::{ApiConfig, DownloadConfig, HttpConfig, LinkConfig};
use api::state::AppState;
use aws_sdk_s3::types::{CorsConfiguration, CorsRule};
use sqlx::postgres::PgPoolOptions;
use sqlx::{Executor, PgPool};
use tokio::sync::oneshot;
use uploads::config::{DatabaseConfig, LogConfig, LogFormat, S3Config, ServiceConfig, UploadPolicy};
use uploads::storage::Storage;
use uuid::Uuid;

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
        let storage = Storage::connect(storage_config).await;
        let s3 = storage.client();
        s3.create_bucket().bucket(storage.bucket()).send().await.expect("create bucket");
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
        S3Config {
            s3_endpoint: Some(self.s3_endpoint.clone()),
            s3_region: "us-east-1".into(),
            s3_bucket: bucket,
            s3_force_path_style: true,
            s3_operation_timeout: Duration::from_secs(20),
            s3_complete_timeout: Duration::from_secs(600),
        }
    }
}

/// One running API with its own database and bucket. Dropping it stops the server.
pub struct TestApp {
    pub env: TestEnv,
    pub config: ApiConfig,
    pub base_url: String,
    pub http: reqwest::Client,
    pub state: AppState,
    pub pool: PgPool,
    pub storage: Storage,
    stop: Option<oneshot::Sender<()>>,
    pub server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    /// Spawns with a tweaked configuration (short TTLs, small limits, ...).
    pub async fn spawn_with(tweak: impl FnOnce(&mut ApiConfig)) -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let env = TestEnv::from_env();
        let database_url = env.fresh_database().await;
        let bucket = format!("t-{}", Uuid::new_v4().simple());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let mut config = ApiConfig {
            service: ServiceConfig {
                database: DatabaseConfig {
                    database_url,
                    database_max_connections: 10,
                    database_statement_timeout: Duration::from_secs(10),
                },
                s3: env.s3_config(bucket),
                policy: UploadPolicy {
                    presign_ttl: Duration::from_secs(900),
                    completion_lease: Duration::from_secs(15),
                    upload_ttl: Duration::from_secs(86_400),
                    max_upload_size: 5 * 1024 * 1024 * 1024 * 1024,
                },
                log: LogConfig { log_format: LogFormat::Pretty },
            },
            downloads: DownloadConfig::default(),
            links: LinkConfig {
                link_signing_key: Some(hex::encode(crate::random_bytes(32)).parse().expect("a secret")),
                link_signing_key_file: None,
                max_link_ttl: Duration::from_secs(7 * 86_400),
                download_link_ttl: Duration::from_secs(3600),
            },
            http: HttpConfig::default(),
            bind_addr: addr,
            public_base_url: Some(format!("http://{addr}")),
            shutdown_grace: Duration::from_secs(5),
        };
        tweak(&mut config);
        let storage = env.fresh_bucket(&config.service.s3).await;
        let state = api::build_state(&config).await.expect("api state");
        let pool = state.uploads.repository().pool().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(api::serve(listener, api::app(state.clone()), async move {
            let _ = stopped.await;
        }));
        Self {
            env,
            base_url: format!("http://{addr}"),
            config,
            http: reqwest::Client::builder().timeout(Duration::from_secs(120)).build().expect("http client"),
            state,
            pool,
            storage,
            stop: Some(stop),
            server: Some(server),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
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
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
