"""Guest records as CloudEvents 1.0 in structured JSON mode, and the canonical form a signature covers.

CloudEvents 1.0 (github.com/cloudevents/spec, ``cloudevents/spec.md`` and
``cloudevents/formats/json-format.md``). One event per recorded entry:
``specversion`` "1.0", a UUID4 ``id``, ``source``
``sysmon-exporter://<host>/vm/<vm>``, ``type`` :data:`ROW_TYPE`,
:data:`HELLO_TYPE`, :data:`LIFECYCLE_TYPE` (the channel events), or the type a
guest gave its own event, ``time`` the host's receive time (RFC 3339, UTC),
``datacontenttype`` application/json and ``data`` what the guest sent.
Extension attributes (lowercase alphanumerics, CloudEvents' rule):

- ``hostmonons``: the host's monotonic receive time in nanoseconds;
- ``guesttime``: the guest's own wall time (a row's ``wall_ns`` in RFC 3339
  with nanoseconds, or the ``time`` of a guest's own event, as it was sent);
- ``guestmonons``: a row's ``mono_ns``;
- ``guestid``, ``guestsource``: the ``id`` and ``source`` of a guest's own
  event, which the host replaces with its own;
- ``sysmonsig``: the base64 Ed25519 signature (RFC 8032).

Nanosecond values are decimal strings: a CloudEvents Integer is 32 bits.

The signature covers :func:`canonical`: the JSON Canonicalization Scheme
(RFC 8785) of the whole event object without ``sysmonsig``, with one
deliberate difference: an integer outside I-JSON's +-(2**53 - 1) is written
as its exact decimal digits where RFC 8785 would round it through a double
(guests send nanosecond timestamps near 2**61, whose low digits a signature
must still cover). Every other value is written exactly as RFC 8785 writes it
(tests/guest/test_cloudevent.py compares with the rfc8785 package).

Building and validating go through the ``cloudevents`` package (the
``cloudevents`` extra); this module imports it only when an event is made.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import quote

SPECVERSION = "1.0"
ROW_TYPE = "io.sysmon.guest.row.v1"
HELLO_TYPE = "io.sysmon.guest.hello.v1"
LIFECYCLE_TYPE = "io.sysmon.guest.lifecycle.v1"
SIG = "sysmonsig"
# Attributes the host sets on a guest's own event; a guest cannot send them.
HOST_ATTRIBUTES = frozenset({"hostmonons", "guesttime", "guestmonons", "guestid", "guestsource", SIG})
HOST_TYPE_PREFIX = "io.sysmon."  # types only the host writes
MAX_ATTRIBUTES = 32
MAX_ATTRIBUTE_TEXT = 1024
_EXTENSION_NAME = re.compile(r"[a-z0-9]{1,20}")  # spec.md, "Attribute Naming Convention"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_CORE = frozenset({"specversion", "id", "source", "type", "time", "datacontenttype", "dataschema", "subject"})


class InvalidEvent(ValueError):
    """A guest's CloudEvent the host does not record."""


def sdk_missing() -> str:
    return "needs the cloudevents package; pip install 'sysmon-exporter[cloudevents]'"


def _sdk() -> Any:
    from cloudevents.core.v1.event import CloudEvent

    return CloudEvent


# --- the canonical form ---


def _number(value: float) -> str:
    """ECMAScript's Number::toString (RFC 8785 section 3.2.2.3) of a finite double."""
    if value == 0:
        return "0"  # -0 too
    sign = "-" if value < 0 else ""
    t = Decimal(repr(abs(value))).normalize().as_tuple()  # repr: the shortest digits that round-trip
    digits = "".join(map(str, t.digits))
    assert isinstance(t.exponent, int)
    k, n = len(digits), len(digits) + t.exponent  # value = 0.digits * 10**n
    if k <= n <= 21:
        return sign + digits + "0" * (n - k)
    if 0 < n <= 21:
        return sign + digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return sign + "0." + "0" * -n + digits
    e = n - 1
    mantissa = digits[0] + ("." + digits[1:] if k > 1 else "")
    return f"{sign}{mantissa}e{'+' if e > 0 else '-'}{abs(e)}"


def _write(value: Any, out: list[str]) -> None:
    if value is None or isinstance(value, bool):
        out.append({None: "null", True: "true", False: "false"}[value])
    elif isinstance(value, int):
        out.append(str(value))
    elif isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError("NaN and infinities have no JSON form")
        out.append(_number(value))
    elif isinstance(value, str):
        # json.dumps escapes what RFC 8785 3.2.2.2 escapes, the same way (\b \t \n \f \r, else \u00xx)
        out.append(json.dumps(value, ensure_ascii=False))
    elif isinstance(value, list | tuple):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _write(item, out)
        out.append("]")
    elif isinstance(value, dict):
        out.append("{")
        for i, key in enumerate(sorted(value, key=lambda k: k.encode("utf-16-be"))):  # UTF-16 code units
            if not isinstance(key, str):
                raise TypeError(f"object key {key!r} is not a string")
            if i:
                out.append(",")
            out.append(json.dumps(key, ensure_ascii=False))
            out.append(":")
            _write(value[key], out)
        out.append("}")
    else:
        raise TypeError(f"{type(value).__name__} has no JSON form")


def jcs(value: Any) -> bytes:
    """RFC 8785 canonical JSON of ``value``, big integers exact (see the module docstring)."""
    out: list[str] = []
    _write(value, out)
    return "".join(out).encode("utf-8")


