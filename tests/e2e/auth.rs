//! Who may do what: every route of an upload against every kind of caller, as one table. Another owner's
//! upload must answer exactly as an unknown id does; a request without a valid token, 401 naming why.

mod jwks;
mod processes;

use e2e::{TestApp, sha256_hex};
use jsonwebtoken::{EncodingKey, Header, get_current_timestamp};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::lifecycle::answer;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Caller {
    Owner,
    OtherOwner,
    NoToken,
    ExpiredToken,
    /// A second API on the same database with `AUTH=none`: everyone is the owner `anonymous`.
    Anonymous,
}

const CALLERS: [Caller; 5] =
    [Caller::OtherOwner, Caller::NoToken, Caller::ExpiredToken, Caller::Anonymous, Caller::Owner];

struct Route {
    name: &'static str,
    method: Method,
    /// With `{id}` where the upload's id goes.
    path: &'static str,
    body: Option<Value>,
    /// What the owner gets.
    owner_status: u16,
    /// Acts on the completed upload rather than the live one.
    on_completed: bool,
}

fn route(name: &'static str, method: Method, path: &'static str, owner_status: u16) -> Route {
    Route { name, method, path, body: None, owner_status, on_completed: path.starts_with("/v1/files") }
}

/// Every route of an upload, abort last (it ends the live upload).
fn routes() -> Vec<Route> {
    let sha = sha256_hex(b"declared");
    let with = |mut route: Route, body: Value| {
        route.body = Some(body);
        route
    };
    vec![
        route("status", Method::GET, "/v1/uploads/{id}", 200),
        route("status, reconciled", Method::GET, "/v1/uploads/{id}?reconcile=true", 200),
        with(route("chunk URL", Method::POST, "/v1/uploads/{id}/chunks/0/url", 200), json!({ "sha256": sha })),
        with(
            route("batch URLs", Method::POST, "/v1/uploads/{id}/urls", 200),
            json!({ "chunks": [{ "index": 0, "sha256": sha }] }),
        ),
        with(
            route("confirm", Method::PUT, "/v1/uploads/{id}/chunks/0", 200),
            json!({ "etag": "\"e\"", "sha256": sha }),
        ),
        Route { on_completed: true, ..route("complete", Method::POST, "/v1/uploads/{id}/complete", 200) },
        route("file", Method::GET, "/v1/files/{id}", 200),
        route("file, inline", Method::GET, "/v1/files/{id}?disposition=inline", 200),
        route("file, redirect", Method::GET, "/v1/files/{id}?redirect=true", 302),
        route("file, HEAD", Method::HEAD, "/v1/files/{id}", 200),
        route("file, HEAD redirect", Method::HEAD, "/v1/files/{id}?redirect=true", 302),
        route("abort", Method::DELETE, "/v1/uploads/{id}", 204),
    ]
}

/// A token for `sub` whose `exp` passed two minutes ago (past the 30 s leeway).
pub(crate) fn expired_token(app: &TestApp, sub: &str) -> String {
    let claims = json!({ "sub": sub, "exp": get_current_timestamp() - 120 });
    let key = EncodingKey::from_secret(app.jwt_secret().unwrap()).unwrap();
    jsonwebtoken::encode(&Header::default(), &claims, &key).unwrap()
}

/// Status, the WWW-Authenticate header and the JSON body (`null` for HEAD) of one request.
struct Answer {
    status: StatusCode,
    challenge: Option<String>,
    body: Value,
}

#[tokio::test]
async fn every_route_of_an_upload_answers_only_its_owner() {
    let app = TestApp::spawn().await;
    let anonymous = app.sibling(|c| c.auth.auth = api::auth::config::AuthMode::None).await;
    let live = app.create_upload(3 * 5 * 1024 * 1024, Some(5 * 1024 * 1024)).await;
    app.chunk_url(live, 0, b"declared").await;
    let completed = app.upload_file(b"a completed file", 5 * 1024 * 1024).await;
    let no_redirects = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let (bob, expired) = (app.token_for("bob"), expired_token(&app, TestApp::OWNER));

    let send = |caller: Caller, route: &Route, id: Uuid| {
        let base = if caller == Caller::Anonymous { &anonymous.base_url } else { &app.base_url };
        let url = format!("{base}{}", route.path.replace("{id}", &id.to_string()));
        let mut request = no_redirects.request(route.method.clone(), url);
        request = match caller {
            Caller::Owner => request.bearer_auth(&app.token),
            Caller::OtherOwner => request.bearer_auth(&bob),
            Caller::ExpiredToken => request.bearer_auth(&expired),
            Caller::NoToken | Caller::Anonymous => request,
        };
        if let Some(body) = &route.body {
            request = request.json(body);
        }
        async move {
            let response = request.send().await.expect("request");
            let challenge = response.headers().get("www-authenticate").map(|v| v.to_str().unwrap().to_string());
            let (status, body) = answer(response).await;
            Answer { status, challenge, body }
        }
    };

    let routes = routes();
    let mut failures = Vec::new();
    let mut checked = 0;
    for caller in CALLERS {
        if caller == Caller::Owner {
            // Nothing the others sent changed anything: chunk 0 keeps the owner's checksum, nothing was aborted.
            let chunks: Vec<(i32, Vec<u8>)> =
                sqlx::query_as("SELECT index, sha256 FROM chunks WHERE upload_id = $1 ORDER BY index")
                    .bind(live)
                    .fetch_all(&app.pool)
                    .await
                    .unwrap();
            assert_eq!(chunks, [(0, hex::decode(sha256_hex(b"declared")).unwrap())]);
            assert_eq!(app.status(live, false).await["state"], "uploading");
        }
        for route in &routes {
            checked += 1;
            let id = if route.on_completed { completed } else { live };
            let got = send(caller, route, id).await;
            let expected = match caller {
                Caller::Owner => route.owner_status,
                Caller::OtherOwner | Caller::Anonymous => 404,
                Caller::NoToken | Caller::ExpiredToken => 401,
            };
            let mut wrong = Vec::new();
            if got.status.as_u16() != expected {
                wrong.push(format!("status {}", got.status));
            }
            let is_head = route.method == Method::HEAD;
            match got.status {
                StatusCode::NOT_FOUND => {
                    // Exactly what an id that does not exist gets.
                    let unknown = send(caller, route, Uuid::now_v7()).await;
                    if (unknown.status, &unknown.body) != (got.status, &got.body) {
                        wrong.push(format!("differs from an unknown id's {} {}", unknown.status, unknown.body));
                    }
                    if !is_head && got.body["code"] != "upload_not_found" {
                        wrong.push(format!("code {}", got.body["code"]));
                    }
                }
                StatusCode::UNAUTHORIZED => {
                    let (code, challenge) = match caller {
                        Caller::NoToken => ("token_missing", "Bearer realm=\"uploads\""),
                        _ => (
                            "token_expired",
                            "Bearer realm=\"uploads\", error=\"invalid_token\", error_description=\"token_expired\"",
                        ),
                    };
                    if !is_head && got.body["code"] != code {
                        wrong.push(format!("code {}", got.body["code"]));
                    }
                    if got.challenge.as_deref() != Some(challenge) {
                        wrong.push(format!("WWW-Authenticate {:?}", got.challenge));
                    }
                }
                _ => {}
            }
            if !wrong.is_empty() {
                failures.push(format!("{} as {caller:?}: expected {expected}, got {}", route.name, wrong.join(", ")));
            }
        }
    }
    println!("{checked} (route, caller) pairs checked");
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
    let (status, body) = answer(app.get(&format!("/v1/uploads/{live}")).await).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::GONE, Some("upload_aborted")), "the owner's abort ran");
    app.finish().await;
}

