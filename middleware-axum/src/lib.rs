#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

mod body;
mod future;
mod handler;
mod layer;
mod service;

pub use body::ResponseBody;
pub use future::ResponseFuture;
pub use handler::{MetricsHandler, ScrapeFuture};
pub use layer::MetricsLayer;
pub use service::Metrics;

/// The names, folding rules and series cache this crate records with, shared with
/// herd's other web adapters.
pub use herd_core::http as red;
