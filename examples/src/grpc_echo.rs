//! A small gRPC service and client, written with tonic's generic codec and no protoc,
//! and the scenario of calls that herd-tonic's tests and `grpc-fork-workers` run.
//!
//! `test.Echo` has four methods:
//!
//! | path | type | does |
//! | --- | --- | --- |
//! | `/test.Echo/Unary` | unary | echoes; `Err(NOT_FOUND)` when the text is `missing` |
//! | `/test.Echo/Count` | server stream | sends `n` messages, then `Err(DATA_LOSS)` when `fail` |
//! | `/test.Echo/Sum` | client stream | answers one message counting those received |
//! | `/test.Echo/Forever` | server stream | sends 2 messages and never ends |

use std::convert::Infallible;
use std::error::Error;
use std::future::Future;
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::stream::{self, BoxStream, StreamExt};
use http::uri::PathAndQuery;
use prost::Message;
use tokio::sync::Notify;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::server::{Grpc, NamedService};
use tonic::{Code, Status};

use herd_tonic::{GrpcOptions, MetricsLayer, RpcType};

/// An error any of this module's functions can return.
pub type BoxError = Box<dyn Error + Send + Sync>;

/// The one message type of `test.Echo`.
#[derive(Clone, PartialEq, Message)]
pub struct Msg {
    /// Text to echo.
    #[prost(string, tag = "1")]
    pub text: String,
    /// How many messages to send, or how many were received.
    #[prost(uint32, tag = "2")]
    pub n: u32,
    /// Whether a stream ends with an error.
    #[prost(bool, tag = "3")]
    pub fail: bool,
}

/// A prost codec for `Msg` both ways (what tonic-prost does, in a few lines).
#[derive(Debug, Default, Clone, Copy)]
pub struct MsgCodec;

/// [`MsgCodec`]'s encoder and decoder.
#[derive(Debug, Default, Clone, Copy)]
pub struct MsgCoder(PhantomData<fn() -> Msg>);

impl Codec for MsgCodec {
    type Encode = Msg;
    type Decode = Msg;
    type Encoder = MsgCoder;
    type Decoder = MsgCoder;

    fn encoder(&mut self) -> MsgCoder {
        MsgCoder::default()
    }

    fn decoder(&mut self) -> MsgCoder {
        MsgCoder::default()
    }
}

impl Encoder for MsgCoder {
    type Item = Msg;
    type Error = Status;

    fn encode(&mut self, item: Msg, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        item.encode(dst).map_err(|e| Status::internal(e.to_string()))
    }
}

impl Decoder for MsgCoder {
    type Item = Msg;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Msg>, Status> {
        Msg::decode(src).map(Some).map_err(|e| Status::internal(e.to_string()))
    }
}

/// The service name.
pub const SERVICE: &str = "test.Echo";

/// The methods of `test.Echo`, to declare to herd-tonic.
pub const METHODS: [(&str, RpcType); 4] = [
    ("Unary", RpcType::Unary),
    ("Count", RpcType::ServerStream),
    ("Sum", RpcType::ClientStream),
    ("Forever", RpcType::ServerStream),
];

/// The layer's options with `test.Echo` declared.
pub fn grpc_options() -> GrpcOptions {
    GrpcOptions::new().service(SERVICE, &METHODS)
}

