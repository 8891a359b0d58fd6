//! Every line type in every tag style, over UDP and a Unix datagram socket, read back
//! from a raw socket and checked against the grammar documented in the README:
//! hostile label values included, packets never larger than the configured size.

use std::collections::BTreeMap;
use std::net::{SocketAddr, UdpSocket};
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Duration;

use herd_core::{Buckets, Registry};
use herd_statsd::{Aggregation, DropReason, Mirror, ObserveAs, StatsdBridge, StatsdBuilder, TagStyle};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const STYLES: [TagStyle; 5] =
    [TagStyle::DogStatsd, TagStyle::InfluxDb, TagStyle::Librato, TagStyle::SignalFx, TagStyle::Folded];

/// A label value trying every way out of a tag: each delimiter of each style, both
/// line ends, a NUL, and a whole second line.
const HOSTILE: &str = "a:b|c@d#e,f\ng\r=h[i]j.k é ☃ 日本\0x|#evil:1\nevil:1|c";
const ROUTE: &str = "/users/{id}";
const MAX_PACKET: usize = 256;

/// One parsed line.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Line {
    /// The name; in the folded style, the whole dotted path, tags included.
    name: String,
    tags: Vec<(String, String)>,
    value: String,
    ty: String,
    rate: Option<String>,
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')
}

fn is_tag_value_char(c: char, style: TagStyle) -> bool {
    let delimiter = matches!(c, ':' | '|' | '@' | '#' | ',')
        || (matches!(style, TagStyle::InfluxDb | TagStyle::Librato | TagStyle::SignalFx)
            && matches!(c, '=' | '[' | ']'))
        || (style == TagStyle::Folded && c == '.');
    !c.is_control() && !delimiter
}

fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || !name.chars().all(is_name_char) {
        return Err(format!("bad name {name:?}"));
    }
    Ok(())
}

fn parse_tag(tag: &str, sep: char, style: TagStyle) -> Result<(String, String), String> {
    let (k, v) = tag.split_once(sep).ok_or_else(|| format!("tag {tag:?} without {sep:?}"))?;
    check_name(k)?;
    if v.is_empty() || !v.chars().all(|c| is_tag_value_char(c, style)) {
        return Err(format!("bad tag value {v:?}"));
    }
    Ok((k.to_owned(), v.to_owned()))
}

fn parse_tags(list: &str, sep: char, style: TagStyle) -> Result<Vec<(String, String)>, String> {
    list.split(',').map(|t| parse_tag(t, sep, style)).collect()
}

/// `[+-]?digits(.digits)?(e-?digits)?`
fn check_value(v: &str) -> Result<(), String> {
    let bad = || format!("bad value {v:?}");
    let unsigned = v.strip_prefix(['+', '-']).unwrap_or(v);
    let (mantissa, exponent) = match unsigned.split_once('e') {
        Some((m, e)) => (m, Some(e.strip_prefix('-').unwrap_or(e))),
        None => (unsigned, None),
    };
    let (int, frac) = mantissa.split_once('.').map_or((mantissa, None), |(i, f)| (i, Some(f)));
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(int) || frac.is_some_and(|f| !digits(f)) || exponent.is_some_and(|e| !digits(e)) {
        return Err(bad());
    }
    Ok(())
}

