"""(layer: monitoring; does I/O: HTTP and subprocesses) Notifiers: where a new alert goes besides the store.

Three kinds, from ``stead.yaml``'s ``monitor.notify`` list:

- the **log** (always): one ``WARNING`` line on the ``stead.alerts`` logger;
- a **webhook** ``{webhook: "https://…"}``: the alert as a JSON POST (httpx, 5 s timeout, no redirects followed).
  Link-local addresses (169.254.0.0/16, fe80::/10) and the cloud metadata endpoints (169.254.169.254,
  fd00:ec2::254, 100.100.100.200, 168.63.129.16, metadata.google.internal) are refused — by address, and for
  host names by every address they resolve to — unless ``allow_private=True``: an alert must not become a way
  to read a cloud machine's credentials. Loopback and private networks are allowed (hooks often live there);
- a **command** ``{command: ["notify-send", "stead"]}``: the argv list run with ``shell=False`` (never a shell),
  the alert JSON on its standard input, killed after 10 s.

A notifier never raises into the monitoring loop: each returns a :class:`Delivery` saying whether it worked and,
if not, why; the caller records it.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import socket
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlsplit

__all__ = ["Delivery", "check_webhook_target", "notify", "run_command", "send_webhook"]

log = logging.getLogger("stead.alerts")

WEBHOOK_TIMEOUT = 5.0
COMMAND_TIMEOUT = 10.0
_LINK_LOCAL = (ipaddress.ip_network("169.254.0.0/16"), ipaddress.ip_network("fe80::/10"))
_METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200", "168.63.129.16")
)
_METADATA_HOSTS = frozenset({"metadata.google.internal", "metadata", "instance-data", "instance-data.ec2.internal"})


@dataclass(frozen=True)
class Delivery:
    """The outcome of one notifier for one alert."""

    kind: str
    target: str
    ok: bool
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _forbidden(address: str) -> str | None:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip in _METADATA_ADDRESSES:
        return f"{ip} is a cloud metadata address"
    if any(ip in net for net in _LINK_LOCAL):
        return f"{ip} is a link-local address"
    return None


def check_webhook_target(url: str, allow_private: bool = False) -> str | None:
    """Why a webhook URL is refused, or None when it may be called.

    >>> check_webhook_target("http://169.254.169.254/latest/meta-data/")
    '169.254.169.254 is a cloud metadata address'
    >>> check_webhook_target("http://[fe80::1]:8080/hook")
    'fe80::1 is a link-local address'
    >>> check_webhook_target("http://127.0.0.1:9000/hook") is None
    True
    >>> check_webhook_target("ftp://example.com/x")
    "only http:// and https:// webhooks are allowed, not 'ftp'"
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        return f"only http:// and https:// webhooks are allowed, not {parts.scheme!r}"
    host = (parts.hostname or "").rstrip(".").lower()
    if not host:
        return "the webhook URL has no host"
    if allow_private:
        return None
    if host in _METADATA_HOSTS:
        return f"{host} is a cloud metadata host"
    try:
        return _forbidden(host)
    except ValueError:
        pass  # a name: judge every address it resolves to
    try:
        infos = socket.getaddrinfo(
            host, parts.port or (443 if parts.scheme == "https" else 80), type=socket.SOCK_STREAM
        )
    except OSError as exc:
        return f"cannot resolve {host}: {exc}"
    for info in infos:
        why = _forbidden(str(info[4][0]))
        if why:
            return f"{host} resolves to {why.split(' is ', 1)[0]}, which is {why.split(' is ', 1)[1]}"
    return None


def send_webhook(
    url: str, payload: Mapping[str, Any], *, allow_private: bool = False, timeout: float = WEBHOOK_TIMEOUT
) -> Delivery:
    """POST ``payload`` as JSON to ``url``; never raises."""
    import httpx

    refused = check_webhook_target(url, allow_private)
    if refused:
        return Delivery("webhook", url, False, f"refused: {refused} (set allow_private to allow it)")
    try:
        response = httpx.post(
            url,
            content=json.dumps(payload, default=str).encode(),
            headers={"content-type": "application/json", "user-agent": "stead-alerts"},
            timeout=timeout,
            follow_redirects=False,
        )
    except httpx.HTTPError as exc:
        return Delivery("webhook", url, False, f"{type(exc).__name__}: {exc}")
    if response.status_code >= 300:
        return Delivery("webhook", url, False, f"answered {response.status_code}")
    return Delivery("webhook", url, True, f"answered {response.status_code}")


def run_command(argv: Sequence[str], payload: Mapping[str, Any], *, timeout: float = COMMAND_TIMEOUT) -> Delivery:
    """Run ``argv`` (no shell) with the alert JSON on standard input; never raises."""
    target = " ".join(argv)
    if isinstance(argv, str) or not argv:
        return Delivery("command", str(argv), False, "a command must be a non-empty list of arguments, never a string")
    try:
        done = subprocess.run(
            list(argv),
            input=json.dumps(payload, default=str).encode(),
            capture_output=True,
            timeout=timeout,
            shell=False,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return Delivery("command", target, False, f"killed after {timeout:g} s")
    except OSError as exc:
        return Delivery("command", target, False, f"{type(exc).__name__}: {exc}")
    if done.returncode != 0:
        err = done.stderr.decode(errors="replace").strip()[-300:]
        return Delivery("command", target, False, f"exit status {done.returncode}{': ' + err if err else ''}")
    return Delivery("command", target, True, "exit status 0")


def notify(alert: Mapping[str, Any], notifiers: Sequence[Any] = (), *, allow_private: bool = False) -> list[Delivery]:
    """Send ``alert`` (a JSON-safe dict) to the log and to each notifier (``NotifySpec`` or its dict)."""
    log.warning(
        "alert %s on %s: %s", alert.get("rule"), alert.get("deployment"), alert.get("message") or alert.get("details")
    )
    out = [Delivery("log", "stead.alerts", True)]
    for spec in notifiers:
        data = spec.model_dump() if hasattr(spec, "model_dump") else dict(spec)
        try:
            if data.get("webhook"):
                out.append(send_webhook(str(data["webhook"]), alert, allow_private=allow_private))
            elif data.get("command"):
                out.append(run_command(data["command"], alert))
            else:
                out.append(Delivery("unknown", repr(data), False, "expected {webhook: URL} or {command: [argv…]}"))
        except Exception as exc:  # a notifier must never break the loop that calls it
            out.append(Delivery("error", repr(data), False, f"{type(exc).__name__}: {exc}"))
    for failed in (d for d in out if not d.ok):
        log.warning("alert notifier %s %s failed: %s", failed.kind, failed.target, failed.detail)
    return out
