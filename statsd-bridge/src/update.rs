//! One update of a series as an observer receives it, and what it sends: shared by
//! the bridge (which makes updates), the pipe (which aggregates them) and the fuzzing
//! entry point. A leaf.

/// One update of a series, as an observer receives it. (Public only through the
/// hidden `fuzzing` module.)
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Update {
    /// `Counter::inc_by(delta)`.
    Counter(f64),
    /// `Gauge::set(value)`.
    GaugeSet(f64),
    /// `Gauge::add(delta)`.
    GaugeAdd(f64),
    /// `Histogram::observe(value)` or `Summary::observe(value)`.
    Observe(f64),
}

/// What an update (not sampled out) sends.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Outgoing {
    /// The number, already scaled.
    pub(crate) value: f64,
    /// Written with a sign even when positive (a relative gauge).
    pub(crate) signed: bool,
    /// Preceded by a line of value 0 (a negative absolute gauge, which StatsD would
    /// otherwise read as a decrement).
    pub(crate) zero_first: bool,
    /// Whether StatsD servers accept it; otherwise it is dropped (`invalid_value`).
    pub(crate) valid: bool,
}

impl Update {
    /// `None`: the update changes nothing and sends nothing.
    #[inline]
    pub(crate) fn outgoing(self, scale: f64, timer: bool) -> Option<Outgoing> {
        let plain = |value, valid| Outgoing { value, signed: false, zero_first: false, valid };
        match self {
            // `0.0` matches -0 too, as `==` does.
            Self::Counter(0.0) => None,
            Self::Counter(delta) => Some(plain(delta, delta > 0.0)),
            Self::GaugeSet(value) => Some(Outgoing { zero_first: value < 0.0, ..plain(value, true) }),
            Self::GaugeAdd(0.0) => None,
            Self::GaugeAdd(delta) => Some(Outgoing { signed: true, ..plain(delta, true) }),
            Self::Observe(value) => {
                let v = value * scale;
                Some(plain(v, !timer || v >= 0.0))
            }
        }
    }
}