/// The grammar of one style, as the README writes it.
fn parse(style: TagStyle, line: &str) -> Result<Line, String> {
    let ctx = |e: String| format!("{style:?}: {e} in line {line:?}");
    let (head, rest) = line.split_once(':').ok_or_else(|| ctx("no ':'".into()))?;
    let mut fields = rest.split('|');
    let value = fields.next().unwrap_or_default().to_owned();
    check_value(&value).map_err(ctx)?;
    let ty = fields.next().unwrap_or_default().to_owned();
    if !["c", "g", "ms", "h", "d"].contains(&ty.as_str()) {
        return Err(ctx(format!("bad type {ty:?}")));
    }
    let (mut rate, mut dog_tags) = (None, None);
    for field in fields {
        if let Some(r) = field.strip_prefix('@').filter(|_| rate.is_none() && dog_tags.is_none()) {
            let ok =
                r.strip_prefix("0.").is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()));
            if !ok {
                return Err(ctx(format!("bad rate {r:?}")));
            }
            rate = Some(r.to_owned());
        } else if let Some(t) =
            field.strip_prefix('#').filter(|_| style == TagStyle::DogStatsd && dog_tags.is_none())
        {
            dog_tags = Some(parse_tags(t, ':', style).map_err(ctx)?);
        } else {
            return Err(ctx(format!("unexpected field {field:?}")));
        }
    }
    let (name, tags) = match style {
        TagStyle::DogStatsd => (head.to_owned(), dog_tags.unwrap_or_default()),
        TagStyle::InfluxDb => match head.split_once(',') {
            Some((name, tags)) => (name.to_owned(), parse_tags(tags, '=', style).map_err(ctx)?),
            None => (head.to_owned(), Vec::new()),
        },
        TagStyle::Librato => match head.split_once('#') {
            Some((name, tags)) => (name.to_owned(), parse_tags(tags, '=', style).map_err(ctx)?),
            None => (head.to_owned(), Vec::new()),
        },
        TagStyle::SignalFx => match head.split_once('[') {
            Some((name, tags)) => {
                let tags = tags.strip_suffix(']').ok_or_else(|| ctx("unclosed '['".into()))?;
                (name.to_owned(), parse_tags(tags, '=', style).map_err(ctx)?)
            }
            None => (head.to_owned(), Vec::new()),
        },
        _ => {
            // Folded: dot-separated segments, none empty; tag values may hold what a
            // name may not, but never a delimiter.
            if head.split('.').any(|s| s.is_empty() || !s.chars().all(|c| is_tag_value_char(c, style))) {
                return Err(ctx(format!("bad folded name {head:?}")));
            }
            (head.to_owned(), Vec::new())
        }
    };
    check_name(name.split('.').next().unwrap_or_default()).map_err(ctx)?;
    if style != TagStyle::Folded {
        check_name(&name).map_err(ctx)?;
    }
    Ok(Line { name, tags, value, ty, rate })
}

/// The documented replacement, reimplemented here from the README.
fn sanitized(value: &str, style: TagStyle) -> String {
    value.chars().map(|c| if is_tag_value_char(c, style) { c } else { '_' }).collect()
}

/// The line expected for `name` with `tags` (empty values left out), in `style`.
fn expect(
    style: TagStyle,
    name: &str,
    tags: &[(&str, &str)],
    value: &str,
    ty: &str,
    rate: Option<&str>,
) -> Line {
    let tags: Vec<(String, String)> = tags
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| ((*k).to_owned(), sanitized(v, style)))
        .collect();
    let (name, tags) = if style == TagStyle::Folded {
        let mut path = name.to_owned();
        for (k, v) in &tags {
            path.push_str(&format!(".{k}.{v}"));
        }
        (path, Vec::new())
    } else {
        (name.to_owned(), tags)
    };
    Line { name, tags, value: value.to_owned(), ty: ty.to_owned(), rate: rate.map(str::to_owned) }
}

/// A socket read by a thread of its own from the start (a Unix datagram socket holds
/// only a few unread datagrams before the sender must wait).
struct Receiver {
    target: Target,
    datagrams: mpsc::Receiver<Vec<u8>>,
    _dir: Option<tempfile::TempDir>,
}

enum Target {
    Udp(SocketAddr),
    Unix(PathBuf),
}

impl Receiver {
    fn udp() -> std::io::Result<Self> {
        let socket = UdpSocket::bind("127.0.0.1:0")?;
        let target = Target::Udp(socket.local_addr()?);
        Ok(Self { target, datagrams: read_all(move |buf| socket.recv(buf)), _dir: None })
    }

