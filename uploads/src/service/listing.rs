//! An owner's uploads, newest first, a page at a time: what `GET /v1/uploads` answers.

use super::validation::invalid;
use super::{UploadError, Uploads};
use crate::domain::{ListCursor, Owner, UploadState};
use crate::error_code::ErrorCode;
use crate::repository::ListedUpload;

/// Uploads per page when the client names no limit.
pub const DEFAULT_PAGE_SIZE: u32 = 20;
/// Most uploads one page holds.
pub const MAX_PAGE_SIZE: u32 = 100;

/// What a client asks for, as it sent it; [`Uploads::list`] checks it.
#[derive(Debug, Clone, Default)]
pub struct ListUploads {
    pub limit: Option<u32>,
    /// The `nextCursor` of the previous page.
    pub cursor: Option<String>,
    /// One state, or several separated by commas (`uploading,completing`).
    pub states: Option<String>,
}

#[derive(Debug, Clone)]
pub struct UploadPage {
    pub uploads: Vec<ListedUpload>,
    /// Where the next page starts; `None` on the last page.
    pub next_cursor: Option<ListCursor>,
}

impl Uploads {
    /// A page of `owner`'s uploads (no one else's), newest first.
    #[tracing::instrument(skip_all)]
    pub async fn list(&self, owner: &Owner, request: ListUploads) -> Result<UploadPage, UploadError> {
        let limit = page_size(request.limit)?;
        let after = request
            .cursor
            .as_deref()
            .map(ListCursor::parse)
            .transpose()
            .map_err(|err| invalid(ErrorCode::InvalidCursor, err.to_string()))?;
        let states = request.states.as_deref().map(parse_states).transpose()?.unwrap_or_default();
        // One more than the page: whether it exists says whether there is a next page, without a count.
        let mut uploads = self.repo.list_owned_uploads(owner, &states, after, limit + 1).await?;
        let next_cursor = if uploads.len() > limit as usize {
            uploads.truncate(limit as usize);
            uploads.last().map(|last| ListCursor::after(last.upload.created_at, last.upload.id))
        } else {
            None
        };
        Ok(UploadPage { uploads, next_cursor })
    }
}

fn page_size(limit: Option<u32>) -> Result<u32, UploadError> {
    match limit {
        None => Ok(DEFAULT_PAGE_SIZE),
        Some(limit) if (1..=MAX_PAGE_SIZE).contains(&limit) => Ok(limit),
        Some(limit) => Err(invalid(
            ErrorCode::InvalidLimit,
            format!("limit {limit} is out of range: a page holds 1 to {MAX_PAGE_SIZE} uploads"),
        )),
    }
}

fn parse_states(names: &str) -> Result<Vec<UploadState>, UploadError> {
    let mut states = Vec::new();
    // Spaces around names only, as openapi.yaml's pattern has them (not every Unicode space `trim` drops).
    for name in names.split(',').map(|name| name.trim_matches(' ')) {
        let state = UploadState::parse(name).ok_or_else(|| {
            let known: Vec<_> = UploadState::ALL.iter().map(|s| s.as_str()).collect();
            invalid(ErrorCode::InvalidStateFilter, format!("state {name:?} is not one of {}", known.join(", ")))
        })?;
        if !states.contains(&state) {
            states.push(state);
        }
    }
    Ok(states)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(err: UploadError) -> ErrorCode {
        match err {
            UploadError::Invalid { code, .. } => code,
            other => panic!("not a refusal: {other}"),
        }
    }

    #[test]
    fn page_sizes_are_1_to_100_and_20_by_default() {
        for (asked, expected) in [(None, Ok(20)), (Some(1), Ok(1)), (Some(100), Ok(100))] {
            assert_eq!(page_size(asked).map_err(code), expected, "{asked:?}");
        }
        for asked in [0, 101, u32::MAX] {
            assert_eq!(page_size(Some(asked)).map_err(code), Err(ErrorCode::InvalidLimit), "{asked}");
        }
    }

    #[test]
    fn the_state_filter_is_one_state_or_a_comma_list() {
        use UploadState::*;
        for (names, expected) in [
            ("completed", vec![Completed]),
            ("uploading,completing", vec![Uploading, Completing]),
            (" aborted , expired,aborted", vec![Aborted, Expired]),
        ] {
            assert_eq!(parse_states(names).map_err(code), Ok(expected), "{names:?}");
        }
        for names in ["", "done", "completed,", "Completed", "uploading;completed"] {
            assert_eq!(parse_states(names).map_err(code), Err(ErrorCode::InvalidStateFilter), "{names:?}");
        }
    }
}
