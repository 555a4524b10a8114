//! Signed links (`POST /v1/files/{id}/links`, and the `downloadUrl` of a completed upload): valid ones serve
//! the file with Range, conditions and redirects; expired or tampered ones are 403 with a code.

use std::time::Duration;

use e2e::{TestApp, random_bytes};
use reqwest::{StatusCode, Url};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::lifecycle::answer;
use crate::origin::upload_as;

/// A link to `id` as the API hands it out; panics unless 200.
async fn link(app: &TestApp, id: Uuid, body: Value) -> (String, Value) {
    let (status, answer) = answer(app.post_json(&format!("/v1/files/{id}/links"), &body).await).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    (answer["url"].as_str().expect("url").to_string(), answer)
}

fn with_query(url: &str, edit: impl FnOnce(&mut Vec<(String, String)>)) -> String {
    let mut url = Url::parse(url).unwrap();
    let mut pairs: Vec<(String, String)> = url.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
    edit(&mut pairs);
    url.query_pairs_mut().clear().extend_pairs(pairs);
    url.to_string()
}

fn param(url: &str, name: &str) -> Option<String> {
    Url::parse(url).unwrap().query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

#[tokio::test]
async fn a_link_serves_the_file_with_ranges_conditions_and_redirects() {
    let app = TestApp::spawn().await;
    let data = random_bytes(100_000);
    let id = upload_as(&app, "clip.mp4", "video/mp4", &data).await;
    let (url, body) = link(&app, id, json!({ "expiresIn": 600, "disposition": "inline" })).await;

    assert!(url.starts_with(&app.url(&format!("/v1/files/{id}?"))), "{url}");
    assert_eq!(param(&url, "disposition").as_deref(), Some("inline"));
    let expires: i64 = param(&url, "expires").unwrap().parse().unwrap();
    let expires_at = chrono::DateTime::parse_from_rfc3339(body["expiresAt"].as_str().unwrap()).unwrap();
    assert_eq!(expires_at.timestamp(), expires);
    let left = expires - chrono::Utc::now().timestamp();
    assert!((595..=601).contains(&left), "{left} s left of 600");

    // A fresh client, no token, no cookies: the link alone.
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let whole = client.get(&url).send().await.unwrap();
    assert_eq!(whole.status(), StatusCode::OK);
    assert!(whole.headers()["content-disposition"].to_str().unwrap().starts_with("inline;"));
    let etag = whole.headers()["etag"].to_str().unwrap().to_string();
    assert!(whole.bytes().await.unwrap() == data);

    let ranged = client.get(&url).header("range", "bytes=10-19").send().await.unwrap();
    assert_eq!(ranged.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(ranged.bytes().await.unwrap(), data[10..20]);
    let cached = client.get(&url).header("if-none-match", &etag).send().await.unwrap();
    assert_eq!(cached.status(), StatusCode::NOT_MODIFIED);
    let head = client.head(&url).send().await.unwrap();
    assert_eq!((head.status(), head.headers()["content-length"].to_str().unwrap()), (StatusCode::OK, "100000"));

    // redirect is not signed: the 302 serves the same bytes, inline as signed, for no longer than the link.
    let redirected = client.get(format!("{url}&redirect=true")).send().await.unwrap();
    assert_eq!(redirected.status(), StatusCode::FOUND);
    let location = redirected.headers()["location"].to_str().unwrap().to_string();
    let presigned_for: i64 = param(&location, "X-Amz-Expires").unwrap().parse().unwrap();
    assert!(presigned_for <= left, "the presigned URL lives {presigned_for} s, the link {left} s");
    assert!(param(&location, "response-content-disposition").unwrap().starts_with("inline;"), "{location}");
    let direct = client.get(&location).header("range", "bytes=0-9").send().await.unwrap();
    assert_eq!(direct.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(direct.bytes().await.unwrap(), data[..10]);
    app.finish().await;
}

#[tokio::test]
async fn expired_and_tampered_links_are_403_with_a_code() {
    let app = TestApp::spawn().await;
    let data = random_bytes(1000);
    let id = upload_as(&app, "clip.mp4", "video/mp4", &data).await;
    let other = upload_as(&app, "other.mp4", "video/mp4", &data).await;
    let (url, _) = link(&app, id, json!({ "expiresIn": 3600 })).await;
    let (short, _) = link(&app, id, json!({ "expiresIn": 1 })).await;
    let sig = param(&url, "sig").unwrap();
    let flipped: String = sig.chars().rev().collect();
    let later = (param(&url, "expires").unwrap().parse::<u64>().unwrap() + 3600).to_string();

    let cases: Vec<(&str, String, &str)> = vec![
        ("disposition changed", with_query(&url, |q| q.push(("disposition".into(), "inline".into()))), "link_invalid"),
        ("expiry pushed later", with_query(&url, |q| q[0].1 = later.clone()), "link_invalid"),
        ("signature altered", with_query(&url, |q| q[1].1 = flipped.clone()), "link_invalid"),
        ("signature dropped", with_query(&url, |q| q.retain(|(k, _)| k != "sig")), "link_invalid"),
        ("another file's id", url.replace(&id.to_string(), &other.to_string()), "link_invalid"),
        ("an id that does not exist", url.replace(&id.to_string(), &Uuid::now_v7().to_string()), "link_invalid"),
    ];
    for (case, tampered, code) in cases {
        let (status, body) = answer(reqwest::get(&tampered).await.unwrap()).await;
        assert_eq!((status, body["code"].as_str()), (StatusCode::FORBIDDEN, Some(code)), "{case}: {tampered} {body}");
    }

    assert_eq!(reqwest::get(&short).await.unwrap().status(), StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    for method in [reqwest::Method::GET, reqwest::Method::HEAD] {
        let response = reqwest::Client::new().request(method.clone(), &short).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{method}");
        assert_eq!(response.headers()["x-content-type-options"], "nosniff");
        if method == reqwest::Method::GET {
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["code"], "link_expired", "{body}");
            assert!(body["expiredAt"].is_string(), "{body}");
        }
    }
    let (status, _) = answer(reqwest::get(format!("{short}&redirect=true")).await.unwrap()).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    app.finish().await;
}

#[tokio::test]
async fn the_download_url_of_a_completed_upload_is_a_short_lived_link() {
    let app = TestApp::spawn_with(|config| config.links.download_link_ttl = Duration::from_secs(120)).await;
    let data = random_bytes(1000);
    let id = upload_as(&app, "notes.txt", "text/plain", &data).await;
    let completed: Value = app.complete(id).await.json().await.unwrap();
    let status = app.status(id, false).await;
    for url in [completed["downloadUrl"].as_str().unwrap(), status["downloadUrl"].as_str().unwrap()] {
        assert!(url.starts_with(&app.url(&format!("/v1/files/{id}?expires="))), "{url}");
        let left = param(url, "expires").unwrap().parse::<i64>().unwrap() - chrono::Utc::now().timestamp();
        assert!((115..=121).contains(&left), "{left} s left of 120");
        let response = reqwest::get(url).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert!(response.headers()["content-disposition"].to_str().unwrap().starts_with("attachment;"));
        assert!(response.bytes().await.unwrap() == data);
    }
    app.finish().await;
}

#[tokio::test]
async fn link_requests_are_checked() {
    let app = TestApp::spawn().await;
    let id = upload_as(&app, "clip.mp4", "video/mp4", &random_bytes(10)).await;
    let unfinished = app.create_upload(10, None).await;
    let max = 7 * 86_400;
    let cases: Vec<(Uuid, Value, StatusCode, &str)> = vec![
        (id, json!({ "expiresIn": 0 }), StatusCode::UNPROCESSABLE_ENTITY, "invalid_expires_in"),
        (id, json!({ "expiresIn": max + 1 }), StatusCode::UNPROCESSABLE_ENTITY, "invalid_expires_in"),
        (id, json!({ "expiresIn": -5 }), StatusCode::UNPROCESSABLE_ENTITY, "invalid_body"),
        (id, json!({ "disposition": "render" }), StatusCode::UNPROCESSABLE_ENTITY, "invalid_body"),
        (id, json!({ "expires": 5 }), StatusCode::UNPROCESSABLE_ENTITY, "invalid_body"),
        (unfinished, json!({}), StatusCode::CONFLICT, "upload_not_completed"),
        (Uuid::now_v7(), json!({}), StatusCode::NOT_FOUND, "upload_not_found"),
    ];
    for (target, body, expected, code) in cases {
        let (status, answer) = answer(app.post_json(&format!("/v1/files/{target}/links"), &body).await).await;
        assert_eq!((status, answer["code"].as_str()), (expected, Some(code)), "{body}: {answer}");
    }
    let (status, body) =
        answer(app.post_json(&format!("/v1/files/{id}/links"), &json!({ "expiresIn": 0 })).await).await;
    assert_eq!((status, &body["maxExpiresIn"]), (StatusCode::UNPROCESSABLE_ENTITY, &json!(max)));

    // Without expiresIn, a link lives DOWNLOAD_LINK_TTL; at the most, MAX_LINK_TTL.
    let (url, _) = link(&app, id, json!({})).await;
    let left = param(&url, "expires").unwrap().parse::<i64>().unwrap() - chrono::Utc::now().timestamp();
    assert!((3595..=3601).contains(&left), "{left}");
    let (url, _) = link(&app, id, json!({ "expiresIn": max })).await;
    assert_eq!(reqwest::get(&url).await.unwrap().status(), StatusCode::OK);
    app.finish().await;
}
