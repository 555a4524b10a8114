//! The Dockerfile and compose.yaml cannot be built on the test machine, so they are read: their shape (a
//! multi-stage build whose image runs as non-root, the four services), and every variable they give the api or
//! the worker is one that binary reads, with values the binary accepts.

use std::collections::BTreeMap;

use api::config::ApiConfig;
use serde_norway::Value;
use worker::config::WorkerConfig;

const DOCKERFILE: &str = include_str!("../../Dockerfile");
const COMPOSE: &str = include_str!("../../compose.yaml");

/// Read by the AWS SDK's default chains rather than by the binaries' own configuration.
const AWS_VARIABLES: &[&str] =
    &["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_REGION", "AWS_PROFILE"];
/// Read by the tracing filter (`uploads::telemetry`).
const OTHER_VARIABLES: &[&str] = &["RUST_LOG"];

fn read_by(mut own: Vec<String>) -> Vec<String> {
    own.extend(AWS_VARIABLES.iter().chain(OTHER_VARIABLES).map(|v| v.to_string()));
    own
}

/// The instructions of a Dockerfile, continuation lines joined, comments dropped.
fn instructions(text: &str) -> Vec<(String, String)> {
    let mut joined = Vec::new();
    let mut current = String::new();
    for line in text.lines().map(str::trim).filter(|l| !l.starts_with('#')) {
        match line.strip_suffix('\\') {
            Some(part) => current.push_str(part),
            None => {
                current.push_str(line);
                if !current.trim().is_empty() {
                    joined.push(std::mem::take(&mut current));
                }
                current.clear();
            }
        }
    }
    joined
        .into_iter()
        .map(|l| {
            let (word, rest) = l.trim().split_once(char::is_whitespace).unwrap_or((l.trim(), ""));
            (word.to_ascii_uppercase(), rest.trim().to_string())
        })
        .collect()
}

