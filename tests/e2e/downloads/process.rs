//! The api binary as a real process on a test app's database and bucket, its log in a file.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use e2e::{TestApp, workspace_bin};
use reqwest::StatusCode;

pub struct ApiProcess {
    child: Child,
    pub base_url: String,
    pub log_path: PathBuf,
}

impl ApiProcess {
    /// Starts the api with the app's database and bucket; returns once /healthz answers.
    pub async fn spawn(app: &TestApp, name: &str, extra_env: &[(&str, &str)]) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        Self::start(app, port, name, extra_env, false).await
    }

    /// As [`ApiProcess::spawn`], on `port`, with `extra_env` winning over the defaults (`S3_ENDPOINT` through a
    /// proxy, say). `restarted`: the log goes on after a killed predecessor's instead of starting afresh.
    pub async fn start(app: &TestApp, port: u16, name: &str, extra_env: &[(&str, &str)], restarted: bool) -> Self {
        let base_url = format!("http://127.0.0.1:{port}");
        let dir = std::env::var("TEST_OUTPUT_DIR").map(PathBuf::from).unwrap_or_else(|_| std::env::temp_dir());
        std::fs::create_dir_all(&dir).unwrap();
        let log_path = dir.join(format!("{name}-api.log"));
        let mut log = std::fs::OpenOptions::new();
        let log = log.create(true).write(true).append(restarted).truncate(!restarted).open(&log_path).unwrap();
        let child = Command::new(workspace_bin("api"))
            .env("DATABASE_URL", app.database_url())
            .env("S3_ENDPOINT", &app.env.s3_endpoint)
            .env("S3_BUCKET", &app.config.service.s3.s3_bucket)
            .env("S3_FORCE_PATH_STYLE", "true")
            .env("BIND_ADDR", format!("127.0.0.1:{port}"))
            .env("LINK_SIGNING_KEY", app.config.links.link_signing_key.as_ref().expect("a key").expose())
            .envs(app.auth_env())
            .envs(extra_env.iter().copied())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("the api binary starts");
        let process = Self { child, base_url, log_path };
        for _ in 0..200 {
            let health = app.http.get(format!("{}/healthz", process.base_url)).send().await;
            if health.is_ok_and(|r| r.status() == StatusCode::OK) {
                return process;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the api process did not become healthy; see {}", process.log_path.display());
    }

    /// SIGKILL, as the OOM killer or a lost node does it: no shutdown, no flush; returns once it is gone.
    pub fn kill(&mut self) {
        self.child.kill().expect("SIGKILL the api");
        self.child.wait().expect("reap the api");
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }
}

impl Drop for ApiProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
