//! The console's static files: the HTML shell, the stylesheet and the script's
//! ES modules, compiled into the binary (`include_str!`) and served as written —
//! no build step, nothing fetched from elsewhere at runtime.
//!
//! One table, [`ASSETS`], is the route list, the content types and the bodies:
//! a module added to `assets/` and to the table is served; one only imported by
//! another module is caught by this file's tests.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// Where the files are served from (the script's modules import each other
/// relative to it). A macro, so `concat!` can build the paths at compile time.
macro_rules! prefix {
    () => {
        "/console/assets/"
    };
}

const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// One file under `/console/assets/`.
pub struct Asset {
    /// The URL path it is served at.
    pub path: &'static str,
    pub content_type: &'static str,
    pub body: &'static str,
}

/// `asset!("name.js", JS)`: `assets/name.js`, served at `/console/assets/name.js`.
macro_rules! asset {
    ($file:literal, $content_type:expr) => {
        Asset {
            path: concat!(prefix!(), $file),
            content_type: $content_type,
            body: include_str!(concat!("../assets/", $file)),
        }
    };
}

/// Every asset. `console.js` is the entry module (index.html loads it); the
/// others are the modules it imports, one concern each.
pub const ASSETS: [Asset; 12] = [
    asset!("console.css", CSS),
    asset!("console.js", JS),
    asset!("api.js", JS),
    asset!("dom.js", JS),
    asset!("plans.js", JS),
    asset!("review.js", JS),
    asset!("diagram.js", JS),
    asset!("policy.js", JS),
    asset!("deployment.js", JS),
    asset!("chart.js", JS),
    asset!("preview.js", JS),
    asset!("forecast.js", JS),
];

/// The HTML shell of every page.
pub(crate) const INDEX_HTML: &str = include_str!("../assets/index.html");

/// Only our own script, styles and API: no inline script, no third party, no
/// framing (clickjacking an approve button).
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; \
     frame-ancestors 'none'";

/// The HTML shell, with the page's security policy.
pub(crate) fn index() -> Response {
    respond(
        "text/html; charset=utf-8",
        INDEX_HTML,
        Some(CONTENT_SECURITY_POLICY),
    )
}

impl Asset {
    pub(crate) fn response(&self) -> Response {
        respond(self.content_type, self.body, None)
    }
}

fn respond(content_type: &'static str, body: &'static str, csp: Option<&'static str>) -> Response {
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    // Assets change with the binary and the modules import each other by plain
    // URL (no content hash): revalidate every time, so a browser never runs a
    // module of one release with one of another.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Some(csp) = csp {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(csp),
        );
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
    response
}

/// The URL paths of [`ASSETS`], in order.
pub const fn paths() -> [&'static str; ASSETS.len()] {
    let mut out = [""; ASSETS.len()];
    let mut i = 0;
    while i < ASSETS.len() {
        out[i] = ASSETS[i].path;
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const PREFIX: &str = prefix!();

    /// The relative imports of a module (`from './x.js'`).
    fn imports(body: &str) -> Vec<&str> {
        body.lines()
            .filter_map(|line| line.trim().strip_prefix("import "))
            .filter_map(|rest| rest.split(" from '").nth(1))
            .filter_map(|from| from.strip_suffix("';"))
            .collect()
    }

    fn served(path: &str) -> bool {
        ASSETS.iter().any(|a| a.path == path)
    }

    #[test]
    fn every_import_is_served_as_javascript() {
        let mut seen = 0;
        for asset in ASSETS.iter().filter(|a| a.path.ends_with(".js")) {
            assert_eq!(asset.content_type, JS, "{}", asset.path);
            for import in imports(asset.body) {
                let file = import
                    .strip_prefix("./")
                    .unwrap_or_else(|| panic!("{}: import {import} is not relative", asset.path));
                let path = format!("{PREFIX}{file}");
                assert!(served(&path), "{} imports {path}, not served", asset.path);
                seen += 1;
            }
        }
        assert!(seen > 10, "{seen} imports: the parser above found none?");
    }

    #[test]
    fn every_module_is_reached_from_the_entry_and_preloaded() {
        let entry = format!("{PREFIX}console.js");
        let mut reached = vec![entry.clone()];
        let mut i = 0;
        while i < reached.len() {
            let asset = ASSETS.iter().find(|a| a.path == reached[i]).unwrap();
            for import in imports(asset.body) {
                let path = format!("{PREFIX}{}", import.trim_start_matches("./"));
                if !reached.contains(&path) {
                    reached.push(path);
                }
            }
            i += 1;
        }
        for asset in ASSETS.iter().filter(|a| a.path.ends_with(".js")) {
            assert!(
                reached.contains(&asset.path.to_string()),
                "{} is never imported",
                asset.path
            );
            let tag = if asset.path == entry {
                format!(r#"<script type="module" src="{}"></script>"#, asset.path)
            } else {
                // Preloaded so the browser fetches the modules side by side
                // instead of one level of imports after another.
                format!(r#"<link rel="modulepreload" href="{}">"#, asset.path)
            };
            assert!(INDEX_HTML.contains(&tag), "index.html lacks {tag}");
        }
        assert!(
            INDEX_HTML.contains(r#"<link rel="stylesheet" href="/console/assets/console.css">"#)
        );
    }

    #[test]
    fn the_script_writes_text_never_markup() {
        for asset in ASSETS.iter().filter(|a| a.path.ends_with(".js")) {
            for word in [
                "innerHTML",
                "outerHTML",
                "insertAdjacentHTML",
                "document.write",
                "eval(",
            ] {
                assert!(!asset.body.contains(word), "{} uses {word}", asset.path);
            }
        }
    }

    #[test]
    fn every_file_in_the_folder_is_served() {
        let folder = concat!(env!("CARGO_MANIFEST_DIR"), "/assets");
        for entry in std::fs::read_dir(folder).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            if name == "index.html" {
                continue;
            }
            assert!(
                served(&format!("{PREFIX}{name}")),
                "assets/{name} is not in ASSETS"
            );
        }
    }
}
