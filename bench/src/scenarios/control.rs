//! The control plane beside Companion's: presign (one chunk, spread over uploads, batches of 100), initiate,
//! confirm, status of a 10,000-chunk upload, and complete of a 100-part upload.

use std::time::Instant;

use anyhow::Context;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt, stream};
use http::{HeaderMap, HeaderValue, Method, Uri, header};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::{Bench, Side, record_load, rotated};
use crate::api_client::{MIN_CHUNK, URL_BATCH};
use crate::companion::{Companion, Multipart};
use crate::load::{Stop, Template};
use crate::report::Better;

const CHUNK: u64 = 8 * 1024 * 1024;
/// Chunks a presign load rotates over on one upload.
const PRESIGN_CHUNKS: u32 = 1_000;
/// Uploads a spread presign load rotates over, and chunks on each.
const SPREAD_UPLOADS: usize = 64;
const SPREAD_CHUNKS: u32 = 100;

fn uris(urls: impl IntoIterator<Item = String>) -> anyhow::Result<Vec<Uri>> {
    urls.into_iter().map(|u| u.parse::<Uri>().with_context(|| format!("bad URL {u}"))).collect()
}

/// Every chunk the loads declare has this digest: re-declaring it is idempotent, so URLs can repeat.
fn fake_sha256() -> String {
    hex::encode(Sha256::digest(b"bench"))
}

struct Case<'a> {
    id: String,
    label: &'static str,
    connections: usize,
    sides: Vec<Side<'a>>,
}

/// `only_presign`: the single-chunk presign cases alone (what the profile records).
pub async fn run(b: &mut Bench, only_presign: bool) -> anyhow::Result<()> {
    let mut results = std::mem::take(&mut b.results);
    let outcome = run_cases(b, &mut results, only_presign).await;
    b.results = results;
    outcome
}

