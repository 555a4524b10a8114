//! `GET /v1/uploads`: each owner sees only their own uploads, newest first, in pages that neither repeat nor
//! skip an upload (even while new ones are created), filtered by state; bad parameters are refused clearly.

use std::collections::HashSet;

use e2e::{TestApp, random_bytes};
use reqwest::StatusCode;
use serde_json::Value;
use uuid::Uuid;

use crate::lifecycle::{CHUNK, answer};

/// One page, as `client` gets it for `query` (e.g. `?limit=2`). Panics unless 200.
async fn page(app: &TestApp, client: &reqwest::Client, query: &str) -> Value {
    let response = client.get(app.url(&format!("/v1/uploads{query}"))).send().await.expect("request");
    assert_eq!(response.headers().get("cache-control").map(|v| v.to_str().unwrap()), Some("no-store"));
    let (status, body) = answer(response).await;
    assert_eq!(status, StatusCode::OK, "{query}: {body}");
    body
}

fn ids(page: &Value) -> Vec<Uuid> {
    page["uploads"].as_array().unwrap().iter().map(|u| u["uploadId"].as_str().unwrap().parse().unwrap()).collect()
}

/// Every page `client` gets with `limit` per page, following `nextCursor`.
async fn every_page(app: &TestApp, client: &reqwest::Client, limit: u32, filter: &str) -> Vec<Vec<Uuid>> {
    let mut pages = Vec::new();
    let mut query = format!("?limit={limit}{filter}");
    loop {
        let body = page(app, client, &query).await;
        pages.push(ids(&body));
        match body["nextCursor"].as_str() {
            Some(cursor) => query = format!("?limit={limit}{filter}&cursor={cursor}"),
            None => return pages,
        }
    }
}

#[tokio::test]
async fn each_owner_lists_only_their_own_uploads_newest_first_in_the_status_shape() {
    let app = TestApp::spawn().await;
    let bob = app.client_for("bob");
    let file = random_bytes(CHUNK + 1000);
    let completed = app.upload_file(&file, CHUNK as u64).await;
    let partial = app.create_upload(3 * CHUNK as u64, Some(CHUNK as u64)).await;
    app.upload_chunk(partial, 1, &random_bytes(CHUNK)).await;
    let fresh = app.create_upload(10, None).await;
    let bobs: Vec<Uuid> = {
        let mut bobs = Vec::new();
        for name in ["b1.bin", "b2.bin"] {
            let body = serde_json::json!({ "filename": name, "size": 5 });
            let (status, created) = answer(bob.post(app.url("/v1/uploads")).json(&body).send().await.unwrap()).await;
            assert_eq!(status, StatusCode::CREATED, "{created}");
            bobs.push(created["uploadId"].as_str().unwrap().parse().unwrap());
        }
        bobs
    };

    let alices = page(&app, &app.http, "").await;
    assert_eq!(ids(&alices), [fresh, partial, completed], "alice's own, newest first");
    assert_eq!(alices["nextCursor"], Value::Null);
    assert_eq!(ids(&page(&app, &bob, "").await), [bobs[1], bobs[0]], "bob's own only");

    // Each item is the status without the chunk ranges; receivedBytes is summed from the received chunks.
    for item in alices["uploads"].as_array().unwrap() {
        let id: Uuid = item["uploadId"].as_str().unwrap().parse().unwrap();
        let mut status = app.status(id, false).await;
        for key in ["receivedChunks", "missingChunks", "nextExpectedChunk"] {
            assert!(item.get(key).is_none(), "{key} in {item}");
            status.as_object_mut().unwrap().remove(key);
        }
        // The signed link is made per answer (its expiry moves with the clock): compared by working, below.
        let (mut item, link) = (item.clone(), item.get("downloadUrl").cloned());
        item.as_object_mut().unwrap().remove("downloadUrl");
        assert_eq!(link.is_some(), status.as_object_mut().unwrap().remove("downloadUrl").is_some(), "{id}");
        assert_eq!(item, status, "{id}");
    }
    let [fresh_item, partial_item, completed_item] = alices["uploads"].as_array().unwrap().as_slice() else {
        panic!("three uploads")
    };
    assert_eq!((fresh_item["state"].as_str(), fresh_item["receivedBytes"].as_u64()), (Some("uploading"), Some(0)));
    assert_eq!(partial_item["receivedBytes"], CHUNK);
    assert_eq!(completed_item["state"], "completed");
    assert_eq!(completed_item["receivedBytes"], file.len());
    let link = completed_item["downloadUrl"].as_str().unwrap();
    let download = app.plain.get(link).send().await.unwrap();
    assert_eq!(download.status(), StatusCode::OK, "the signed link works without a token");
    assert!(download.bytes().await.unwrap() == file);

    let (status, body) = answer(app.plain.get(app.url("/v1/uploads")).send().await.unwrap()).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("token_missing")));
    app.finish().await;
}