    fn unix() -> std::io::Result<Self> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("statsd.sock");
        let socket = UnixDatagram::bind(&path)?;
        Ok(Self {
            target: Target::Unix(path),
            datagrams: read_all(move |buf| socket.recv(buf)),
            _dir: Some(dir),
        })
    }

    fn bridge(&self) -> StatsdBuilder {
        match &self.target {
            Target::Udp(addr) => StatsdBridge::udp(addr),
            Target::Unix(path) => StatsdBridge::unix(path),
        }
        // Every update's line, to check each one.
        .aggregation(|_| Aggregation::PerEvent)
        // A Unix datagram socket queues 10 datagrams by default (net.unix.max_dgram_qlen):
        // on a loaded machine the receiving thread may fall that far behind for longer
        // than the default timeout, and a line this test checks would be dropped.
        .send_timeout(Duration::from_secs(5))
    }

    /// Takes datagrams until `lines` lines have come.
    fn lines(&self, lines: u64) -> Result<Vec<String>, Box<dyn std::error::Error>> {
        let mut got = Vec::new();
        while (got.len() as u64) < lines {
            let packet = self.datagrams.recv_timeout(Duration::from_secs(10))?;
            assert!(packet.len() <= MAX_PACKET, "a {}-byte datagram, above {MAX_PACKET}", packet.len());
            let packet = String::from_utf8(packet)?;
            assert!(!packet.ends_with('\n') && !packet.is_empty(), "{packet:?}");
            got.extend(packet.split('\n').map(str::to_owned));
        }
        assert_eq!(got.len() as u64, lines, "{got:#?}");
        Ok(got)
    }
}

/// Reads datagrams with `recv` on a thread until the channel's receiver is gone.
fn read_all(
    mut recv: impl FnMut(&mut [u8]) -> std::io::Result<usize> + Send + 'static,
) -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 65_536];
        while let Ok(n) = recv(&mut buf) {
            if tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    rx
}

