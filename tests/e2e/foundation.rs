use e2e::TestApp;
use reqwest::StatusCode;
use serde_json::Value;

#[tokio::test]
async fn migrations_apply_to_an_empty_database() {
    let app = TestApp::spawn().await;
    let applied: Vec<i64> = sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success ORDER BY version")
        .fetch_all(&app.pool)
        .await
        .unwrap();
    let expected: Vec<i64> = uploads::db::MIGRATOR.iter().map(|m| m.version).collect();
    assert!(!expected.is_empty());
    assert_eq!(applied, expected);
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert!(tables.contains(&"uploads".to_string()) && tables.contains(&"chunks".to_string()), "{tables:?}");
    app.finish().await;
}

#[tokio::test]
async fn migrating_twice_at_once_is_safe() {
    let app = TestApp::spawn().await;
    let (a, b) = tokio::join!(
        uploads::db::connect_and_migrate(&app.config.service.database),
        uploads::db::connect_and_migrate(&app.config.service.database)
    );
    a.unwrap();
    b.unwrap();
    app.finish().await;
}

#[tokio::test]
async fn healthz_answers_while_the_process_lives() {
    let app = TestApp::spawn().await;
    let response = app.get("/healthz").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers().contains_key("x-request-id"));
    app.finish().await;
}

#[tokio::test]
async fn readyz_is_200_with_both_up_and_503_once_postgres_is_gone() {
    let app = TestApp::spawn().await;
    let response = app.get("/readyz").await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["checks"]["database"], "ok");
    assert_eq!(body["checks"]["storage"], "ok");

    // Take the database away from the running app: refuse new connections and end the open ones.
    let db_name = app.database_url().rsplit('/').next().unwrap().to_string();
    let admin = sqlx::PgPool::connect(&app.env.admin_database_url).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("ALTER DATABASE {db_name} ALLOW_CONNECTIONS false")))
        .execute(&admin)
        .await
        .unwrap();
    sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1")
        .bind(&db_name)
        .execute(&admin)
        .await
        .unwrap();

    let response = app.get("/readyz").await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], "not_ready");
    assert_eq!(body["checks"]["database"], "failed");
    assert_eq!(body["checks"]["storage"], "ok");
    assert!(body["message"].as_str().unwrap().contains("database"), "{body}");

    // Back, for the teardown's look at the queue.
    sqlx::query(sqlx::AssertSqlSafe(format!("ALTER DATABASE {db_name} ALLOW_CONNECTIONS true")))
        .execute(&admin)
        .await
        .unwrap();
    admin.close().await;
    app.finish().await;
}

#[tokio::test]
async fn readyz_is_503_when_the_bucket_is_missing() {
    let app = TestApp::spawn_with(|_| {}).await;
    let s3 = app.storage.client();
    s3.delete_bucket_cors().bucket(app.storage.bucket()).send().await.unwrap();
    s3.delete_bucket().bucket(app.storage.bucket()).send().await.unwrap();
    let response = app.get("/readyz").await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["checks"]["storage"], "failed");
    // Back, for the teardown's sweep.
    s3.create_bucket().bucket(app.storage.bucket()).send().await.unwrap();
    app.finish().await;
}

#[tokio::test]
async fn unknown_routes_answer_the_json_envelope() {
    let app = TestApp::spawn().await;
    let response = app.get("/nope").await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], "route_not_found");
    app.finish().await;
}