async fn run_cases(b: &Bench, results: &mut crate::report::Results, only_presign: bool) -> anyhow::Result<()> {
    let sha = fake_sha256();
    let api = b.api.clone();
    let base = api.base.clone();
    eprintln!("== control plane: set-up");
    let one = api.create(u64::from(PRESIGN_CHUNKS) * CHUNK, CHUNK).await?;
    let companion_one = b.companion.create().await?;
    let (spread, companion_spread): (Vec<String>, Vec<Multipart>) = if only_presign {
        (vec![], vec![])
    } else {
        let ours = stream::iter(0..SPREAD_UPLOADS).map(|_| api.create(u64::from(SPREAD_CHUNKS) * CHUNK, CHUNK));
        let theirs = stream::iter(0..SPREAD_UPLOADS).map(|_| b.companion.create());
        (ours.buffered(4).try_collect().await?, theirs.buffered(4).try_collect().await?)
    };

    let chunk_body = Bytes::from(json!({ "sha256": sha }).to_string());
    let api_post =
        |urls: Vec<Uri>, body: Bytes| Template { method: Method::POST, urls, headers: b.json_headers(), body };
    let companion_get =
        |urls: Vec<Uri>| Template { method: Method::GET, urls, headers: HeaderMap::new(), body: Bytes::new() };
    let ours = vec![&b.servers.api, &b.servers.postgres];
    let theirs = vec![&b.servers.companion];

    let mut cases = Vec::new();
    for &connections in &b.settings.connections {
        let urls = uris((0..PRESIGN_CHUNKS).map(|i| format!("{base}/v1/uploads/{one}/chunks/{i}/url")))?;
        let peer = uris((1..=PRESIGN_CHUNKS).map(|n| b.companion.sign_part_url(&companion_one, n)))?;
        cases.push(Case {
            id: format!("presign.one.c{connections}"),
            label: "presign one chunk (Companion: sign-part)",
            connections,
            sides: vec![
                Side { name: "api", template: api_post(urls, chunk_body.clone()), servers: ours.clone() },
                Side { name: "companion", template: companion_get(peer), servers: theirs.clone() },
            ],
        });
        if only_presign {
            continue;
        }
        // Request n goes to upload n % 64, so consecutive requests never wait for the same upload's row.
        let pairs = |n: u32| (n as usize % SPREAD_UPLOADS, n / SPREAD_UPLOADS as u32);
        let total = SPREAD_CHUNKS * SPREAD_UPLOADS as u32;
        let urls = uris((0..total).map(pairs).map(|(u, i)| format!("{base}/v1/uploads/{}/chunks/{i}/url", spread[u])))?;
        let peer = uris((0..total).map(pairs).map(|(u, i)| b.companion.sign_part_url(&companion_spread[u], i + 1)))?;
        cases.push(Case {
            id: format!("presign.spread.c{connections}"),
            label: "presign spread over 64 uploads",
            connections,
            sides: vec![
                Side { name: "api", template: api_post(urls, chunk_body.clone()), servers: ours.clone() },
                Side { name: "companion", template: companion_get(peer), servers: theirs.clone() },
            ],
        });
    }
    let c = b.settings.connections[0];
    if !only_presign {
        let batch: Vec<_> = (0..URL_BATCH).map(|index| json!({ "index": index, "sha256": sha })).collect();
        let batch_body = Bytes::from(json!({ "chunks": batch }).to_string());
        let urls = uris([format!("{base}/v1/uploads/{one}/urls")])?;
        let peer = uris([b.companion.batch_url(&companion_one, 1..=URL_BATCH)])?;
        cases.push(Case {
            id: format!("presign.batch100.c{c}"),
            label: "presign a batch of 100",
            connections: c,
            sides: vec![
                Side { name: "api", template: api_post(urls, batch_body), servers: ours.clone() },
                Side { name: "companion", template: companion_get(peer), servers: theirs.clone() },
            ],
        });
        let create = json!({ "filename": "bench.bin", "size": 1u64 << 30, "chunkSize": CHUNK });
        let mut peer = companion_get(uris([b.companion.create_url()])?);
        peer.method = Method::POST;
        peer.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        peer.body = Bytes::from(Companion::create_body().to_string());
        cases.push(Case {
            id: format!("initiate.c{c}"),
            label: "initiate an upload (Companion: create)",
            connections: c,
            sides: vec![
                Side {
                    name: "api",
                    template: api_post(uris([format!("{base}/v1/uploads")])?, Bytes::from(create.to_string())),
                    servers: ours.clone(),
                },
                Side { name: "companion", template: peer, servers: theirs.clone() },
                // Both servers wait for S3's CreateMultipartUpload: its rate alone is what neither can pass.
                Side { name: "direct S3", template: direct_create(b)?, servers: vec![] },
            ],
        });
        cases.push(confirm_case(b, c, &sha).await?);
        cases.push(status_case(b, c, &sha).await?);
    }

    eprintln!("== control plane: {} cases x {} rounds", cases.len(), b.settings.rounds);
    let warmup = Stop::After(std::time::Duration::from_secs_f64(b.settings.warmup_s));
    for case in &cases {
        for side in &case.sides {
            // Kept apart from the figures; in the raw data so counters read around a run can be divided.
            let report = crate::load::run(side.template.clone(), case.connections, warmup).await?;
            results.raw(&format!("{}.warmup", case.id), side.name, 0, json!({ "load": report }));
        }
    }
    let stop = b.duration();
    for round in 0..b.settings.rounds {
        for case in &cases {
            for side in rotated(case.sides.iter().collect(), round) {
                let report = record_load(results, round, &case.id, case.label, side, case.connections, stop).await?;
                eprintln!(
                    "   {:<28} {:<10} {:>8.0} req/s  p99 {:>6.1} ms",
                    case.id, side.name, report.req_per_s, report.latency_ms.p99
                );
            }
        }
    }
    Ok(())
}

/// Re-confirming chunks already confirmed with the same report (idempotent), rotating over 1,000 of them.
async fn confirm_case<'a>(b: &'a Bench, connections: usize, sha: &str) -> anyhow::Result<Case<'a>> {
    let id = b.api.create(u64::from(PRESIGN_CHUNKS) * CHUNK, CHUNK).await?;
    let template = confirm_all(b, &id, PRESIGN_CHUNKS, sha).await?;
    Ok(Case {
        id: format!("confirm.c{connections}"),
        label: "confirm a chunk",
        connections,
        sides: vec![Side { name: "api", template, servers: vec![&b.servers.api, &b.servers.postgres] }],
    })
}

