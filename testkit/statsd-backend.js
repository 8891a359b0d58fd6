/* A backend for Etsy statsd, used by herd's tests (herd_testkit::StatsdServer).
 *
 * statsd resets counters and timers at every flush; this backend adds every flush
 * into running totals and writes them, after each flush, as JSON to the file named
 * by the config key `herdOutput` (written to a temp file, then renamed, so a reader
 * never sees half a file).
 *
 * Totals: `counters` (sample rate applied, as statsd applies it), `timer_counts` (raw
 * number of values), `timer_sample_counts` (sample rate applied), `timer_sums`,
 * `gauges` (last value) and `flushes`.
 */
const fs = require('fs');

exports.init = function (startupTime, config, events) {
  const out = config.herdOutput;
  const totals = {
    flushes: 0,
    counters: {},
    timer_counts: {},
    timer_sample_counts: {},
    timer_sums: {},
    gauges: {},
  };
  const add = function (map, key, value) {
    map[key] = (map[key] || 0) + value;
  };
  events.on('flush', function (timestamp, metrics) {
    for (const key in metrics.counters) {
      add(totals.counters, key, metrics.counters[key]);
    }
    for (const key in metrics.timers) {
      const values = metrics.timers[key];
      if (values.length === 0) {
        continue;
      }
      add(totals.timer_counts, key, values.length);
      add(totals.timer_sample_counts, key, metrics.timer_counters[key] || 0);
      add(totals.timer_sums, key, values.reduce(function (a, b) { return a + b; }, 0));
    }
    for (const key in metrics.gauges) {
      totals.gauges[key] = metrics.gauges[key];
    }
    totals.flushes += 1;
    fs.writeFileSync(out + '.tmp', JSON.stringify(totals));
    fs.renameSync(out + '.tmp', out);
  });
  return true;
};
