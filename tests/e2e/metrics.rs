//! `/metrics` of the real api and worker processes: scraped before and after one upload, one ranged download and
//! one abort (the api) or one verification and one expiry (the worker), every counter checked to move by exactly
//! what happened.
//! Real processes, so no other test's requests share the counters.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Duration;

use e2e::{TestApp, random_bytes, sha256_hex, workspace_bin};
use reqwest::{StatusCode, header};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::downloads::process::ApiProcess;
use crate::lifecycle::answer;

const MIB: usize = 1024 * 1024;

/// One scrape: every sample line, by name and labels.
struct Scrape(Vec<(String, BTreeMap<String, String>, f64)>);

impl Scrape {
    async fn of(client: &reqwest::Client, url: &str) -> Self {
        let response = client.get(url).send().await.expect("scrape");
        assert_eq!(response.status(), StatusCode::OK);
        let content_type = response.headers()[header::CONTENT_TYPE].to_str().unwrap().to_string();
        assert!(content_type.starts_with("text/plain; version=0.0.4"), "{content_type}");
        Self::parse(&response.text().await.expect("body"))
    }

    fn parse(text: &str) -> Self {
        let samples = text
            .lines()
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .map(|line| {
                let (series, value) = line.rsplit_once(' ').expect("a sample line");
                let (name, labels) = series.split_once('{').unwrap_or((series, "}"));
                let mut parsed = BTreeMap::new();
                let mut rest = labels.strip_suffix('}').expect("labels end with }");
                while let Some((key, after)) = rest.split_once("=\"") {
                    let (value, after) = after.split_once('"').expect("a quoted label value");
                    parsed.insert(key.to_string(), value.to_string());
                    rest = after.strip_prefix(',').unwrap_or(after);
                }
                (name.to_string(), parsed, value.parse().expect("a number"))
            })
            .collect();
        Self(samples)
    }

    /// The sum of `name`'s samples whose labels include `labels` (0 when there is none).
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.0
            .iter()
            .filter(|(n, l, _)| n == name && labels.iter().all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v)))
            .map(|(_, _, value)| value)
            .sum()
    }

    fn listed(&self, name: &str) -> bool {
        self.0.iter().any(|(n, _, _)| n == name)
    }
}

/// How much `name{labels}` moved from `before` to `after`.
fn delta(before: &Scrape, after: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    after.value(name, labels) - before.value(name, labels)
}

