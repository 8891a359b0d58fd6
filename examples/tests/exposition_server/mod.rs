//! A registry served over HTTP for a real Prometheus to scrape (`peers.rs`,
//! `hostile.rs`).

use std::sync::Arc;

use herd_core::{negotiate, negotiate_among, Format, Registry};
use herd_testkit::{Response, TestServer};

/// Serves `registry` at `/metrics` (negotiated) and `/metrics-text` (0.0.4 only, still
/// chosen from the request's Accept header).
pub(crate) fn serve(registry: Registry) -> Result<TestServer, String> {
    let registry = Arc::new(registry);
    TestServer::start(move |req| {
        let accept = req.header("accept");
        let format = match req.path.as_str() {
            "/metrics" => Some(negotiate(accept)),
            "/metrics-text" => negotiate_among(accept, &[Format::Text]),
            _ => return Response::new(404),
        };
        match format {
            Some(f) => Response::ok(f.content_type(), registry.encode(f)),
            None => Response::new(406),
        }
    })
}
