//! The web page at `/`: static files embedded in the binary (no files to deploy beside it), the page itself
//! under a strict Content-Security-Policy that names exactly where it may connect.

use axum::extract::State;
use axum::http::{HeaderName, HeaderValue, header};
use axum::response::IntoResponse;

use crate::state::AppState;

/// The page's policy: its own scripts and styles only (no inline code, so an injected string can never run),
/// API calls to its own origin, chunks to the storage's presigning origin, files through signed links of the
/// public base URL, and nothing may frame it. Without a known storage origin, chunks may go to any https
/// origin: the page still works, with a weaker policy.
pub fn page_policy(storage_origin: Option<&str>, public_base_url: &str) -> HeaderValue {
    let links = origin_of(public_base_url).filter(|o| is_plain_origin(o));
    let storage = storage_origin.filter(|o| is_plain_origin(o)).unwrap_or("https:");
    let sources = |extra: &[&str]| {
        let mut list = vec!["'self'"];
        list.extend(links.as_deref());
        list.extend(extra);
        list.join(" ")
    };
    let policy = [
        "default-src 'none'".to_string(),
        "script-src 'self'".into(),
        "style-src 'self'".into(),
        format!("img-src {}", sources(&["data:"])),
        format!("media-src {}", sources(&[])),
        format!("connect-src {}", sources(&[storage])),
        "base-uri 'none'".into(),
        "form-action 'none'".into(),
        "frame-ancestors 'none'".into(),
    ]
    .join("; ");
    HeaderValue::from_str(&policy).expect("origins are checked to be plain ASCII")
}

fn origin_of(url: &str) -> Option<String> {
    let uri: axum::http::Uri = url.parse().ok()?;
    Some(format!("{}://{}", uri.scheme_str()?, uri.authority()?))
}

/// `scheme://host[:port]` and nothing that could end a directive or add a source (`;`, `,`, spaces, quotes).
fn is_plain_origin(origin: &str) -> bool {
    let Some((scheme, authority)) = origin.split_once("://") else { return false };
    matches!(scheme, "http" | "https")
        && !authority.is_empty()
        && authority.bytes().all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
}

static REFERRER_POLICY: HeaderName = HeaderName::from_static("referrer-policy");

fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    // Revalidate on every load: the page changes with the binary, and it is a few KiB.
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
        ],
        body,
    )
}

pub async fn index(State(state): State<AppState>) -> impl IntoResponse {
    let headers = [
        (header::CONTENT_SECURITY_POLICY, state.page_policy.clone()),
        // `?upload=ID` is in the page's address: no other site learns it from a link the page opens.
        (REFERRER_POLICY.clone(), HeaderValue::from_static("no-referrer")),
    ];
    (headers, asset("text/html; charset=utf-8", include_str!("../../web/index.html")))
}

/// A handler for one of the page's script modules in `api/web/`.
macro_rules! script {
    ($handler:ident, $file:literal) => {
        pub async fn $handler() -> impl IntoResponse {
            asset("text/javascript; charset=utf-8", include_str!(concat!("../../web/", $file)))
        }
    };
}

script!(app_script, "app.js");
script!(api_script, "api.js");
script!(dom_script, "dom.js");
script!(library_script, "library.js");
script!(messages_script, "messages.js");
script!(transfer_script, "transfer.js");

pub async fn style() -> impl IntoResponse {
    asset("text/css; charset=utf-8", include_str!("../../web/style.css"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_names_the_storage_and_link_origins_and_nothing_inline() {
        let policy = page_policy(Some("http://127.0.0.1:4566"), "https://files.example.com/uploads/");
        let policy = policy.to_str().unwrap();
        assert_eq!(
            policy,
            "default-src 'none'; script-src 'self'; style-src 'self'; \
             img-src 'self' https://files.example.com data:; media-src 'self' https://files.example.com; \
             connect-src 'self' https://files.example.com http://127.0.0.1:4566; \
             base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
        );
        assert!(!policy.contains("unsafe"));
    }

    #[test]
    fn an_origin_that_could_widen_the_policy_is_left_out() {
        for storage in [None, Some("http://s3; script-src *"), Some("http://a b"), Some("javascript://x"), Some("")] {
            let policy = page_policy(storage, "http://127.0.0.1:8080");
            let policy = policy.to_str().unwrap();
            assert!(policy.contains("connect-src 'self' http://127.0.0.1:8080 https:;"), "{storage:?}: {policy}");
            assert_eq!(policy.matches("script-src").count(), 1, "{storage:?}");
        }
        let policy = page_policy(None, "http://host;x");
        assert!(policy.to_str().unwrap().contains("media-src 'self';"), "{policy:?}");
    }
}
