//! Uppy's small-file path: `GET /s3/params`, then a browser form POST straight to S3 that tells us nothing.

use reqwest::StatusCode;
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};
use uuid::Uuid;

use super::{endpoint_for, get, sweep_settings};
use e2e::{TestApp, random_bytes};

/// The single-object limit of these tests: small, so that LocalStack's check of it is cheap to see.
const LIMIT: u64 = 4096;

async fn spawn() -> TestApp {
    TestApp::spawn_with(|c| c.service.policy.max_upload_size = LIMIT).await
}

/// `GET /s3/params` for `filename` (form-encoded as Uppy sends it); returns the answer and the upload id.
async fn params(app: &TestApp, endpoint: &str, query: &str) -> (Value, Uuid) {
    let (status, body) = get(app, &format!("{endpoint}/s3/params?{query}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let key = body["fields"]["key"].as_str().unwrap();
    let id = uploads::service::upload_id_of_key(key).expect("the key ends in the upload id");
    (body, id)
}

/// The form Uppy posts: every field in the answer's order, then the file. Returns S3's status and body.
async fn post_form(app: &TestApp, params: &Value, overrides: &[(&str, &str)], file: Vec<u8>) -> (StatusCode, String) {
    let mut form = Form::new();
    for (name, value) in params["fields"].as_object().unwrap() {
        let value = overrides.iter().find(|(n, _)| n == name).map_or(value.as_str().unwrap(), |(_, v)| *v);
        form = form.text(name.clone(), value.to_string());
    }
    form = form.part("file", Part::bytes(file).file_name("f"));
    let response = app.plain.post(params["url"].as_str().unwrap()).multipart(form).send().await.unwrap();
    (response.status(), response.text().await.unwrap())
}

#[tokio::test]
async fn a_form_post_completes_when_status_or_the_sweep_finds_its_object() {
    let app = spawn().await;
    let endpoint = endpoint_for(&app, TestApp::OWNER).await;
    let query = "filename=small+file%2B1.txt&type=text%2Fplain&metadata%5Bname%5D=small+file%2B1.txt";
    let (answer, id) = params(&app, &endpoint, query).await;
    assert_eq!(answer["method"], "POST");
    assert!(answer["expires"].as_i64().unwrap() > 0);
    assert_eq!(answer["url"], format!("{}/{}", app.env.s3_endpoint, app.storage.bucket()));
    let fields = answer["fields"].as_object().unwrap();
    assert_eq!(fields["key"], format!("uploads/small file+1.txt-{id}"));
    assert_eq!(fields["Content-Type"], "text/plain");
    for name in ["policy", "x-amz-signature", "x-amz-credential", "x-amz-date", "x-amz-algorithm"] {
        assert!(fields.contains_key(name), "{name} in {answer}");
    }
    let status = app.status(id, false).await;
    assert_eq!((status["state"].clone(), status["kind"].clone()), (json!("uploading"), json!("form_post")));
    assert_eq!(
        (status["size"].clone(), status["metadata"].clone()),
        (Value::Null, json!({ "name": "small file+1.txt" }))
    );

    let data = random_bytes(1000);
    let (posted, body) = post_form(&app, &answer, &[], data.clone()).await;
    assert!(posted.is_success(), "{posted}: {body}");
    let status = app.status(id, false).await;
    assert_eq!((status["state"].clone(), status["size"].clone()), (json!("completed"), json!(1000)), "{status}");
    let download = app.get(&format!("/v1/files/{id}")).await;
    assert_eq!(download.status(), StatusCode::OK);
    assert_eq!(download.headers()["content-type"], "text/plain");
    assert!(download.bytes().await.unwrap() == data);

    // One the sweep finds first; and one whose download (not status) finds it.
    let (answer, swept) = params(&app, &endpoint, "filename=swept.bin").await;
    let (posted, _) = post_form(&app, &answer, &[], random_bytes(10)).await;
    assert!(posted.is_success());
    let (answer, fetched) = params(&app, &endpoint, "filename=fetched.bin").await;
    let empty = post_form(&app, &answer, &[], vec![]).await;
    assert!(empty.0.is_success(), "an empty file takes this path too: {empty:?}");
    let report = app.state.uploads.sweep(sweep_settings()).await.unwrap();
    assert_eq!(report.form_posts_completed, 2, "{report:?}");
    let status = app.status(swept, false).await;
    assert_eq!((status["state"].clone(), status["size"].clone()), (json!("completed"), json!(10)));
    let download = app.get(&format!("/v1/files/{fetched}")).await;
    assert_eq!((download.status(), download.bytes().await.unwrap().len()), (StatusCode::OK, 0));
    app.state.uploads.verify_object(swept).await.unwrap();
    let download = app.get(&format!("/v1/files/{swept}")).await;
    assert!(download.headers().contains_key("repr-digest"), "verification follows as for any upload");
    app.finish().await;
}

#[tokio::test]
async fn a_form_post_that_never_happens_expires() {
    let app = spawn().await;
    let endpoint = endpoint_for(&app, TestApp::OWNER).await;
    let (_, id) = params(&app, &endpoint, "filename=never.txt&type=text%2Fplain").await;
    let report = app.state.uploads.sweep(sweep_settings()).await.unwrap();
    assert_eq!(report.form_posts_completed, 0);
    assert_eq!(app.status(id, false).await["state"], "uploading", "nothing arrived: still waiting");

    app.lapse_deadline(id).await;
    let response = app.get(&format!("/v1/uploads/{id}")).await;
    assert_eq!(response.status(), StatusCode::GONE);
    let report = app.state.uploads.sweep(sweep_settings()).await.unwrap();
    assert_eq!(report.expiries_queued, 1, "{report:?}");
    app.state.uploads.expire(id).await.unwrap();
    let state: String = sqlx::query_scalar("SELECT state::text FROM uploads WHERE id = $1")
        .bind(id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(state, "expired");
    app.finish().await;
}

/// What LocalStack enforces of the policy (docs/uppy.md §8 has the probe behind it): the key, the content
/// type and the size range; not the signature.
#[tokio::test]
async fn s3_holds_a_form_post_to_the_policy() {
    let app = spawn().await;
    let endpoint = endpoint_for(&app, TestApp::OWNER).await;
    let (answer, id) = params(&app, &endpoint, "filename=a.txt&type=text%2Fplain").await;
    let other_key = format!("uploads/other-{}", Uuid::now_v7());
    for (case, overrides, size, expected) in [
        ("another key", vec![("key", other_key.as_str())], 10, StatusCode::FORBIDDEN),
        ("another content type", vec![("Content-Type", "text/html")], 10, StatusCode::FORBIDDEN),
        ("over the single-object limit", vec![], LIMIT as usize + 1, StatusCode::BAD_REQUEST),
    ] {
        let (status, body) = post_form(&app, &answer, &overrides, random_bytes(size)).await;
        assert_eq!(status, expected, "{case}: {body}");
    }
    assert!(app.storage.head_object(&other_key).await.unwrap().is_none());
    assert_eq!(app.status(id, false).await["state"], "uploading", "nothing was stored");
    let (status, _) = post_form(&app, &answer, &[], random_bytes(LIMIT as usize)).await;
    assert!(status.is_success(), "exactly the limit");
    assert_eq!(app.status(id, false).await["size"], LIMIT);
    app.finish().await;
}
