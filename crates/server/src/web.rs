//! The web chat page: `GET /` and `GET /static/{file}`. The page's files
//! (`crates/server/web/`: `index.html`, `app.js`, `style.css`,
//! `favicon.svg`) are compiled into the binary, so the page works offline and
//! with no build step. This module only serves them; the page itself talks to
//! `/v1/models` and `/v1/responses` like any other API client.
//!
//! Every page response carries a strict Content-Security-Policy: scripts and
//! styles only from this origin, no inline script, no plugins, no frames,
//! connections only to this origin, and Trusted Types enforced so that even a
//! bug that assigned model text to `innerHTML` would throw instead of
//! executing it. The page needs no API key (only `/v1/*` and `/metrics` do):
//! it asks the user for one when the API answers 401.

use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// The policy sent with every page file.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self'; connect-src 'self'; manifest-src 'self'; \
     base-uri 'none'; form-action 'self'; frame-ancestors 'none'; object-src 'none'; \
     require-trusted-types-for 'script'; trusted-types 'none'";

/// One embedded file: name under `/static/`, content type, bytes.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const INDEX_HTML: &[u8] = include_bytes!("../web/index.html");

const ASSETS: &[Asset] = &[
    Asset {
        name: "app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../web/app.js"),
    },
    Asset {
        name: "style.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../web/style.css"),
    },
    Asset {
        name: "favicon.svg",
        content_type: "image/svg+xml",
        body: include_bytes!("../web/favicon.svg"),
    },
];

/// Every embedded file as (URL path, bytes): for tests that scan them.
pub fn embedded_files() -> Vec<(String, &'static [u8])> {
    let mut files = vec![("/".to_string(), INDEX_HTML)];
    files.extend(
        ASSETS
            .iter()
            .map(|a| (format!("/static/{}", a.name), a.body)),
    );
    files
}

/// Paths that are served without an API key: the page and its files.
pub(crate) fn is_public(path: &str) -> bool {
    path == "/" || path == "/index.html" || path.starts_with("/static/")
}

fn page_response(content_type: &'static str, body: &'static [u8]) -> Response {
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // The files change with the binary; revalidating costs nothing on loopback.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// `GET /`: the chat page.
pub(crate) async fn index() -> Response {
    page_response("text/html; charset=utf-8", INDEX_HTML)
}

/// `GET /static/{file}`.
pub(crate) async fn asset(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|a| a.name == file) {
        Some(a) => page_response(a.content_type, a.body),
        None => ApiError::not_found(format!("No static file {file:?}."), None).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_paths() {
        assert!(is_public("/"));
        assert!(is_public("/static/app.js"));
        assert!(!is_public("/v1/models"));
        assert!(!is_public("/metrics"));
        assert!(!is_public("/static"));
    }
}