def canonical(event: dict[str, Any]) -> bytes:
    """The bytes the signature of ``event`` covers: :func:`jcs` of the event without ``sysmonsig``."""
    return jcs({k: v for k, v in event.items() if k != SIG})


# --- building events ---


def _rfc3339(ns: int) -> str:
    seconds, frac = divmod(ns, 1_000_000_000)
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{frac:09d}Z"


def source(host: str, vm: str) -> str:
    return f"sysmon-exporter://{quote(host, safe='')}/vm/{quote(vm, safe='')}"


def from_entry(entry: dict[str, Any], host: str) -> dict[str, Any]:
    """The structured-mode event (a JSON object) of one re-stamped entry from the ingest.

    An entry holds ``vm``, ``host_wall_ns``, ``host_mono_ns`` and one of ``row``,
    ``hello``, ``lifecycle`` (the channel event's name) or ``cloudevent`` (a
    guest's own event, checked by :func:`check_guest_event`). The event is
    built and validated by the ``cloudevents`` package.
    """
    wall, mono = entry["host_wall_ns"], entry["host_mono_ns"]
    attributes: dict[str, Any] = {
        "specversion": SPECVERSION,
        "id": str(uuid.uuid4()),
        "source": source(host, entry["vm"]),
        "time": datetime.fromtimestamp(wall // 1_000_000_000, UTC).replace(microsecond=wall % 1_000_000_000 // 1000),
        "datacontenttype": "application/json",
        "hostmonons": str(mono),
    }
    data: Any
    if "row" in entry:
        data = entry["row"]
        attributes["type"] = ROW_TYPE
        if isinstance(data.get("wall_ns"), int):
            attributes["guesttime"] = _rfc3339(data["wall_ns"])
        if isinstance(data.get("mono_ns"), int):
            attributes["guestmonons"] = str(data["mono_ns"])
    elif "hello" in entry:
        data, attributes["type"] = entry["hello"], HELLO_TYPE
    elif "lifecycle" in entry:
        data, attributes["type"] = {"event": entry["lifecycle"]}, LIFECYCLE_TYPE
    else:
        guest = entry["cloudevent"]
        del attributes["datacontenttype"]  # the guest's own, if it gave one
        attributes.update({k: v for k, v in guest.items() if k not in ("data", "data_base64", "id", "source", "time")})
        attributes.update(guestid=guest["id"], guestsource=guest["source"])
        if "time" in guest:
            attributes["guesttime"] = guest["time"]
        data = guest.get("data")
    event = _sdk()(attributes, data)  # raises CloudEventValidationError on an invalid event
    out: dict[str, Any] = dict(event.get_attributes())
    out["time"] = out["time"].isoformat().replace("+00:00", "Z")
    guest_data = entry.get("cloudevent", {"data": data})
    for key in ("data", "data_base64"):
        if key in guest_data:
            out[key] = guest_data[key]
    return out


# --- a guest's own events ---


def _text(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidEvent(f"{name} is not a non-empty string")
    if len(value) > MAX_ATTRIBUTE_TEXT or _CONTROL.search(value):
        raise InvalidEvent(f"{name} is longer than {MAX_ATTRIBUTE_TEXT} characters or holds a control character")
    return value


def check_guest_event(msg: dict[str, Any]) -> dict[str, Any]:
    """``msg`` if it is a structured-mode CloudEvents 1.0 event the host records; else :class:`InvalidEvent`.

    On top of what the ``cloudevents`` package checks: every attribute a
    bounded string (extensions may be booleans or integers), at most
    :data:`MAX_ATTRIBUTES` attributes, no attribute the host sets
    (:data:`HOST_ATTRIBUTES`), no ``io.sysmon.`` type, ``time`` in RFC 3339,
    and ``data`` or ``data_base64``, not both.
    """
    if len(msg) > MAX_ATTRIBUTES:
        raise InvalidEvent(f"more than {MAX_ATTRIBUTES} attributes")
    for name in ("id", "source", "type"):
        _text(msg.get(name), name)
    for name, value in msg.items():
        if name in ("data", "data_base64"):
            continue
        if name not in _CORE and not _EXTENSION_NAME.fullmatch(name):
            raise InvalidEvent(f"attribute {name[:24]!r} is not 1-20 lowercase letters or digits")
        if name in HOST_ATTRIBUTES:
            raise InvalidEvent(f"attribute {name!r} is set by the host")
        if name not in _CORE and (isinstance(value, bool) or (isinstance(value, int) and -(2**31) <= value < 2**31)):
            continue
        _text(value, name)
    if msg["type"].startswith(HOST_TYPE_PREFIX):
        raise InvalidEvent(f"type {msg['type'][:32]!r} is reserved for the host's own events")
    if "data" in msg and "data_base64" in msg:
        raise InvalidEvent("both data and data_base64")
    attributes = {k: v for k, v in msg.items() if k not in ("data", "data_base64")}
    if "time" in attributes:
        try:
            attributes["time"] = datetime.fromisoformat(attributes["time"])
        except ValueError:
            raise InvalidEvent("time is not an RFC 3339 timestamp") from None
        if attributes["time"].tzinfo is None:
            raise InvalidEvent("time has no UTC offset")
    try:
        _sdk()(attributes, msg.get("data"))
    except ImportError:
        raise
    except Exception as e:  # CloudEventValidationError, or whatever else the SDK raises for what a guest sent
        raise InvalidEvent(f"{type(e).__name__}: {str(e)[:100]}") from None
    return msg
