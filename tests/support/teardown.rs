//! The end of every test: the job queue is left in order, then the test's database and bucket are dropped.
//!
//! "In order" means two things, checked on the test's own database:
//! - nobody holds a lease: no job is `running` once the test's workers and API are stopped (a test that kills
//!   a worker mid-job must see its job taken over before it ends);
//! - whatever is due can run: one worker tick, on direct connections (no chaos proxy), runs every due job to
//!   `done` and leaves none due. A completion left without its object, an expiry that cannot abort its parts,
//!   a recovery that cannot finish, all fail here, in the test that caused them.
//!
//! Jobs queued for later (the next sweep, a recovery at its lease's end, a retry after its backoff) are fine:
//! a worker would run them then.

use std::time::Duration;

use aws_sdk_s3::types::{Delete, ObjectIdentifier};
use sqlx::postgres::PgPoolOptions;
use sqlx::{Executor, PgPool};
use uploads::config::{DatabaseConfig, ServiceConfig};
use uploads::service::Uploads;
use uploads::storage::Storage;
use uuid::Uuid;
use worker::config::JobSettings;
use worker::{Outcome, Worker};

/// Where a test's own database and bucket are, bypassing any proxy the test put in front of them.
#[derive(Debug, Clone)]
pub(crate) struct Owned {
    pub admin_database_url: String,
    pub database_url: String,
    pub database: String,
    pub s3: uploads::config::S3Config,
    pub owns_bucket: bool,
}

/// A job the teardown found out of order.
#[derive(Debug, sqlx::FromRow)]
#[expect(dead_code, reason = "read through Debug, in the teardown's assertion messages (but upload_id)")]
struct LeftJob {
    id: i64,
    kind: String,
    upload_id: Option<Uuid>,
    state: String,
    attempts: i32,
    last_error: Option<String>,
}

impl Owned {
    /// Asserts the queue is in order (see the module's doc), then drops the database and the bucket.
    /// Jobs on the `vanished` uploads (their object deleted by the test) may fail.
    pub async fn finish(&self, service: &ServiceConfig, vanished: &[Uuid]) {
        self.check_queue(service, vanished).await;
        self.drop_all().await;
    }

    async fn check_queue(&self, service: &ServiceConfig, vanished: &[Uuid]) {
        let mut service = service.clone();
        service.database = DatabaseConfig {
            // Straight to the test's database, whichever way the app was given it (a proxy, a file).
            database_url: Some(self.database_url.clone()),
            database_url_file: None,
            database_max_connections: 2,
            ..service.database
        };
        service.s3 = self.s3.clone();
        let uploads = Uploads::connect(&service).await.expect("teardown: connect to the test's database and bucket");
        let pool = uploads.repository().pool().clone();

        let leased = left_jobs(&pool, "state = 'running'").await;
        assert!(leased.is_empty(), "teardown: jobs still leased when the test ended: {leased:?}");

        let settings = JobSettings { lease: Duration::from_secs(60), ..JobSettings::default() };
        // A job that falls due while the tick runs (a completion's recovery at its lease's end) is claimed by it,
        // unless it falls due after the tick's last claim: only what was due when the tick began must be done.
        let tick_began: chrono::DateTime<chrono::Utc> =
            sqlx::query_scalar("SELECT clock_timestamp()").fetch_one(&pool).await.expect("teardown: read the clock");
        let reports = Worker::new(uploads, settings).tick().await.expect("teardown: run the due jobs");
        let expected = |upload: Option<Uuid>| upload.is_some_and(|id| vanished.contains(&id));
        let unfinished: Vec<_> =
            reports.iter().filter(|r| r.outcome != Outcome::Done && !expected(r.upload_id)).collect();
        let detail = left_jobs(&pool, "state <> 'done'").await;
        assert!(unfinished.is_empty(), "teardown: due jobs did not finish: {unfinished:?}\n{detail:?}");
        let due_then = format!("state IN ('queued', 'running') AND run_at <= '{}'", tick_began.to_rfc3339());
        let mut due = left_jobs(&pool, &due_then).await;
        due.retain(|job| !expected(job.upload_id));
        assert!(due.is_empty(), "teardown: jobs still due after a worker tick: {due:?}");
        pool.close().await;
    }

    /// Drops the database (closing whatever connections are left: a sibling API, a killed process's) and
    /// empties and deletes the bucket, unless it is another app's (which must then finish last).
    pub async fn drop_all(&self) {
        let admin =
            PgPoolOptions::new().max_connections(1).connect(&self.admin_database_url).await.expect("admin connection");
        let drop = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.database);
        admin.execute(sqlx::AssertSqlSafe(drop)).await.expect("drop the test's database");
        admin.close().await;
        if self.owns_bucket {
            delete_bucket(&Storage::connect(&self.s3).await.expect("teardown: connect to S3")).await;
        }
    }
}

async fn left_jobs(pool: &PgPool, filter: &str) -> Vec<LeftJob> {
    let query = format!(
        "SELECT id, kind::text, upload_id, state::text, attempts, last_error FROM jobs WHERE {filter} ORDER BY id"
    );
    sqlx::query_as(sqlx::AssertSqlSafe(query)).fetch_all(pool).await.expect("teardown: read the jobs")
}

/// Aborts the bucket's multipart uploads, deletes its objects, then the bucket.
async fn delete_bucket(storage: &Storage) {
    let (s3, bucket) = (storage.client(), storage.bucket());
    let uploads = s3.list_multipart_uploads().bucket(bucket).send().await.expect("list multipart uploads");
    for upload in uploads.uploads() {
        s3.abort_multipart_upload()
            .bucket(bucket)
            .key(upload.key().unwrap_or_default())
            .upload_id(upload.upload_id().unwrap_or_default())
            .send()
            .await
            .expect("abort a multipart upload");
    }
    loop {
        let listed = s3.list_objects_v2().bucket(bucket).send().await.expect("list objects");
        let keys: Vec<_> = listed
            .contents()
            .iter()
            .filter_map(|o| o.key())
            .map(|key| ObjectIdentifier::builder().key(key).build().expect("an object id"))
            .collect();
        if keys.is_empty() {
            break;
        }
        let delete = Delete::builder().set_objects(Some(keys)).build().expect("a delete request");
        s3.delete_objects().bucket(bucket).delete(delete).send().await.expect("delete objects");
    }
    s3.delete_bucket().bucket(bucket).send().await.expect("delete the test's bucket");
}
