//! `loadgen`: the bench's load generator on its own: C connections, a request template, JSON out; or one
//! timed download (whole, one range, N parallel ranges).

use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use clap::Parser;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri, header};

use bench::load::{Stop, Template, run};
use bench::transfer::{Read, measure};

#[derive(Debug, Parser)]
#[command(about = "HTTP/1.1 load: C keep-alive connections, one template, req/s and latency percentiles as JSON")]
struct Args {
    /// URL; give several (or @FILE with one a line) to rotate over them, one per request.
    #[arg(required = true)]
    urls: Vec<String>,
    #[arg(long, short = 'X', default_value = "GET")]
    method: String,
    /// Request body (sent with content-type: application/json unless -H sets one).
    #[arg(long, short = 'd')]
    body: Option<String>,
    /// A header, "Name: value"; repeatable.
    #[arg(long = "header", short = 'H')]
    headers: Vec<String>,
    /// Sends "Authorization: Bearer <HS256 JWT>" signed with this secret (sub "bench").
    #[arg(long, env = "AUTH_JWT_SECRET", hide_env_values = true)]
    jwt_secret: Option<String>,
    #[arg(long, short = 'c', default_value_t = 16)]
    connections: usize,
    /// Seconds to run (ignored with --requests).
    #[arg(long, short = 'z', default_value_t = 5.0)]
    duration: f64,
    /// Stop after this many requests instead.
    #[arg(long, short = 'n')]
    requests: Option<u64>,
    /// Instead of a load: time one download of the first URL, `whole`, `range` (all but the first and last
    /// byte) or `ranges:N` (N ranges at once), and print MiB/s. Needs --size.
    #[arg(long, requires = "size")]
    transfer: Option<String>,
    /// Size in bytes of the file --transfer reads.
    #[arg(long)]
    size: Option<u64>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut urls = Vec::new();
    for url in &args.urls {
        match url.strip_prefix('@') {
            Some(path) => {
                urls.extend(std::fs::read_to_string(path)?.lines().filter(|l| !l.trim().is_empty()).map(str::to_owned))
            }
            None => urls.push(url.clone()),
        }
    }
    let urls: Vec<Uri> =
        urls.iter().map(|u| u.parse().with_context(|| format!("bad URL {u}"))).collect::<Result<_, _>>()?;
    let mut headers = HeaderMap::new();
    for h in &args.headers {
        let (name, value) = h.split_once(':').with_context(|| format!("header {h:?} is not \"Name: value\""))?;
        headers.append(HeaderName::try_from(name.trim())?, HeaderValue::from_str(value.trim())?);
    }
    if args.body.is_some() && !headers.contains_key(header::CONTENT_TYPE) {
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
    if let Some(secret) = &args.jwt_secret {
        let token = bench::jwt::mint(secret.as_bytes(), "bench", Duration::from_secs(3600));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_str(&format!("Bearer {token}"))?);
    }
    if let Some(mode) = &args.transfer {
        let read = match mode.as_str() {
            "whole" => Read::Whole,
            "range" => Read::OneRange,
            other => match other.strip_prefix("ranges:").and_then(|n| n.parse().ok()) {
                Some(n) => Read::ParallelRanges(n),
                None => anyhow::bail!("--transfer takes whole, range or ranges:N, not {other}"),
            },
        };
        let size = args.size.context("--transfer needs --size")?;
        let t = measure(&urls[0], &headers, size, read).await?;
        let report = serde_json::json!({ "read": read.label(), "bytes": t.bytes, "seconds": t.seconds, "mib_per_s": t.mib_per_s() });
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    let template = Template {
        method: Method::from_bytes(args.method.as_bytes())?,
        urls,
        headers,
        body: Bytes::from(args.body.unwrap_or_default()),
    };
    let stop = args.requests.map_or(Stop::After(Duration::from_secs_f64(args.duration)), Stop::Requests);
    let report = run(template, args.connections, stop).await?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}
