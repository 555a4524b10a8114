//! `upl list`: the caller's uploads from `GET /v1/uploads`, newest first, a page at a time (or all of them).

use chrono::SecondsFormat;
use indicatif::BinaryBytes;
use serde_json::Value;

use crate::api::{Api, ApiError, Listed};
use crate::cli::ListArgs;
use crate::error::CliError;
use crate::output::{Output, percent, table};

const HEADER: [&str; 6] = ["ID", "STATE", "SIZE", "RECEIVED", "CREATED", "FILENAME"];

pub async fn run(api: &Api, out: Output, args: &ListArgs) -> Result<(), CliError> {
    let mut cursor: Option<String> = None;
    let mut rows = Vec::new();
    loop {
        let page = api.list(args.limit, cursor.as_deref(), args.state.as_deref()).await?;
        for item in &page.uploads {
            if out.json {
                out.json_line(item);
            } else {
                rows.push(row(item)?);
            }
        }
        match page.next_cursor {
            Some(next) if args.all => cursor = Some(next),
            Some(_) if !out.quiet => {
                eprintln!("upl: more uploads than these {}; --all lists every page", page.uploads.len());
                break;
            }
            _ => break,
        }
    }
    if !out.json {
        println!("{}", table(&HEADER, &rows));
    }
    Ok(())
}

fn row(item: &Value) -> Result<Vec<String>, CliError> {
    let listed: Listed = serde_json::from_value(item.clone())
        .map_err(|err| ApiError::Protocol(format!("an upload in the list: {err}")))?;
    Ok(vec![
        listed.upload_id.to_string(),
        listed.state,
        listed.size.map_or_else(|| "?".to_string(), |size| BinaryBytes(size).to_string()),
        match listed.size {
            Some(size) => percent(listed.received_bytes, size),
            // Uppy says the size only at completion: what arrived so far.
            None => BinaryBytes(listed.received_bytes).to_string(),
        },
        listed.created_at.to_rfc3339_opts(SecondsFormat::Secs, true),
        listed.filename,
    ])
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn rows_show_what_a_person_scans_for() {
        let item = json!({
            "uploadId": "01a2088e-f7d1-737b-9b97-67fc3c09d39b",
            "state": "uploading",
            "filename": "holiday film.mp4",
            "contentType": "video/mp4",
            "size": 4_194_304,
            "chunkSize": 5_242_880,
            "totalChunks": 1,
            "receivedBytes": 1_048_576,
            "metadata": {},
            "expiresAt": "2026-11-24T13:18:37.049101Z",
            "createdAt": "2026-11-23T13:18:37.049101Z"
        });
        assert_eq!(
            row(&item).unwrap(),
            vec![
                "01a2088e-f7d1-737b-9b97-67fc3c09d39b",
                "uploading",
                "4.00 MiB",
                "25%",
                "2026-11-23T13:18:37Z",
                "holiday film.mp4"
            ]
        );
        assert!(row(&json!({"uploadId": "nope"})).is_err());
        let mut uppy = item.clone();
        uppy["size"] = serde_json::Value::Null;
        let row = row(&uppy).unwrap();
        assert_eq!((row[2].as_str(), row[3].as_str()), ("?", "1.00 MiB"), "an Uppy upload says its size at the end");
    }
}
