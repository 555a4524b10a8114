//! The teardown every test ends with (`TestApp::finish`): it drops the test's database and bucket, and it
//! fails the test when a job is left leased or a due job cannot run to the end.

use e2e::{TestApp, TestEnv, random_bytes};
use sqlx::PgPool;

use crate::lifecycle::CHUNK;

async fn admin() -> PgPool {
    PgPool::connect(&TestEnv::from_env().admin_database_url).await.unwrap()
}

async fn database_exists(admin: &PgPool, name: &str) -> bool {
    sqlx::query_scalar("SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)")
        .bind(name)
        .fetch_one(admin)
        .await
        .unwrap()
}

/// Runs `finish` and says whether it failed; a failed teardown keeps the database, which this drops.
async fn finish_fails(app: TestApp) -> bool {
    let name = app.database_name().to_string();
    let failed = tokio::spawn(app.finish()).await.is_err_and(|e| e.is_panic());
    let admin = admin().await;
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")))
        .execute(&admin)
        .await
        .unwrap();
    failed
}

#[tokio::test]
async fn finish_drops_the_database_and_the_bucket() {
    let app = TestApp::spawn().await;
    app.upload_file(&random_bytes(1000), CHUNK as u64).await;
    let (name, s3, bucket) =
        (app.database_name().to_string(), app.storage.client().clone(), app.storage.bucket().to_string());
    let admin = admin().await;
    assert!(database_exists(&admin, &name).await);

    app.finish().await;
    assert!(!database_exists(&admin, &name).await, "the test's database is still there");
    s3.head_bucket().bucket(&bucket).send().await.expect_err("the test's bucket is still there");
}

#[tokio::test]
async fn finish_fails_while_a_job_is_leased() {
    let app = TestApp::spawn().await;
    // As a worker that claimed the sweep and was never stopped leaves it.
    sqlx::query(
        "UPDATE jobs SET state = 'running', lease_owner = 'gone', lease_expires_at = now() + interval '1 hour' \
         WHERE kind = 'sweep'",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    assert!(finish_fails(app).await, "a leased job passed the teardown");
}

#[tokio::test]
async fn finish_fails_when_a_due_job_cannot_finish() {
    let app = TestApp::spawn().await;
    let id = app.upload_file(&random_bytes(1000), CHUNK as u64).await;
    // Completed without its object: the queued verification cannot succeed.
    let s3 = app.storage.client();
    s3.delete_object().bucket(app.storage.bucket()).key(format!("uploads/{id}")).send().await.unwrap();
    assert!(finish_fails(app).await, "a completed upload without its object passed the teardown");
}

#[tokio::test]
async fn finish_passes_what_a_worker_would_run_later() {
    let app = TestApp::spawn().await;
    app.upload_file(&random_bytes(1000), CHUNK as u64).await;
    // A retry after its backoff.
    sqlx::query("UPDATE jobs SET run_at = now() + interval '1 hour' WHERE kind = 'verify_object'")
        .execute(&app.pool)
        .await
        .unwrap();
    app.finish().await;
}
