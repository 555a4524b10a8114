//! The files share the web page's origin, so none may run there: every file answer says `nosniff` and
//! `sandbox`, only passive types are served inline, and names and types are checked when an upload starts.

use e2e::{TestApp, random_bytes};
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::lifecycle::answer;

/// Uploads `data` in one chunk as `filename` of `content_type` and completes it.
pub async fn upload_as(app: &TestApp, filename: &str, content_type: &str, data: &[u8]) -> Uuid {
    let body = json!({ "filename": filename, "size": data.len(), "contentType": content_type });
    let (status, created) = answer(app.post_json("/v1/uploads", &body).await).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id: Uuid = created["uploadId"].as_str().unwrap().parse().unwrap();
    if !data.is_empty() {
        app.upload_chunk(id, 0, data).await;
    }
    assert_eq!(app.complete(id).await.status(), StatusCode::OK);
    id
}

fn assert_safe(headers: &HeaderMap, what: &str) {
    assert_eq!(headers.get("x-content-type-options").map(|v| v.to_str().unwrap()), Some("nosniff"), "{what}");
    let policy = headers.get("content-security-policy").map(|v| v.to_str().unwrap());
    assert_eq!(policy, Some("sandbox; default-src 'none'"), "{what}");
}

/// A client that follows no redirect and sends the app owner's token.
fn no_redirects(app: &TestApp) -> reqwest::Client {
    let mut auth = reqwest::header::HeaderMap::new();
    auth.insert(reqwest::header::AUTHORIZATION, format!("Bearer {}", app.token).parse().unwrap());
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).default_headers(auth).build().unwrap()
}

#[tokio::test]
async fn every_file_answer_carries_nosniff_and_a_sandbox() {
    let app = TestApp::spawn().await;
    let data = random_bytes(1000);
    let id = upload_as(&app, "clip.mp4", "video/mp4", &data).await;
    let unfinished = app.create_upload(10, None).await;
    let path = format!("/v1/files/{id}");
    let first = app.get(&path).await;
    let etag = first.headers()["etag"].to_str().unwrap().to_string();
    let cases = vec![
        (Method::GET, path.clone(), vec![], StatusCode::OK),
        (Method::HEAD, path.clone(), vec![], StatusCode::OK),
        (Method::GET, path.clone(), vec![("range", "bytes=0-9")], StatusCode::PARTIAL_CONTENT),
        (Method::GET, path.clone(), vec![("range", "bytes=0-9,20-29")], StatusCode::PARTIAL_CONTENT),
        (Method::GET, path.clone(), vec![("if-none-match", &etag)], StatusCode::NOT_MODIFIED),
        (Method::GET, path.clone(), vec![("if-match", "\"other\"")], StatusCode::PRECONDITION_FAILED),
        (Method::GET, path.clone(), vec![("range", "bytes=5000-")], StatusCode::RANGE_NOT_SATISFIABLE),
        (Method::GET, format!("{path}?redirect=true"), vec![], StatusCode::FOUND),
        (Method::HEAD, format!("{path}?redirect=true"), vec![], StatusCode::FOUND),
        (Method::GET, format!("/v1/files/{}", Uuid::now_v7()), vec![], StatusCode::NOT_FOUND),
        (Method::GET, format!("/v1/files/{unfinished}"), vec![], StatusCode::CONFLICT),
        (Method::GET, format!("{path}?expires=1&sig=x"), vec![], StatusCode::FORBIDDEN),
    ];
    let refused = app.plain.get(app.url(&path)).send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert_safe(refused.headers(), "without a token");
    for (method, path, headers, expected) in cases {
        let mut request = no_redirects(&app).request(method.clone(), app.url(&path));
        for (name, value) in &headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.unwrap();
        let what = format!("{method} {path} {headers:?}");
        assert_eq!(response.status(), expected, "{what}");
        assert_safe(response.headers(), &what);
    }
    app.finish().await;
}

#[tokio::test]
async fn only_passive_types_are_served_inline_in_proxy_and_redirect_mode() {
    let app = TestApp::spawn().await;
    let cases = [
        ("page.html", "text/html", "attachment"),
        ("page.html", "text/html; charset=utf-8", "attachment"),
        ("drawing.svg", "image/svg+xml", "attachment"),
        ("page.xhtml", "application/xhtml+xml", "attachment"),
        ("script.js", "text/javascript", "attachment"),
        ("notes.txt", "text/plain", "attachment"),
        ("clip.mp4", "video/mp4", "inline"),
        ("song.mp3", "audio/mpeg", "inline"),
        ("photo.png", "image/png", "inline"),
        ("paper.pdf", "application/pdf", "inline"),
    ];
    let payload = b"<html><script>alert(document.domain)</script></html>";
    for (filename, content_type, served_as) in cases {
        let id = upload_as(&app, filename, content_type, payload).await;
        let path = format!("/v1/files/{id}?disposition=inline");
        let response = app.get(&path).await;
        assert_eq!(response.status(), StatusCode::OK, "{content_type}");
        assert_safe(response.headers(), content_type);
        assert_eq!(response.headers()["content-type"], content_type, "the type is sent as it is");
        let disposition = response.headers()["content-disposition"].to_str().unwrap();
        assert!(disposition.starts_with(&format!("{served_as};")), "{content_type}: {disposition}");

        let redirect = no_redirects(&app).get(app.url(&format!("{path}&redirect=true"))).send().await.unwrap();
        assert_eq!(redirect.status(), StatusCode::FOUND);
        assert_safe(redirect.headers(), content_type);
        let location = redirect.headers()["location"].to_str().unwrap().to_string();
        let direct = app.plain.get(&location).send().await.unwrap();
        assert_eq!(direct.status(), StatusCode::OK, "{content_type}");
        let disposition = direct.headers()["content-disposition"].to_str().unwrap();
        assert!(disposition.starts_with(&format!("{served_as};")), "S3 for {content_type}: {disposition}");
    }
    app.finish().await;
}

#[tokio::test]
async fn filenames_with_hidden_characters_and_unparsable_types_are_refused() {
    let app = TestApp::spawn().await;
    let cases = [
        ("invoice\u{202E}4pm.exe", "video/mp4", "invalid_filename", Some("U+202E")),
        ("a\u{200B}b.mp4", "video/mp4", "invalid_filename", Some("U+200B")),
        ("\u{FEFF}film.mp4", "video/mp4", "invalid_filename", Some("U+FEFF")),
        ("a\u{2067}b.mp4", "video/mp4", "invalid_filename", Some("U+2067")),
        ("a\u{7}b.mp4", "video/mp4", "invalid_filename", Some("U+0007")),
        ("film.mp4", "text/html, video/mp4", "invalid_content_type", None),
        ("film.mp4", "*/*", "invalid_content_type", None),
        ("film.mp4", "video mp4", "invalid_content_type", None),
    ];
    for (filename, content_type, code, character) in cases {
        let body = json!({ "filename": filename, "size": 10, "contentType": content_type });
        let (status, answer): (StatusCode, Value) = answer(app.post_json("/v1/uploads", &body).await).await;
        assert_eq!((status, answer["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some(code)), "{answer}");
        if let Some(character) = character {
            assert_eq!(answer["character"], character, "{answer}");
            assert!(answer["message"].as_str().unwrap().contains(character), "{answer}");
        }
    }
    assert!(app.s3_multipart_uploads().await.is_empty(), "a refused upload left a multipart upload in S3");
    app.finish().await;
}
