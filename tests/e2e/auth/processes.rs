//! The api and mint-token binaries as real processes: the startup refusal without a key, the `AUTH=none`
//! warning, tokens that `mint-token` signs, and logs that never hold a token.

use std::process::Command;

use e2e::{TestApp, workspace_bin};
use reqwest::StatusCode;
use serde_json::json;

use super::expired_token;
use crate::downloads::process::ApiProcess;

#[test]
fn auth_on_without_a_key_is_a_one_line_startup_error_naming_the_variables() {
    let output = Command::new(workspace_bin("api"))
        .env_clear()
        .env("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")
        .env("S3_BUCKET", "unused")
        .output()
        .expect("the api binary runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    for name in ["AUTH_JWT_SECRET", "AUTH_JWT_SECRET_FILE", "AUTH_JWKS_URL", "AUTH=none"] {
        assert!(stderr.contains(name), "{name} is not named: {stderr}");
    }
}

#[tokio::test]
async fn auth_none_is_announced_by_a_warning_at_startup() {
    let app = TestApp::spawn().await;
    let api = ApiProcess::spawn(&app, "auth-none", &[("AUTH", "none"), ("LOG_FORMAT", "json")]).await;
    let response = app.plain.get(format!("{}/v1/uploads/{}", api.base_url, uuid::Uuid::now_v7())).send().await;
    assert_eq!(response.unwrap().status(), StatusCode::NOT_FOUND, "no token needed");
    let warning = api.log().lines().find(|line| line.contains("AUTH=none")).map(String::from);
    let warning: serde_json::Value = serde_json::from_str(&warning.expect("a warning about AUTH=none")).unwrap();
    assert_eq!(warning["level"], "WARN", "{warning}");
    app.finish().await;
}

#[tokio::test]
async fn no_token_reaches_the_log_even_at_trace_level() {
    let app = TestApp::spawn().await;
    let filter = "trace,sqlx=info,aws_smithy_runtime=info,aws_config=info,aws_sdk_s3=info,rustls=info";
    let api = ApiProcess::spawn(&app, "token-log", &[("RUST_LOG", filter), ("LOG_FORMAT", "json")]).await;
    let (valid, expired) = (app.token_for("carol"), expired_token(&app, "carol"));
    let create = json!({ "filename": "secret.bin", "size": 10 });
    for token in [&valid, &expired, &format!("{valid}x")] {
        let url = format!("{}/v1/uploads", api.base_url);
        let response = app.plain.post(url).bearer_auth(token).json(&create).send().await.unwrap();
        assert!([StatusCode::CREATED, StatusCode::UNAUTHORIZED].contains(&response.status()));
    }
    let log = api.log();
    assert!(log.contains("\"owner\":\"carol\""), "the request span names the owner");
    for token in [&valid, &expired] {
        let signature = token.rsplit('.').next().unwrap();
        assert!(!log.contains(signature), "a token's signature is in {}", api.log_path.display());
        let claims = token.split('.').nth(1).unwrap();
        assert!(!log.contains(claims), "a token's claims are in {}", api.log_path.display());
    }
    app.finish().await;
}

#[tokio::test]
async fn mint_token_signs_tokens_the_api_accepts() {
    let app = TestApp::spawn().await;
    let secret = String::from_utf8(app.jwt_secret().unwrap().to_vec()).unwrap();
    let output = Command::new(workspace_bin("mint-token"))
        .args(["--sub", "dave", "--ttl", "10m"])
        .env("AUTH_JWT_SECRET", &secret)
        .output()
        .expect("mint-token runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let token = String::from_utf8(output.stdout).unwrap().trim().to_string();
    let created = app.plain.post(app.url("/v1/uploads")).bearer_auth(&token);
    let response = created.json(&json!({ "filename": "a.bin", "size": 1 })).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let owners: Vec<String> = sqlx::query_scalar("SELECT owner FROM uploads").fetch_all(&app.pool).await.unwrap();
    assert_eq!(owners, ["dave"]);

    let mut unsigned = Command::new(workspace_bin("mint-token"));
    unsigned.args(["--sub", "dave"]).env_remove("AUTH_JWT_SECRET").env_remove("AUTH_JWT_SECRET_FILE");
    let refused = unsigned.output().unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("AUTH_JWT_SECRET"));
    app.finish().await;
}
