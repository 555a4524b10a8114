//! Results on stdout (what scripts read): a human form, or with `--json` one JSON object per line; errors
//! on stderr for humans, and with `--json` also as `{"error": ...}` on stdout.

use std::path::Path;

use serde::Serialize;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::download::DownloadReport;
use crate::error::CliError;
use crate::upload::UploadReport;

#[derive(Debug, Clone, Copy)]
pub struct Output {
    pub json: bool,
    pub quiet: bool,
}

impl Output {
    pub fn json_line(&self, value: &impl Serialize) {
        println!("{}", serde_json::to_string(value).expect("serializable"));
    }

    /// A failure, of the whole command or (with `file`) of one of its files.
    pub fn error(&self, file: Option<&Path>, err: &CliError) {
        match file {
            Some(file) => eprintln!("upl: {}: {err}", file.display()),
            None => eprintln!("upl: {err}"),
        }
        if self.json {
            let mut value = err.to_json();
            if let Some(file) = file {
                value["file"] = json!(file);
            }
            self.json_line(&value);
        }
    }

    /// One line per file: `ID  DOWNLOAD-URL  FILE` (the file last, as it may hold spaces).
    pub fn uploaded(&self, report: &UploadReport) {
        if self.json {
            return self.json_line(report);
        }
        if !self.quiet {
            eprintln!(
                "upl: {}: uploaded {} bytes, {} of {} chunks sent by this run",
                report.file.display(),
                report.size,
                report.chunks_sent,
                report.total_chunks
            );
        }
        println!("{}  {}  {}", report.upload_id, report.download_url, report.file.display());
    }

    pub fn downloaded(&self, report: &DownloadReport) {
        if self.json {
            return self.json_line(report);
        }
        let verified = if report.verified { ", SHA-256 verified" } else { "" };
        println!("{} ({} bytes{verified})", report.path.display(), report.size);
    }

    pub fn aborted(&self, id: Uuid) {
        if self.json {
            self.json_line(&json!({ "uploadId": id, "state": "aborted" }));
        } else if !self.quiet {
            println!("aborted {id}");
        }
    }

    pub fn status(&self, status: &Value) {
        if self.json {
            return self.json_line(status);
        }
        let ranges = |key: &str| {
            let ranges = status[key].as_array().cloned().unwrap_or_default();
            let parts: Vec<String> = ranges
                .iter()
                .map(|r| match (r[0].as_u64(), r[1].as_u64()) {
                    (Some(a), Some(b)) if a == b => a.to_string(),
                    (Some(a), Some(b)) => format!("{a}-{b}"),
                    _ => r.to_string(),
                })
                .collect();
            if parts.is_empty() { "none".to_string() } else { parts.join(", ") }
        };
        println!("upload:   {}", status["uploadId"].as_str().unwrap_or_default());
        println!("state:    {}", status["state"].as_str().unwrap_or_default());
        println!("file:     {} ({} bytes)", status["filename"].as_str().unwrap_or_default(), status["size"]);
        println!(
            "received: {} of {} bytes; chunks {}",
            status["receivedBytes"],
            status["size"],
            ranges("receivedChunks")
        );
        println!("missing:  {}", ranges("missingChunks"));
        if let Some(url) = status["downloadUrl"].as_str() {
            println!("download: {url}");
        }
    }
}

/// Columns padded to their widest cell; the last column is not padded (it may be long, like a file name).
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let last = cells.len().saturating_sub(1);
        let padded: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, cell)| if i == last { cell.to_string() } else { format!("{cell:<width$}", width = widths[i]) })
            .collect();
        padded.join("  ")
    };
    let mut out = line(header.to_vec());
    for row in rows {
        out.push('\n');
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

/// `received / size` as a whole percentage (an empty file is complete).
pub fn percent(received: u64, size: u64) -> String {
    format!("{}%", received.saturating_mul(100).checked_div(size).unwrap_or(100))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_every_column_but_the_last() {
        let rows = vec![
            vec!["a".to_string(), "long cell".to_string(), "x".to_string()],
            vec!["bbb".to_string(), "c".to_string(), "file name.bin".to_string()],
        ];
        let expected = "ID   WHAT       FILE\na    long cell  x\nbbb  c          file name.bin";
        assert_eq!(table(&["ID", "WHAT", "FILE"], &rows), expected);
    }

    #[test]
    fn percentages_round_down_and_empty_files_are_done() {
        assert_eq!(percent(1, 3), "33%");
        assert_eq!(percent(0, 0), "100%");
        assert_eq!(percent(10, 10), "100%");
    }
}