/// The server side of `test.Echo`. `forever_dropped` is notified each time a
/// `Forever` stream is dropped (after the layer recorded its call).
#[derive(Debug, Clone, Default)]
pub struct EchoServer {
    /// Notified when a `Forever` response stream is dropped.
    pub forever_dropped: Arc<Notify>,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;
type MsgStream = BoxStream<'static, Result<Msg, Status>>;

struct Unary;
impl tonic::server::UnaryService<Msg> for Unary {
    type Response = Msg;
    type Future = BoxFuture<Result<tonic::Response<Msg>, Status>>;
    fn call(&mut self, req: tonic::Request<Msg>) -> Self::Future {
        let msg = req.into_inner();
        Box::pin(async move {
            if msg.text == "missing" {
                return Err(Status::not_found("no such thing"));
            }
            Ok(tonic::Response::new(msg))
        })
    }
}

struct Count;
impl tonic::server::ServerStreamingService<Msg> for Count {
    type Response = Msg;
    type ResponseStream = MsgStream;
    type Future = BoxFuture<Result<tonic::Response<MsgStream>, Status>>;
    fn call(&mut self, req: tonic::Request<Msg>) -> Self::Future {
        let msg = req.into_inner();
        let items = (0..msg.n).map(|n| Ok(Msg { text: String::new(), n, fail: false }));
        let end = msg.fail.then(|| Err(Status::data_loss("the stream broke")));
        let s: MsgStream = stream::iter(items.chain(end)).boxed();
        Box::pin(async move { Ok(tonic::Response::new(s)) })
    }
}

struct Sum;
impl tonic::server::ClientStreamingService<Msg> for Sum {
    type Response = Msg;
    type Future = BoxFuture<Result<tonic::Response<Msg>, Status>>;
    fn call(&mut self, req: tonic::Request<tonic::Streaming<Msg>>) -> Self::Future {
        let mut s = req.into_inner();
        Box::pin(async move {
            let mut n = 0;
            while s.message().await?.is_some() {
                n += 1;
            }
            Ok(tonic::Response::new(Msg { text: String::new(), n, fail: false }))
        })
    }
}

/// Notifies when dropped.
struct DropSignal(Arc<Notify>);
impl Drop for DropSignal {
    fn drop(&mut self) {
        self.0.notify_one();
    }
}

struct Forever(Arc<Notify>);
impl tonic::server::ServerStreamingService<Msg> for Forever {
    type Response = Msg;
    type ResponseStream = MsgStream;
    type Future = BoxFuture<Result<tonic::Response<MsgStream>, Status>>;
    fn call(&mut self, _req: tonic::Request<Msg>) -> Self::Future {
        let signal = DropSignal(self.0.clone());
        let two = stream::iter((0..2).map(|n| Ok(Msg { text: String::new(), n, fail: false })));
        let s: MsgStream = two
            .chain(stream::pending())
            .map(move |m| {
                let _keep = &signal;
                m
            })
            .boxed();
        Box::pin(async move { Ok(tonic::Response::new(s)) })
    }
}

impl<B> tower_service::Service<http::Request<B>> for EchoServer
where
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<Box<dyn Error + Send + Sync>> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let forever = self.forever_dropped.clone();
        match req.uri().path() {
            "/test.Echo/Unary" => Box::pin(async move { Ok(Grpc::new(MsgCodec).unary(Unary, req).await) }),
            "/test.Echo/Count" => {
                Box::pin(async move { Ok(Grpc::new(MsgCodec).server_streaming(Count, req).await) })
            }
            "/test.Echo/Sum" => {
                Box::pin(async move { Ok(Grpc::new(MsgCodec).client_streaming(Sum, req).await) })
            }
            "/test.Echo/Forever" => {
                Box::pin(async move { Ok(Grpc::new(MsgCodec).server_streaming(Forever(forever), req).await) })
            }
            _ => Box::pin(async move { Ok(Status::unimplemented("").into_http()) }),
        }
    }
}

impl NamedService for EchoServer {
    const NAME: &'static str = SERVICE;
}

/// A running server: its address, the service, and a handle that stops it.
#[derive(Debug)]
pub struct Running {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The service, to wait for its signals.
    pub echo: EchoServer,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), tonic::transport::Error>>,
}

impl Running {
    /// Stops the server and waits for it.
    pub async fn stop(mut self) -> Result<(), BoxError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.task).await??;
        Ok(())
    }
}

/// Serves `test.Echo` behind `layer` on 127.0.0.1, on a port of the system's choice.
pub async fn serve(layer: MetricsLayer) -> Result<Running, BoxError> {
    serve_on(tokio::net::TcpListener::bind("127.0.0.1:0").await?, layer)
}

/// Serves `test.Echo` behind `layer` on `listener` (a pre-forked worker's share of
/// the master's socket, say).
pub fn serve_on(listener: tokio::net::TcpListener, layer: MetricsLayer) -> Result<Running, BoxError> {
    let addr = listener.local_addr()?;
    let echo = EchoServer::default();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let router = tonic::transport::Server::builder().layer(layer).add_service(echo.clone());
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    let task = tokio::spawn(router.serve_with_incoming_shutdown(incoming, async move {
        let _ = stopped.await;
    }));
    Ok(Running { addr, echo, stop: Some(stop), task })
}

/// A client of `test.Echo`.
#[derive(Debug, Clone)]
pub struct EchoClient(tonic::client::Grpc<tonic::transport::Channel>);

impl EchoClient {
    /// Connects to `addr`.
    pub async fn connect(addr: SocketAddr) -> Result<Self, BoxError> {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?.connect().await?;
        Ok(Self(tonic::client::Grpc::new(channel)))
    }

    async fn ready(&mut self) -> Result<(), BoxError> {
        self.0.ready().await?;
        Ok(())
    }

    /// Calls a unary method by its path, known or not.
    pub async fn unary(&mut self, path: &str, msg: Msg) -> Result<Result<Msg, Status>, BoxError> {
        self.ready().await?;
        let path = PathAndQuery::try_from(path)?;
        Ok(self.0.unary(tonic::Request::new(msg), path, MsgCodec).await.map(tonic::Response::into_inner))
    }

    /// Calls a server-streaming method and reads its stream: the messages, and the
    /// status it ended with.
    pub async fn server_stream(&mut self, path: &'static str, msg: Msg) -> Result<(u32, Code), BoxError> {
        self.ready().await?;
        let mut s = match self
            .0
            .server_streaming(tonic::Request::new(msg), PathAndQuery::from_static(path), MsgCodec)
            .await
        {
            Ok(r) => r.into_inner(),
            Err(status) => return Ok((0, status.code())),
        };
        let mut n = 0;
        loop {
            match s.message().await {
                Ok(Some(_)) => n += 1,
                Ok(None) => return Ok((n, Code::Ok)),
                Err(status) => return Ok((n, status.code())),
            }
        }
    }

