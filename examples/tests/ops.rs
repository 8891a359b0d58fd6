//! The operations kit in `ops/` against the real tools that will read it:
//!
//! - the rules pass `promtool check rules`, and `promtool test rules` runs unit tests in
//!   which every alert both fires and stays silent;
//! - the scrape configurations pass `promtool check config`;
//! - the systemd unit and its socket pass `systemd-analyze verify`, and `prefork-demo`
//!   serves the socket a socket unit passes; the Kubernetes manifest parses (PyYAML)
//!   into the objects it promises;
//! - the dashboard is valid JSON with unique panel ids and the datasource variable on
//!   every target, and every one of its queries, variables substituted, returns data
//!   from a real Prometheus 2.42 (loading the rules) that scrapes the pre-fork demo
//!   under load: plain requests, 404s, 405s, 500s (`GET /error`), slow and aborted
//!   requests; the error ratio shows the 500s on route `/error` alone, and
//!   `HerdHighErrorRatio` goes pending for them and stays silent without them. The
//!   gRPC panels read a second target, `grpc-fork-workers` (herd-tonic in pre-forked
//!   workers) answering OK, `NotFound`, `DataLoss` and cancelled calls, unary and
//!   streaming; `HerdGrpcHighErrorRatio` goes pending for its `DataLoss`, and stays
//!   silent without them.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use herd_examples::grpc_echo::{EchoClient, Msg};
use herd_examples::prefork::request;
use herd_testkit::{cannot_run, http_get, Prometheus, ScrapeJob};
use serde_json::Value;

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;
mod demo;
use demo::Demo;

type AnyResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// The job name the kit's configurations and the HerdMetricsDown rule (`herd.*`) use.
const JOB: &str = "herd";

/// The job that scrapes `grpc-fork-workers`' `/metrics` (HerdMetricsDown watches it too).
const GRPC_JOB: &str = "herd-grpc";

/// The job that scrapes the same gRPC target but drops its `DataLoss` series: calls
/// that end OK or with the client's codes (`NotFound`, `Canceled`) alone.
const GRPC_JOB_WITHOUT_ERRORS: &str = "herd-grpc-without-errors";

fn ops() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../ops")
}

fn read(relative: &str) -> AnyResult<String> {
    let path = ops().join(relative);
    std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()).into())
}

/// How long one run of a checking tool may take.
const TOOL_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs `program args` (killed after [`TOOL_TIMEOUT`]); `None`, after [`cannot_run`],
/// when the program is missing.
fn run(program: &str, args: &[&std::ffi::OsStr]) -> AnyResult<Option<Output>> {
    let spawned = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            cannot_run(&format!("{program} is not installed: run scripts/install-test-deps.sh"));
            return Ok(None);
        }
        Err(e) => return Err(format!("cannot run {program}: {e}").into()),
    };
    // Drained on threads, so that a chatty tool never blocks on a full pipe.
    let drain = |pipe: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut bytes);
            }
            bytes
        })
    };
    let stdout = drain(child.stdout.take().map(|p| Box::new(p) as _));
    let stderr = drain(child.stderr.take().map(|p| Box::new(p) as _));
    let deadline = Instant::now() + TOOL_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("{program} did not finish within {TOOL_TIMEOUT:?}").into());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = stdout.join().map_err(|_| "stdout reader panicked")?;
    let stderr = stderr.join().map_err(|_| "stderr reader panicked")?;
    Ok(Some(Output { status, stdout, stderr }))
}

fn promtool() -> String {
    std::env::var("HERD_PROMTOOL").unwrap_or_else(|_| "promtool".to_owned())
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

// ---------------------------------------------------------------------------
// Rules.

#[test]
fn promtool_check_rules_finds_nothing() -> TestResult {
    let rules = ops().join("rules/herd.rules.yml");
    let args = ["check", "rules", "--lint=all", "--lint-fatal"].map(std::ffi::OsStr::new);
    let Some(out) = run(&promtool(), &[&args[..], &[rules.as_os_str()]].concat())? else { return Ok(()) };
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("SUCCESS: 31 rules found"), "{said}");
    assert!(!said.contains("WARNING"), "{said}");
    Ok(())
}

/// The alert names of the rules file, in order.
fn alert_names(rules: &str) -> Vec<String> {
    rules.lines().filter_map(|l| l.trim().strip_prefix("- alert: ")).map(|n| n.trim().to_owned()).collect()
}

/// For each alert of the unit tests: (cases where it fires, cases where it is silent).
/// Each `alertname:` line is followed by its `exp_alerts:`, `[]` when silent.
fn alert_cases(tests: &str) -> BTreeMap<String, (usize, usize)> {
    let mut cases: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in tests.lines().map(str::trim) {
        if let Some(name) = line.strip_prefix("alertname: ") {
            current = Some(name.trim().to_owned());
        } else if let Some(exp) = line.strip_prefix("exp_alerts:") {
            if let Some(name) = current.take() {
                let entry = cases.entry(name).or_default();
                if exp.trim() == "[]" {
                    entry.1 += 1;
                } else {
                    entry.0 += 1;
                }
            }
        }
    }
    cases
}