#[test]
fn the_dockerfile_builds_in_one_stage_and_runs_as_non_root_in_a_small_one() {
    let all = instructions(DOCKERFILE);
    let stages: Vec<usize> = all.iter().enumerate().filter(|(_, (w, _))| w == "FROM").map(|(i, _)| i).collect();
    assert_eq!(stages.len(), 2, "a build stage and a runtime stage: {all:?}");
    let build_image = &all[stages[0]].1;
    let rust_version = include_str!("../../Cargo.toml").split("rust-version = \"").nth(1).unwrap().split('"').next();
    assert!(build_image.starts_with(&format!("rust:{}", rust_version.unwrap())), "{build_image}");
    let final_stage = &all[stages[1]..];
    let base = &final_stage[0].1;
    assert!(base.contains("distroless") || base.contains("slim"), "runtime image {base}");
    let user = final_stage.iter().rev().find(|(w, _)| w == "USER").map(|(_, u)| u.as_str());
    assert!(user.is_some_and(|u| !["root", "0", "0:0"].contains(&u)), "runtime user {user:?}");
    assert!(final_stage.iter().any(|(w, rest)| w == "COPY" && rest.starts_with("--from=")));
    let entrypoint = final_stage.iter().find(|(w, _)| w == "ENTRYPOINT").expect("an ENTRYPOINT");
    assert_eq!(entrypoint.1, r#"["/usr/local/bin/api"]"#);

    let readers =
        read_by([uploads::config::variables::<ApiConfig>(), uploads::config::variables::<WorkerConfig>()].concat());
    let set: Vec<String> = final_stage
        .iter()
        .filter(|(w, _)| w == "ENV")
        .flat_map(|(_, rest)| rest.split_whitespace().map(|kv| kv.split('=').next().unwrap().to_string()))
        .collect();
    assert!(!set.is_empty());
    for var in &set {
        assert!(readers.contains(var), "the Dockerfile sets {var}, which neither binary reads");
    }
}

fn compose() -> Value {
    let mut compose: Value = serde_norway::from_str(COMPOSE).expect("compose.yaml is YAML");
    compose.apply_merge().expect("compose.yaml's merge keys");
    compose
}

/// A service's environment, `${VAR:?message}` interpolations standing for a value of 32 bytes.
fn environment(service: &Value) -> Vec<(String, String)> {
    let map: BTreeMap<String, Value> =
        serde_norway::from_value(service["environment"].clone()).expect("environment is a mapping");
    map.into_iter()
        .map(|(k, v)| {
            let value = match v {
                Value::String(s) if s.starts_with("${") => "k".repeat(32),
                Value::String(s) => s,
                other => panic!("{k}: quote {other:?} (compose wants strings)"),
            };
            (k, value)
        })
        .collect()
}

#[test]
fn compose_runs_postgres_minio_api_and_worker_with_variables_they_read() {
    let compose = compose();
    let services = compose["services"].as_mapping().expect("services");
    for name in ["postgres", "minio", "api", "worker"] {
        assert!(services.contains_key(name), "compose.yaml has no {name}");
    }
    let api_env = environment(&compose["services"]["api"]);
    let worker_env = environment(&compose["services"]["worker"]);
    let api_readers = read_by(uploads::config::variables::<ApiConfig>());
    let worker_readers = read_by(uploads::config::variables::<WorkerConfig>());
    for (service, env, readers) in [("api", &api_env, &api_readers), ("worker", &worker_env, &worker_readers)] {
        for (var, _) in env {
            assert!(readers.contains(var), "compose.yaml gives {service} {var}, which it does not read");
        }
    }
    assert_eq!(compose["services"]["worker"]["entrypoint"][0], "/usr/local/bin/worker");

    // The values too: what each binary would make of them, up to the checks startup makes before connecting.
    let own = |env: &[(String, String)]| -> Vec<(String, String)> {
        env.iter().filter(|(k, _)| !AWS_VARIABLES.contains(&k.as_str())).cloned().collect()
    };
    let api: ApiConfig = uploads::config::parse_with("api", &own(&api_env)).unwrap();
    api.check().unwrap();
    api.links.signing_key().unwrap();
    api.service.s3.check().unwrap();
    assert!(api.service.s3.s3_public_endpoint.is_some(), "browsers cannot reach http://minio:9000");
    let worker: WorkerConfig = uploads::config::parse_with("worker", &own(&worker_env)).unwrap();
    worker.service.s3.check().unwrap();
    assert_eq!(worker.service.s3.s3_bucket, api.service.s3.s3_bucket);
    assert_eq!(worker.service.database.database_url, api.service.database.database_url);
}

#[test]
fn reading_the_environment_as_flags_refuses_what_startup_refuses() {
    let vars = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    };
    let base = [("DATABASE_URL", "postgres://db/x"), ("S3_BUCKET", "b")];
    let error =
        uploads::config::parse_with::<WorkerConfig>("worker", &vars(&[&base[..], &[("NOT_READ", "1")]].concat()));
    assert_eq!(error.unwrap_err(), "NOT_READ is read by no argument of worker");
    let error =
        uploads::config::parse_with::<WorkerConfig>("worker", &vars(&[&base[..], &[("PRESIGN_TTL", "8d")]].concat()));
    assert!(error.unwrap_err().starts_with("PRESIGN_TTL has an invalid value \"8d\""));
    let api: ApiConfig =
        uploads::config::parse_with("api", &vars(&[&base[..], &[("BIND_ADDR", "0.0.0.0:80")]].concat())).unwrap();
    assert!(api.check().is_err());
}

/// The IAM action that authorizes each aws-sdk-s3 operation the storage layer calls (presigned ones included:
/// S3 authorizes a presigned request as the API that signed it).
const ACTIONS: &[(&str, &str)] = &[
    ("create_multipart_upload", "s3:PutObject"),
    ("upload_part", "s3:PutObject"),
    ("complete_multipart_upload", "s3:PutObject"),
    ("put_object", "s3:PutObject"),
    ("list_parts", "s3:ListMultipartUploadParts"),
    ("abort_multipart_upload", "s3:AbortMultipartUpload"),
    ("head_object", "s3:GetObject"),
    ("get_object", "s3:GetObject"),
    ("delete_object", "s3:DeleteObject"),
    ("list_multipart_uploads", "s3:ListBucketMultipartUploads"),
    ("head_bucket", "s3:ListBucket"),
];

