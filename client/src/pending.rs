//! `upl pending` (the interrupted uploads and downloads the state directory remembers, with the service's
//! view of each when it answers) and `upl forget ID [--abort]`.

use std::path::PathBuf;

use serde_json::{Value, json};
use uuid::Uuid;

use crate::api::Api;
use crate::error::CliError;
use crate::output::{Output, percent, table};
use crate::retry::RetryPolicy;
use crate::state::{Pending, StateStore};

const HEADER: [&str; 6] = ["KIND", "ID", "STATE", "PROGRESS", "SERVER", "FILE"];

pub async fn list(api: &Api, store: &StateStore, out: Output) {
    let mut rows = Vec::new();
    for (_, pending) in store.pending() {
        let entry = describe(api, &pending).await;
        if out.json {
            out.json_line(&entry);
        } else {
            rows.push(row(&entry));
        }
    }
    if !out.json {
        if rows.is_empty() {
            if !out.quiet {
                eprintln!("upl: nothing pending");
            }
        } else {
            println!("{}", table(&HEADER, &rows));
        }
    }
}

/// One entry as JSON: what the state file says, and what the service says when it can be asked.
async fn describe(api: &Api, pending: &Pending) -> Value {
    // One quick question per entry: a server that is gone should not hold the listing for minutes.
    let mut service = api.for_server(pending.server());
    service.retry = RetryPolicy::new(0);
    service.quiet = true;
    let mut entry = match pending {
        Pending::Upload(saved) => json!({
            "kind": "upload",
            "uploadId": saved.upload_id,
            "server": saved.server,
            "file": saved.file.path,
            "size": saved.file.size,
        }),
        Pending::Download(saved) => {
            let have = tokio::fs::metadata(&saved.part).await.map(|m| m.len()).unwrap_or(0);
            json!({
                "kind": "download",
                "uploadId": saved.upload_id,
                "server": saved.server,
                "file": saved.part,
                "size": saved.size,
                "receivedBytes": have,
            })
        }
    };
    match (pending, pending.upload_id()) {
        (Pending::Upload(_), None) => entry["state"] = json!("creating"),
        (Pending::Upload(_), Some(id)) => match service.status(id, false).await {
            Ok(status) => {
                entry["state"] = json!(status.state);
                entry["receivedBytes"] = json!(status.received_bytes);
            }
            Err(err) => entry["error"] = json!(err.to_string()),
        },
        // A download's progress is the `.part` file on this machine.
        (Pending::Download(_), _) => entry["state"] = json!("downloading"),
    }
    entry
}

fn row(entry: &Value) -> Vec<String> {
    let text = |key: &str| entry[key].as_str().unwrap_or("-").to_string();
    let progress = match (entry["receivedBytes"].as_u64(), entry["size"].as_u64()) {
        (Some(received), Some(size)) => format!("{} of {size} bytes", percent(received, size)),
        _ if entry["error"].is_string() => format!("unknown: {}", text("error")),
        _ => "-".into(),
    };
    vec![text("kind"), text("uploadId"), text("state"), progress, text("server"), text("file")]
}

/// Removes every state file for `id` (and a download's `.part` file); with `abort`, aborts the upload first.
pub async fn forget(api: &Api, store: &StateStore, out: Output, id: Uuid, abort: bool) -> Result<(), CliError> {
    let found: Vec<(PathBuf, Pending)> =
        store.pending().into_iter().filter(|(_, p)| p.upload_id() == Some(id)).collect();
    if found.is_empty() {
        return Err(CliError::Other(format!("nothing pending has the id {id} (see `upl pending`)")));
    }
    let upload = found.iter().map(|(_, p)| p).find(|p| matches!(p, Pending::Upload(_)));
    let aborted = match (abort, upload) {
        (true, Some(upload)) => {
            match api.for_server(upload.server()).abort(id).await {
                Ok(()) => {}
                // Already gone on the service: nothing left to abort.
                Err(err) if matches!(err.status().map(|s| s.as_u16()), Some(404 | 410)) => {}
                Err(err) => return Err(err.into()),
            }
            true
        }
        _ => false,
    };
    for (state_file, pending) in &found {
        store.remove_state_file(state_file);
        if let Pending::Download(saved) = pending {
            let _ = tokio::fs::remove_file(&saved.part).await;
        }
    }
    if out.json {
        out.json_line(&json!({ "uploadId": id, "forgotten": found.len(), "aborted": aborted }));
    } else if !out.quiet {
        let what = if aborted { "forgot and aborted" } else { "forgot" };
        println!("{what} {id}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_show_progress_or_why_it_is_unknown() {
        let upload = json!({"kind": "upload", "uploadId": "u1", "state": "uploading", "receivedBytes": 5,
            "size": 10, "server": "http://s", "file": "/data/a.bin"});
        assert_eq!(row(&upload), ["upload", "u1", "uploading", "50% of 10 bytes", "http://s", "/data/a.bin"]);
        let unreachable = json!({"kind": "upload", "uploadId": "u2", "size": 10, "server": "http://s",
            "file": "/b", "error": "cannot reach http://s"});
        assert_eq!(row(&unreachable)[3], "unknown: cannot reach http://s");
        let creating = json!({"kind": "upload", "uploadId": null, "state": "creating", "size": 10,
            "server": "http://s", "file": "/c"});
        assert_eq!(row(&creating)[1..4], ["-", "creating", "-"]);
    }
}
