//! herd-tonic with a real tonic server and client: codes from the headers
//! (Trailers-Only) and from the trailers, message counts per stream, a client that
//! cancels mid-stream, unknown methods, and bounded series under random method names.

use herd_core::{Format, Registry};
use herd_examples::grpc_echo::{grpc_options, scenario, scenario_counts, serve, EchoClient, Msg};
use herd_tonic::{MetricsLayer, Preset};

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

fn text(registry: &Registry) -> Result<String, std::string::FromUtf8Error> {
    String::from_utf8(registry.encode(Format::Text))
}

fn counters(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| l.starts_with("grpc_server_") && l.contains("_total{"))
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_outcome_is_counted_with_its_code_and_messages() -> TestResult {
    let registry = Registry::new();
    let server = serve(MetricsLayer::with_options(&registry, grpc_options())?).await?;
    scenario(&server).await?;
    server.stop().await?;
    let text = text(&registry)?;
    assert_eq!(counters(&text), scenario_counts(1), "{text}");
    // go-grpc-prometheus's histogram has no code label; one observation per call.
    assert!(
        text.contains(r#"grpc_server_handling_seconds_count{grpc_type="unary",grpc_service="test.Echo",grpc_method="Unary"} 3"#),
        "{text}"
    );
    assert!(
        text.contains(r#"grpc_server_handling_seconds_count{grpc_type="unknown",grpc_service="unknown",grpc_method="unknown"} 2"#),
        "{text}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_opentelemetry_preset_counts_calls_by_numeric_code() -> TestResult {
    let registry = Registry::new();
    let server =
        serve(MetricsLayer::with_options(&registry, grpc_options().preset(Preset::OpenTelemetry))?).await?;
    scenario(&server).await?;
    server.stop().await?;
    let text = text(&registry)?;
    for line in [
        r#"rpc_server_call_duration_seconds_count{rpc_system="grpc",rpc_service="test.Echo",rpc_method="Unary",rpc_grpc_status_code="0"} 2"#,
        r#"rpc_server_call_duration_seconds_count{rpc_system="grpc",rpc_service="test.Echo",rpc_method="Unary",rpc_grpc_status_code="5"} 1"#,
        r#"rpc_server_call_duration_seconds_count{rpc_system="grpc",rpc_service="test.Echo",rpc_method="Count",rpc_grpc_status_code="15"} 1"#,
        r#"rpc_server_call_duration_seconds_count{rpc_system="grpc",rpc_service="test.Echo",rpc_method="Forever",rpc_grpc_status_code="1"} 1"#,
        r#"rpc_server_call_duration_seconds_count{rpc_system="grpc",rpc_service="unknown",rpc_method="unknown",rpc_grpc_status_code="12"} 2"#,
        r#"rpc_server_messages_sent_total{rpc_system="grpc",rpc_service="test.Echo",rpc_method="Count"} 3"#,
        r#"rpc_server_messages_received_total{rpc_system="grpc",rpc_service="test.Echo",rpc_method="Sum"} 4"#,
    ] {
        assert!(text.contains(line), "{line} missing in\n{text}");
    }
    assert!(!text.contains("grpc_server_"), "{text}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_random_unknown_methods_leave_a_bounded_number_of_series() -> TestResult {
    let registry = Registry::new();
    let server = serve(MetricsLayer::with_options(&registry, grpc_options())?).await?;
    let mut client = EchoClient::connect(server.addr).await?;
    // A xorshift, so that the names are random but the test is repeatable.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in 0..10_000u32 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let path = if i % 2 == 0 { format!("/test.Echo/M{x:x}") } else { format!("/s{x:x}.S/M{i}") };
        let r = client.unary(&path, Msg::default()).await?;
        assert_eq!(r.err().map(|s| s.code()), Some(tonic::Code::Unimplemented), "{path}");
    }
    server.stop().await?;
    let text = text(&registry)?;
    let samples = text.lines().filter(|l| l.starts_with("grpc_server_")).count();
    // One label set per family: started, handled, received, sent, and the histogram's
    // 15 buckets, sum and count.
    assert_eq!(samples, 4 + 17, "{text}");
    assert!(
        text.contains(r#"grpc_server_handled_total{grpc_type="unknown",grpc_service="unknown",grpc_method="unknown",grpc_code="Unimplemented"} 10000"#),
        "{text}"
    );
    Ok(())
}
