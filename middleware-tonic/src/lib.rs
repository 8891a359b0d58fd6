#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

mod body;
mod future;
mod layer;
mod service;

pub use body::{RequestBody, ResponseBody};
pub use future::ResponseFuture;
pub use layer::MetricsLayer;
pub use service::Metrics;

/// The names, codes and per-call recording this crate uses, from herd-core.
pub use herd_core::grpc;
pub use herd_core::grpc::{GrpcOptions, Preset, RpcType};