    /// Sends `n` messages to `Sum` and returns its answer.
    pub async fn sum(&mut self, n: u32) -> Result<u32, BoxError> {
        self.ready().await?;
        let msgs = stream::iter((0..n).map(|n| Msg { text: String::new(), n, fail: false }));
        let r = self
            .0
            .client_streaming(
                tonic::Request::new(msgs),
                PathAndQuery::from_static("/test.Echo/Sum"),
                MsgCodec,
            )
            .await?;
        Ok(r.into_inner().n)
    }

    /// Calls `Forever`, reads its two messages, and cancels.
    pub async fn read_two_and_cancel(&mut self) -> Result<(), BoxError> {
        self.ready().await?;
        let path = PathAndQuery::from_static("/test.Echo/Forever");
        let mut s =
            self.0.server_streaming(tonic::Request::new(Msg::default()), path, MsgCodec).await?.into_inner();
        for _ in 0..2 {
            s.message().await?.ok_or("Forever ended early")?;
        }
        drop(s);
        Ok(())
    }
}

/// How long the scenario waits for the server to see a cancel.
const CANCEL_WAIT: Duration = Duration::from_secs(10);

/// The calls herd-tonic's tests count, each checked from the client's side too:
///
/// - `Unary` twice OK, once `NOT_FOUND` (Trailers-Only);
/// - `Count` with 3 messages, then `DATA_LOSS` in the trailers;
/// - `Sum` with 4 messages;
/// - `Forever`, cancelled by the client after 2 messages (waits until the server
///   dropped the stream);
/// - an unknown method of `test.Echo`, and a method of an unknown service: both
///   `UNIMPLEMENTED`.
pub async fn scenario(server: &Running) -> Result<(), BoxError> {
    let mut c = EchoClient::connect(server.addr).await?;
    for text in ["a", "b"] {
        let got = c.unary("/test.Echo/Unary", Msg { text: text.into(), n: 0, fail: false }).await??;
        if got.text != text {
            return Err(format!("echoed {:?}, sent {text:?}", got.text).into());
        }
    }
    let missing = c.unary("/test.Echo/Unary", Msg { text: "missing".into(), n: 0, fail: false }).await?;
    expect_code(missing.err().map(|s| s.code()), Code::NotFound)?;
    let (n, code) =
        c.server_stream("/test.Echo/Count", Msg { text: String::new(), n: 3, fail: true }).await?;
    if (n, code) != (3, Code::DataLoss) {
        return Err(format!("Count gave {n} messages and {code:?}").into());
    }
    let sum = c.sum(4).await?;
    if sum != 4 {
        return Err(format!("Sum counted {sum}").into());
    }
    let dropped = server.echo.forever_dropped.notified();
    c.read_two_and_cancel().await?;
    tokio::time::timeout(CANCEL_WAIT, dropped).await.map_err(|_| "the server never dropped Forever")?;
    for path in ["/test.Echo/Nope", "/nope.Svc/Nope"] {
        let r = c.unary(path, Msg::default()).await?;
        expect_code(r.err().map(|s| s.code()), Code::Unimplemented)?;
    }
    Ok(())
}

fn expect_code(got: Option<Code>, want: Code) -> Result<(), BoxError> {
    if got == Some(want) {
        Ok(())
    } else {
        Err(format!("expected {want:?}, got {got:?}").into())
    }
}

/// What [`scenario`] leaves in the go-grpc-prometheus families, times `runs`: every
/// `grpc_server_*_total` sample line, in the order herd encodes them (families by
/// name, series in order of creation).
pub fn scenario_counts(runs: u32) -> Vec<String> {
    let t = |kind: &str, method: &str| {
        format!(
            r#"grpc_type="{kind}",grpc_service="{}",grpc_method="{method}""#,
            if method == "unknown" { "unknown" } else { SERVICE }
        )
    };
    let unary = t("unary", "Unary");
    let count = t("server_stream", "Count");
    let sum = t("client_stream", "Sum");
    let forever = t("server_stream", "Forever");
    let unknown = t("unknown", "unknown");
    let mut out = Vec::new();
    let mut add = |family: &str, labels: &str, n: u32| out.push(format!("{family}{{{labels}}} {}", n * runs));
    let handled = "grpc_server_handled_total";
    for (l, code, n) in [
        (&unary, "OK", 2),
        (&unary, "NotFound", 1),
        (&count, "DataLoss", 1),
        (&sum, "OK", 1),
        (&forever, "Canceled", 1),
        (&unknown, "Unimplemented", 2),
    ] {
        add(handled, &format!(r#"{l},grpc_code="{code}""#), n);
    }
    for (l, n) in [(&unary, 3), (&count, 1), (&sum, 4), (&forever, 1), (&unknown, 0)] {
        add("grpc_server_msg_received_total", l, n);
    }
    for (l, n) in [(&unary, 2), (&count, 3), (&sum, 1), (&forever, 2), (&unknown, 0)] {
        add("grpc_server_msg_sent_total", l, n);
    }
    for (l, n) in [(&unary, 3), (&count, 1), (&sum, 1), (&forever, 1), (&unknown, 2)] {
        add("grpc_server_started_total", l, n);
    }
    out
}
