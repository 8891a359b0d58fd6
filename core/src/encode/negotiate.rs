//! Choosing a format from an HTTP `Accept` header.

use super::Format;

/// Picks the format to answer a request with, from its `Accept` header.
///
/// The acceptable entry with the highest `q` wins (the earlier one on a tie); an
/// OpenMetrics entry must name version 1.0.0, 0.0.1 or none, a `text/plain` entry
/// version 0.0.4 or none. [`Format::Protobuf`] is chosen only for an entry that names
/// it in full, `application/vnd.google.protobuf` with
/// `proto=io.prometheus.client.MetricFamily` and `encoding=delimited` (what Prometheus
/// sends with native histograms enabled); no wildcard reaches it, so a client that does
/// not ask for protobuf never gets it. No header, an unparsable one, or one that names
/// nothing herd writes gives [`Format::Text`]: every Prometheus understands 0.0.4.
///
/// # Examples
///
/// ```
/// use herd_core::{negotiate, Format};
/// // What Prometheus 2.42 sends:
/// let accept = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
/// assert_eq!(negotiate(Some(accept)), Format::OpenMetrics);
/// // With `--enable-feature=native-histograms`:
/// let native = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited,application/openmetrics-text;version=1.0.0;q=0.8,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
/// assert_eq!(negotiate(Some(native)), Format::Protobuf);
/// assert_eq!(negotiate(None), Format::Text);
/// assert_eq!(negotiate(Some("application/json")), Format::Text);
/// ```
pub fn negotiate(accept: Option<&str>) -> Format {
    negotiate_among(accept, &[Format::Text, Format::OpenMetrics, Format::Protobuf]).unwrap_or(Format::Text)
}

/// Like [`negotiate`], but only among `offered` formats, and `None` when the header
/// accepts none of them (no header accepts anything: the first offered format).
///
/// A server that must answer in 0.0.4 whatever the client prefers offers only
/// [`Format::Text`]; Prometheus' header still accepts it at a lower `q`.
pub fn negotiate_among(accept: Option<&str>, offered: &[Format]) -> Option<Format> {
    let Some(accept) = accept.filter(|a| !a.trim().is_empty()) else {
        return offered.first().copied();
    };
    let mut best: Option<(f32, Format)> = None;
    for entry in accept.split(',') {
        let Some((q, formats)) = parse_entry(entry) else { continue };
        if q <= 0.0 || best.is_some_and(|(best_q, _)| q <= best_q) {
            continue;
        }
        if let Some(f) = formats.iter().find(|f| offered.contains(f)) {
            best = Some((q, *f));
        }
    }
    best.map(|(_, f)| f)
}

