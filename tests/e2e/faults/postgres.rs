//! Postgres failing under load: four clients upload while the API's Postgres refuses connections for a few
//! seconds and then has every open connection cut. Requests meanwhile answer 503 + `Retry-After` within the
//! acquire timeout; afterwards everything works without restarting anything; no confirmed chunk is lost.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use api::config::ApiConfig;
use e2e::{ChaosProxy, TestApp, TestEnv, random_bytes};
use futures::future::join_all;

use super::load::{Client, Stats, confirmed_at_least};
use crate::lifecycle::CHUNK;

/// What the clients of a fault test saw, printed for the closing note of issue 10.
pub fn report(fault: &str, stats: &Stats, uploads: usize, before_fault: u64, identical: usize, recovery: Duration) {
    eprintln!(
        "FIGURES {fault}: uploads interrupted {uploads}, chunks confirmed before the fault {before_fault}, chunks \
         confirmed in all {}, chunks lost 0, objects byte-identical {identical}/{uploads}, refused requests {} \
         (slowest answered in {} ms), failed connections {}, time to recover {recovery:?}",
        stats.confirmed.load(Ordering::Relaxed),
        stats.refusals.load(Ordering::Relaxed),
        stats.slowest_refusal_ms.load(Ordering::Relaxed),
        stats.connection_errors.load(Ordering::Relaxed),
    );
}

/// How long a request may wait for a connection in these tests.
const ACQUIRE: Duration = Duration::from_secs(2);

fn short_database_timeouts(config: &mut ApiConfig) {
    config.service.database.database_statement_timeout = Duration::from_secs(2);
    config.service.database.database_acquire_timeout = ACQUIRE;
}

/// Four clients upload four files while `fault` breaks Postgres once three chunks are confirmed; `fault`
/// returns when Postgres came back. Checks that requests were refused in time, not hung, that nothing
/// confirmed was lost and every object is byte-identical; prints the figures.
async fn under_load<F: Future<Output = Instant>>(app: &TestApp, name: &str, fault: impl FnOnce() -> F) {
    let stats = Stats::default();
    let client = Client::new(vec![app.base_url.clone()], app.http.clone(), app.plain.clone(), &stats);
    let files: Vec<Vec<u8>> = (0..4).map(|_| random_bytes(3 * CHUNK + 1000)).collect();
    let outage = async {
        let before = confirmed_at_least(&stats, 3).await;
        let back = fault().await;
        confirmed_at_least(&stats, before + 3).await;
        let recovered = stats.recovered_at.lock().unwrap().expect("a request refused during the outage succeeded");
        (before, recovered.saturating_duration_since(back))
    };
    let (ids, (before, recovery)) = tokio::join!(join_all(files.iter().map(|file| client.upload(file, CHUNK))), outage);

    assert!(stats.refusals.load(Ordering::Relaxed) > 0, "no request met the outage: the test proved nothing");
    let slowest = Duration::from_millis(stats.slowest_refusal_ms.load(Ordering::Relaxed));
    // The acquire timeout plus a loaded machine's slack: the point is that no request hung.
    assert!(slowest < ACQUIRE + Duration::from_secs(8), "a refusal took {slowest:?}");
    let mut identical = 0;
    for (id, file) in ids.iter().zip(&files) {
        assert!(app.object_bytes(*id).await == *file, "upload {id} is not byte-identical");
        identical += 1;
    }
    report(name, &stats, files.len(), before, identical, recovery);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_refusing_then_cut_under_load_costs_503s_and_no_confirmed_chunk() {
    let env = TestEnv::from_env();
    let (pg, _) = ChaosProxy::in_front_of(&env.admin_database_url).await;
    let app = TestApp::spawn_with(|c| {
        let direct = c.service.database.database_url.as_deref().expect("tests set DATABASE_URL");
        c.service.database.database_url = Some(pg.proxied_url(direct));
        short_database_timeouts(c);
    })
    .await;
    under_load(&app, "postgres refusing connections for 3 s, then every connection cut", || async {
        pg.refuse();
        tokio::time::sleep(Duration::from_secs(3)).await;
        pg.restore();
        let back = Instant::now();
        // The pool's connections from before are gone; those opened since are cut now.
        tokio::time::sleep(Duration::from_millis(500)).await;
        pg.cut();
        back
    })
    .await;
    app.finish().await;
}

/// A Postgres cluster of this test's own (scripts/postgres.sh), which it may stop and start again.
struct PrivatePostgres {
    dir: std::path::PathBuf,
    port: u16,
}

impl PrivatePostgres {
    async fn start() -> Self {
        let dir = std::env::temp_dir().join(format!("faults-pg-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        // As root, the cluster runs as `postgres`, which must reach its data directory.
        std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let postgres = Self { dir, port: super::processes::free_port() };
        postgres.pg(&format!("pg_start {} {}", postgres.data().display(), postgres.port)).await;
        postgres
    }

    fn data(&self) -> std::path::PathBuf {
        self.dir.join("pg")
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    async fn pg(&self, call: &str) {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/postgres.sh");
        let status = tokio::process::Command::new("bash")
            .args(["-c", &format!(". {script} && {call}")])
            .status()
            .await
            .expect("bash runs");
        assert!(status.success(), "{call} failed");
    }

    /// `pg_ctl stop -m fast`: Postgres ends every session (57P01) and stops listening.
    async fn stop(&self) {
        self.pg(&format!("pg_stop {}", self.data().display())).await;
    }

    async fn start_again(&self) {
        self.pg(&format!("pg_start {} {}", self.data().display(), self.port)).await;
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/postgres.sh");
        let call = format!(". {script} && pg_stop {}", self.data().display());
        let _ = std::process::Command::new("bash").args(["-c", &call]).status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_postgres_stopped_under_load_costs_503s_and_no_confirmed_chunk() {
    let postgres = PrivatePostgres::start().await;
    let env = TestEnv { admin_database_url: postgres.url(), s3_endpoint: TestEnv::from_env().s3_endpoint };
    let app = TestApp::spawn_in(env, short_database_timeouts).await;
    // Unlike a proxy's cut, a stopping Postgres tells each session why (FATAL 57P01) before closing it.
    under_load(&app, "postgres stopped for 3 s (pg_ctl stop -m fast), started again", || async {
        postgres.stop().await;
        tokio::time::sleep(Duration::from_secs(3)).await;
        postgres.start_again().await;
        Instant::now()
    })
    .await;
    app.finish().await;
}
