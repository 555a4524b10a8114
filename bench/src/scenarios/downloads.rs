//! The data path: the same object through the API, by a direct presigned GET, and through nginx; CPU per GiB
//! of the API and of nginx; the API's RSS while it streams many large downloads at once.

use anyhow::Context;
use futures::future::try_join_all;
use http::{HeaderMap, Uri};
use serde_json::json;

use super::{Bench, rotated};
use crate::procstat::{RssSampler, Server, rss_kib};
use crate::report::Better;
use crate::transfer::{Read, measure};

const MIB: u64 = 1024 * 1024;
const GIB: f64 = 1024.0 * 1024.0 * 1024.0;
const CHUNK: u64 = 8 * MIB;

/// Uploads an object of `mib` MiB through the API; its id.
pub async fn object(b: &Bench, mib: u64) -> anyhow::Result<String> {
    let chunk = CHUNK.min(mib * MIB);
    b.api.upload_object((mib * MIB / chunk) as u32, chunk).await
}

struct Target<'a> {
    name: &'static str,
    url: Uri,
    headers: HeaderMap,
    cpu: Option<&'a Server>,
}

pub async fn run(b: &mut Bench) -> anyhow::Result<()> {
    let mib = b.settings.download_mib;
    eprintln!("== downloads of a {mib} MiB object: upload");
    let id = object(b, mib).await?;
    let size = mib * MIB;
    let reads = [Read::Whole, Read::OneRange, Read::ParallelRanges(8)];
    eprintln!("== downloads: {} rounds of api / direct / nginx", b.settings.rounds);
    for round in 0..b.settings.rounds {
        // Presigned afresh each round, so no URL outlives DOWNLOAD_URL_TTL.
        let direct: Uri = b.api.presigned_get(&id).await?.parse()?;
        let through_nginx = format!("{}{}", b.nginx_base, direct.path_and_query().map_or("/", |p| p.as_str()));
        let targets = vec![
            Target {
                name: "api",
                url: format!("{}/v1/files/{id}", b.api.base).parse()?,
                headers: b.auth_headers(),
                cpu: Some(&b.servers.api),
            },
            Target { name: "direct S3", url: direct.clone(), headers: HeaderMap::new(), cpu: None },
            Target {
                name: "nginx",
                url: through_nginx.parse()?,
                headers: HeaderMap::new(),
                cpu: Some(&b.servers.nginx),
            },
        ];
        let mut figures = Vec::new();
        for target in rotated(targets, round) {
            let cpu_before = target.cpu.map(Server::cpu_seconds);
            let mut served = 0;
            for read in reads {
                let t = measure(&target.url, &target.headers, size, read)
                    .await
                    .with_context(|| format!("{} {}", target.name, read.label()))?;
                served += t.bytes;
                eprintln!("   {:<10} {:<18} {:>7.0} MiB/s", target.name, read.label(), t.mib_per_s());
                figures.push((
                    format!("download.{read:?}"),
                    format!("{mib} MiB download, {}", read.label()),
                    target.name,
                    t.mib_per_s(),
                ));
            }
            if let (Some(server), Some(before)) = (target.cpu, cpu_before) {
                let per_gib = (server.cpu_seconds() - before) / (served as f64 / GIB);
                figures.push((
                    "download.cpu".into(),
                    "CPU per GiB served (API process vs nginx)".into(),
                    target.name,
                    per_gib,
                ));
            }
        }
        // Recorded in a fixed side order, so "api" is always the figure's first side.
        for side in ["api", "direct S3", "nginx"] {
            for (fid, label, name, value) in figures.iter().filter(|f| f.2 == side) {
                let (unit, better) =
                    if fid == "download.cpu" { ("s/GiB", Better::Lower) } else { ("MiB/s", Better::Higher) };
                b.results.add(fid, label, unit, better, name, *value);
                b.results.raw(fid, name, round, json!({ "value": value, "unit": unit }));
            }
        }
    }
    Ok(())
}

/// `streams` concurrent whole downloads of `id` through the API; its RSS before and at the peak.
pub async fn rss(b: &mut Bench, id: &str, mib: u64) -> anyhow::Result<()> {
    let streams = b.settings.rss_streams;
    eprintln!("== API RSS during {streams} concurrent {mib} MiB downloads");
    let url: Uri = format!("{}/v1/files/{id}", b.api.base).parse()?;
    let headers = b.auth_headers();
    let baseline = rss_kib(b.api_pid).context("no RSS for the api process")?;
    let sampler = RssSampler::start(b.api_pid);
    let started = std::time::Instant::now();
    try_join_all((0..streams).map(|_| crate::transfer::fetch(&url, &headers, None))).await?;
    let seconds = started.elapsed().as_secs_f64();
    let peak = sampler.finish().await;
    let label = format!("API RSS, {streams} concurrent {mib} MiB downloads");
    b.results.add(
        "rss.baseline",
        &format!("{label}: at rest before"),
        "MiB",
        Better::Lower,
        "api",
        baseline as f64 / 1024.0,
    );
    b.results.add("rss.peak", &format!("{label}: peak"), "MiB", Better::Lower, "api", peak as f64 / 1024.0);
    let aggregate = (streams as u64 * mib) as f64 / seconds;
    b.results.raw(
        "rss",
        "api",
        0,
        json!({ "baseline_kib": baseline, "peak_kib": peak, "seconds": seconds, "aggregate_mib_s": aggregate }),
    );
    eprintln!("   baseline {} MiB, peak {} MiB, {aggregate:.0} MiB/s together", baseline / 1024, peak / 1024);
    Ok(())
}

/// What the download profile records: `streams` concurrent whole downloads through the API, `rounds` times.
pub async fn concurrent_api_downloads(b: &Bench, streams: usize) -> anyhow::Result<()> {
    let mib = b.settings.download_mib;
    let id = object(b, mib).await?;
    let url: Uri = format!("{}/v1/files/{id}", b.api.base).parse()?;
    let headers = b.auth_headers();
    eprintln!("== {streams} concurrent {mib} MiB downloads through the API, {} times", b.settings.rounds);
    for _ in 0..b.settings.rounds {
        let started = std::time::Instant::now();
        try_join_all((0..streams).map(|_| crate::transfer::fetch(&url, &headers, None))).await?;
        eprintln!("   {:.0} MiB/s together", (streams as u64 * mib) as f64 / started.elapsed().as_secs_f64());
    }
    Ok(())
}
