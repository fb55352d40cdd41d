//! The web pages: the supervisor dashboard (`/board/`), the steward app
//! (`/app/`) and the login page, all from `dispatcher/web/` compiled into
//! the binary.
//!
//! A site with no internet must still work, so nothing is fetched from a
//! CDN: every script, style, font and the map library is a file in
//! `dispatcher/web/`. Pages are plain ES modules with no build step; what
//! a browser downloads is what is in the repository.
//!
//! Paths map to files the way a static server would: `/` is
//! `index.html`, `/board/` is `board/index.html`, `/login` is
//! `login.html`, and `/board` redirects to `/board/` so relative links
//! work. Every response carries an `ETag` and `Cache-Control: no-cache`:
//! a phone revalidates (a 304 of a few bytes) instead of running last
//! week's app after an upgrade.
//!
//! The steward app's service worker (`/app/sw.js`) keeps the app in a
//! cache of its own so a phone opens it with no network. Its cache name
//! carries [`assets_version`], a digest of every embedded file, written
//! into the script as it is served: any change to the pages makes a new
//! worker, which replaces the old cache instead of serving it forever.

use std::sync::OnceLock;

use axum::Router;
use axum::body::Body;
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use rust_embed::RustEmbed;
use sha2::{Digest, Sha256};
use tower_http::compression::CompressionLayer;

use crate::api::{ApiError, AppState};

#[derive(RustEmbed)]
#[folder = "web/"]
struct Assets;

/// The page routes. Compression applies to these only: the event stream
/// must not sit in a gzip buffer.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", axum::routing::get(page))
        .route("/login", axum::routing::get(page))
        .route("/board", axum::routing::get(page))
        // A catch-all does not match an empty rest: `/board/` is its own route.
        .route("/board/", axum::routing::get(page))
        .route("/board/{*rest}", axum::routing::get(page))
        .route("/app", axum::routing::get(page))
        .route("/app/", axum::routing::get(page))
        .route("/app/{*rest}", axum::routing::get(page))
        .route("/assets/{*rest}", axum::routing::get(page))
        // Browsers ask for it whatever the page says.
        .route("/favicon.ico", axum::routing::get(favicon))
        .layer(CompressionLayer::new())
}

/// What a path resolves to.
#[derive(Debug, PartialEq, Eq)]
enum Resolved {
    File(String),
    /// A folder asked for without its slash.
    AddSlash(String),
    Missing,
}

fn resolve(path: &str) -> Resolved {
    let rel = path.trim_start_matches('/');
    if rel.split('/').any(|seg| seg == "..") {
        return Resolved::Missing;
    }
    if rel.is_empty() || rel.ends_with('/') {
        let index = format!("{rel}index.html");
        return if Assets::get(&index).is_some() {
            Resolved::File(index)
        } else {
            Resolved::Missing
        };
    }
    if Assets::get(rel).is_some() {
        return Resolved::File(rel.to_owned());
    }
    let html = format!("{rel}.html");
    if Assets::get(&html).is_some() {
        return Resolved::File(html);
    }
    if Assets::get(&format!("{rel}/index.html")).is_some() {
        return Resolved::AddSlash(format!("/{rel}/"));
    }
    Resolved::Missing
}

async fn page(uri: Uri, headers: HeaderMap) -> Response {
    match resolve(uri.path()) {
        Resolved::File(name) => serve(&name, &headers),
        Resolved::AddSlash(to) => Redirect::permanent(&to).into_response(),
        Resolved::Missing => ApiError::NotFound(format!("no page {}", uri.path())).into_response(),
    }
}

async fn favicon(headers: HeaderMap) -> Response {
    serve("assets/common/icon.svg", &headers)
}

/// The service worker, and the mark in it that [`assets_version`] replaces.
const SERVICE_WORKER: &str = "app/sw.js";
const VERSION_MARK: &str = "__ELDERCARE_ASSETS_VERSION__";