/// Every S3 operation `uploads/src/storage/` calls: `.<operation>()` followed by `.bucket(`, or a name the
/// presign macro is given.
fn s3_operations() -> Vec<String> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../uploads/src/storage");
    let mut operations = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let source = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        let flat: String = source.split_whitespace().collect();
        for (at, _) in flat.match_indices("().bucket(") {
            let name = flat[..at].rsplit('.').next().unwrap();
            if name.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
                operations.push(name.to_string());
            }
        }
        for part in flat.split("presign!(").skip(1) {
            operations.push(part.split(')').next().unwrap().to_string());
        }
    }
    operations.sort();
    operations.dedup();
    operations
}

/// The actions of the policy JSON that follows `<!-- iam: NAME -->` in the README.
fn readme_policy(name: &str) -> Vec<String> {
    let readme = include_str!("../../README.md");
    let marker = format!("<!-- iam: {name} -->");
    let after = readme.split(&marker).nth(1).unwrap_or_else(|| panic!("README has no {marker}"));
    let json = after.split("```json").nth(1).unwrap().split("```").next().unwrap();
    let policy: serde_json::Value = serde_json::from_str(json).expect("the policy is JSON");
    let statements = policy["Statement"].as_array().expect("statements");
    statements
        .iter()
        .flat_map(|s| s["Action"].as_array().unwrap().iter().map(|a| a.as_str().unwrap().to_string()))
        .collect()
}

#[test]
fn the_readme_iam_policies_allow_every_s3_call_of_the_code() {
    let operations = s3_operations();
    assert!(operations.len() >= 10, "the scan found too few operations: {operations:?}");
    let (api, worker) = (readme_policy("api"), readme_policy("worker"));
    for operation in &operations {
        let action = ACTIONS.iter().find(|(op, _)| op == operation).map(|(_, a)| *a);
        let action = action.unwrap_or_else(|| panic!("{operation}: add its IAM action here and to the README"));
        assert!(worker.iter().any(|a| a == action), "the worker policy lacks {action} ({operation})");
        if action != "s3:ListBucketMultipartUploads" {
            assert!(api.iter().any(|a| a == action), "the API policy lacks {action} ({operation})");
        }
    }
    // Least privilege: only the worker's sweep lists multipart uploads.
    assert!(!api.iter().any(|a| a == "s3:ListBucketMultipartUploads"));
}

/// Docker and Kubernetes hand secrets over as files: the database URL and the link key work that way too, and
/// no configuration dump shows a secret.
#[tokio::test]
async fn secrets_come_from_files_and_no_config_dump_shows_one() {
    let dir = std::env::temp_dir().join(format!("secrets-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let (database_file, key_file) = (dir.join("database-url"), dir.join("link-key"));
    let app = e2e::TestApp::spawn_with(|c| {
        let url = c.service.database.database_url.take().unwrap();
        std::fs::write(&database_file, format!("{url}\n")).unwrap();
        c.service.database.database_url_file = Some(database_file.clone());
        let key = c.links.link_signing_key.take().unwrap();
        std::fs::write(&key_file, format!("{}\n", key.expose())).unwrap();
        c.links.link_signing_key_file = Some(key_file.clone());
    })
    .await;
    let id = app.upload_file(b"from files", 5 * 1024 * 1024).await;
    let status = app.status(id, false).await;
    assert_eq!(status["state"], "completed");
    let link = status["downloadUrl"].as_str().expect("a signed download link").to_string();
    assert_eq!(app.plain.get(&link).send().await.unwrap().bytes().await.unwrap(), &b"from files"[..]);

    let dump = format!("{:?}", app.config);
    let key = std::fs::read_to_string(&key_file).unwrap();
    let jwt = app.jwt_secret().map(|s| String::from_utf8(s.to_vec()).unwrap()).unwrap();
    assert!(!dump.contains(key.trim()) && !dump.contains(&jwt), "a secret in {dump}");
    std::fs::remove_dir_all(&dir).unwrap();
    app.finish().await;
}
