//! Portal endpoint group: the promoter portal, a page a promoter opens with a session token in
//! the URL fragment (`/portal#token=eyJ...`), and its two static assets. Plain HTML, CSS and a
//! JavaScript module, no build step and no library: the page calls the `/v1/promoters/me...`
//! routes of the same API with the token, which lives only in the page's memory (the fragment is
//! never sent to a server, and the page removes it from the address bar on load).
//!
//! | route                    | DynamoDB |
//! |--------------------------|----------|
//! | `GET /portal`            | none: the page, `Cache-Control: no-cache` |
//! | `GET /portal/{asset}`    | none: `portal.js` or `portal.css`, cached for a year (the page names them with a digest of the build's content, so a deploy changes their URLs) |
//!
//! Every answer carries a Content-Security-Policy that lets the page load only its own assets
//! and call only its own origin, and allows any site to frame it (tenants embed the portal in
//! their app).

use std::sync::LazyLock;

use axum::Router;
use axum::extract::Path;
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS,
};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use referral::Error;

/// The page: a shell the module fills in.
const PAGE: &str = include_str!("../assets/index.html");

/// The assets the page loads: (name, content type, content).
pub const ASSETS: [(&str, &str, &str); 2] = [
    (
        "portal.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/portal.js"),
    ),
    (
        "portal.css",
        "text/css; charset=utf-8",
        include_str!("../assets/portal.css"),
    ),
];

/// Only the page's own scripts, styles and API calls; framing allowed from anywhere (the
/// tenant's app embeds the portal); no form posts, no `<base>`, no plugins.
pub const CONTENT_SECURITY_POLICY_VALUE: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; \
     form-action 'none'; frame-ancestors *";

/// FNV-1a over every asset: the build's version, in the assets' URLs.
const fn digest() -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut asset = 0;
    while asset < ASSETS.len() {
        let bytes = ASSETS[asset].2.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            hash ^= bytes[i] as u64;
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
            i += 1;
        }
        asset += 1;
    }
    hash
}

/// The page with its assets' URLs versioned (`/portal/portal.js?v=…`).
static VERSIONED_PAGE: LazyLock<String> =
    LazyLock::new(|| PAGE.replace("{{version}}", &format!("{:016x}", digest())));

pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/portal", get(page))
        .route("/portal/{asset}", get(asset))
}

/// Headers every portal answer carries.
fn answer(content_type: &'static str, cache: &'static str, body: &'static str) -> Response {
    (
        [
            (CONTENT_TYPE, content_type),
            (CACHE_CONTROL, cache),
            (CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY_VALUE),
            (REFERRER_POLICY, "no-referrer"),
            (X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

async fn page() -> Response {
    answer(
        "text/html; charset=utf-8",
        "no-cache",
        VERSIONED_PAGE.as_str(),
    )
}

async fn asset(Path(name): Path<String>) -> Result<Response, Error> {
    let (_, content_type, body) = ASSETS
        .iter()
        .find(|(asset, _, _)| *asset == name)
        .ok_or_else(|| Error::NotFound(format!("no portal asset '{name}'")))?;
    Ok(answer(
        content_type,
        "public, max-age=31536000, immutable",
        body,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_names_every_asset_with_the_build_version() {
        assert!(!VERSIONED_PAGE.contains("{{version}}"));
        for (name, _, _) in ASSETS {
            let url = format!("/portal/{name}?v={:016x}", digest());
            assert!(VERSIONED_PAGE.contains(&url), "{url}");
        }
    }

    #[test]
    fn the_page_loads_nothing_but_its_own_assets() {
        // Inline scripts, inline styles and other origins would be refused by the policy.
        assert!(!PAGE.contains("<script>"));
        assert!(!PAGE.contains("style="));
        assert!(!PAGE.contains("http://") && !PAGE.contains("https://"));
    }
}