#[test]
fn promtool_unit_tests_show_every_alert_firing_and_silent() -> TestResult {
    let tests = ops().join("tests/herd.rules.test.yml");
    let Some(out) = run(&promtool(), &[std::ffi::OsStr::new("test"), "rules".as_ref(), tests.as_os_str()])?
    else {
        return Ok(());
    };
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("SUCCESS"), "{said}");

    let alerts = alert_names(&read("rules/herd.rules.yml")?);
    let expected = [
        "HerdHighErrorRatio",
        "HerdLatencyBudgetBurnFast",
        "HerdLatencyBudgetBurnSlow",
        "HerdGrpcHighErrorRatio",
        "HerdGrpcLatencyBudgetBurnFast",
        "HerdGrpcLatencyBudgetBurnSlow",
        "HerdCardinalityOverflow",
        "HerdStorageErrors",
        "HerdMetricsFilesSkipped",
        "HerdMetricsSeriesLeftOut",
        "HerdMetricsFilesShrunk",
        "HerdForkWithoutMetricsFile",
        "HerdSlowScrape",
        "HerdMetricsDown",
    ];
    assert_eq!(alerts, expected);
    let cases = alert_cases(&read("tests/herd.rules.test.yml")?);
    for alert in &alerts {
        let (fires, silent) = cases.get(alert).copied().unwrap_or_default();
        assert!(fires > 0, "no unit test where {alert} fires");
        assert!(silent > 0, "no unit test where {alert} stays silent");
    }
    // The README documents every alert and every parameter the rules mark.
    let readme = read("README.md")?;
    for alert in &alerts {
        assert!(readme.contains(&format!("`{alert}`")), "ops/README.md does not document {alert}");
    }
    for param in params(&read("rules/herd.rules.yml")?) {
        assert!(readme.contains(&format!("`{param}`")), "ops/README.md does not document PARAM {param}");
    }
    Ok(())
}