fn check_style(receiver: &Receiver, style: TagStyle) -> TestResult {
    // A: the default units (durations as ms, other observations as h), periodic mode.
    let a = receiver
        .bridge()
        .prefix("app")
        .tag("env", "prod")
        .tag_style(style)
        .max_packet_size(MAX_PACKET)
        .build()?;
    // B: durations as h (seconds), other observations as d, one family sampled.
    let b = receiver
        .bridge()
        .prefix("b")
        .tag_style(style)
        .max_packet_size(MAX_PACKET)
        .durations(ObserveAs::Histogram)
        .values(ObserveAs::Distribution)
        .mirror(|family| if &*family.name == "sampled" { Mirror::Sampled(0.5) } else { Mirror::Every })
        .build()?;

    let registry = Registry::new();
    let requests = registry.counter("requests_total", "r").labels(["method", "route"]).register()?;
    let temperature = registry.gauge("temperature_celsius", "t").labels(["sensor"]).register()?;
    let duration = registry
        .histogram("request_duration_seconds", "d")
        .unit("seconds")
        .buckets(Buckets::default())
        .labels(["route"])
        .register()?;
    let payload = registry.summary("payload_bytes", "p").labels([]).register()?;
    let sampled = registry.counter("sampled_total", "s").labels([]).register()?;

    let hostile = a.mirror(&requests, ["GET", HOSTILE]);
    hostile.inc();
    hostile.inc_by(3);
    hostile.inc_by_f64(0.5)?;
    a.mirror(&requests, ["", ROUTE]).inc();
    let t = a.mirror(&temperature, [HOSTILE]);
    t.set(21.5);
    t.set(-3.0);
    t.add(2.0);
    t.sub(0.5);
    t.set(f64::NAN);
    a.mirror(&duration, ["/"]).observe(0.25);
    a.mirror(&duration, ["/"]).observe_duration(Duration::from_micros(1500));
    a.mirror(&payload, []).observe(512.0);
    b.mirror(&duration, ["/"]).observe(0.25);
    b.mirror(&payload, []).observe(512.0);
    let b_sampled = b.mirror(&sampled, []);
    for _ in 0..200 {
        b_sampled.inc();
    }

    let periodic = Registry::new();
    let jobs = periodic.counter("jobs_total", "j").labels(["queue"]).register()?;
    let depth = periodic.gauge("depth", "d").register()?;
    let wait = periodic.histogram("wait_seconds", "w").buckets(Buckets::default()).register()?;
    jobs.with_labels([HOSTILE]).inc_by(5);
    depth.set(-2.0);
    wait.observe(0.5);
    wait.observe(0.5);
    a.flush_registry_every(&periodic, Duration::from_secs(3600))?;
    a.flush()?;
    jobs.with_labels([HOSTILE]).inc_by(2);
    a.flush()?;
    b.flush()?;

    let (sa, sb) = (a.stats(), b.stats());
    assert_eq!(sa.dropped(DropReason::InvalidValue), 1, "the NaN gauge: {sa:?}");
    assert_eq!(sa.dropped_total(), 1, "{sa:?}");
    assert_eq!(sb.dropped_total(), 0, "{sb:?}");
    let received = receiver.lines(sa.sent_lines + sb.sent_lines)?;
    let mut parsed = received.iter().map(|l| parse(style, l)).collect::<Result<Vec<_>, _>>()?;

    // The sampled family: about half of 200, each marked with its rate.
    let sampled_name = "b.sampled_total";
    let sampled_lines = parsed.iter().filter(|l| l.name == sampled_name).count();
    assert!((50..=150).contains(&sampled_lines), "{sampled_lines} of 200 sampled at 0.5");
    let sampled_line = expect(style, sampled_name, &[], "1", "c", Some("0.5"));
    assert!(parsed.iter().filter(|l| l.name == sampled_name).all(|l| *l == sampled_line), "{parsed:?}");
    parsed.retain(|l| l.name != sampled_name);

    let env = ("env", "prod");
    let mut want = vec![
        expect(style, "app.requests_total", &[("method", "GET"), ("route", HOSTILE), env], "1", "c", None),
        expect(style, "app.requests_total", &[("method", "GET"), ("route", HOSTILE), env], "3", "c", None),
        expect(style, "app.requests_total", &[("method", "GET"), ("route", HOSTILE), env], "0.5", "c", None),
        expect(style, "app.requests_total", &[("method", ""), ("route", ROUTE), env], "1", "c", None),
        expect(style, "app.temperature_celsius", &[("sensor", HOSTILE), env], "21.5", "g", None),
        expect(style, "app.temperature_celsius", &[("sensor", HOSTILE), env], "0", "g", None),
        expect(style, "app.temperature_celsius", &[("sensor", HOSTILE), env], "-3", "g", None),
        expect(style, "app.temperature_celsius", &[("sensor", HOSTILE), env], "+2", "g", None),
        expect(style, "app.temperature_celsius", &[("sensor", HOSTILE), env], "-0.5", "g", None),
        expect(style, "app.request_duration_seconds", &[("route", "/"), env], "250", "ms", None),
        expect(style, "app.request_duration_seconds", &[("route", "/"), env], "1.5", "ms", None),
        expect(style, "app.payload_bytes", &[env], "512", "h", None),
        expect(style, "b.request_duration_seconds", &[("route", "/")], "0.25", "h", None),
        expect(style, "b.payload_bytes", &[], "512", "d", None),
        // Periodic: whole totals first, then the delta; gauges every time.
        expect(style, "app.jobs_total", &[("queue", HOSTILE), env], "5", "c", None),
        expect(style, "app.jobs_total", &[("queue", HOSTILE), env], "2", "c", None),
        expect(style, "app.depth", &[env], "0", "g", None),
        expect(style, "app.depth", &[env], "-2", "g", None),
        expect(style, "app.depth", &[env], "0", "g", None),
        expect(style, "app.depth", &[env], "-2", "g", None),
        expect(style, "app.wait_seconds_count", &[env], "2", "c", None),
        expect(style, "app.wait_seconds_sum", &[env], "1", "c", None),
    ];
    parsed.sort();
    want.sort();
    assert_eq!(parsed, want, "{style:?}");

    // Order within a series is kept: a negative gauge's 0 comes right before it.
    let first = |needle: &str| received.iter().position(|l| l.contains("temperature") && l.contains(needle));
    let (zero, minus3) = (first(":0|g"), first(":-3|g"));
    assert!(zero.is_some() && minus3 == zero.map(|z| z + 1), "{received:#?}");
    // No hostile value made a line of its own.
    assert!(!received.iter().any(|l| l.starts_with("evil")), "{received:#?}");
    Ok(())
}