/// A digest of every embedded file but the service worker itself: it
/// changes whenever anything the app could have cached changes.
fn assets_version() -> &'static str {
    static VERSION: OnceLock<String> = OnceLock::new();
    VERSION.get_or_init(|| {
        let mut names: Vec<_> = Assets::iter().filter(|n| n != SERVICE_WORKER).collect();
        names.sort();
        let mut digest = Sha256::new();
        for name in names {
            if let Some(file) = Assets::get(&name) {
                digest.update(name.as_bytes());
                digest.update(file.metadata.sha256_hash());
            }
        }
        hex(&digest.finalize()[..8])
    })
}

/// A file's bytes as served: the service worker with its version written in.
fn body_of(name: &str, data: Vec<u8>) -> Vec<u8> {
    if name != SERVICE_WORKER {
        return data;
    }
    String::from_utf8_lossy(&data)
        .replace(VERSION_MARK, assets_version())
        .into_bytes()
}

fn serve(name: &str, headers: &HeaderMap) -> Response {
    let Some(file) = Assets::get(name) else {
        return ApiError::NotFound(format!("no page {name}")).into_response();
    };
    let mut etag = format!("\"{}\"", hex(&file.metadata.sha256_hash()[..12]));
    if name == SERVICE_WORKER {
        // The same script with other assets is another worker.
        etag = format!("\"{}-{}\"", &etag[1..etag.len() - 1], assets_version());
    }
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        Body::from(body_of(name, file.data.into_owned())).into_response()
    };
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(mime(name)));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    if name.ends_with(".html") {
        // Scripts only from this server; map tiles may come from the
        // operator's tile server, wherever it is.
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'self'; img-src 'self' data: blob: http: https:; \
                 style-src 'self' 'unsafe-inline'; media-src 'self' data: blob:; \
                 frame-ancestors 'none'",
            ),
        );
    }
    response
}

fn mime(name: &str) -> &'static str {
    match name.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("json") => "application/json",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("woff2") => "font/woff2",
        Some("wav") => "audio/wav",
        Some("mp3") => "audio/mpeg",
        Some("webmanifest") => "application/manifest+json",
        _ => "application/octet-stream",
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_resolve_like_a_static_server() {
        assert_eq!(resolve("/"), Resolved::File("index.html".into()));
        assert_eq!(resolve("/login"), Resolved::File("login.html".into()));
        assert_eq!(
            resolve("/board/"),
            Resolved::File("board/index.html".into())
        );
        assert_eq!(resolve("/board"), Resolved::AddSlash("/board/".into()));
        assert_eq!(
            resolve("/assets/common/api.js"),
            Resolved::File("assets/common/api.js".into())
        );
        assert_eq!(resolve("/assets/../Cargo.toml"), Resolved::Missing);
        assert_eq!(resolve("/assets/nothing.js"), Resolved::Missing);
        assert_eq!(resolve("/app/sw.js"), Resolved::File("app/sw.js".into()));
        assert_eq!(
            resolve("/app/manifest.webmanifest"),
            Resolved::File("app/manifest.webmanifest".into())
        );
    }

    #[test]
    fn the_service_worker_is_served_fresh_with_the_assets_version_written_in() {
        let response = serve(SERVICE_WORKER, &HeaderMap::new());
        let h = response.headers();
        assert_eq!(h[header::CONTENT_TYPE], "text/javascript; charset=utf-8");
        assert_eq!(h[header::CACHE_CONTROL], "no-cache");
        assert!(h[header::ETAG].to_str().unwrap().contains(assets_version()));
        let raw = Assets::get(SERVICE_WORKER).unwrap().data.into_owned();
        assert!(String::from_utf8_lossy(&raw).contains(VERSION_MARK));
        let served = String::from_utf8(body_of(SERVICE_WORKER, raw)).unwrap();
        assert!(!served.contains(VERSION_MARK));
        assert!(served.contains(&format!("const VERSION = '{}';", assets_version())));
        assert_eq!(assets_version().len(), 16);
        // Other files go out as they are.
        assert_eq!(body_of("app/index.html", b"x".to_vec()), b"x");
    }

    #[test]
    fn the_manifest_is_a_web_app_manifest() {
        let response = serve("app/manifest.webmanifest", &HeaderMap::new());
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "application/manifest+json"
        );
    }
}
