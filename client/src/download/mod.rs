//! `upl download ID|LINK`: resumable through a `.part` file, verified against the SHA-256 the service knows,
//! renamed into place only when complete; an existing file is kept unless `--force`.

mod fetch;
mod source;

use std::path::{Path, PathBuf};

use serde::Serialize;
use uuid::Uuid;

use crate::api::Api;
use crate::cli::DownloadArgs;
use crate::error::CliError;
use crate::progress::Ui;
use crate::state::StateStore;
use fetch::Download;
use source::Source;

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DownloadReport {
    pub upload_id: Uuid,
    pub path: PathBuf,
    pub size: u64,
    /// Bytes of an earlier run's `.part` file that this run kept (0 when it started from scratch).
    pub resumed_from: u64,
    /// The object changed since the `.part` file was begun (412), so it was started over.
    pub restarted: bool,
    /// Whether a SHA-256 was known and matched.
    pub verified: bool,
}

pub async fn run(api: &Api, store: &StateStore, ui: Ui, args: &DownloadArgs) -> Result<DownloadReport, CliError> {
    let source = Source::parse(&args.source).map_err(CliError::Usage)?;
    let remote = source::locate(api, &source).await?;
    let output = output_path(args.output.as_deref(), &remote.filename).await;
    if !args.force && tokio::fs::try_exists(&output).await.unwrap_or(false) {
        return Err(CliError::OutputExists(output));
    }
    let (id, size) = (remote.id, remote.size);
    let progress = ui.progress(size, "download");
    let mut download = Download::new(api, store, ui, progress.clone(), remote, part_path(&output)).await;
    let actual = download.run().await?;
    progress.finish();

    let expected = download.remote.sha256.clone().or_else(|| download.digest_header.clone());
    if let Some(expected) = &expected
        && !actual.eq_ignore_ascii_case(expected)
    {
        download.discard().await;
        return Err(CliError::DigestMismatch { expected: expected.clone(), actual });
    }
    let part = &download.part;
    tokio::fs::rename(part, &output)
        .await
        .map_err(CliError::io(format!("cannot rename {} into place", part.display())))?;
    store.remove_download(&download.remote.server, part);
    Ok(DownloadReport {
        upload_id: id,
        path: output,
        size,
        resumed_from: download.resumed_from,
        restarted: download.restarted,
        verified: expected.is_some(),
    })
}

/// `-o FILE`, or `-o DIR` (the uploaded name inside it), or the uploaded name in the current directory.
async fn output_path(output: Option<&Path>, filename: &str) -> PathBuf {
    match output {
        Some(dir) if tokio::fs::metadata(dir).await.is_ok_and(|m| m.is_dir()) => dir.join(safe_file_name(filename)),
        Some(file) => file.to_path_buf(),
        None => PathBuf::from(safe_file_name(filename)),
    }
}

fn part_path(output: &Path) -> PathBuf {
    let mut name = output.as_os_str().to_owned();
    name.push(".part");
    PathBuf::from(name)
}

/// The last path component of a name the uploader chose, never `..` or a hidden path.
fn safe_file_name(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or_default().trim().trim_start_matches('.');
    if base.is_empty() { "download".into() } else { base.into() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_from_the_service_stay_in_the_current_directory() {
        assert_eq!(safe_file_name("../../etc/passwd"), "passwd");
        assert_eq!(safe_file_name("C:\\x\\movie.mp4"), "movie.mp4");
        assert_eq!(safe_file_name(".."), "download");
        assert_eq!(safe_file_name(".bashrc"), "bashrc");
        assert_eq!(part_path(Path::new("a/b.mp4")), PathBuf::from("a/b.mp4.part"));
    }

    #[tokio::test]
    async fn a_directory_output_takes_the_uploaded_name() {
        let dir = std::env::temp_dir();
        assert_eq!(output_path(Some(&dir), "../film.mp4").await, dir.join("film.mp4"));
        assert_eq!(output_path(Some(Path::new("copy.mp4")), "film.mp4").await, PathBuf::from("copy.mp4"));
        assert_eq!(output_path(None, "film.mp4").await, PathBuf::from("film.mp4"));
    }
}
