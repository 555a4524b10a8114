//! Keeps `openapi.yaml` from drifting: its routes are exactly the router's, its security what the router
//! enforces, and its error codes exactly `ErrorCode`'s.
//!
//! The router cannot list its routes, so the test reads them from the source (every `.route("PATH", ...)` under
//! `api/src`) and then asks the running app, for every path and method, whether it is routed.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use e2e::TestApp;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use uploads::error_code::ErrorCode;

use crate::lifecycle::answer;

const SPEC: &str = include_str!("../../openapi.yaml");
const METHODS: [&str; 5] = ["get", "post", "put", "delete", "patch"];

fn spec() -> Value {
    serde_norway::from_str(SPEC).expect("openapi.yaml is valid YAML")
}

fn workspace_file(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(relative)
}

fn rust_files(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).expect("source dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push((path.clone(), std::fs::read_to_string(&path).expect("source")));
        }
    }
    files
}

/// The first string literal after each `marker` in `source`.
fn literals_after<'a>(source: &'a str, marker: &str) -> Vec<&'a str> {
    source
        .split(marker)
        .skip(1)
        .filter_map(|rest| rest.trim_start().strip_prefix('"').and_then(|s| s.split_once('"')).map(|(lit, _)| lit))
        .collect()
}

fn routed_paths() -> BTreeSet<String> {
    let files = rust_files(&workspace_file("api/src"));
    files.iter().flat_map(|(_, source)| literals_after(source, ".route(")).map(String::from).collect()
}

/// The path with its parameters filled in: an unknown upload, chunk 0.
fn concrete(path: &str) -> String {
    path.replace("{id}", &uuid::Uuid::now_v7().to_string()).replace("{index}", "0")
}

#[test]
fn the_spec_is_openapi_3_1_and_describes_every_routed_path() {
    let spec = spec();
    assert!(spec["openapi"].as_str().unwrap().starts_with("3.1"), "{}", spec["openapi"]);
    let documented: BTreeSet<String> = spec["paths"].as_object().unwrap().keys().cloned().collect();
    let routed = routed_paths();
    assert!(routed.len() >= 8, "found too few routes in api/src: {routed:?}");
    assert_eq!(documented, routed, "openapi.yaml paths (left) differ from the router's (right)");
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap().iter().filter(|(m, _)| METHODS.contains(&m.as_str())) {
            let responses = operation["responses"].as_object();
            assert!(responses.is_some_and(|r| !r.is_empty()), "{method} {path} documents no response");
            assert!(operation["operationId"].is_string(), "{method} {path} has no operationId");
        }
    }
}

#[test]
fn the_spec_lists_exactly_the_error_codes_the_code_answers() {
    let spec = spec();
    let documented: BTreeSet<String> = spec["components"]["schemas"]["ErrorCode"]["oneOf"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["const"].as_str().expect("each code is a const").to_string())
        .collect();
    let answered: BTreeSet<String> = ErrorCode::all().map(|code| code.as_str().to_string()).collect();
    assert!(answered.contains("invalid_sha256") && answered.contains("route_not_found"), "{answered:?}");
    let undocumented: Vec<_> = answered.difference(&documented).collect();
    let stale: Vec<_> = documented.difference(&answered).collect();
    assert!(undocumented.is_empty(), "codes the API answers but openapi.yaml does not list: {undocumented:?}");
    assert!(stale.is_empty(), "codes openapi.yaml lists but no code answers: {stale:?}");

    // And each code is named by at least one response of some operation, so a reader finds where it comes from.
    let responses = serde_json::to_string(&spec["paths"]).unwrap() + &spec["components"]["responses"].to_string();
    let unplaced: Vec<_> = documented.iter().filter(|c| !responses.contains(&format!("`{c}`"))).collect();
    let unplaced: Vec<_> =
        unplaced.into_iter().filter(|c| !["route_not_found", "method_not_allowed"].contains(&c.as_str())).collect();
    assert!(unplaced.is_empty(), "codes no response of openapi.yaml names: {unplaced:?}");
}