#[test]
fn udp_lines_follow_every_style_grammar() -> TestResult {
    for style in STYLES {
        check_style(&Receiver::udp()?, style)?;
    }
    Ok(())
}

#[test]
fn unix_datagram_lines_follow_every_style_grammar() -> TestResult {
    for style in STYLES {
        check_style(&Receiver::unix()?, style)?;
    }
    Ok(())
}

#[test]
fn a_line_longer_than_a_packet_is_dropped_and_counted() -> TestResult {
    let receiver = Receiver::udp()?;
    let bridge = receiver.bridge().max_packet_size(64).build()?;
    let registry = Registry::new();
    let family = registry.counter("x_total", "x").labels(["v"]).register()?;
    bridge.mirror(&family, [&"long".repeat(20)]).inc();
    bridge.mirror(&family, ["short"]).inc();
    bridge.flush()?;
    assert_eq!(receiver.lines(1)?, ["x_total:1|c|#v:short"]);
    let stats = bridge.stats();
    assert_eq!((stats.dropped(DropReason::Oversize), stats.sent_lines, stats.sent_packets), (1, 1, 1));
    Ok(())
}

#[test]
fn self_metrics_are_a_collector() -> TestResult {
    let receiver = Receiver::udp()?;
    let bridge = receiver.bridge().build()?;
    let registry = Registry::new();
    registry.register_collector(bridge.self_metrics());
    let g = registry.gauge("g", "g").labels([]).register()?;
    bridge.mirror(&g, []).set(f64::INFINITY);
    bridge.mirror(&g, []).set(1.0);
    bridge.flush()?;
    let text = String::from_utf8(registry.encode(herd_core::Format::Text))?;
    let want = [
        "herd_statsd_dropped_total{reason=\"invalid_value\"} 1\n",
        "herd_statsd_dropped_total{reason=\"queue_full\"} 0\n",
        "herd_statsd_sent_lines_total 1\n",
        "herd_statsd_sent_packets_total 1\n",
        "herd_statsd_queued_lines 0\n",
    ];
    for line in want {
        assert!(text.contains(line), "{line:?} missing from\n{text}");
    }
    let by_reason: BTreeMap<_, _> = text
        .lines()
        .filter_map(|l| l.strip_prefix("herd_statsd_dropped_total{reason=\""))
        .filter_map(|l| l.split_once("\"} "))
        .collect();
    assert_eq!(by_reason.len(), DropReason::ALL.len(), "{by_reason:?}");
    drop(bridge);
    assert!(!String::from_utf8(registry.encode(herd_core::Format::Text))?.contains("herd_statsd"));
    Ok(())
}

#[test]
fn a_periodic_source_that_panics_is_dropped_and_the_rest_goes_on() -> TestResult {
    let receiver = Receiver::udp()?;
    let bridge = receiver.bridge().build()?;
    let registry = Registry::new();
    registry.gauge("up", "u").register()?.set(1.0);
    bridge.flush_every(Duration::from_secs(3600), || panic!("a broken source"))?;
    bridge.flush_registry_every(&registry, Duration::from_secs(3600))?;
    let mirrored = Registry::new().counter("after_total", "a").labels([]).register()?;
    bridge.flush()?;
    bridge.mirror(&mirrored, []).inc();
    bridge.flush()?;
    let mut lines = receiver.lines(3)?;
    lines.sort();
    assert_eq!(lines, ["after_total:1|c", "up:1|g", "up:1|g"]);
    Ok(())
}
