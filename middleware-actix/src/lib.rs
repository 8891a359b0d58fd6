#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

mod body;
mod future;
mod handler;
mod memo;
mod service;
mod transform;

pub use body::ResponseBody;
pub use future::ResponseFuture;
pub use handler::MetricsHandler;
pub use service::MetricsMiddleware;
pub use transform::Metrics;

/// The names, folding rules, options and series cache this crate records with, shared
/// with herd's other web adapters.
pub use herd_core::http as red;
