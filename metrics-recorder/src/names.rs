//! How facade names, label keys and units become Prometheus names.
//!
//! The rules are pure functions of their input, so every process of a service maps a
//! name the same way, whatever order it meets its metrics in.

use metrics::Unit;

/// The Prometheus metric name for the facade name `name`, before the registry's prefix.
///
/// 1. Every character outside `[a-zA-Z0-9_]` becomes `_`: `app.cache.hits` →
///    `app_cache_hits`, `http-requests` → `http_requests`, `größe` → `gr__e` (one `_`
///    per character, not per byte). Colons are replaced too: Prometheus keeps them for
///    recording rules.
/// 2. A name starting with a digit gets a leading `_`: `5xx.errors` → `_5xx_errors`.
/// 3. An empty name stays empty and is refused by the caller (it names nothing).
///
/// Counters then follow herd's own rule: the family is named without `_total` and its
/// samples end in `_total`, so `requests` and `requests_total` are one family.
pub fn metric_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 1);
    if name.starts_with(|c: char| c.is_ascii_digit()) {
        out.push('_');
    }
    out.extend(name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }));
    out
}

/// The Prometheus label name for the facade label key `key`.
///
/// The same character rule as [`metric_name`]; an empty key becomes `_`; a key that
/// starts with `__` (Prometheus reserves those) is written `exported_<key>`, which is
/// how Prometheus itself renames a scraped label that collides with one of its own.
pub fn label_name(key: &str) -> String {
    let mut out = metric_name(key);
    if out.is_empty() {
        out.push('_');
    }
    if out.starts_with("__") {
        out.insert_str(0, "exported_");
    }
    out
}

/// The OpenMetrics unit for a facade [`Unit`], as the name suffix it must match;
/// `None` for [`Unit::Count`], which names no unit.
pub fn unit_name(unit: Unit) -> Option<&'static str> {
    match unit {
        Unit::Count => None,
        other => Some(other.as_str()),
    }
}

/// Whether `family` (a family name) may carry `unit`: OpenMetrics and herd require
/// the name to end with `_<unit>`.
pub(crate) fn name_carries_unit(family: &str, unit: &str) -> bool {
    family.strip_suffix(unit).is_some_and(|rest| rest.ends_with('_'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_to_the_prometheus_character_set() {
        for (facade, prom) in [
            ("app.cache.hits", "app_cache_hits"),
            ("http-requests", "http_requests"),
            ("5xx.errors", "_5xx_errors"),
            ("größe", "gr__e"),
            ("a:b c", "a_b_c"),
            ("ok_name_total", "ok_name_total"),
            ("", ""),
        ] {
            assert_eq!(metric_name(facade), prom, "{facade}");
        }
    }

    #[test]
    fn label_keys_map_to_valid_label_names() {
        for (facade, prom) in [
            ("method", "method"),
            ("http.method", "http_method"),
            ("", "_"),
            ("9lives", "_9lives"),
            ("__name__", "exported___name__"),
            ("ключ", "exported_____"),
        ] {
            let got = label_name(facade);
            assert_eq!(got, prom, "{facade}");
            assert!(herd_core::labels::validate_label_name(&got).is_ok(), "{got}");
        }
    }

    #[test]
    fn units_match_only_a_whole_suffix() {
        assert!(name_carries_unit("latency_seconds", "seconds"));
        assert!(!name_carries_unit("latencyseconds", "seconds"));
        assert!(!name_carries_unit("seconds", "seconds"));
        assert_eq!(unit_name(Unit::Count), None);
        assert_eq!(unit_name(Unit::Bytes), Some("bytes"));
    }
}