/// The quality of one `Accept` entry and the formats it accepts, most specific first.
fn parse_entry(entry: &str) -> Option<(f32, &'static [Format])> {
    let mut parts = entry.split(';');
    let media = parts.next()?.trim();
    let mut q = 1.0f32;
    let (mut version, mut proto, mut encoding) = (None, None, None);
    for param in parts {
        let (k, v) = param.split_once('=')?;
        let v = v.trim().trim_matches('"');
        match k.trim().to_ascii_lowercase().as_str() {
            "q" => q = v.parse().ok().filter(|q: &f32| (0.0..=1.0).contains(q))?,
            "version" => version = Some(v),
            "proto" => proto = Some(v),
            "encoding" => encoding = Some(v),
            _ => {}
        }
    }
    let formats: &'static [Format] = if media.eq_ignore_ascii_case("application/openmetrics-text") {
        match version {
            None | Some("1.0.0" | "0.0.1") => &[Format::OpenMetrics],
            Some(_) => &[],
        }
    } else if media.eq_ignore_ascii_case("text/plain") {
        match version {
            None | Some("0.0.4") => &[Format::Text],
            Some(_) => &[],
        }
    } else if media.eq_ignore_ascii_case("application/vnd.google.protobuf") {
        // client_golang's rule: the message must be named, and only the delimited
        // framing is written (not `text` or `compact-text`).
        match (proto, encoding) {
            (Some("io.prometheus.client.MetricFamily"), Some("delimited")) => &[Format::Protobuf],
            _ => &[],
        }
    } else if media == "*/*" || media.eq_ignore_ascii_case("text/*") {
        &[Format::Text]
    } else if media.eq_ignore_ascii_case("application/*") {
        &[Format::OpenMetrics]
    } else {
        &[]
    };
    Some((q, formats))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROMETHEUS_2_42: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    const PROMETHEUS_3: &str = "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.3,text/plain;version=0.0.4;q=0.2,*/*;q=0.1";
    const PROMETHEUS_NATIVE: &str = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited,application/openmetrics-text;version=1.0.0;q=0.8,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

    #[test]
    fn what_prometheus_sends() {
        assert_eq!(negotiate(Some(PROMETHEUS_2_42)), Format::OpenMetrics);
        assert_eq!(negotiate(Some(PROMETHEUS_3)), Format::OpenMetrics);
        assert_eq!(negotiate(Some(PROMETHEUS_NATIVE)), Format::Protobuf);
        assert_eq!(negotiate_among(Some(PROMETHEUS_2_42), &[Format::Text]), Some(Format::Text));
        // A server that does not offer protobuf answers Prometheus' second choice.
        assert_eq!(
            negotiate_among(Some(PROMETHEUS_NATIVE), &[Format::Text, Format::OpenMetrics]),
            Some(Format::OpenMetrics)
        );
        assert_eq!(negotiate_among(Some(PROMETHEUS_NATIVE), &[Format::Text]), Some(Format::Text));
    }

    #[test]
    fn protobuf_only_when_named_in_full() {
        let full =
            "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited";
        assert_eq!(negotiate(Some(full)), Format::Protobuf);
        assert_eq!(
            negotiate(Some("Application/Vnd.Google.Protobuf; proto=\"io.prometheus.client.MetricFamily\"; encoding=delimited")),
            Format::Protobuf
        );
        for not_delimited in [
            "application/vnd.google.protobuf",
            "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily",
            "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=text",
            "application/vnd.google.protobuf;proto=other.Message;encoding=delimited",
            "application/*",
            "*/*",
        ] {
            assert_ne!(negotiate(Some(not_delimited)), Format::Protobuf, "{not_delimited}");
        }
        assert_eq!(negotiate(Some(&format!("{full};q=0.4,text/plain;q=0.5"))), Format::Text);
        assert_eq!(negotiate(Some(&format!("{full};q=0"))), Format::Text);
    }

    #[test]
    fn fallbacks() {
        assert_eq!(negotiate(None), Format::Text);
        assert_eq!(negotiate(Some("")), Format::Text);
        assert_eq!(negotiate(Some("*/*")), Format::Text);
        assert_eq!(negotiate(Some("text/html,application/json")), Format::Text);
        assert_eq!(negotiate(Some(";;;,,=q")), Format::Text);
        assert_eq!(negotiate(Some("application/openmetrics-text;version=2.0.0")), Format::Text);
        assert_eq!(negotiate_among(Some("application/json"), &[Format::Text]), None);
    }

    #[test]
    fn quality_decides() {
        assert_eq!(negotiate(Some("text/plain;q=0.9, application/openmetrics-text;q=0.5")), Format::Text);
        assert_eq!(
            negotiate(Some("text/plain;q=0.5, Application/OpenMetrics-Text; q=0.9")),
            Format::OpenMetrics
        );
        assert_eq!(negotiate(Some("application/openmetrics-text;q=0, text/plain")), Format::Text);
        assert_eq!(negotiate(Some("application/openmetrics-text;q=2")), Format::Text);
        assert_eq!(negotiate(Some("application/openmetrics-text;q=nan")), Format::Text);
    }
}