#[tokio::test]
async fn pages_neither_repeat_nor_skip_uploads_while_new_ones_are_created() {
    let app = TestApp::spawn().await;
    let mut made = Vec::new();
    for _ in 0..7 {
        made.push(app.create_upload(10, None).await);
    }
    // Three uploads created within the same microsecond: the id breaks the tie, and pages still hold.
    let tied = &made[2..5];
    sqlx::query("UPDATE uploads SET created_at = (SELECT created_at FROM uploads WHERE id = $1) WHERE id = ANY($2)")
        .bind(tied[0])
        .bind(tied)
        .execute(&app.pool)
        .await
        .unwrap();
    let mut newest_first = made.clone();
    newest_first[2..5].sort();
    newest_first.reverse();

    let mut pages = Vec::new();
    let mut query = "?limit=2".to_string();
    let mut created_meanwhile = Vec::new();
    loop {
        let body = page(&app, &app.http, &query).await;
        pages.push(ids(&body));
        // A client pages through while someone adds uploads: they are newer than the cursor, so they belong
        // to the first page of a new listing, never to a later page of this one.
        created_meanwhile.push(app.create_upload(10, None).await);
        match body["nextCursor"].as_str() {
            Some(cursor) => query = format!("?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [2, 2, 2, 1]);
    assert_eq!(pages.concat(), newest_first, "every upload once, in order");

    // A last page that is exactly full says so: no empty page after it.
    let everything = page(&app, &app.http, &format!("?limit={}", made.len() + created_meanwhile.len())).await;
    assert_eq!(everything["nextCursor"], Value::Null);
    assert_eq!(ids(&everything).len(), made.len() + created_meanwhile.len());
    assert_eq!(every_page(&app, &app.http, 20, "").await.len(), 1, "20 by default fits all 11");
    let by_one = every_page(&app, &app.http, 1, "").await;
    let seen: HashSet<Uuid> = by_one.iter().flatten().copied().collect();
    assert_eq!((by_one.len(), seen.len()), (11, 11));
    app.finish().await;
}

#[tokio::test]
async fn the_state_filter_takes_one_state_or_several_and_sees_lapsed_uploads_as_expired() {
    let app = TestApp::spawn().await;
    let completed = app.upload_file(b"done", CHUNK as u64).await;
    let uploading = app.create_upload(10, None).await;
    let aborted = app.create_upload(10, None).await;
    let response = app.http.delete(app.url(&format!("/v1/uploads/{aborted}"))).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    // Past its deadline, not yet marked by the worker: its status answers 410, so the list says expired.
    let lapsed = app.create_upload(10, None).await;
    app.lapse_deadline(lapsed).await;

    for (filter, expected) in [
        ("completed", vec![completed]),
        ("uploading", vec![uploading]),
        ("aborted", vec![aborted]),
        ("expired", vec![lapsed]),
        ("uploading,completing", vec![uploading]),
        ("expired,completed", vec![lapsed, completed]),
        ("completing", vec![]),
    ] {
        let body = page(&app, &app.http, &format!("?state={filter}")).await;
        assert_eq!(ids(&body), expected, "state={filter}");
    }
    let all = page(&app, &app.http, "").await;
    let states: Vec<&str> = all["uploads"].as_array().unwrap().iter().map(|u| u["state"].as_str().unwrap()).collect();
    assert_eq!(states, ["expired", "aborted", "uploading", "completed"]);
    // The filter and the cursor together: pages of completed uploads only.
    let more = app.upload_file(b"more", CHUNK as u64).await;
    assert_eq!(every_page(&app, &app.http, 1, "&state=completed").await, [vec![more], vec![completed]]);
    app.finish().await;
}

#[tokio::test]
async fn bad_parameters_are_refused_in_the_envelope() {
    let app = TestApp::spawn().await;
    app.create_upload(10, None).await;
    app.create_upload(10, None).await;
    let cursor = page(&app, &app.http, "?limit=1").await["nextCursor"].as_str().unwrap().to_string();
    for (query, status, code) in [
        ("?limit=0", 422, "invalid_limit"),
        ("?limit=101", 422, "invalid_limit"),
        ("?limit=abc", 400, "invalid_query"),
        ("?limit=-1", 400, "invalid_query"),
        ("?limit=1&limit=2", 400, "invalid_query"),
        ("?sort=asc", 400, "invalid_query"),
        ("?cursor=", 422, "invalid_cursor"),
        ("?cursor=not-a-cursor", 422, "invalid_cursor"),
        (&format!("?cursor={}", &cursor[..cursor.len() - 1]), 422, "invalid_cursor"),
        (&format!("?cursor={cursor}A"), 422, "invalid_cursor"),
        ("?state=done", 422, "invalid_state_filter"),
        ("?state=", 422, "invalid_state_filter"),
        ("?state=completed,", 422, "invalid_state_filter"),
    ] {
        let (got, body) = answer(app.get(&format!("/v1/uploads{query}")).await).await;
        assert_eq!((got.as_u16(), body["code"].as_str()), (status, Some(code)), "{query}: {body}");
        assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "{query}: {body}");
    }
    assert_eq!(ids(&page(&app, &app.http, &format!("?limit=100&cursor={cursor}")).await).len(), 1);
    app.finish().await;
}
