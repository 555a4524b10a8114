//! `bench`: runs every scenario against servers `scripts/bench.sh` started, prints the ratio table and writes
//! `bench/results.json`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use bench::api_client::Api;
use bench::companion::Companion;
use bench::procstat::Server;
use bench::report::Results;
use bench::scenarios::{Bench, Servers, Settings, control, downloads, uploads};
use clap::Parser;
use serde_json::json;

const SCENARIOS: &[&str] = &["uploads", "downloads", "rss", "control", "complete"];

#[derive(Debug, Parser)]
#[command(
    about = "Measures the service beside its peers; every server must already run (scripts/bench.sh starts them)"
)]
struct Args {
    #[arg(long, env = "BENCH_API_URL")]
    api: String,
    #[arg(long, env = "BENCH_COMPANION_URL")]
    companion: String,
    #[arg(long, env = "BENCH_NGINX_URL")]
    nginx: String,
    #[arg(long, env = "BENCH_S3_ENDPOINT")]
    s3_endpoint: String,
    #[arg(long, env = "BENCH_BUCKET")]
    bucket: String,
    #[arg(long, env = "BENCH_API_PID")]
    api_pid: u32,
    #[arg(long, env = "BENCH_PG_PID")]
    postgres_pid: u32,
    #[arg(long, env = "BENCH_COMPANION_PID")]
    companion_pid: u32,
    #[arg(long, env = "BENCH_NGINX_PID")]
    nginx_pid: u32,
    /// The `upl` binary (release).
    #[arg(long, env = "BENCH_UPL")]
    upl: PathBuf,
    /// Scratch directory for the upload file and upl's state.
    #[arg(long, env = "BENCH_WORK")]
    work: PathBuf,
    /// HS256 secret the api was given: every API request carries a bearer token signed with it.
    #[arg(long, env = "AUTH_JWT_SECRET", hide_env_values = true)]
    jwt_secret: Option<String>,
    /// One short round of small sizes (a smoke test of the bench itself).
    #[arg(long, env = "BENCH_QUICK", value_parser = clap::builder::FalseyValueParser::new())]
    quick: bool,
    #[arg(long, env = "BENCH_ROUNDS")]
    rounds: Option<usize>,
    /// Seconds per load measurement.
    #[arg(long, env = "BENCH_DURATION")]
    duration: Option<f64>,
    /// Presign connection counts, comma-separated (the other loads use the first).
    #[arg(long, env = "BENCH_CONNECTIONS", value_delimiter = ',')]
    connections: Option<Vec<usize>>,
    #[arg(long, env = "BENCH_DOWNLOAD_MIB")]
    download_mib: Option<u64>,
    #[arg(long, env = "BENCH_UPLOAD_MIB")]
    upload_mib: Option<u64>,
    /// Scenarios to run, comma-separated, of: uploads, downloads, rss, control, complete; and for the
    /// profile: presign (single-chunk presign only), api-downloads (4 concurrent downloads through the API).
    #[arg(long, env = "BENCH_ONLY", value_delimiter = ',')]
    only: Option<Vec<String>>,
    #[arg(long, env = "BENCH_OUT", default_value = "bench/results.json")]
    out: PathBuf,
}

/// The 1, 5 and 15 minute load averages.
fn loadavg() -> Option<String> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    Some(text.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut settings = Settings::new(args.quick);
    settings.rounds = args.rounds.unwrap_or(settings.rounds);
    settings.duration_s = args.duration.unwrap_or(settings.duration_s);
    settings.connections = args.connections.clone().unwrap_or(settings.connections);
    settings.download_mib = args.download_mib.unwrap_or(settings.download_mib);
    settings.upload_mib = args.upload_mib.unwrap_or(settings.upload_mib);
    settings.rss_mib = if args.quick { settings.upload_mib } else { settings.rss_mib.min(settings.upload_mib) };
    let only: Vec<String> = args.only.clone().unwrap_or_else(|| SCENARIOS.iter().map(|s| s.to_string()).collect());
    let token =
        args.jwt_secret.as_deref().map(|s| bench::jwt::mint(s.as_bytes(), "bench", Duration::from_secs(24 * 3600)));
    let mut b = Bench {
        api: Api::new(&args.api, Default::default()),
        api_pid: args.api_pid,
        companion: Companion::new(&args.companion),
        s3: bench::s3::client(&args.s3_endpoint).await,
        s3_endpoint: args.s3_endpoint.clone(),
        bucket: args.bucket.clone(),
        nginx_base: args.nginx.trim_end_matches('/').to_owned(),
        servers: Servers {
            api: Server::new("api", &[args.api_pid]),
            postgres: Server::new("postgres", &[args.postgres_pid]),
            companion: Server::new("companion", &[args.companion_pid]),
            nginx: Server::new("nginx", &[args.nginx_pid]),
        },
        upl: args.upl.clone(),
        work: args.work.clone(),
        token,
        results: Results::default(),
        settings,
    };
    b.api = Api::new(&args.api, b.auth_headers());

    let load_before = loadavg();
    let has = |name: &str| only.iter().any(|o| o == name);
    let mut kept_upload = None;
    if has("uploads") {
        kept_upload = Some(uploads::run(&mut b).await?);
    }
    if has("downloads") {
        downloads::run(&mut b).await?;
    }
    if has("rss") {
        let id = match kept_upload {
            Some(id) if b.settings.rss_mib == b.settings.upload_mib => id,
            _ => downloads::object(&b, b.settings.rss_mib).await?,
        };
        let mib = b.settings.rss_mib;
        downloads::rss(&mut b, &id, mib).await?;
    }
    if has("control") || has("presign") {
        control::run(&mut b, !has("control")).await?;
    }
    if has("complete") {
        control::complete(&mut b).await?;
    }
    if has("api-downloads") {
        downloads::concurrent_api_downloads(&b, 4).await?;
    }

    let table = b.results.table();
    println!("\n{table}");
    for warning in b.results.warnings() {
        println!("warning: {warning}");
    }
    let machine = json!({
        "nproc": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "commit": std::env::var("BENCH_COMMIT").ok(),
        "date": chrono::Utc::now().to_rfc3339(),
        "kernel": std::fs::read_to_string("/proc/sys/kernel/osrelease").ok().map(|s| s.trim().to_owned()),
        // The machine is shared: other work running meanwhile shows here.
        "loadavg_start": load_before,
        "loadavg_end": loadavg(),
    });
    let settings = json!({ "settings": &b.settings, "scenarios": only });
    let mut json = b.results.to_json(machine, settings);
    json["table_markdown"] = json!(table);
    std::fs::write(&args.out, serde_json::to_string_pretty(&json)? + "\n")
        .with_context(|| format!("writing {}", args.out.display()))?;
    eprintln!("wrote {}", args.out.display());
    Ok(())
}
