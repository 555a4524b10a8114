//! Each job's effect: expiry, the orphan sweep, verification, completion recovery, failures and retention.

use std::time::Duration;

use e2e::{TestApp, random_bytes, sha256_hex};
use reqwest::StatusCode;
use serde_json::json;
use uploads::domain::{Sha256Digest, UploadState, VerificationState};
use uploads::repository::JobKind;
use uuid::Uuid;
use worker::{JobReport, Outcome};

use super::*;

#[tokio::test]
async fn an_idle_upload_past_its_ttl_is_aborted_in_s3_and_expired() {
    let app = TestApp::spawn().await;
    let data = random_bytes(5 * MIB + 1000);
    let idle = upload_chunks(&app, &data, 5 * MIB, 1).await;
    let live = upload_chunks(&app, &data, 5 * MIB, 1).await;
    assert_eq!(app.s3_multipart_uploads().await.len(), 2);
    // Idle past its deadline, as if UPLOAD_TTL had gone by without a request.
    app.lapse_deadline(idle).await;

    let reports = worker(&app, |_| {}).await.tick().await.unwrap();

    let kinds: Vec<_> = reports.iter().map(|r| (r.kind, r.outcome)).collect();
    assert_eq!(kinds, [(JobKind::Sweep, Outcome::Done), (JobKind::ExpireUpload, Outcome::Done)]);
    assert_eq!(upload_state(&app, idle).await, UploadState::Expired);
    assert_eq!(upload_state(&app, live).await, UploadState::Uploading);
    assert_eq!(app.s3_multipart_uploads().await, [s3_upload_id(&app, live).await]);
    let response = app.get(&format!("/v1/uploads/{idle}")).await;
    assert_eq!(response.status(), StatusCode::GONE);
    assert_eq!(job_of(&app, "expire_upload", idle).await.attempts, 1);
    assert_nothing_left(&app).await;

    // Once the live one goes idle too, S3 lists no multipart upload at all.
    sqlx::query("UPDATE uploads SET expires_at = now() WHERE id = $1").bind(live).execute(&app.pool).await.unwrap();
    sqlx::query("UPDATE jobs SET run_at = now() WHERE kind = 'sweep'").execute(&app.pool).await.unwrap();
    worker(&app, |_| {}).await.tick().await.unwrap();
    assert_eq!(upload_state(&app, live).await, UploadState::Expired);
    assert!(app.s3_multipart_uploads().await.is_empty());
    app.finish().await;
}

#[tokio::test]
async fn the_sweep_aborts_orphan_multipart_uploads_older_than_the_ttl() {
    let app = TestApp::spawn().await;
    let storage = app.storage.clone();
    let data = random_bytes(5 * MIB + 10);
    let live = upload_chunks(&app, &data, 5 * MIB, 1).await;
    // A row whose own S3 abort failed: aborted in the database, still open in S3.
    let dead_row = upload_chunks(&app, &data, 5 * MIB, 1).await;
    sqlx::query("UPDATE uploads SET state = 'aborted' WHERE id = $1").bind(dead_row).execute(&app.pool).await.unwrap();
    let orphan_key = format!("uploads/{}", Uuid::now_v7());
    let orphan = storage.create_multipart_upload(&orphan_key, "application/octet-stream").await.unwrap();
    let foreign = storage.create_multipart_upload("elsewhere/file", "application/octet-stream").await.unwrap();
    // Older than the worker's UPLOAD_TTL (3 s); S3 reports initiation times to the second.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let young_key = format!("uploads/{}", Uuid::now_v7());
    let young = storage.create_multipart_upload(&young_key, "application/octet-stream").await.unwrap();
    let mut before = app.s3_multipart_uploads().await;
    before.sort();
    assert_eq!(before.len(), 5);

    let sweeper = worker(&app, |c| c.service.policy.upload_ttl = Duration::from_secs(3)).await;
    let reports = sweeper.tick().await.unwrap();

    assert_eq!(reports.len(), 1, "{reports:?}");
    let mut left = app.s3_multipart_uploads().await;
    left.sort();
    let mut expected = vec![s3_upload_id(&app, live).await, foreign.clone(), young.clone()];
    expected.sort();
    assert_eq!(left, expected, "orphan {orphan} and the aborted row's upload must be gone");
    assert_eq!(upload_state(&app, live).await, UploadState::Uploading);
    for (key, id) in [("elsewhere/file", &foreign), (young_key.as_str(), &young)] {
        storage.abort_multipart_upload(key, id).await.unwrap();
    }
    assert_nothing_left(&app).await;
    app.finish().await;
}