#[tokio::test]
async fn a_refused_token_is_named_and_open_routes_need_none() {
    let app = TestApp::spawn().await;
    let sign = |claims: Value, secret: &[u8]| {
        jsonwebtoken::encode(&Header::default(), &claims, &EncodingKey::from_secret(secret).unwrap()).unwrap()
    };
    let secret = app.jwt_secret().unwrap().to_vec();
    let later = get_current_timestamp() + 600;
    let cases: Vec<(&str, Option<String>, &str, &str)> = vec![
        ("no header", None, "token_missing", "Bearer realm=\"uploads\""),
        ("basic", Some("Basic Ym9iOmJvYg==".into()), "token_malformed", "error=\"invalid_request\""),
        ("not a JWT", Some("Bearer not-a-jwt".into()), "token_malformed", "error=\"invalid_token\""),
        ("expired", Some(format!("Bearer {}", expired_token(&app, "alice"))), "token_expired", "invalid_token"),
        (
            "other secret",
            Some(format!(
                "Bearer {}",
                sign(json!({ "sub": "alice", "exp": later }), b"0123456789abcdef0123456789abcdef")
            )),
            "token_invalid_signature",
            "error_description=\"token_invalid_signature\"",
        ),
        (
            "not yet valid",
            Some(format!("Bearer {}", sign(json!({ "sub": "alice", "exp": later, "nbf": later - 60 }), &secret))),
            "token_not_yet_valid",
            "invalid_token",
        ),
        (
            "no sub",
            Some(format!("Bearer {}", sign(json!({ "exp": later }), &secret))),
            "token_invalid_subject",
            "invalid_token",
        ),
    ];
    for (name, authorization, code, challenge) in cases {
        let mut request = app.plain.post(app.url("/v1/uploads")).json(&json!({ "filename": "a", "size": 1 }));
        if let Some(value) = &authorization {
            request = request.header("authorization", value);
        }
        let response = request.send().await.unwrap();
        let header = response.headers().get("www-authenticate").map(|v| v.to_str().unwrap().to_string());
        let (status, body) = answer(response).await;
        assert_eq!((status, body["code"].as_str()), (StatusCode::UNAUTHORIZED, Some(code)), "{name}: {body}");
        assert!(header.as_deref().is_some_and(|h| h.contains(challenge)), "{name}: {header:?}");
        assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "{name}: {body}");
    }
    for path in ["/healthz", "/readyz", "/", "/app.js", "/style.css"] {
        assert_eq!(app.plain.get(app.url(path)).send().await.unwrap().status(), StatusCode::OK, "{path}");
    }
    let uploads: i64 = sqlx::query_scalar("SELECT count(*) FROM uploads").fetch_one(&app.pool).await.unwrap();
    assert_eq!(uploads, 0, "no refused request created anything");
    app.finish().await;
}

#[tokio::test]
async fn with_auth_none_every_caller_is_anonymous_and_owns_what_it_creates() {
    let app = TestApp::spawn_with(|c| c.auth.auth = api::auth::config::AuthMode::None).await;
    let id = app.create_upload(10, None).await;
    let owner: String =
        sqlx::query_scalar("SELECT owner FROM uploads WHERE id = $1").bind(id).fetch_one(&app.pool).await.unwrap();
    assert_eq!(owner, "anonymous");
    // Any Authorization header is ignored, even a made-up one.
    let response = app.plain.get(app.url(&format!("/v1/uploads/{id}"))).bearer_auth("junk").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    app.finish().await;
}
