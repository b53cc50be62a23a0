//! The dashboards' pages, scripts and styles, embedded in the binary: no CDN, no files to
//! install, so the pages work offline. The roles serve them next to their JSON APIs.
//!
//! Every response carries a Content-Security-Policy that allows only this origin, so a page
//! that tried to load anything from elsewhere would fail in the browser, not silently work.

use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use std::sync::OnceLock;

/// Only our own origin; inline scripts and styles are not needed and not allowed.
const CSP: &str = "default-src 'self'; img-src 'self' data:; style-src 'self'; \
                   script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'";

/// A page of one of the dashboards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Page {
    /// The pool's dashboard: hashrate, channels, services, blocks, epochs.
    Pool,
    /// The translator's wallet: ehash by epoch, send, receive, redeem, sell.
    ProxyWallet,
    /// The translator's SV1 miners.
    ProxyMiners,
    /// The translator's upstream pool link and current job.
    ProxyPool,
}

/// What differs between pages; the rest is `assets/shell.html`.
struct PageSpec {
    title: &'static str,
    role: &'static str,
    page: &'static str,
    nav: &'static [(&'static str, &'static str)],
    current: &'static str,
    main: &'static str,
    script: &'static str,
}

const POOL_NAV: &[(&str, &str)] = &[
    ("/", "Dashboard"),
    ("/metrics", "Metrics"),
    ("/health", "Health"),
];
const PROXY_NAV: &[(&str, &str)] = &[
    ("/wallet", "Wallet"),
    ("/miners", "Miners"),
    ("/pool", "Pool"),
];

impl Page {
    fn spec(self) -> PageSpec {
        let proxy = |title, page, current, main| PageSpec {
            title,
            role: "proxy",
            page,
            nav: PROXY_NAV,
            current,
            main,
            script: "proxy.js",
        };
        match self {
            Page::Pool => PageSpec {
                title: "pool",
                role: "pool",
                page: "pool",
                nav: POOL_NAV,
                current: "/",
                main: include_str!("../assets/pool.main.html"),
                script: "pool.js",
            },
            Page::ProxyWallet => proxy(
                "proxy · wallet",
                "wallet",
                "/wallet",
                include_str!("../assets/proxy-wallet.main.html"),
            ),
            Page::ProxyMiners => proxy(
                "proxy · miners",
                "miners",
                "/miners",
                include_str!("../assets/proxy-miners.main.html"),
            ),
            Page::ProxyPool => proxy(
                "proxy · pool",
                "pool",
                "/pool",
                include_str!("../assets/proxy-pool.main.html"),
            ),
        }
    }

    /// The whole page: the shell with this page's title, navigation, content and script.
    fn render(self) -> String {
        let spec = self.spec();
        let nav: String = spec
            .nav
            .iter()
            .map(|(href, label)| {
                let current = if *href == spec.current {
                    " class=\"current\""
                } else {
                    ""
                };
                format!("<a href=\"{href}\"{current}>{label}</a>")
            })
            .collect();
        include_str!("../assets/shell.html")
            .replace("{title}", spec.title)
            .replace("{role}", spec.role)
            .replace("{page}", spec.page)
            .replace("{nav}", &nav)
            .replace("{script}", spec.script)
            .replace("{main}", spec.main)
    }

    /// Rendered once per process.
    fn html(self) -> &'static str {
        static PAGES: [OnceLock<String>; 4] = [const { OnceLock::new() }; 4];
        let slot = match self {
            Page::Pool => 0,
            Page::ProxyWallet => 1,
            Page::ProxyMiners => 2,
            Page::ProxyPool => 3,
        };
        PAGES[slot].get_or_init(|| self.render())
    }
}

/// Static files under `/assets/`.
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "/assets/style.css",
        "text/css; charset=utf-8",
        include_str!("../assets/style.css"),
    ),
    (
        "/assets/common.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/common.js"),
    ),
    (
        "/assets/pool.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/pool.js"),
    ),
    (
        "/assets/proxy.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/proxy.js"),
    ),
];

fn respond(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

/// The page as an HTTP response.
pub fn page(page: Page) -> Response {
    respond("text/html; charset=utf-8", page.html())
}

/// A router serving `page` at each of `paths`.
pub fn page_route(paths: &[&str], page_kind: Page) -> Router {
    paths.iter().fold(Router::new(), |r, p| {
        r.route(p, get(move || async move { page(page_kind) }))
    })
}

/// A router serving every asset under `/assets/`.
pub fn assets() -> Router {
    ASSETS.iter().fold(Router::new(), |r, (path, ty, body)| {
        r.route(path, get(move || async move { respond(ty, body) }))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_reference_only_embedded_assets() {
        for p in [
            Page::Pool,
            Page::ProxyWallet,
            Page::ProxyMiners,
            Page::ProxyPool,
        ] {
            let html = p.html();
            assert!(
                !html.contains("http://") && !html.contains("https://"),
                "{p:?}"
            );
            for part in html
                .split("src=\"")
                .skip(1)
                .chain(html.split("href=\"").skip(1))
            {
                let url = part.split('"').next().unwrap_or_default();
                if url.starts_with("/assets/") {
                    assert!(ASSETS.iter().any(|(a, _, _)| *a == url), "{p:?}: {url}");
                }
            }
        }
    }
}
