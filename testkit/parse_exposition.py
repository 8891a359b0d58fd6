#!/usr/bin/env python3
"""Parse a Prometheus exposition with client_python and print it as JSON.

Usage: parse_exposition.py text|openmetrics < exposition

`text` uses prometheus_client.parser (text format 0.0.4) and `openmetrics`
uses prometheus_client.openmetrics.parser (OpenMetrics 1.0). The output is a
JSON list of families:

    {"name", "type", "documentation", "unit",
     "samples": [{"name", "labels": {...}, "value": "<repr>",
                  "exemplar": null | {"labels", "value", "timestamp"}}]}

Values and timestamps are strings holding Python's shortest round-trip repr
(ints as decimal digits), with non-finite values spelled "NaN", "+Inf" and
"-Inf", so that the Rust side parses them exactly. A missing exemplar
timestamp is null.

Exit codes: 0 parsed, 1 parse (or decode) error with the message on stderr,
2 usage or import error.
"""

import json
import math
import sys


def number(v):
    """Render an int/float (or Timestamp) as an exactly parseable string."""
    if isinstance(v, bool):
        v = int(v)
    if isinstance(v, int):
        return str(v)
    if not isinstance(v, float):
        v = float(v)
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return repr(v)


def exemplar(e):
    if e is None:
        return None
    return {
        "labels": dict(e.labels),
        "value": number(e.value),
        "timestamp": None if e.timestamp is None else number(e.timestamp),
    }


def main(argv):
    if len(argv) != 2 or argv[1] not in ("text", "openmetrics"):
        sys.stderr.write("usage: parse_exposition.py text|openmetrics < exposition\n")
        return 2
    try:
        if argv[1] == "text":
            from prometheus_client.parser import text_string_to_metric_families
        else:
            from prometheus_client.openmetrics.parser import (
                text_string_to_metric_families,
            )
    except ImportError as err:
        sys.stderr.write(
            "cannot import prometheus_client ({}): run scripts/install-test-deps.sh\n".format(err)
        )
        return 2

    try:
        text = sys.stdin.buffer.read().decode("utf-8")
        families = []
        # The parsers are generators: errors surface while iterating, so the
        # whole conversion stays inside the try block.
        for fam in text_string_to_metric_families(text):
            families.append(
                {
                    "name": fam.name,
                    "type": fam.type,
                    "documentation": fam.documentation,
                    "unit": fam.unit,
                    "samples": [
                        {
                            "name": s.name,
                            "labels": dict(s.labels),
                            "value": number(s.value),
                            "exemplar": exemplar(s.exemplar),
                        }
                        for s in fam.samples
                    ],
                }
            )
    except Exception as err:  # noqa: BLE001 - any parser failure is reported
        sys.stderr.write("parse error ({}): {}\n".format(type(err).__name__, err))
        return 1

    # ASCII-only JSON: independent of the locale's stdout encoding.
    json.dump(families, sys.stdout, ensure_ascii=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