#[tokio::test]
async fn api_counters_move_by_one_upload_one_ranged_download_and_one_abort() {
    let mut app = TestApp::spawn().await;
    let api = ApiProcess::spawn(&app, "metrics", &[]).await;
    // Every helper now talks to the api process, whose counters are its own.
    app.base_url = api.base_url.clone();
    let metrics_url = app.url("/metrics");
    let before = Scrape::of(&app.plain, &metrics_url).await;
    for name in ["upl_uploads_created_total", "upl_uploads_expired_total", "upl_webhook_deliveries_total"] {
        assert!(before.listed(name), "{name} is listed before anything happened");
    }

    let data = random_bytes(5 * MIB + 1000);
    let id = app.create_upload(data.len() as u64, Some(5 * MIB as u64)).await;
    let chunks: Vec<&[u8]> = data.chunks(5 * MIB).collect();
    let first_etag = app.upload_chunk(id, 0, chunks[0]).await;
    app.upload_chunk(id, 1, chunks[1]).await;
    // The same report again: answered, but no new chunk.
    assert_eq!(app.confirm_chunk(id, 0, &first_etag, chunks[0]).await.status(), StatusCode::OK);
    assert_eq!(app.complete(id).await.status(), StatusCode::OK);
    let ranged = app.http.get(app.url(&format!("/v1/files/{id}"))).header(header::RANGE, "bytes=100-1099");
    let response = ranged.send().await.unwrap();
    assert_eq!(response.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(response.bytes().await.unwrap(), &data[100..1100]);
    let aborted = app.create_upload(10, None).await;
    let abort = app.http.delete(app.url(&format!("/v1/uploads/{aborted}"))).send().await.unwrap();
    assert_eq!(abort.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.get(&format!("/nothing/here/{id}")).await.status(), StatusCode::NOT_FOUND);

    let after = Scrape::of(&app.plain, &metrics_url).await;
    let moved = |name: &str, labels: &[(&str, &str)]| delta(&before, &after, name, labels);
    assert_eq!(moved("upl_uploads_created_total", &[]), 2.0);
    assert_eq!(moved("upl_chunks_confirmed_total", &[]), 2.0);
    assert_eq!(moved("upl_uploads_completed_total", &[]), 1.0);
    assert_eq!(moved("upl_upload_bytes_completed_total", &[]), data.len() as f64);
    assert_eq!(moved("upl_uploads_aborted_total", &[]), 1.0);
    assert_eq!(moved("upl_uploads_expired_total", &[]), 0.0);
    assert_eq!(moved("upl_download_bytes_total", &[]), 1000.0);

    let requests = "upl_http_requests_total";
    for (route, method, status, count) in [
        ("/v1/uploads", "POST", "201", 2.0),
        ("/v1/uploads/{id}/chunks/{index}/url", "POST", "200", 2.0),
        ("/v1/uploads/{id}/chunks/{index}", "PUT", "200", 3.0),
        ("/v1/uploads/{id}/complete", "POST", "200", 1.0),
        ("/v1/files/{id}", "GET", "206", 1.0),
        ("/v1/uploads/{id}", "DELETE", "204", 1.0),
        ("/metrics", "GET", "200", 1.0),
        ("unmatched", "GET", "404", 1.0),
    ] {
        let labels = [("route", route), ("method", method), ("status", status)];
        assert_eq!(moved(requests, &labels), count, "{labels:?}");
    }
    let timed = [("route", "/v1/files/{id}"), ("method", "GET")];
    assert_eq!(moved("upl_http_request_duration_seconds_count", &timed), 1.0);
    assert_eq!(moved("upl_http_request_duration_seconds_bucket", &[timed[0], timed[1], ("le", "+Inf")]), 1.0);
    // Route labels are templates: no id a client sent is a label value.
    for (name, labels, _) in &after.0 {
        for value in labels.values() {
            assert!(!value.contains(&id.to_string()) && !value.contains(&aborted.to_string()), "{name} {labels:?}");
        }
    }

    let s3 = "upl_s3_requests_total";
    for (operation, count) in [
        ("CreateMultipartUpload", 2.0),
        ("CompleteMultipartUpload", 1.0),
        ("GetObject", 1.0),
        ("AbortMultipartUpload", 1.0),
    ] {
        assert_eq!(moved(s3, &[("operation", operation), ("outcome", "ok")]), count, "{operation}");
    }
    assert!(moved(s3, &[("operation", "ListParts"), ("outcome", "ok")]) >= 1.0);
    assert_eq!(moved("upl_s3_request_duration_seconds_count", &[("operation", "GetObject")]), 1.0);
    // No worker runs here: the completed upload's verification waits in the queue.
    assert_eq!(before.value("upl_jobs_queued", &[("kind", "verify_object")]), 0.0);
    assert_eq!(after.value("upl_jobs_queued", &[("kind", "verify_object")]), 1.0);

    // The download's body was read to its end: its stream is over (the server drops it just after the last byte).
    let mut active = after.value("upl_download_streams_active", &[]);
    for _ in 0..50 {
        if active == 0.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        active = Scrape::of(&app.plain, &metrics_url).await.value("upl_download_streams_active", &[]);
    }
    assert_eq!(active, 0.0);
    drop(api);
    app.finish().await;
}

#[tokio::test]
async fn the_worker_listener_serves_healthz_and_counts_a_verification_and_an_expiry() {
    let app = TestApp::spawn().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let s3 = &app.config.service.s3;
    let mut worker = tokio::process::Command::new(workspace_bin("worker"))
        .env("DATABASE_URL", app.database_url())
        .env("S3_ENDPOINT", s3.s3_endpoint.as_deref().unwrap())
        .env("S3_REGION", s3.s3_region.as_deref().unwrap())
        .env("S3_BUCKET", &s3.s3_bucket)
        .env("S3_FORCE_PATH_STYLE", "true")
        .env("WORKER_POLL_INTERVAL", "100ms")
        .env("WORKER_SWEEP_INTERVAL", "200ms")
        .env("WORKER_METRICS_ADDR", format!("127.0.0.1:{port}"))
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn worker");
    let base = format!("http://127.0.0.1:{port}");
    let mut health = None;
    for _ in 0..200 {
        if let Ok(response) = app.plain.get(format!("{base}/healthz")).send().await {
            health = Some(response);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let health = health.expect("the worker's listener answers");
    assert_eq!(health.status(), StatusCode::OK);
    assert_eq!(health.json::<Value>().await.unwrap(), json!({ "status": "ok" }));
    assert_eq!(app.plain.get(format!("{base}/v1/uploads")).send().await.unwrap().status(), StatusCode::NOT_FOUND);
    let metrics_url = format!("{base}/metrics");
    let verify_done = [("kind", "verify_object"), ("outcome", "done")];
    let before = Scrape::of(&app.plain, &metrics_url).await;
    assert!(before.0.iter().any(|(n, l, _)| n == "upl_jobs_total" && l.get("outcome").is_some_and(|o| o == "failed")));

    let idle = app.create_upload(1000, None).await;
    app.lapse_deadline(idle).await;
    let data = random_bytes(100_000);
    let body = json!({ "filename": "v.bin", "size": data.len(), "sha256": sha256_hex(&data) });
    let created: Value = app.post_json("/v1/uploads", &body).await.json().await.unwrap();
    let id: Uuid = created["uploadId"].as_str().unwrap().parse().unwrap();
    app.upload_chunk(id, 0, &data).await;
    assert_eq!(app.complete(id).await.status(), StatusCode::OK);

    // The worker process polls every 100 ms and sweeps every 200 ms (which queues the expiry); its counters move
    // once each job's outcome is recorded.
    let expire_done = [("kind", "expire_upload"), ("outcome", "done")];
    let mut after = Scrape::of(&app.plain, &metrics_url).await;
    for _ in 0..300 {
        let moved = |labels: &[(&str, &str)]| delta(&before, &after, "upl_jobs_total", labels) > 0.0;
        if moved(&verify_done) && moved(&expire_done) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        after = Scrape::of(&app.plain, &metrics_url).await;
    }
    assert_eq!(app.status(id, false).await["verification"]["state"], "verified");
    assert_eq!(delta(&before, &after, "upl_jobs_total", &verify_done), 1.0);
    assert_eq!(delta(&before, &after, "upl_verifications_total", &[("result", "verified")]), 1.0);
    assert_eq!(delta(&before, &after, "upl_verifications_total", &[("result", "corrupt")]), 0.0);
    let read = [("operation", "GetObject"), ("outcome", "ok")];
    assert_eq!(delta(&before, &after, "upl_s3_requests_total", &read), 1.0);
    assert_eq!(delta(&before, &after, "upl_jobs_total", &expire_done), 1.0);
    assert_eq!(delta(&before, &after, "upl_uploads_expired_total", &[]), 1.0);
    let abort = [("operation", "AbortMultipartUpload"), ("outcome", "ok")];
    assert_eq!(delta(&before, &after, "upl_s3_requests_total", &abort), 1.0);
    assert!(delta(&before, &after, "upl_jobs_total", &[("kind", "sweep"), ("outcome", "done")]) >= 1.0);
    assert_eq!(after.value("upl_jobs_queued", &[("kind", "verify_object")]), 0.0);

    // SIGTERM: the worker hands back whatever sweep it holds, so the teardown finds no job leased.
    let pid = worker.id().unwrap().to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let exit = tokio::time::timeout(Duration::from_secs(60), worker.wait()).await.expect("exits").unwrap();
    assert!(exit.success(), "{exit:?}");
    app.finish().await;
}

#[tokio::test]
async fn metrics_addr_moves_metrics_off_the_main_port() {
    let app = TestApp::spawn().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let metrics_addr = format!("127.0.0.1:{port}");
    let api = ApiProcess::spawn(&app, "metrics-addr", &[("METRICS_ADDR", &metrics_addr)]).await;

    let (status, body) = answer(app.plain.get(format!("{}/metrics", api.base_url)).send().await.unwrap()).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::NOT_FOUND, Some("route_not_found")));
    let scrape = Scrape::of(&app.plain, &format!("http://{metrics_addr}/metrics")).await;
    assert!(scrape.listed("upl_uploads_created_total"));
    // The main port's answers are counted there: the 404 above among them.
    let unmatched = [("route", "unmatched"), ("method", "GET"), ("status", "404")];
    assert_eq!(scrape.value("upl_http_requests_total", &unmatched), 1.0);
    let other = app.plain.get(format!("http://{metrics_addr}/v1/uploads")).send().await.unwrap();
    assert_eq!(other.status(), StatusCode::NOT_FOUND, "the metrics port serves nothing else");
    drop(api);
    app.finish().await;
}