#[tokio::test]
async fn listing_multipart_uploads_follows_every_page() {
    let app = TestApp::spawn().await;
    let mut created = Vec::new();
    for n in 0..5 {
        // Two uploads of one key too: S3 pages by key and upload id.
        let key = format!("uploads/{}", n % 4);
        created.push(app.storage.create_multipart_upload(&key, "application/octet-stream").await.unwrap());
    }
    app.storage.create_multipart_upload("elsewhere/x", "application/octet-stream").await.unwrap();

    let listed = app.storage.list_multipart_uploads_paged("uploads/", 2).await.unwrap();

    let mut listed: Vec<String> = listed.into_iter().map(|u| u.upload_id).collect();
    listed.sort();
    created.sort();
    assert_eq!(listed, created);
    app.finish().await;
}

#[tokio::test]
async fn verification_records_verified_corrupt_and_computed_digests() {
    let app = TestApp::spawn().await;
    let data = random_bytes(5 * MIB + 4321);
    let digest = sha256_hex(&data);
    let wrong = sha256_hex(b"something else");
    let good = upload_declared(&app, &data, 5 * MIB, Some(digest.clone())).await;
    let corrupt = upload_declared(&app, &data, 5 * MIB, Some(wrong.clone())).await;
    let undeclared = upload_declared(&app, &data[..1000], 5 * MIB, None).await;
    assert_eq!(app.status(good, false).await["verification"], json!({ "state": "pending", "declaredSha256": digest }));

    let reports = worker(&app, |_| {}).await.tick().await.unwrap();
    assert!(reports.iter().all(|r| r.outcome == Outcome::Done), "{reports:?}");

    let status = app.status(good, false).await;
    assert_eq!(status["verification"]["state"], "verified");
    assert_eq!(status["verification"]["sha256"], digest.as_str());
    assert_eq!(status["verification"]["declaredSha256"], digest.as_str());
    assert!(status["verification"]["verifiedAt"].is_string(), "{status}");

    let status = app.status(corrupt, false).await;
    assert_eq!(status["verification"]["state"], "corrupt");
    assert_eq!(status["verification"]["sha256"], digest.as_str());
    assert_eq!(status["verification"]["declaredSha256"], wrong.as_str());

    let status = app.status(undeclared, false).await;
    assert_eq!(status["verification"]["state"], "computed");
    assert_eq!(status["verification"]["sha256"], sha256_hex(&data[..1000]).as_str());
    assert!(status["verification"].get("declaredSha256").is_none(), "{status}");

    let record = app.state.uploads.repository().find_upload(good).await.unwrap().unwrap();
    assert_eq!(record.verification_state, Some(VerificationState::Verified));
    let base64 = Sha256Digest::parse_hex(&digest).unwrap().to_base64();
    assert_eq!(record.repr_digest(), Some(format!("sha-256=:{base64}:")));
    // Downloads offer the digest the worker computed (RFC 9530), on whole and ranged answers alike.
    for range in [None, Some("bytes=0-9")] {
        let mut request = app.http.get(app.url(&format!("/v1/files/{good}")));
        if let Some(range) = range {
            request = request.header("range", range);
        }
        let response = request.send().await.unwrap();
        assert!(response.status().is_success(), "{}", response.status());
        assert_eq!(response.headers()["repr-digest"], format!("sha-256=:{base64}:").as_str());
    }
    for id in [good, corrupt, undeclared] {
        assert_eq!(job_of(&app, "verify_object", id).await.attempts, 1);
    }
    assert_nothing_left(&app).await;
    app.finish().await;
}

