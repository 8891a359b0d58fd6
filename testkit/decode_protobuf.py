#!/usr/bin/env python3
"""Decodes a delimited protobuf exposition (Prometheus' `io.prometheus.client.MetricFamily`
stream) from stdin with Google's `protobuf` package and prints it as JSON.

The message definitions come from fixtures/client_model/metrics.proto, read by the small
parser below into a FileDescriptorProto, so no protoc is needed. The output is a list of
families, each the set fields of its message: repeated fields as lists, messages as
objects, enums by name, integers as numbers, and doubles as Python's repr() in a string
so NaN, +Inf, -Inf and every digit survive JSON. Exits non-zero, with the reason on
stderr, on anything Prometheus 2.42 would refuse to frame: a length varint longer than 5
bytes, a truncated message, or bytes that do not decode.
"""

import json
import os
import re
import sys

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf import timestamp_pb2  # noqa: F401  (registers google/protobuf/timestamp.proto)

PROTO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "client_model", "metrics.proto")

FDP = descriptor_pb2.FieldDescriptorProto
SCALARS = {
    "double": FDP.TYPE_DOUBLE, "float": FDP.TYPE_FLOAT, "int64": FDP.TYPE_INT64, "uint64": FDP.TYPE_UINT64,
    "int32": FDP.TYPE_INT32, "uint32": FDP.TYPE_UINT32, "sint32": FDP.TYPE_SINT32, "sint64": FDP.TYPE_SINT64,
    "bool": FDP.TYPE_BOOL, "string": FDP.TYPE_STRING, "bytes": FDP.TYPE_BYTES,
}
LABELS = {"optional": FDP.LABEL_OPTIONAL, "repeated": FDP.LABEL_REPEATED, "required": FDP.LABEL_REQUIRED}


def parse_proto(text):
    """The subset of proto2 metrics.proto uses: a package, imports, top-level messages
    of scalar, message and enum fields, and top-level enums."""
    text = re.sub(r"//[^\n]*", "", text)
    fdp = descriptor_pb2.FileDescriptorProto(name="io/prometheus/client/metrics.proto", syntax="proto2")
    fdp.package = re.search(r"\bpackage\s+([\w.]+)\s*;", text).group(1)
    fdp.dependency.extend(re.findall(r'\bimport\s+"([^"]+)"\s*;', text))
    enums = set(re.findall(r"\benum\s+(\w+)", text))
    for kind, name, body in re.findall(r"\b(message|enum)\s+(\w+)\s*\{([^}]*)\}", text):
        if kind == "enum":
            e = fdp.enum_type.add(name=name)
            for value, number in re.findall(r"(\w+)\s*=\s*(-?\d+)\s*;", body):
                e.value.add(name=value, number=int(number))
            continue
        m = fdp.message_type.add(name=name)
        for label, typ, field, number in re.findall(r"(optional|repeated|required)\s+([\w.]+)\s+(\w+)\s*=\s*(\d+)", body):
            f = m.field.add(name=field, number=int(number), label=LABELS[label])
            if typ in SCALARS:
                f.type = SCALARS[typ]
            else:
                f.type = FDP.TYPE_ENUM if typ in enums else FDP.TYPE_MESSAGE
                f.type_name = typ if "." in typ else "." + fdp.package + "." + typ
                if not f.type_name.startswith("."):
                    f.type_name = "." + f.type_name
    return fdp


def family_class():
    with open(PROTO, encoding="utf-8") as f:
        fdp = parse_proto(f.read())
    pool = descriptor_pool.Default()
    pool.Add(fdp)
    desc = pool.FindMessageTypeByName(fdp.package + ".MetricFamily")
    return message_factory.GetMessageClass(desc)


def to_json(msg):
    out = {}
    for fd, value in msg.ListFields():
        if is_repeated(fd):
            out[fd.name] = [convert(fd, v) for v in value]
        else:
            out[fd.name] = convert(fd, value)
    return out


def is_repeated(fd):
    # protobuf 6 added `is_repeated`; 7 dropped `label`.
    repeated = getattr(fd, "is_repeated", None)
    return repeated if repeated is not None else fd.label == fd.LABEL_REPEATED


def convert(fd, value):
    if fd.type == fd.TYPE_MESSAGE:
        return to_json(value)
    if fd.type == fd.TYPE_ENUM:
        return fd.enum_type.values_by_number[value].name
    if fd.type in (fd.TYPE_DOUBLE, fd.TYPE_FLOAT):
        return repr(float(value))
    return value


def read_varint(data, pos):
    shift = result = 0
    start = pos
    while True:
        if pos >= len(data):
            raise ValueError(f"truncated length varint at byte {start}")
        b = data[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            break
        shift += 7
    if pos - start > 5:
        raise ValueError(f"length varint of {pos - start} bytes at byte {start} (Prometheus allows 5)")
    return result, pos


def main():
    data = sys.stdin.buffer.read()
    family = family_class()
    families, pos = [], 0
    while pos < len(data):
        length, body = read_varint(data, pos)
        if body + length > len(data):
            raise ValueError(f"message of {length} bytes at byte {body} runs past the end ({len(data)} bytes)")
        mf = family()
        mf.ParseFromString(data[body:body + length])
        families.append(to_json(mf))
        pos = body + length
    json.dump(families, sys.stdout, ensure_ascii=False)


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # the reason, for the Rust side's error message
        print(f"{type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
