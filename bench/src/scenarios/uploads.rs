//! `upl` uploading a file beside an aws-sdk-s3 multipart upload of the same file, part size and parallelism.

use std::process::Stdio;
use std::time::Instant;

use anyhow::{Context, bail};
use serde_json::{Value, json};

use super::{Bench, rotated};
use crate::report::Better;

const MIB: u64 = 1024 * 1024;

/// Runs the rounds; returns the id of the last upload `upl` made (kept, for the RSS measurement).
pub async fn run(b: &mut Bench) -> anyhow::Result<String> {
    let (mib, part_mib, parallel) = (b.settings.upload_mib, b.settings.part_mib, b.settings.parallel);
    let file = b.work.join("upload.bin");
    eprintln!("== upload of {mib} MiB: upl vs aws-sdk-s3, {part_mib} MiB parts, {parallel} at once");
    write_random(&file, mib * MIB)?;
    let label = format!("upload {mib} MiB, {part_mib} MiB parts, {parallel} in parallel");
    let mut last = None;
    for round in 0..b.settings.rounds {
        for side in rotated(vec!["upl", "aws-sdk-s3"], round) {
            let started = Instant::now();
            if side == "upl" {
                let id = upl(b, &file, round).await?;
                let seconds = started.elapsed().as_secs_f64();
                record(b, &label, side, round, mib, seconds);
                b.api.wait_settled(&id).await?;
                if let Some(previous) = last.replace(id) {
                    crate::s3::delete(&b.s3, &b.bucket, &format!("uploads/{previous}")).await?;
                }
            } else {
                let key = format!("bench-sdk/{}", uuid::Uuid::new_v4());
                crate::s3::multipart_upload(&b.s3, &b.bucket, &key, &file, part_mib * MIB, parallel).await?;
                record(b, &label, side, round, mib, started.elapsed().as_secs_f64());
                crate::s3::delete(&b.s3, &b.bucket, &key).await?;
            }
        }
    }
    std::fs::remove_file(&file)?;
    last.context("no round ran")
}

fn record(b: &mut Bench, label: &str, side: &str, round: usize, mib: u64, seconds: f64) {
    let rate = mib as f64 / seconds;
    eprintln!("   {side:<10} {rate:>7.0} MiB/s ({seconds:.2} s)");
    b.results.add("upload", label, "MiB/s", Better::Higher, side, rate);
    b.results.raw("upload", side, round, json!({ "seconds": seconds, "mib": mib }));
}

/// `upl upload` as a user runs it (hashing pass included), from a fresh state directory; the upload id.
async fn upl(b: &Bench, file: &std::path::Path, round: usize) -> anyhow::Result<String> {
    let state = b.work.join(format!("upl-state-{round}"));
    let mut command = tokio::process::Command::new(&b.upl);
    command
        .arg("--server")
        .arg(&b.api.base)
        .arg("--state-dir")
        .arg(&state)
        .args(["--quiet", "--json", "upload"])
        .arg(file)
        .args(["--chunk-size", &format!("{}MiB", b.settings.part_mib), "--parallel", &b.settings.parallel.to_string()])
        .stdin(Stdio::null());
    if let Some(token) = &b.token {
        // For when upl reads a bearer token; ignored until then.
        command.env("UPL_TOKEN", token);
    }
    let output = command.output().await.context("running upl")?;
    if !output.status.success() {
        bail!("upl failed ({}): {}", output.status, String::from_utf8_lossy(&output.stderr));
    }
    let result: Value = serde_json::from_slice(&output.stdout).context("upl --json printed no JSON")?;
    std::fs::remove_dir_all(&state).ok();
    Ok(result["uploadId"].as_str().context("no uploadId from upl")?.to_owned())
}

/// A file of random bytes (one random MiB repeated: neither side deduplicates).
fn write_random(path: &std::path::Path, size: u64) -> anyhow::Result<()> {
    use std::io::Write;
    let block: Vec<u8> = (0..MIB).map(|_| rand::random::<u8>()).collect();
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut left = size;
    while left > 0 {
        let n = left.min(MIB);
        out.write_all(&block[..n as usize])?;
        left -= n;
    }
    out.flush()?;
    Ok(())
}
