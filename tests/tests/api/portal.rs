//! The portal's page and assets through the merged router, as API Gateway serves them (the
//! browser test drives the page itself in Chromium: tests/portal/).

use axum::http::{HeaderMap, Request, StatusCode};
use tower::ServiceExt;

use crate::support::{Api, assert_error, read};

async fn get(api: &Api, path: &str) -> (StatusCode, HeaderMap, String) {
    let request = Request::get(path).body(axum::body::Body::empty()).unwrap();
    let response = api.router.clone().oneshot(request).await.unwrap();
    let (status, headers) = (response.status(), response.headers().clone());
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, headers, String::from_utf8(bytes.to_vec()).unwrap())
}

#[tokio::test]
async fn the_page_names_its_versioned_assets_under_a_policy_that_allows_framing_only() {
    let api = Api::new().await;
    let (status, headers, page) = get(&api, "/portal").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    assert_eq!(headers["cache-control"], "no-cache");
    assert_eq!(headers["referrer-policy"], "no-referrer");
    let policy = headers["content-security-policy"].to_str().unwrap();
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "connect-src 'self'",
        "frame-ancestors *",
    ] {
        assert!(policy.contains(directive), "{policy}");
    }

    for (name, content_type, body) in portal::ASSETS {
        // The page names each asset with the build's digest.
        let marker = format!("/portal/{name}?v=");
        let start = page
            .find(&marker)
            .unwrap_or_else(|| panic!("{name}: {page}"))
            + marker.len();
        let version = &page[start..start + 16];
        assert!(version.chars().all(|c| c.is_ascii_hexdigit()), "{version}");
        let (status, headers, served) = get(&api, &format!("{marker}{version}")).await;
        assert_eq!(status, StatusCode::OK, "{name}");
        assert_eq!(headers["content-type"], content_type);
        assert_eq!(
            headers["cache-control"],
            "public, max-age=31536000, immutable"
        );
        assert_eq!(served, body);
    }
}

#[tokio::test]
async fn an_unknown_asset_is_a_404_in_the_error_envelope() {
    let api = Api::new().await;
    let request = Request::get("/portal/secrets.txt")
        .body(axum::body::Body::empty())
        .unwrap();
    let answer = read(api.router.clone().oneshot(request).await.unwrap()).await;
    assert_error(&answer, 404, "not_found");
}
