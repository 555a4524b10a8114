//! The checker every test's answers go through (`e2e::contract`) catches what it is there for: answers it
//! must refuse, and the real ones it must let through.

use e2e::TestApp;
use e2e::contract::{Body, contract};
use serde_json::{Value, json};

fn check(method: &str, path: &str, status: u16, body: &Value) -> Result<(), String> {
    let bytes = serde_json::to_vec(body).unwrap();
    contract().check(method, path, status, Some("application/json"), Body::Bytes(&bytes))
}

fn created() -> Value {
    json!({
        "uploadId": "019ab2c4-7f7e-7c3a-9d3e-2f1b0a1c2d3e", "state": "uploading", "filename": "a.bin", "size": 10,
        "chunkSize": 10, "totalChunks": 1, "expiresAt": "2026-11-24T13:18:37.049101Z"
    })
}

#[test]
fn a_documented_answer_passes() {
    check("POST", "/v1/uploads", 201, &created()).unwrap();
    let error = json!({ "code": "upload_not_found", "message": "no upload has this id" });
    check("GET", "/v1/uploads/019ab2c4-7f7e-7c3a-9d3e-2f1b0a1c2d3e", 404, &error).unwrap();
}

#[test]
fn a_renamed_field_fails_whether_required_or_optional() {
    let mut renamed = created();
    let id = renamed.as_object_mut().unwrap().remove("uploadId").unwrap();
    renamed["uploadID"] = id;
    let err = check("POST", "/v1/uploads", 201, &renamed).unwrap_err();
    assert!(err.contains("uploadId") && err.contains("required"), "{err}");

    let mut extra = created();
    extra["contentTyp"] = json!("video/mp4");
    let err = check("POST", "/v1/uploads", 201, &extra).unwrap_err();
    assert!(err.contains("/contentTyp"), "{err}");

    // Nested, through allOf and $ref: an item of a page.
    let page = json!({ "uploads": [{ "uploadId": "019ab2c4-7f7e-7c3a-9d3e-2f1b0a1c2d3e", "state": "uploading",
        "filename": "a", "contentType": "a/b", "size": 1, "chunkSize": 1, "totalChunks": 1, "receivedBytes": 0,
        "metadata": { "free": "form" }, "expiresAt": "2026-11-24T13:18:37Z", "createdAt": "2026-11-24T13:18:37Z",
        "verification": { "state": "pending", "checkedAt": "2026-11-24T13:18:37Z" } }], "nextCursor": null });
    let err = check("GET", "/v1/uploads", 200, &page).unwrap_err();
    let err = err.split("; body:").next().unwrap();
    assert!(err.contains("/uploads/0/verification/checkedAt") && !err.contains("free"), "{err}");
}

#[test]
fn wrong_types_formats_and_values_fail() {
    for (field, value) in [("size", json!("10")), ("uploadId", json!("not-a-uuid")), ("state", json!("done"))] {
        let mut body = created();
        body[field] = value;
        assert!(check("POST", "/v1/uploads", 201, &body).is_err(), "{field} {body}");
    }
    let unknown_code = json!({ "code": "no_such_code", "message": "x" });
    assert!(check("GET", "/v1/uploads", 422, &unknown_code).is_err());
}

#[test]
fn an_undocumented_status_or_body_fails() {
    let error = json!({ "code": "internal_error", "message": "x" });
    let err = check("GET", "/healthz", 418, &error).unwrap_err();
    assert!(err.contains("418"), "{err}");
    let id = "019ab2c4-7f7e-7c3a-9d3e-2f1b0a1c2d3e";
    let err = check("DELETE", &format!("/v1/uploads/{id}"), 204, &json!({})).unwrap_err();
    assert!(err.contains("documents none"), "{err}");
    let no_body = contract().check("POST", "/v1/uploads", 201, None, Body::Opaque { empty: true });
    assert!(no_body.unwrap_err().contains("no body"));
    // Unrouted paths answer errors too.
    assert!(check("GET", "/nowhere", 404, &json!({ "code": "route_not_found", "message": "x" })).is_ok());
    assert!(check("GET", "/nowhere", 404, &json!({ "oops": true })).is_err());
}

#[tokio::test]
async fn the_test_app_records_what_it_answered_against_the_spec() {
    let app = TestApp::spawn().await;
    let id = app.create_upload(10, None).await;
    app.status(id, true).await;
    assert!(app.contract_violations.lock().unwrap().is_empty());
    app.finish().await;
}