/// A client that hashes while it sends declares the file's digest when it completes: the worker holds the
/// object to that digest exactly as to one declared at creation, and a digest other than the declared one,
/// or one given after a completion without any, is refused and changes nothing.
#[tokio::test]
async fn a_digest_declared_at_completion_is_the_one_verified_and_cannot_be_changed() {
    let app = TestApp::spawn().await;
    let data = random_bytes(5 * MIB + 777);
    let digest = sha256_hex(&data);
    let wrong = sha256_hex(b"other bytes");
    let complete_with = async |id: Uuid, sha256: &str| {
        app.post_json(&format!("/v1/uploads/{id}/complete"), &json!({ "sha256": sha256 })).await
    };
    let sent = async || upload_declared_sent(&app, &data, 5 * MIB, None).await;
    let refused = async |response: reqwest::Response, declared: serde_json::Value| {
        assert_eq!(response.status(), StatusCode::CONFLICT);
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!((&body["code"], &body["declaredSha256"]), (&json!("file_checksum_conflict"), &declared), "{body}");
    };

    let good = sent().await;
    let invalid = complete_with(good, "not-hex").await;
    assert_eq!(invalid.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(upload_state(&app, good).await, UploadState::Uploading);
    assert_eq!(complete_with(good, &digest).await.status(), StatusCode::OK);
    // The retry of a completion whose answer was lost says the same again: the same 200.
    assert_eq!(complete_with(good, &digest.to_uppercase()).await.status(), StatusCode::OK);
    refused(complete_with(good, &wrong).await, json!(digest)).await;

    let corrupt = sent().await;
    assert_eq!(complete_with(corrupt, &wrong).await.status(), StatusCode::OK);

    // Declared at creation: only that digest completes it; the refusal leaves it uploading.
    let declared = upload_declared_sent(&app, &data, 5 * MIB, Some(digest.clone())).await;
    refused(complete_with(declared, &wrong).await, json!(digest)).await;
    assert_eq!(upload_state(&app, declared).await, UploadState::Uploading);
    assert_eq!(complete_with(declared, &digest).await.status(), StatusCode::OK);

    let undeclared = sent().await;
    assert_eq!(app.complete(undeclared).await.status(), StatusCode::OK);
    refused(complete_with(undeclared, &digest).await, json!(null)).await;

    worker(&app, |_| {}).await.tick().await.unwrap();
    let verification = async |id| app.status(id, false).await["verification"].clone();
    assert_eq!(verification(good).await["state"], "verified");
    assert_eq!(verification(good).await["declaredSha256"], digest.as_str());
    assert_eq!(verification(corrupt).await["state"], "corrupt");
    assert_eq!(verification(declared).await["state"], "verified");
    assert_eq!(verification(undeclared).await["state"], "computed");
    assert_nothing_left(&app).await;
    app.finish().await;
}

#[tokio::test]
async fn a_corrupt_object_is_refused_unless_its_owner_opts_in_and_never_attested() {
    let app = TestApp::spawn().await;
    let data = random_bytes(5 * MIB + 99);
    let wrong = sha256_hex(b"not these bytes");
    let id = upload_declared(&app, &data, 5 * MIB, Some(wrong.clone())).await;
    // A link handed out while verification was pending must not serve the object once it is found corrupt.
    let link = app.post_json(&format!("/v1/files/{id}/links"), &json!({})).await;
    assert_eq!(link.status(), StatusCode::OK);
    let link = link.json::<serde_json::Value>().await.unwrap()["url"].as_str().unwrap().to_string();
    worker(&app, |_| {}).await.tick().await.unwrap();
    assert_eq!(app.status(id, false).await["verification"]["state"], "corrupt");

    let file = app.url(&format!("/v1/files/{id}"));
    let plain = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    for (request, what) in [
        (app.http.get(&file), "GET"),
        (app.http.get(&file).header("range", "bytes=0-9"), "a range"),
        (app.http.get(format!("{file}?redirect=true")), "a redirect"),
        (plain.get(&link), "the signed link"),
        (plain.get(format!("{link}&allowCorrupt=true")), "the signed link opting in"),
    ] {
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::CONFLICT, "{what}");
        assert!(response.headers().get("repr-digest").is_none(), "{what}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["code"], "object_corrupt", "{what}: {body}");
        assert_eq!(body["declaredSha256"], wrong.as_str(), "{what}");
        assert_eq!(body["sha256"], sha256_hex(&data).as_str(), "{what}");
    }
    let head = app.http.head(&file).send().await.unwrap();
    assert_eq!(head.status(), StatusCode::CONFLICT);
    let again = app.post_json(&format!("/v1/files/{id}/links"), &json!({})).await;
    assert_eq!(again.status(), StatusCode::CONFLICT, "no new link to a corrupt object");

    // The owner opts in and gets the stored bytes, with nothing that attests them against the declared digest.
    for (range, expected) in [(None, &data[..]), (Some("bytes=10-19"), &data[10..20])] {
        let mut request = app.http.get(format!("{file}?allowCorrupt=true"));
        if let Some(range) = range {
            request = request.header("range", range);
        }
        let response = request.send().await.unwrap();
        assert!(response.status().is_success(), "{:?}: {}", range, response.status());
        assert!(response.headers().get("repr-digest").is_none(), "{:?}: {:?}", range, response.headers());
        assert_eq!(response.bytes().await.unwrap(), expected);
    }
    let redirect = plain
        .get(format!("{file}?allowCorrupt=true&redirect=true"))
        .bearer_auth(app.token_for(TestApp::OWNER))
        .send()
        .await
        .unwrap();
    assert_eq!(redirect.status(), StatusCode::FOUND);
    assert_nothing_left(&app).await;
    app.finish().await;
}

/// As if the API died between S3 and the database: `completing`, CompleteMultipartUpload perhaps sent, its lease
/// lapsed longer ago than the threshold.
async fn strand_in_completing(app: &TestApp, id: Uuid) {
    sqlx::query(
        "UPDATE uploads SET state = 'completing', completion_epoch = completion_epoch + 1, \
         completing_until = now() - interval '2 minutes', assembly_requested_at = now() WHERE id = $1",
    )
    .bind(id)
    .execute(&app.pool)
    .await
    .unwrap();
}

#[tokio::test]
async fn uploads_stuck_in_completing_are_recovered() {
    let app = TestApp::spawn().await;
    let data = random_bytes(5 * MIB + 777);
    // S3 never heard of the completion.
    let not_stitched = upload_chunks(&app, &data, 5 * MIB, 2).await;
    strand_in_completing(&app, not_stitched).await;
    // S3 assembled the object, the database never heard of it.
    let stitched = upload_chunks(&app, &data, 5 * MIB, 2).await;
    strand_in_completing(&app, stitched).await;
    app.assemble_in_s3_behind_the_service(stitched).await;
    assert!(!app.s3_multipart_uploads().await.contains(&s3_upload_id(&app, stitched).await));
    // A chunk never arrived: cannot complete, back to uploading so the client can send it.
    let incomplete = upload_chunks(&app, &data, 5 * MIB, 1).await;
    strand_in_completing(&app, incomplete).await;
    // Completing right now (a live API holds the lease): not the worker's business yet.
    let in_progress = upload_chunks(&app, &data, 5 * MIB, 2).await;
    sqlx::query("UPDATE uploads SET state = 'completing', completing_until = now() + interval '1 hour' WHERE id = $1")
        .bind(in_progress)
        .execute(&app.pool)
        .await
        .unwrap();

    let reports = worker(&app, |_| {}).await.tick().await.unwrap();
    assert!(reports.iter().all(|r| r.outcome == Outcome::Done), "{reports:?}");

    for id in [not_stitched, stitched] {
        let status = app.status(id, false).await;
        assert_eq!(status["state"], "completed", "{status}");
        assert_eq!(status["verification"]["state"], "computed", "{status}");
        assert_eq!(status["verification"]["sha256"], sha256_hex(&data).as_str());
        assert_eq!(app.object_bytes(id).await, data);
    }
    assert_eq!(upload_state(&app, incomplete).await, UploadState::Uploading);
    assert_eq!(app.status(incomplete, false).await["missingChunks"], json!([[1, 1]]));
    assert_eq!(upload_state(&app, in_progress).await, UploadState::Completing);
    let recovered: Vec<_> = jobs(&app).await.into_iter().filter(|j| j.kind == "recover_completion").collect();
    assert_eq!(recovered.len(), 3, "{recovered:?}");
    assert!(recovered.iter().all(|j| j.attempts == 1 && j.last_error.is_none()), "{recovered:?}");
    assert_nothing_left(&app).await;
    app.finish().await;
}

#[tokio::test]
async fn a_failing_job_records_its_error_backs_off_and_finally_fails() {
    let app = TestApp::spawn().await;
    let data = random_bytes(1000);
    let id = upload_declared(&app, &data, 5 * MIB, Some(sha256_hex(&data))).await;
    // The object vanished: hashing it cannot succeed.
    let s3 = app.storage.client();
    s3.delete_object().bucket(app.storage.bucket()).key(format!("uploads/{id}")).send().await.unwrap();
    let worker = worker(&app, |c| {
        c.jobs.max_attempts = 2;
        c.jobs.backoff = Duration::from_secs(3600);
    })
    .await;

    let outcomes = |reports: Vec<JobReport>| -> Vec<Outcome> {
        reports.into_iter().filter(|r| r.upload_id == Some(id)).map(|r| r.outcome).collect()
    };
    assert_eq!(outcomes(worker.tick().await.unwrap()), [Outcome::Retrying]);
    let job = job_of(&app, "verify_object", id).await;
    assert_eq!((job.state.as_str(), job.attempts), ("queued", 1));
    assert!(job.last_error.as_deref().unwrap_or_default().contains("no such object"), "{job:?}");
    let backed_off: bool = sqlx::query_scalar("SELECT run_at > now() + interval '59 minutes' FROM jobs WHERE id = $1")
        .bind(job.id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert!(backed_off);
    assert_eq!(outcomes(worker.tick().await.unwrap()), [], "not due before its backoff");

    sqlx::query("UPDATE jobs SET run_at = now() WHERE id = $1").bind(job.id).execute(&app.pool).await.unwrap();
    assert_eq!(outcomes(worker.tick().await.unwrap()), [Outcome::Failed]);
    let job = job_of(&app, "verify_object", id).await;
    assert_eq!((job.state.as_str(), job.attempts, job.lease_owner), ("failed", 2, None));
    let record = app.state.uploads.repository().find_upload(id).await.unwrap().unwrap();
    assert_eq!(record.verification_state, Some(VerificationState::Failed));
    assert!(record.verification_error.unwrap_or_default().contains("no such object"));
    assert_eq!(app.status(id, false).await["verification"]["state"], "failed");
    app.finish().await;
}

#[tokio::test]
async fn the_sweep_deletes_done_jobs_past_their_retention_and_keeps_the_rest() {
    let app = TestApp::spawn().await;
    let (old, recent) = (random_bytes(100), random_bytes(200));
    let old = upload_declared(&app, &old, 5 * MIB, None).await;
    let recent = upload_declared(&app, &recent, 5 * MIB, None).await;
    let worker = worker(&app, |c| c.jobs.job_retention = Duration::from_secs(86_400)).await;
    worker.tick().await.unwrap();
    sqlx::query("UPDATE jobs SET finished_at = now() - interval '2 days' WHERE upload_id = $1")
        .bind(old)
        .execute(&app.pool)
        .await
        .unwrap();
    sqlx::query("UPDATE jobs SET run_at = now() WHERE kind = 'sweep'").execute(&app.pool).await.unwrap();

    worker.tick().await.unwrap();

    let left: Vec<(String, Option<Uuid>)> = jobs(&app).await.into_iter().map(|j| (j.kind, j.upload_id)).collect();
    assert_eq!(left, [("sweep".to_string(), None), ("verify_object".to_string(), Some(recent))]);
    assert_eq!(app.status(old, false).await["verification"]["state"], "computed");
    app.finish().await;
}

/// As if a worker claimed the job and died: running, under a lease that has run out.
async fn abandon_with_lapsed_lease(app: &TestApp, job_id: i64, attempts: i32) {
    sqlx::query(
        "UPDATE jobs SET state = 'running', attempts = $2, lease_owner = 'worker-gone', \
         lease_expires_at = now() - interval '1 second' WHERE id = $1",
    )
    .bind(job_id)
    .bind(attempts)
    .execute(&app.pool)
    .await
    .unwrap();
}

#[tokio::test]
async fn a_job_whose_worker_vanished_waits_out_its_backoff_and_a_spent_verification_fails_for_good() {
    let app = TestApp::spawn().await;
    let data = random_bytes(1000);
    let id = upload_declared(&app, &data, 5 * MIB, Some(sha256_hex(&data))).await;
    let verify = job_of(&app, "verify_object", id).await;
    let worker = worker(&app, |c| {
        c.jobs.max_attempts = 3;
        c.jobs.backoff = Duration::from_secs(3600);
    })
    .await;

    // Crashed on its first attempt: queued again, but not before its backoff (a crash loop cannot spin).
    abandon_with_lapsed_lease(&app, verify.id, 1).await;
    let ran: Vec<_> = worker.tick().await.unwrap().into_iter().filter(|r| r.upload_id == Some(id)).collect();
    assert!(ran.is_empty(), "ran at once after a crash: {ran:?}");
    let job = job_of(&app, "verify_object", id).await;
    assert_eq!((job.state.as_str(), job.lease_owner.as_deref()), ("queued", None), "{job:?}");
    assert!(job.last_error.unwrap_or_default().contains("stopped renewing its lease"));

    // Crashed on its last attempt: failed for good, and the upload says its verification failed.
    abandon_with_lapsed_lease(&app, verify.id, 3).await;
    worker.tick().await.unwrap();
    assert_eq!(job_of(&app, "verify_object", id).await.state, "failed");
    assert_eq!(app.status(id, false).await["verification"]["state"], "failed");
    app.finish().await;
}

#[tokio::test]
async fn expiries_and_recoveries_keep_retrying_however_often_they_fail() {
    let app = TestApp::spawn().await;
    let data = random_bytes(5 * MIB + 10);
    let stuck = upload_chunks(&app, &data, 5 * MIB, 2).await;
    strand_in_completing(&app, stuck).await;
    let idle = upload_chunks(&app, &data, 5 * MIB, 1).await;
    app.lapse_deadline(idle).await;
    // S3 refuses every connection of this worker.
    let (s3, endpoint) = e2e::ChaosProxy::in_front_of(app.config.service.s3.s3_endpoint.as_deref().unwrap()).await;
    s3.refuse();
    let worker = worker(&app, |c| {
        c.service.s3.s3_endpoint = Some(endpoint);
        c.jobs.max_attempts = 1;
        c.jobs.backoff = Duration::from_millis(1);
        c.jobs.backoff_max = Duration::from_millis(1);
    })
    .await;

    for _ in 0..3 {
        worker.tick().await.unwrap();
        sqlx::query("UPDATE jobs SET run_at = now() WHERE state = 'queued'").execute(&app.pool).await.unwrap();
    }
    for (kind, upload) in [("recover_completion", stuck), ("expire_upload", idle)] {
        let job = job_of(&app, kind, upload).await;
        assert_eq!(job.state, "queued", "{job:?}");
        assert!(job.attempts >= 2, "{job:?}");
    }

    // S3 is back: both finish.
    s3.restore();
    worker.tick().await.unwrap();
    assert_eq!(upload_state(&app, stuck).await, UploadState::Completed);
    assert_eq!(upload_state(&app, idle).await, UploadState::Expired);
    app.finish().await;
}