/// `GET /v1/uploads/{id}` of an upload whose every chunk is confirmed (no `reconcile`: Postgres only).
async fn status_case<'a>(b: &'a Bench, connections: usize, sha: &str) -> anyhow::Result<Case<'a>> {
    let chunks = b.settings.status_chunks;
    let id = b.api.create(u64::from(chunks) * MIN_CHUNK, MIN_CHUNK).await?;
    confirm_all(b, &id, chunks, sha).await?;
    let template = Template {
        method: Method::GET,
        urls: uris([format!("{}/v1/uploads/{id}", b.api.base)])?,
        headers: b.auth_headers(),
        body: Bytes::new(),
    };
    Ok(Case {
        id: format!("status{chunks}.c{connections}"),
        label: if chunks == 10_000 { "status of a 10,000-chunk upload" } else { "status of a many-chunk upload" },
        connections,
        sides: vec![Side { name: "api", template, servers: vec![&b.servers.api, &b.servers.postgres] }],
    })
}

/// POSTs of a presigned CreateMultipartUpload, straight to S3. The multipart uploads it starts are never
/// used: the bench's LocalStack goes away with the run.
fn direct_create(b: &Bench) -> anyhow::Result<Template> {
    let (url, signed) = crate::s3::presigned_create(&b.s3_endpoint, &b.bucket, "bench-direct/create")?;
    let mut headers = HeaderMap::new();
    for (name, value) in signed {
        headers.insert(header::HeaderName::try_from(name)?, HeaderValue::try_from(value)?);
    }
    Ok(Template { method: Method::POST, urls: uris([url])?, headers, body: Bytes::new() })
}

/// Declares and confirms every chunk of `id` with a made-up ETag (no bytes reach S3; nothing here asks
/// S3), through the load generator itself; returns the confirm template.
async fn confirm_all(b: &Bench, id: &str, chunks: u32, sha: &str) -> anyhow::Result<Template> {
    b.api.declare(id, 0, chunks, sha).await?;
    let template = Template {
        method: Method::PUT,
        urls: uris((0..chunks).map(|i| format!("{}/v1/uploads/{id}/chunks/{i}", b.api.base)))?,
        headers: b.json_headers(),
        body: Bytes::from(json!({ "etag": "\"bench\"", "sha256": sha }).to_string()),
    };
    let report = crate::load::run(template.clone(), 16, Stop::Requests(u64::from(chunks))).await?;
    anyhow::ensure!(report.errors == 0, "confirming {chunks} chunks: {:?} {:?}", report.statuses, report.first_error);
    Ok(template)
}

/// Complete of an upload of `complete_parts` real 5 MiB parts, against Companion's complete of as many.
pub async fn complete(b: &mut Bench) -> anyhow::Result<()> {
    let parts = b.settings.complete_parts;
    let data = Bytes::from((0..MIN_CHUNK).map(|_| rand::random::<u8>()).collect::<Vec<u8>>());
    let sha = hex::encode(Sha256::digest(&data));
    let label = format!("complete a {parts}-part upload");
    let id_ = format!("complete{parts}");
    eprintln!("== {label}: {} rounds", b.settings.rounds);
    for round in 0..b.settings.rounds {
        for side in rotated(vec!["api", "companion"], round) {
            let millis = if side == "api" {
                let id = b.api.create(u64::from(parts) * MIN_CHUNK, MIN_CHUNK).await?;
                let urls = b.api.declare(&id, 0, parts, &sha).await?;
                b.api.send_parts(&id, urls, data.clone(), 4).await?;
                let started = Instant::now();
                b.api.complete(&id).await?;
                let millis = started.elapsed().as_secs_f64() * 1000.0;
                b.api.wait_settled(&id).await?;
                crate::s3::delete(&b.s3, &b.bucket, &format!("uploads/{id}")).await?;
                millis
            } else {
                let m = b.companion.create().await?;
                let etags =
                    crate::s3::put_parts(&b.s3, &b.bucket, &m.key, &m.upload_id, data.clone(), parts as i32).await?;
                let started = Instant::now();
                b.companion.complete(&m, &etags).await?;
                let millis = started.elapsed().as_secs_f64() * 1000.0;
                crate::s3::delete(&b.s3, &b.bucket, &m.key).await?;
                millis
            };
            eprintln!("   {id_:<28} {side:<10} {millis:>8.1} ms");
            b.results.add(&id_, &label, "ms", Better::Lower, side, millis);
            b.results.raw(&id_, side, round, json!({ "ms": millis }));
        }
    }
    Ok(())
}