/// The names after `# PARAM` in the rules file.
fn params(rules: &str) -> BTreeSet<String> {
    rules
        .lines()
        .filter_map(|l| l.split("# PARAM ").nth(1))
        .filter_map(|p| p.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

// ---------------------------------------------------------------------------
// Deployment files.

#[test]
fn the_scrape_configurations_pass_promtool_check_config() -> TestResult {
    for file in ["scrape-openmetrics.yml", "scrape-native-histograms.yml"] {
        let path = ops().join("prometheus").join(file);
        let Some(out) = run(&promtool(), &["check".as_ref(), "config".as_ref(), path.as_os_str()])? else {
            return Ok(());
        };
        let said = text(&out);
        assert!(out.status.success(), "{file}: {said}");
        assert!(said.contains("SUCCESS: 1 rule files found"), "{file} loads the rules: {said}");
    }

    // `scrape_protocols` came with Prometheus 2.49: 2.42 checks the rest, and must
    // refuse that one key (so the file holds no other key 2.42 does not know).
    let config = read("prometheus/scrape-text.yml")?;
    assert!(config.contains("    scrape_protocols: [PrometheusText0.0.4]\n"), "{config}");
    let dir = tempfile::tempdir()?;
    std::fs::create_dir(dir.path().join("prometheus"))?;
    std::fs::create_dir(dir.path().join("rules"))?;
    std::fs::copy(ops().join("rules/herd.rules.yml"), dir.path().join("rules/herd.rules.yml"))?;
    let as_is = dir.path().join("prometheus/as-is.yml");
    std::fs::write(&as_is, &config)?;
    let without = dir.path().join("prometheus/without-protocols.yml");
    std::fs::write(&without, config.replace("    scrape_protocols: [PrometheusText0.0.4]\n", ""))?;
    let Some(out) = run(&promtool(), &["check".as_ref(), "config".as_ref(), without.as_os_str()])? else {
        return Ok(());
    };
    assert!(out.status.success(), "{}", text(&out));
    let Some(out) = run(&promtool(), &["check".as_ref(), "config".as_ref(), as_is.as_os_str()])? else {
        return Ok(());
    };
    assert!(
        !out.status.success() && text(&out).contains("field scrape_protocols not found"),
        "{}",
        text(&out)
    );
    Ok(())
}

#[test]
fn systemd_analyze_verify_accepts_the_unit_and_its_socket() -> TestResult {
    let unit = read("deploy/systemd/herd-app.service")?;
    for line in [
        "RuntimeDirectory=herd-app",
        "KillMode=mixed",
        "--dir /run/herd-app/metrics",
        "Requires=herd-app.socket",
    ] {
        assert!(unit.contains(line), "the unit lacks {line:?}");
    }
    let socket = read("deploy/systemd/herd-app.socket")?;
    assert!(socket.contains("\nListenStream=0.0.0.0:8080\n"), "{socket}");
    // verify checks that ExecStart= names an executable: point it at the demo built
    // for this test, the program the unit runs.
    let installed = "/usr/local/bin/prefork-demo";
    assert!(unit.contains(&format!("ExecStart={installed} ")), "{unit}");
    let dir = tempfile::tempdir()?;
    let good = dir.path().join("herd-app.service");
    let good_socket = dir.path().join("herd-app.socket");
    std::fs::write(&good, unit.replace(installed, env!("CARGO_BIN_EXE_prefork-demo")))?;
    std::fs::write(&good_socket, &socket)?;
    let args = ["verify".as_ref(), good_socket.as_os_str(), good.as_os_str()];
    let Some(out) = run("systemd-analyze", &args)? else { return Ok(()) };
    assert!(out.status.success() && text(&out).trim().is_empty(), "systemd-analyze verify: {}", text(&out));

    // The same check on broken copies says so (it warns without failing: any output
    // counts as a finding above).
    let bad = dir.path().join("herd-bad.service");
    std::fs::write(
        &bad,
        unit.replace(installed, env!("CARGO_BIN_EXE_prefork-demo")).replace("=mixed", "=sideways"),
    )?;
    let Some(out) = run("systemd-analyze", &["verify".as_ref(), bad.as_os_str()])? else { return Ok(()) };
    assert!(text(&out).contains("sideways"), "a bad KillMode= went unnoticed: {}", text(&out));
    std::fs::write(&good_socket, socket.replace("NoDelay=true", "NoDelay=sideways"))?;
    let Some(out) = run("systemd-analyze", &args)? else { return Ok(()) };
    assert!(text(&out).contains("sideways"), "a bad NoDelay= went unnoticed: {}", text(&out));
    Ok(())
}

/// What the socket unit does to the service, without systemd: the listening socket at
/// descriptor 3, `LISTEN_FDS=1` and `LISTEN_PID` the demo's own pid (bash's `exec`
/// keeps it). `--listen` names the very address that socket holds, so a demo that
/// bound it instead would fail to start.
#[test]
fn prefork_demo_serves_the_socket_systemd_passes() -> TestResult {
    use std::os::fd::AsRawFd as _;
    let dir = tempfile::tempdir()?;
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    rustix::io::fcntl_setfd(&listener, rustix::io::FdFlags::empty())?;
    let fd = listener.as_raw_fd();
    let mut command = Command::new("bash");
    command
        .args([
            "-c",
            r#"[ "$1" = 3 ] || eval "exec 3<&$1 $1<&-"; shift; LISTEN_PID=$$ LISTEN_FDS=1 exec "$0" "$@""#,
        ])
        .arg(env!("CARGO_BIN_EXE_prefork-demo"))
        .arg(fd.to_string())
        .args(["--workers", "2", "--listen", &addr.to_string(), "--dir"])
        .arg(dir.path().join("metrics"))
        .env_remove("LISTEN_FDS")
        .env_remove("LISTEN_PID");
    let (demo, line) = Demo::spawn(command, dir)?;
    // The demo holds its own copy of the socket now.
    drop(listener);
    assert!(
        line.contains(&format!("http://{addr} with 2 axum workers (socket passed by systemd)")),
        "{line}"
    );
    let rounds = 8;
    for i in 0..rounds {
        drive_once(demo.addr, i)?;
    }
    // A request is counted when its response ends, a moment after the client has it.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, _, body) = http_get(demo.addr, "/metrics", &[])?;
        assert_eq!(status, 200);
        let counted = herd_examples::prefork::requests_by_route(&String::from_utf8_lossy(&body));
        if counted.get("/error") == Some(&(rounds as f64)) {
            break;
        }
        assert!(Instant::now() < deadline, "{rounds} GET /error, counted {counted:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

fn python() -> String {
    std::env::var("HERD_PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

/// The documents of a YAML file as JSON, through PyYAML's `safe_load_all`.
fn yaml_documents(path: &Path) -> AnyResult<Option<Vec<Value>>> {
    const SCRIPT: &str = "import json, sys\n\
        try:\n    import yaml\nexcept ImportError:\n    sys.exit(42)\n\
        json.dump(list(yaml.safe_load_all(open(sys.argv[1]))), sys.stdout)\n";
    let Some(out) = run(&python(), &["-c".as_ref(), SCRIPT.as_ref(), path.as_os_str()])? else {
        return Ok(None);
    };
    if out.status.code() == Some(42) {
        cannot_run("PyYAML is not installed: run scripts/install-test-deps.sh");
        return Ok(None);
    }
    if !out.status.success() {
        return Err(format!("{} does not parse as YAML: {}", path.display(), text(&out)).into());
    }
    Ok(Some(serde_json::from_slice(&out.stdout)?))
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_array().map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default()
}

/// The value after `flag` in `args`.
fn flag<'a>(args: &[&'a str], flag: &str) -> Option<&'a str> {
    args.iter().position(|a| *a == flag).and_then(|i| args.get(i + 1)).copied()
}

#[test]
fn the_kubernetes_manifest_holds_a_pod_with_a_memory_volume_and_a_herd_serve_sidecar() -> TestResult {
    let Some(docs) = yaml_documents(&ops().join("deploy/kubernetes/pod.yaml"))? else { return Ok(()) };
    let kinds: Vec<&str> = docs.iter().filter_map(|d| d["kind"].as_str()).collect();
    assert_eq!(kinds, ["Pod", "PodMonitor"]);
    let (pod, monitor) = (&docs[0], &docs[1]);
    assert_eq!(pod["apiVersion"], "v1");
    assert_eq!(monitor["apiVersion"], "monitoring.coreos.com/v1");

    let volumes = pod["spec"]["volumes"].as_array().ok_or("no volumes")?;
    let memory: Vec<&str> = volumes
        .iter()
        .filter(|v| v["emptyDir"]["medium"] == "Memory")
        .filter_map(|v| v["name"].as_str())
        .collect();
    assert_eq!(memory.len(), 1, "one emptyDir of medium Memory: {volumes:?}");
    let volume = memory[0];

    let containers = pod["spec"]["containers"].as_array().ok_or("no containers")?;
    let mount_of = |c: &Value| -> Option<String> {
        c["volumeMounts"].as_array()?.iter().find(|m| m["name"] == volume)?["mountPath"]
            .as_str()
            .map(str::to_owned)
    };
    let sidecar =
        containers.iter().find(|c| strings(&c["args"]).first() == Some(&"serve")).ok_or("no herd serve")?;
    let app = containers.iter().find(|c| c["name"] != sidecar["name"]).ok_or("no application container")?;
    let sidecar_args = strings(&sidecar["args"]);
    let dir = flag(&sidecar_args, "--dir").ok_or("herd serve without --dir")?;
    assert_eq!(flag(&strings(&app["args"]), "--dir"), Some(dir), "the app writes where the sidecar reads");
    for c in [app, sidecar] {
        let mount = mount_of(c).ok_or_else(|| format!("{} does not mount {volume}", c["name"]))?;
        assert!(dir.starts_with(&format!("{mount}/")), "{dir} is not inside {mount}");
    }
    let listen = flag(&sidecar_args, "--listen").ok_or("herd serve without --listen")?;
    let port = listen.rsplit(':').next().ok_or("no port")?;
    let port_entry = sidecar["ports"]
        .as_array()
        .and_then(|p| {
            p.iter().find(|p| p["containerPort"].as_u64().map(|n| n.to_string()).as_deref() == Some(port))
        })
        .ok_or("the sidecar does not declare its port")?;
    assert_eq!(pod["metadata"]["annotations"]["prometheus.io/port"].as_str(), Some(port));

    // The init container makes the directory herd wants (private) inside the volume.
    let init = &pod["spec"]["initContainers"][0];
    assert!(strings(&init["command"]).contains(&dir), "{init}");
    assert!(mount_of(init).is_some(), "{init}");

    // The PodMonitor selects this pod and scrapes the sidecar's port by name.
    let labels = pod["metadata"]["labels"].as_object().ok_or("no labels")?;
    let selector = monitor["spec"]["selector"]["matchLabels"].as_object().ok_or("no selector")?;
    assert!(selector.iter().all(|(k, v)| labels.get(k) == Some(v)), "{selector:?} vs {labels:?}");
    assert_eq!(monitor["spec"]["podMetricsEndpoints"][0]["port"], port_entry["name"]);
    Ok(())
}

// ---------------------------------------------------------------------------
// Dashboard.

/// Every panel, those inside collapsed rows included.
fn all_panels(dashboard: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for panel in dashboard["panels"].as_array().into_iter().flatten() {
        out.push(panel);
        out.extend(panel["panels"].as_array().into_iter().flatten());
    }
    out
}

/// (panel title, refId, expr) of every target.
fn dashboard_queries(dashboard: &Value) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for panel in all_panels(dashboard) {
        for target in panel["targets"].as_array().into_iter().flatten() {
            out.push((
                panel["title"].as_str().unwrap_or_default().to_owned(),
                target["refId"].as_str().unwrap_or_default().to_owned(),
                target["expr"].as_str().unwrap_or_default().to_owned(),
            ));
        }
    }
    out
}

fn load_dashboard() -> AnyResult<Value> {
    Ok(serde_json::from_str(&read("dashboards/herd.json")?)?)
}

#[test]
fn the_dashboard_is_json_with_unique_ids_and_the_datasource_variable_on_every_target() -> TestResult {
    let dashboard = load_dashboard()?;
    let variables = dashboard["templating"]["list"].as_array().ok_or("no variables")?;
    let var = |name: &str| variables.iter().find(|v| v["name"] == name);
    assert_eq!(var("datasource").map(|v| &v["type"]), Some(&Value::from("datasource")));
    assert_eq!(var("datasource").map(|v| &v["query"]), Some(&Value::from("prometheus")));
    for name in ["job", "instance"] {
        let v = var(name).ok_or_else(|| format!("no {name} variable"))?;
        assert_eq!(v["datasource"]["uid"], "${datasource}", "{name}");
    }

    let panels = all_panels(&dashboard);
    let mut ids = BTreeSet::new();
    for panel in &panels {
        let id = panel["id"].as_u64().ok_or_else(|| format!("panel without id: {}", panel["title"]))?;
        assert!(ids.insert(id), "panel id {id} used twice");
        let targets = panel["targets"].as_array().into_iter().flatten().collect::<Vec<_>>();
        if panel["type"] == "row" {
            continue;
        }
        assert!(!targets.is_empty(), "{} has no query", panel["title"]);
        assert_eq!(panel["datasource"]["uid"], "${datasource}", "{}", panel["title"]);
        let mut ref_ids = BTreeSet::new();
        for target in targets {
            assert_eq!(target["datasource"]["uid"], "${datasource}", "{}: {target}", panel["title"]);
            assert_eq!(target["datasource"]["type"], "prometheus", "{}: {target}", panel["title"]);
            assert!(ref_ids.insert(target["refId"].to_string()), "{}: refId twice", panel["title"]);
            assert!(!target["expr"].as_str().unwrap_or_default().trim().is_empty(), "{}", panel["title"]);
        }
    }
    // What the issue asks the dashboard to show: each family appears in some query.
    let exprs: String = dashboard_queries(&dashboard).into_iter().map(|(_, _, e)| e).collect();
    for family in [
        "http_requests_total",
        "http_request_duration_seconds",
        "http_requests_in_flight",
        "http_requests_aborted_total",
        "http_request_size_bytes",
        "http_response_size_bytes",
        "herd_mmap_live_processes",
        "herd_mmap_files",
        "herd_mmap_skipped_files",
        "herd_mmap_left_out_series",
        "herd_cardinality_overflow_total",
        "herd_storage_errors_total",
        "herd_mmap_scrape_duration_seconds",
        "grpc_server_started_total",
        "grpc_server_handled_total",
        "grpc_server_msg_received_total",
        "grpc_server_msg_sent_total",
        "grpc_server_handling_seconds",
    ] {
        assert!(exprs.contains(family), "no panel shows {family}");
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Every dashboard query against Prometheus scraping the pre-fork demo under load.

/// One round of the load: every route, a 404 (`unmatched`), a 405, a 500 (`/error`,
/// about one request in eight: above the error ratio alert's 5%), a request slower than the
/// latency objective's 0.5 s, and a response the client abandons midway.
fn drive_once(addr: SocketAddr, i: u64) -> AnyResult<()> {
    let expect = |method: &str, path: &str, body: &[u8], status: u16| -> AnyResult<()> {
        let reply = request(addr, method, path, body)?;
        assert_eq!(reply.status, status, "{method} {path}");
        Ok(())
    };
    expect("GET", "/hello", b"", 200)?;
    expect("GET", &format!("/users/{i}"), b"", 200)?;
    expect("POST", "/echo", format!("ping {i}").repeat(40).as_bytes(), 200)?;
    expect("GET", "/stream?chunks=3&delay_ms=1", b"", 200)?;
    expect("GET", &format!("/no/such/page/{i}"), b"", 404)?;
    expect("POST", "/hello", b"", 405)?;
    expect("GET", "/error", b"", 500)?;
    if i.is_multiple_of(4) {
        // Seven chunks 100 ms apart: 0.6 s, slower than the objective.
        expect("GET", "/stream?chunks=7&delay_ms=100", b"", 200)?;
        abandon_stream(addr)?;
    }
    Ok(())
}

/// Reads the start of a long streamed response, then hangs up: an aborted request.
fn abandon_stream(addr: SocketAddr) -> AnyResult<()> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(stream, "GET /stream?chunks=100&delay_ms=50 HTTP/1.1\r\nHost: {addr}\r\n\r\n")?;
    let mut first = [0u8; 64];
    let n = stream.read(&mut first)?;
    assert!(first[..n].starts_with(b"HTTP/1.1 200"), "{:?}", String::from_utf8_lossy(&first[..n]));
    Ok(())
}

/// Sends load rounds until `stop`, from a thread; its first error ends it.
fn drive_until(addr: SocketAddr, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<AnyResult<u64>> {
    std::thread::spawn(move || {
        let mut rounds = 0;
        while !stop.load(Ordering::Relaxed) {
            drive_once(addr, rounds)?;
            rounds += 1;
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(rounds)
    })
}

/// `grpc-fork-workers` as a server (2 workers): the child, which stops like the demo
/// when dropped, and the address of its gRPC socket; its `addr` is that of `/metrics`.
fn start_grpc_workers() -> AnyResult<(Demo, SocketAddr)> {
    let dir = tempfile::tempdir()?;
    let mut command = Command::new(env!("CARGO_BIN_EXE_grpc-fork-workers"));
    command
        .args(["--workers", "2", "--listen", "127.0.0.1:0", "--metrics", "127.0.0.1:0", "--dir"])
        .arg(dir.path().join("metrics"));
    let (server, line) = Demo::spawn(command, dir)?;
    let grpc = line.split("gRPC on ").nth(1).and_then(|s| s.split(' ').next()).ok_or("no gRPC address")?;
    Ok((server, grpc.parse()?))
}

/// How long one round of gRPC calls may take before the load counts as stuck.
const GRPC_ROUND_TIMEOUT: Duration = Duration::from_secs(20);

/// One round of gRPC calls, each checked from the client's side: a unary OK and a
/// unary `NotFound`, a server stream of 3 messages that ends `DataLoss` every other
/// round (a server error: about one call in nine, above the alert's 5%) and OK
/// otherwise, a client stream of 4 messages, and every fourth round a stream the
/// client cancels (`Canceled`).
async fn grpc_round(client: &mut EchoClient, i: u64) -> AnyResult<()> {
    let msg = |text: &str, n: u32, fail: bool| Msg { text: text.to_owned(), n, fail };
    let echoed = client.unary("/test.Echo/Unary", msg("ping", 0, false)).await?;
    assert_eq!(echoed.map(|m| m.text).ok().as_deref(), Some("ping"));
    let missing = client.unary("/test.Echo/Unary", msg("missing", 0, false)).await?;
    assert_eq!(missing.err().map(|s| s.code()), Some(tonic::Code::NotFound));
    let fail = i.is_multiple_of(2);
    let counted = client.server_stream("/test.Echo/Count", msg("", 3, fail)).await?;
    assert_eq!(counted, (3, if fail { tonic::Code::DataLoss } else { tonic::Code::Ok }));
    assert_eq!(client.sum(4).await?, 4);
    if i.is_multiple_of(4) {
        client.read_two_and_cancel().await?;
    }
    Ok(())
}

/// Sends rounds of gRPC calls to `addr` until `stop`, from a thread with its own
/// runtime; its first error (or a stuck round) ends it.
fn drive_grpc_until(addr: SocketAddr, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<AnyResult<u64>> {
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        runtime.block_on(async move {
            let mut client = EchoClient::connect(addr).await?;
            let mut rounds = 0;
            while !stop.load(Ordering::Relaxed) {
                tokio::time::timeout(GRPC_ROUND_TIMEOUT, grpc_round(&mut client, rounds))
                    .await
                    .map_err(|_| format!("gRPC round {rounds} took more than {GRPC_ROUND_TIMEOUT:?}"))??;
                rounds += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Ok(rounds)
        })
    })
}

/// The job that scrapes the same target as [`JOB`] but drops the series of route
/// `/error`: the service as it would be without its failing route.
const JOB_WITHOUT_ERRORS: &str = "herd-without-errors";

/// A Prometheus scraping `target` as job [`JOB`], and as [`JOB_WITHOUT_ERRORS`],
/// `grpc_target` as job [`GRPC_JOB`], that also evaluates the kit's rules every
/// second: the testkit writes the scrape config, this adds the other jobs and the
/// rules and reloads.
fn prometheus_with_rules(
    target: SocketAddr,
    grpc_target: SocketAddr,
    extra_args: &[&str],
) -> AnyResult<Prometheus> {
    let args = [&["--web.enable-lifecycle"], extra_args].concat();
    let prometheus = Prometheus::start_with_args(&[ScrapeJob::new(JOB, target)], &args)?;
    let config = std::fs::read_to_string(prometheus.config_path())?;
    let rules = ops().join("rules/herd.rules.yml").canonicalize()?;
    // The testkit's config ends with its scrape_configs list: the job goes on it.
    assert!(config.trim_end().ends_with(&format!("targets: [\"{target}\"]")), "{config}");
    let without_errors = format!(
        "  - job_name: {JOB_WITHOUT_ERRORS}\n    static_configs:\n      - targets: [\"{target}\"]\n    \
         metric_relabel_configs:\n      - source_labels: [route]\n        regex: /error\n        action: drop\n"
    );
    let grpc = format!(
        "  - job_name: {GRPC_JOB}\n    static_configs:\n      - targets: [\"{grpc_target}\"]\n  \
         - job_name: {GRPC_JOB_WITHOUT_ERRORS}\n    static_configs:\n      - targets: [\"{grpc_target}\"]\n    \
         metric_relabel_configs:\n      - source_labels: [grpc_code]\n        regex: DataLoss\n        action: drop\n"
    );
    let config = config.replacen("global:\n", "global:\n  evaluation_interval: 1s\n", 1)
        + &without_errors
        + &grpc
        + &format!("rule_files:\n  - {}\n", serde_json::to_string(&rules.display().to_string())?);
    std::fs::write(prometheus.config_path(), config)?;
    let reply = request(prometheus.addr(), "POST", "/-/reload", b"")?;
    assert_eq!(reply.status, 200, "reload: {}", String::from_utf8_lossy(&reply.body));
    Ok(prometheus)
}

/// The 500s of `GET /error`: the error ratio is above 0 for route `/error` and 0 for
/// every other route, in the recording rule and in the dashboard's error ratio panel;
/// `HerdHighErrorRatio` goes pending (or firing) for job [`JOB`], and stays silent for
/// [`JOB_WITHOUT_ERRORS`], the same routes without `/error`, whose error ratio the rules
/// did compute (as 0).
fn assert_errors_seen_on_the_error_route_alone(
    prometheus: &Prometheus,
    queries: &[(String, String, String)],
    instance: &str,
) -> TestResult {
    let panel = queries
        .iter()
        .find(|(title, _, _)| title.starts_with("Error ratio by route"))
        .map(|(_, _, expr)| substitute(expr, JOB, instance))
        .ok_or("no error ratio panel")?;
    let rule = format!(r#"job_instance_route:http_request_errors:ratio_rate5m{{job="{JOB}"}}"#);
    for promql in [rule.as_str(), panel.as_str()] {
        let ratios = prometheus.query(promql)?;
        let route = |r: &herd_testkit::QueryResult| r.metric.get("route").cloned().unwrap_or_default();
        let on_error = ratios.iter().find(|r| route(r) == "/error").map(|r| r.value);
        assert!(on_error.is_some_and(|v| v > 0.0), "{promql}: no error ratio on /error: {ratios:?}");
        let others: Vec<_> = ratios.iter().filter(|r| route(r) != "/error").collect();
        assert!(others.len() >= 4, "{promql}: the other routes have a ratio: {ratios:?}");
        assert!(others.iter().all(|r| r.value == 0.0), "{promql}: errors off /error: {ratios:?}");
    }

    let computed = format!(r#"job:http_request_errors:ratio_rate5m{{job="{JOB_WITHOUT_ERRORS}"}}"#);
    let alert = error_alert_pending_and_ratio_zero(prometheus, "HerdHighErrorRatio", JOB, &computed)?;
    let silent = prometheus.query(&alert(JOB_WITHOUT_ERRORS))?;
    assert!(silent.is_empty(), "HerdHighErrorRatio without errors: {silent:?}");
    Ok(())
}

/// The gRPC error ratio by code holds the codes the load sends and no `OK`;
/// `HerdGrpcHighErrorRatio` goes pending (or firing) for [`GRPC_JOB`], whose
/// `DataLoss` streams are server errors, and stays silent for
/// [`GRPC_JOB_WITHOUT_ERRORS`], whose `NotFound` and `Canceled` calls are the
/// client's: its server-error ratio is computed, as 0.
fn assert_grpc_errors_seen(prometheus: &Prometheus) -> TestResult {
    let ratios = prometheus
        .query(&format!(r#"job_instance_grpc_code:grpc_server_handled:ratio_rate5m{{job="{GRPC_JOB}"}}"#))?;
    let code = |c: &str| ratios.iter().find(|r| r.metric.get("grpc_code").map(String::as_str) == Some(c));
    for c in ["NotFound", "DataLoss"] {
        assert!(code(c).is_some_and(|r| r.value > 0.0 && r.value < 1.0), "{c}: {ratios:?}");
    }
    assert!(code("OK").is_none(), "{ratios:?}");
    let computed = format!(r#"job:grpc_server_errors:ratio_rate5m{{job="{GRPC_JOB_WITHOUT_ERRORS}"}}"#);
    let alert =
        error_alert_pending_and_ratio_zero(prometheus, "HerdGrpcHighErrorRatio", GRPC_JOB, &computed)?;
    let client_codes = prometheus.query(&format!(
        r#"job_instance_grpc_code:grpc_server_handled:ratio_rate5m{{job="{GRPC_JOB_WITHOUT_ERRORS}",grpc_code="NotFound"}}"#
    ))?;
    assert!(
        client_codes.first().is_some_and(|r| r.value > 0.0),
        "no NotFound without errors: {client_codes:?}"
    );
    let silent = prometheus.query(&alert(GRPC_JOB_WITHOUT_ERRORS))?;
    assert!(silent.is_empty(), "HerdGrpcHighErrorRatio on the client's codes: {silent:?}");
    Ok(())
}

/// `alertname` goes pending (or firing) for `job`, and `computed`, the ratio of a job
/// without errors, is 0; returns the ALERTS selector of the alert for a job, for the
/// caller to check it stays silent for that one. The job without errors was added by a
/// reload: its rate needs two of its scrapes and a rule evaluation after them, so the
/// ratio is waited for (bounded) before it is checked.
fn error_alert_pending_and_ratio_zero(
    prometheus: &Prometheus,
    alertname: &'static str,
    job: &str,
    computed: &str,
) -> Result<impl Fn(&str) -> String, Box<dyn std::error::Error + Send + Sync>> {
    let alert = move |job: &str| format!(r#"ALERTS{{alertname="{alertname}",job="{job}"}}"#);
    let firing = prometheus.wait_until(Duration::from_secs(30), &format!("{alertname} pending"), |p| {
        let alerts = p.query(&alert(job))?;
        Ok((!alerts.is_empty()).then_some(alerts))
    })?;
    assert!(
        firing
            .iter()
            .all(|a| matches!(a.metric.get("alertstate").map(String::as_str), Some("pending" | "firing"))),
        "{firing:?}"
    );
    let ratio = prometheus.wait_until(Duration::from_secs(30), &format!("{computed} exists"), |p| {
        let ratio = p.query(computed)?;
        Ok((!ratio.is_empty()).then_some(ratio))
    })?;
    assert!(ratio.len() == 1 && ratio[0].value == 0.0, "{computed} = {ratio:?}");
    Ok(alert)
}

/// `expr` with the dashboard's variables set: `$job` and `$instance` as a user picks
/// them, `$__rate_interval` as Grafana computes it for a 1 s scrape interval.
fn substitute(expr: &str, job: &str, instance: &str) -> String {
    expr.replace("$__rate_interval", "30s").replace("$job", job).replace("$instance", instance)
}

/// The queries that return nothing, with the variables set: `http` (job and
/// instance) for the HTTP and health panels, `grpc` for the gRPC panels, as a user
/// picks the job of the service each panel shows.
fn empty_queries(
    prometheus: &Prometheus,
    queries: &[(String, String, String)],
    http: (&str, &str),
    grpc: (&str, &str),
) -> Result<Vec<String>, String> {
    let mut empty = Vec::new();
    for (panel, ref_id, expr) in queries {
        let (job, instance) = if expr.contains("grpc_") { grpc } else { http };
        let promql = substitute(expr, job, instance);
        if prometheus.query(&promql)?.is_empty() {
            empty.push(format!("{panel} ({ref_id}): {promql}"));
        }
    }
    Ok(empty)
}

#[test]
fn every_dashboard_query_returns_data_from_prometheus_scraping_the_prefork_demo_under_load() -> TestResult {
    let queries = dashboard_queries(&load_dashboard()?);
    assert!(queries.len() > 20, "{queries:?}");
    let demo = Demo::start("3", &[])?;
    let (grpc, grpc_addr) = start_grpc_workers()?;
    // One Prometheus as 2.42 runs by default (it negotiates OpenMetrics), one with
    // native histograms on (it asks for protobuf first, and herd answers protobuf).
    let classic = prometheus_with_rules(demo.addr, grpc.addr, &[])?;
    let native = prometheus_with_rules(demo.addr, grpc.addr, &["--enable-feature=native-histograms"])?;

    let stop = Arc::new(AtomicBool::new(false));
    let load = drive_until(demo.addr, stop.clone());
    let grpc_load = drive_grpc_until(grpc_addr, stop.clone());
    let outcome = (|| -> TestResult {
        let instance = demo.addr.to_string();
        let grpc_instance = grpc.addr.to_string();
        for (name, prometheus) in [("default", &classic), ("native-histograms", &native)] {
            prometheus.wait_for_targets_up(Duration::from_secs(30))?;
            let mut last = Vec::new();
            let waited =
                prometheus.wait_until(Duration::from_secs(60), "every dashboard query to return data", |p| {
                    // As a user picks one job and instance, and as "All" (`.+`) sends them.
                    last = empty_queries(p, &queries, (JOB, &instance), (GRPC_JOB, &grpc_instance))?;
                    last.extend(empty_queries(p, &queries, (".+", ".+"), (".+", ".+"))?);
                    Ok(last.is_empty().then_some(()))
                });
            if let Err(e) = waited {
                return Err(format!("{name}: queries without data:\n  {}\n{e}", last.join("\n  ")).into());
            }

            // The variables' own queries (Grafana's label_values) find the demo and
            // the gRPC workers.
            let families = r#"__name__=~"http_requests_total|grpc_server_handled_total""#;
            let jobs = prometheus.query(&format!("group by (job) ({{{families}}})"))?;
            for (job, instance) in [(JOB, &instance), (GRPC_JOB, &grpc_instance)] {
                assert!(
                    jobs.iter().any(|r| r.metric.get("job").map(String::as_str) == Some(job)),
                    "{jobs:?}"
                );
                let instances =
                    prometheus.query(&format!("group by (instance) ({{{families},job=~\"{job}\"}})"))?;
                assert!(
                    instances.iter().any(|r| r.metric.get("instance") == Some(instance)),
                    "{instances:?}"
                );
            }

            // The load did what it says: 404s, 405s, aborts and slow requests were recorded.
            for (what, promql) in [
                ("404s", r#"sum(http_requests_total{route="unmatched",status="404"})"#),
                ("405s", r#"sum(http_requests_total{status="405"})"#),
                ("aborted requests", "sum(http_requests_aborted_total)"),
                ("slow requests", "job:http_request_duration_seconds:slow_ratio_rate5m"),
                ("gRPC OK calls", r#"sum(grpc_server_handled_total{grpc_code="OK"})"#),
                ("gRPC NotFound", r#"sum(grpc_server_handled_total{grpc_code="NotFound"})"#),
                ("gRPC DataLoss", r#"sum(grpc_server_handled_total{grpc_code="DataLoss"})"#),
                ("gRPC cancelled streams", r#"sum(grpc_server_handled_total{grpc_code="Canceled"})"#),
                (
                    "gRPC client stream messages",
                    r#"sum(grpc_server_msg_received_total{grpc_type="client_stream"})"#,
                ),
                (
                    "gRPC server stream messages",
                    r#"sum(grpc_server_msg_sent_total{grpc_type="server_stream"})"#,
                ),
            ] {
                let got = prometheus.query(promql)?;
                assert!(got.first().is_some_and(|r| r.value > 0.0), "{name}: no {what}: {promql} = {got:?}");
            }
        }

        // On this healthy target no alert on herd's health is even pending.
        let health = r#"ALERTS{alertname=~"HerdCardinalityOverflow|HerdStorageErrors|HerdMetricsFiles.*|HerdForkWithoutMetricsFile|HerdSlowScrape|HerdMetricsDown"}"#;
        let pending = classic.query(health)?;
        assert!(pending.is_empty(), "{pending:?}");

        assert_errors_seen_on_the_error_route_alone(&classic, &queries, &instance)?;
        assert_grpc_errors_seen(&classic)?;

        // The text format 0.0.4, as a Prometheus pinned to it by scrape-text.yml asks.
        let accept = "text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        let (status, headers, body) = http_get(demo.addr, "/metrics", &[("Accept", accept)])?;
        assert_eq!(status, 200);
        let content_type = headers.iter().find(|(k, _)| k == "content-type").map(|(_, v)| v.as_str());
        assert_eq!(content_type, Some("text/plain; version=0.0.4; charset=utf-8"));
        assert!(!String::from_utf8_lossy(&body).contains("# EOF"));

        // A metrics directory that cannot be read: /metrics answers 500, `up` drops to 0
        // and HerdMetricsDown goes pending (it fires after its 5 minutes).
        std::fs::rename(demo.metrics_dir(), demo.metrics_dir().with_file_name("gone"))?;
        let (status, _, _) = http_get(demo.addr, "/metrics", &[])?;
        assert_eq!(status, 500);
        classic.wait_until(Duration::from_secs(30), "HerdMetricsDown pending", |p| {
            let alerts = p.query(r#"ALERTS{alertname="HerdMetricsDown",alertstate="pending",job="herd"}"#)?;
            Ok((!alerts.is_empty()).then_some(()))
        })?;
        Ok(())
    })();
    stop.store(true, Ordering::Relaxed);
    let rounds = load.join().map_err(|_| "the load thread panicked")??;
    let grpc_rounds = grpc_load.join().map_err(|_| "the gRPC load thread panicked")??;
    println!("load: {rounds} rounds, {grpc_rounds} gRPC rounds");
    outcome
}
