//! A steady-state call through the layer allocates nothing: measured around a trivial
//! gRPC service whose future and body allocate nothing themselves (its trailers and
//! headers are built before measuring), for a call that ends with `grpc-status` in
//! the trailers and one answered Trailers-Only, to a unary method (whose request
//! message is counted at the start), a client-streaming one and an undeclared path
//! (whose request bodies are watched for messages).

use std::convert::Infallible;
use std::future::{ready, Future, Ready};
use std::pin::{pin, Pin};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::task::noop_waker_ref;
use herd_core::{Format, Registry};
use herd_tonic::{GrpcOptions, MetricsLayer, RpcType};
use http::{HeaderMap, HeaderValue, Request, Response};
use http_body::{Body, Frame};
use http_body_util::Full;
use tower_layer::Layer;
use tower_service::Service;

const MESSAGE: &[u8] = b"\0\0\0\0\x0chello, world";

/// Answers from prebuilt header maps: trailers with `grpc-status: 0` after one message
/// (`ok`), or a Trailers-Only `grpc-status: 5` (otherwise).
struct Prebuilt {
    ok: bool,
    maps: Vec<HeaderMap>,
}

impl Service<Request<herd_tonic::RequestBody<Full<Bytes>>>> for Prebuilt {
    type Response = Response<Answer>;
    type Error = Infallible;
    type Future = Ready<Result<Response<Answer>, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<herd_tonic::RequestBody<Full<Bytes>>>) -> Self::Future {
        let mut body = pin!(req.into_body());
        let mut cx = Context::from_waker(noop_waker_ref());
        while let Poll::Ready(Some(Ok(_))) = body.as_mut().poll_frame(&mut cx) {}
        let map = self.maps.pop().unwrap_or_default();
        ready(Ok(if self.ok {
            Response::new(Answer { sent: 0, trailers: Some(map) })
        } else {
            let mut r = Response::new(Answer { sent: 2, trailers: None });
            *r.headers_mut() = map;
            r
        }))
    }
}

struct Answer {
    sent: u8,
    trailers: Option<HeaderMap>,
}

impl Body for Answer {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.sent += 1;
        Poll::Ready(match self.sent {
            1 => Some(Ok(Frame::data(Bytes::from_static(MESSAGE)))),
            2 => self.trailers.take().map(|t| Ok(Frame::trailers(t))),
            _ => None,
        })
    }

    fn is_end_stream(&self) -> bool {
        self.sent >= 2
    }
}

fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    let mut cx = Context::from_waker(noop_waker_ref());
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

fn call<S>(service: &mut S, request: Request<Full<Bytes>>)
where
    S: Service<
        Request<Full<Bytes>>,
        Response = Response<herd_tonic::ResponseBody<Answer>>,
        Error = Infallible,
    >,
{
    let Ok(response) = block_on(service.call(request));
    let mut body = pin!(response.into_body());
    let mut cx = Context::from_waker(noop_waker_ref());
    while let Poll::Ready(Some(Ok(_))) = body.as_mut().poll_frame(&mut cx) {}
}

fn maps(n: usize, status: &'static str) -> Vec<HeaderMap> {
    (0..n)
        .map(|_| {
            let mut m = HeaderMap::with_capacity(4);
            m.insert("grpc-status", HeaderValue::from_static(status));
            m
        })
        .collect()
}

fn requests(n: usize, path: &'static str) -> Vec<Request<Full<Bytes>>> {
    (0..n)
        .map(|_| {
            let mut r = Request::new(Full::new(Bytes::from_static(MESSAGE)));
            *r.uri_mut() = http::Uri::from_static(path);
            r
        })
        .collect()
}

#[test]
fn a_steady_state_call_allocates_nothing() -> Result<(), Box<dyn std::error::Error>> {
    let registry = Registry::new();
    let options = GrpcOptions::new().method("/t.S/M", RpcType::Unary).method("/t.S/C", RpcType::ClientStream);
    let layer = MetricsLayer::with_options(&registry, options)?;
    let n = 1000;
    let mut ok = layer.layer(Prebuilt { ok: true, maps: maps(3 * n + 3, "0") });
    let mut missing = layer.layer(Prebuilt { ok: false, maps: maps(n + 1, "5") });
    // Warm-up: the first call of each kind resolves and caches its series.
    for r in requests(1, "/t.S/M") {
        call(&mut ok, r);
    }
    for r in requests(1, "/t.S/M") {
        call(&mut missing, r);
    }
    for r in requests(1, "/t.S/C").into_iter().chain(requests(1, "/t.S/Nope")) {
        call(&mut ok, r);
    }
    let (a, b) = (requests(n, "/t.S/M"), requests(n, "/t.S/M"));
    let (c, d) = (requests(n, "/t.S/C"), requests(n, "/t.S/Nope"));
    let allocations = allocation_counter::measure(|| {
        for r in a {
            call(&mut ok, r);
        }
        for r in b {
            call(&mut missing, r);
        }
        for r in c.into_iter().chain(d) {
            call(&mut ok, r);
        }
    })
    .count_total;
    assert_eq!(allocations, 0);
    let text = String::from_utf8(registry.encode(Format::Text))?;
    for line in [
        r#"grpc_server_handled_total{grpc_type="unary",grpc_service="t.S",grpc_method="M",grpc_code="OK"} 1001"#,
        r#"grpc_server_handled_total{grpc_type="unary",grpc_service="t.S",grpc_method="M",grpc_code="NotFound"} 1001"#,
        r#"grpc_server_msg_received_total{grpc_type="unary",grpc_service="t.S",grpc_method="M"} 2002"#,
        r#"grpc_server_msg_sent_total{grpc_type="unary",grpc_service="t.S",grpc_method="M"} 1001"#,
        r#"grpc_server_msg_received_total{grpc_type="client_stream",grpc_service="t.S",grpc_method="C"} 1001"#,
        r#"grpc_server_msg_received_total{grpc_type="unknown",grpc_service="unknown",grpc_method="unknown"} 1001"#,
        r#"grpc_server_handled_total{grpc_type="unknown",grpc_service="unknown",grpc_method="unknown",grpc_code="OK"} 1001"#,
    ] {
        assert!(text.contains(line), "{line} missing in\n{text}");
    }
    Ok(())
}