#[tokio::test]
async fn every_documented_operation_is_routed_and_no_other_method_is() {
    let app = TestApp::spawn().await;
    let spec = spec();
    let mut wrong = Vec::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for method in METHODS {
            let documented = item.get(method).is_some();
            let url = app.url(&concrete(path));
            let request = app.http.request(Method::from_bytes(method.to_uppercase().as_bytes()).unwrap(), url);
            let (status, body) = answer(request.send().await.unwrap()).await;
            let unrouted = matches!(body["code"].as_str(), Some("route_not_found" | "method_not_allowed"));
            if documented && unrouted {
                wrong.push(format!("{method} {path} is documented but answers {status} {body}"));
            }
            if !documented && (status != StatusCode::METHOD_NOT_ALLOWED || body["code"] != "method_not_allowed") {
                wrong.push(format!(
                    "{method} {path} is not documented, so 405 method_not_allowed was due: {status} {body}"
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    app.finish().await;
}

#[tokio::test]
async fn the_documented_security_is_what_the_router_enforces() {
    let app = TestApp::spawn().await;
    let spec = spec();
    assert_eq!(spec["security"], serde_json::json!([{ "bearer": [] }]), "bearer is the default for every operation");
    let mut wrong = Vec::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap().iter().filter(|(m, _)| *m != "parameters") {
            let open = operation.get("security").is_some_and(|s| s.as_array().is_some_and(Vec::is_empty));
            let documents_401 = operation["responses"].get("401").is_some();
            let request = app
                .plain
                .request(Method::from_bytes(method.to_uppercase().as_bytes()).unwrap(), app.url(&concrete(path)));
            let status = request.send().await.unwrap().status();
            if open == (status == StatusCode::UNAUTHORIZED) || open == documents_401 {
                wrong.push(format!(
                    "{method} {path}: security {}, 401 documented {documents_401}, answers {status} without a token",
                    if open { "none" } else { "bearer" }
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    app.finish().await;
}

/// The characters of a `[^...]` class in a pattern, ranges expanded: `(first, last)` pairs.
fn class_ranges(class: &str) -> Vec<(u32, u32)> {
    let chars: Vec<char> = class.chars().collect();
    let mut ranges = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if chars.get(i + 1) == Some(&'-') && i + 2 < chars.len() {
            ranges.push((chars[i] as u32, chars[i + 2] as u32));
            i += 3;
        } else {
            ranges.push((chars[i] as u32, chars[i] as u32));
            i += 1;
        }
    }
    ranges
}

#[test]
fn the_filename_pattern_refuses_exactly_the_characters_the_service_refuses() {
    let spec = spec();
    let pattern = spec["components"]["schemas"]["CreateUploadRequest"]["properties"]["filename"]["pattern"]
        .as_str()
        .expect("a filename pattern")
        .to_string();
    // "^[^EXCLUDED]*[^EXCLUDED SPACES][^EXCLUDED]*$"
    let excluded = pattern.strip_prefix("^[^").and_then(|p| p.split_once("]*[^")).expect("the pattern's shape").0;
    let second = pattern.split("]*[^").nth(1).and_then(|p| p.split_once("][^")).expect("the second class").0;
    let spaces = second.strip_prefix(excluded).expect("the second class starts with the first");
    let (excluded, spaces) = (class_ranges(excluded), class_ranges(spaces));
    let within = |ranges: &[(u32, u32)], c: u32| ranges.iter().any(|(first, last)| (*first..=*last).contains(&c));
    let mut wrong = Vec::new();
    for c in (0..=0x10FFFFu32).filter_map(char::from_u32) {
        if within(&excluded, c as u32) != uploads::service::refused_in_filename(c) {
            wrong.push(format!("U+{:04X} excluded by the pattern: {}", c as u32, within(&excluded, c as u32)));
        }
        // What `trim` drops at the ends, among the characters a filename may hold, is the pattern's spaces.
        if !uploads::service::refused_in_filename(c) && c.is_whitespace() != within(&spaces, c as u32) {
            wrong.push(format!("U+{:04X} a space to the pattern: {}", c as u32, within(&spaces, c as u32)));
        }
    }
    assert!(wrong.is_empty(), "{} characters differ, first: {}", wrong.len(), wrong[..wrong.len().min(20)].join("\n"));
}

/// Create requests on both sides of the spec's constraints: the service accepts exactly those openapi.yaml
/// admits (the constraints schemathesis also probes, here named one by one).
#[tokio::test]
async fn the_service_accepts_exactly_the_create_requests_the_spec_admits() {
    let app = TestApp::spawn().await;
    let contract = e2e::contract::contract();
    let base = serde_json::json!({ "filename": "a.bin", "size": 10 });
    let with = |field: &str, value: Value| {
        let mut body = base.clone();
        body[field] = value;
        body
    };
    let bodies = [
        base.clone(),
        with("size", serde_json::json!(60.0)),
        with("size", serde_json::json!(60.5)),
        with("metadata", Value::Null),
        with("metadata", serde_json::json!({ "k": "a\u{0}b" })),
        with("metadata", serde_json::json!([1])),
        with("chunkSize", Value::Null),
        with("chunkSize", serde_json::json!(10.0)),
        with("sha256", Value::Null),
        with("contentType", Value::Null),
        with("contentType", serde_json::json!("text/plain; charset=\"a b\"")),
        with("contentType", serde_json::json!("text/*")),
        with("contentType", serde_json::json!(" text/plain")),
        with("contentType", serde_json::json!("**/x")),
        with("filename", serde_json::json!("  padded.txt  ")),
        with("filename", serde_json::json!("\u{3000}")),
        with("filename", serde_json::json!("4pm\u{202E}exe.mp4")),
        with("filename", serde_json::json!("é".repeat(1024))),
        with("filename", serde_json::json!("é".repeat(1025))),
        with("size", serde_json::json!(5u64 << 40)),
        with("size", serde_json::json!((5u64 << 40) + 1)),
    ];
    let mut wrong = Vec::new();
    for body in bodies {
        let admitted = contract.validate("#/components/schemas/CreateUploadRequest", &body);
        let (status, answer) = answer(app.post_json("/v1/uploads", &body).await).await;
        if admitted.is_ok() != (status == StatusCode::CREATED) {
            wrong.push(format!("{body}: the spec says {admitted:?}, the service {status} {answer}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    app.finish().await;
}
