//! Not part of the API: the line builder, reachable for herd's fuzz target
//! (`fuzz/src/statsd_line.rs`) and for the tests that replay its inputs. It may change
//! or go away in any release.
//!
//! [`lines`] goes through the very code a bridge runs for a mirrored update: the
//! sample-rate rule, the family's line shape (type, name suffix, scale), the renderer
//! that sanitizes names and tags, the update's validity rules, the number formatting
//! and the way the sender thread joins a negative gauge's two lines. Only the queue,
//! the packet size and the socket are left out.

use herd_core::MetricKind;

pub use crate::update::Update;

use crate::bridge::{sample_rate, LineShape};
use crate::config::{Mirror, ObserveAs};
use crate::render::{LineType, Num, Renderer, TagStyle};

/// A bridge's settings that shape its lines.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The tag style.
    pub style: TagStyle,
    /// The prefix (`StatsdBuilder::prefix`), possibly empty.
    pub prefix: String,
    /// The constant tags (`StatsdBuilder::tag`).
    pub tags: Vec<(String, String)>,
    /// How durations are observed.
    pub durations: ObserveAs,
    /// How other values are observed.
    pub values: ObserveAs,
}

/// What one update becomes.
#[derive(Debug, Clone, PartialEq)]
pub enum Sent {
    /// Not mirrored (`Mirror::Off`), or an update that changes nothing.
    Nothing,
    /// Dropped and counted as `invalid_value`, this many lines.
    Invalid(u64),
    /// The text the sender thread would append to a packet: one line, or two joined
    /// by `\n` for a negative gauge.
    Text(String),
}

/// The text one update of series `labels` of family `name` (`kind`, `unit`) becomes
/// under `settings` and `mirror`, sampling aside (a sampled series is marked with its
/// rate; whether this update is kept is random).
pub fn lines(
    settings: &Settings,
    name: &str,
    kind: MetricKind,
    unit: Option<&str>,
    labels: &[(&str, &str)],
    mirror: Mirror,
    update: Update,
) -> Sent {
    let Some(rate) = sample_rate(mirror) else { return Sent::Nothing };
    let shape = LineShape::of(name, kind, unit, settings.durations, settings.values, rate);
    let renderer = Renderer::new(settings.style, &settings.prefix, &settings.tags);
    let line = renderer.line(&shape.name, labels.iter().copied(), shape.ty, shape.rate);
    let Some(out) = update.outgoing(shape.scale, shape.ty == LineType::Timer) else {
        return Sent::Nothing;
    };
    match Num::new(out.value, out.signed) {
        Some(num) if out.valid => {
            let mut text = String::new();
            line.push_to(&mut text, out.zero_first, num.as_str());
            Sent::Text(text)
        }
        _ => Sent::Invalid(1 + u64::from(out.zero_first)),
    }
}
