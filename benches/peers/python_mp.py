#!/usr/bin/env python3
"""Python prometheus_client multiprocess mode, populated with the scrape-compare shape.

Usage: python_mp.py --workers W --series S [--runs N]

Forks W worker processes (os.fork, after PROMETHEUS_MULTIPROC_DIR is set and before
any metric exists, as a pre-fork server does). Each creates `http_requests_total`
(counter) and `http_request_duration_seconds` (histogram, the 11 Prometheus default
buckets, given explicitly because client_python's own default has 15), both with
labels method, route and status, increments each of S counter series once and
observes once into each of S/10 histogram series, then exits. The label sets and
observed values follow `herd_benches::scrape` exactly (see that module).

The parent then times a scrape N times, the way an exporter serves /metrics: a new
CollectorRegistry with a MultiProcessCollector, then generate_latest(). It checks
that the output parses (client_python's own parser) and holds exactly W*S counter
increments over S series and W*(S/10) observations over S/10 histogram series, so
that herd and this peer provably did the same work. It prints one line:

    python_ms=<median> python_bytes=<n> python_mad_ms=<f> python_runs=<n> python_version=<v>
    python_apparent_bytes=<n>

python_bytes is the disk space of the directory's files: the sum of st_blocks * 512
(allocated blocks, not the apparent size), as herd's figure is measured;
python_apparent_bytes is the sum of their lengths.
"""

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time

METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH"]
STATUSES = ["200", "201", "204", "400", "404", "500"]
# One value per bucket of the default bounds, +Inf included.
OBSERVED = [0.003, 0.007, 0.02, 0.04, 0.08, 0.2, 0.4, 0.8, 2.0, 4.0, 8.0, 12.0]
DEFAULT_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]
LABEL_NAMES = ["method", "route", "status"]


def labels(i):
    """The label values of series i (see herd_benches::scrape::label_values)."""
    return (METHODS[i % 5], "/api/v1/resource_%03d/{id}" % (i // 30), STATUSES[(i // 5) % 6])


def populate(series):
    # Imported here, in the child, after the parent set PROMETHEUS_MULTIPROC_DIR:
    # client_python picks its value class at import time.
    from prometheus_client import Counter, Histogram

    requests = Counter("http_requests_total", "HTTP requests handled.", LABEL_NAMES, registry=None)
    durations = Histogram(
        "http_request_duration_seconds",
        "HTTP request latency.",
        LABEL_NAMES,
        buckets=DEFAULT_BUCKETS,
        registry=None,
    )
    for i in range(series):
        requests.labels(*labels(i)).inc()
    for j in range(series // 10):
        durations.labels(*labels(j)).observe(OBSERVED[j % len(OBSERVED)])


def disk_bytes(path):
    """(allocated bytes, apparent bytes) of the regular files in path."""
    allocated = apparent = 0
    for entry in os.scandir(path):
        if entry.is_file(follow_symlinks=False):
            st = entry.stat(follow_symlinks=False)
            allocated += st.st_blocks * 512
            apparent += st.st_size
    return allocated, apparent


def check(text, workers, series):
    from prometheus_client.parser import text_string_to_metric_families

    counter_total = 0.0
    counter_series = 0
    histogram_count = 0.0
    histogram_series = 0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "http_requests_total":
                counter_total += sample.value
                counter_series += 1
            elif sample.name == "http_request_duration_seconds_count":
                histogram_count += sample.value
                histogram_series += 1
    expected = (workers * series, series, workers * (series // 10), series // 10)
    got = (counter_total, counter_series, histogram_count, histogram_series)
    if tuple(float(x) for x in got) != tuple(float(x) for x in expected):
        raise SystemExit(
            "python_mp.py: wrong aggregate: (counter total, counter series, histogram count, "
            "histogram series) = %r, expected %r" % (got, expected)
        )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, required=True)
    parser.add_argument("--series", type=int, required=True)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    if args.workers < 1 or args.series < 1 or args.runs < 1:
        raise SystemExit("python_mp.py: --workers, --series and --runs must be at least 1")

    directory = tempfile.mkdtemp(prefix="herd-scrape-python-")
    try:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
        children = []
        for _ in range(args.workers):
            pid = os.fork()
            if pid == 0:
                code = 0
                try:
                    populate(args.series)
                except BaseException as e:  # report anything, never return into the parent's code
                    print("python_mp.py: worker %d failed: %r" % (os.getpid(), e), file=sys.stderr)
                    code = 1
                finally:
                    os._exit(code)
            children.append(pid)
        failed = 0
        for pid in children:
            _, status = os.waitpid(pid, 0)
            if os.waitstatus_to_exitcode(status) != 0:
                failed += 1
        if failed:
            raise SystemExit("python_mp.py: %d of %d workers failed" % (failed, args.workers))

        from prometheus_client import CollectorRegistry, generate_latest
        from prometheus_client.multiprocess import MultiProcessCollector
        import importlib.metadata

        times = []
        text = b""
        for _ in range(args.runs):
            start = time.perf_counter()
            registry = CollectorRegistry()
            MultiProcessCollector(registry, path=directory)
            text = generate_latest(registry)
            times.append((time.perf_counter() - start) * 1e3)
        check(text.decode("utf-8"), args.workers, args.series)
        median = statistics.median(times)
        mad = statistics.median(abs(t - median) for t in times)
        allocated, apparent = disk_bytes(directory)
        print(
            "python_ms=%.3f python_bytes=%d python_mad_ms=%.3f python_runs=%d python_version=%s "
            "python_apparent_bytes=%d"
            % (median, allocated, mad, args.runs, importlib.metadata.version("prometheus_client"), apparent)
        )
    finally:
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
