"""nsqd's TLS settings: option parsers, server/client contexts, connection facts.

Mirrors NSQ 1.3 (``nsqd.go`` ``buildTLSConfig``/``buildClientTLSConfig`` and the
``tls-required``/``tls-min-version`` flag types of ``apps/nsqd/options.go``).

Deviation: ``--tls-client-auth-policy=require`` (Go's ``RequireAnyClientCert``) asks
for a client certificate *and verifies it* against ``--tls-root-ca-file`` (or the
system roots): Python's ``ssl`` cannot require a certificate without verifying it.
"""

from __future__ import annotations

import logging
import ssl
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import trio

    from .options import Options

__all__ = [
    "TLS_NOT_REQUIRED",
    "TLS_REQUIRED",
    "TLS_REQUIRED_EXCEPT_HTTP",
    "TLSInfo",
    "build_client_context",
    "build_server_context",
    "format_tls_min_version",
    "parse_tls_min_version",
    "parse_tls_required",
]

logger = logging.getLogger(__name__)

#: values of ``--tls-required`` (NSQ's constants)
TLS_NOT_REQUIRED = 0
TLS_REQUIRED_EXCEPT_HTTP = 1
TLS_REQUIRED = 2

#: Go's ``tls.VersionXXX`` numbers, which ``--tls-min-version`` stores
VERSION_SSL30 = 0x0300
VERSION_TLS10 = 0x0301
VERSION_TLS11 = 0x0302
VERSION_TLS12 = 0x0303
VERSION_TLS13 = 0x0304
_VERSION_NAMES = {"ssl3.0": VERSION_SSL30, "tls1.0": VERSION_TLS10, "tls1.1": VERSION_TLS11,
                  "tls1.2": VERSION_TLS12, "tls1.3": VERSION_TLS13}
_SSL_VERSIONS = {VERSION_SSL30: ssl.TLSVersion.TLSv1, VERSION_TLS10: ssl.TLSVersion.TLSv1,
                 VERSION_TLS11: ssl.TLSVersion.TLSv1_1, VERSION_TLS12: ssl.TLSVersion.TLSv1_2,
                 VERSION_TLS13: ssl.TLSVersion.TLSv1_3}
_GO_BOOL_TRUE = frozenset(("1", "t", "T", "TRUE", "true", "True"))
_GO_BOOL_FALSE = frozenset(("0", "f", "F", "FALSE", "false", "False"))

_CLIENT_AUTH_POLICIES = ("", "require", "require-verify")


def parse_tls_required(value: str) -> int:
    """``--tls-required``: ``tcp-https`` or a Go boolean (true → fully required).

    Raises:
        ValueError: neither.
    """
    text = value.strip()
    if text.lower() == "tcp-https":
        return TLS_REQUIRED_EXCEPT_HTTP
    if text in _GO_BOOL_TRUE:
        return TLS_REQUIRED
    if text in _GO_BOOL_FALSE:
        return TLS_NOT_REQUIRED
    raise ValueError(f"invalid tls-required {value!r} (true, false or tcp-https)")


def parse_tls_min_version(value: str) -> int:
    """``--tls-min-version``: ``ssl3.0``, ``tls1.0`` … ``tls1.3`` → Go's version number.

    A number (as a config file may hold after ``GET /config``) is accepted as is.

    Raises:
        ValueError: unknown version.
    """
    text = value.strip().lower()
    if text == "":
        return VERSION_TLS10
    if text in _VERSION_NAMES:
        return _VERSION_NAMES[text]
    if text.isdigit() and int(text) in _SSL_VERSIONS:
        return int(text)
    raise ValueError(f"unknown tlsVersionOption {value!r}")


def format_tls_min_version(version: int) -> str:
    for name, number in _VERSION_NAMES.items():
        if number == version:
            return name
    return str(version)


def validate(opts: Options) -> None:
    """NSQ's option checks for TLS and auth (raised as ValueError by Options).

    A client auth policy without ``--tls-required`` turns it on, as in ``nsqd.New``.
    """
    if opts.tls_client_auth_policy not in _CLIENT_AUTH_POLICIES:
        raise ValueError(f"--tls-client-auth-policy must be require or require-verify, "
                         f"not {opts.tls_client_auth_policy!r}")
    if opts.tls_client_auth_policy and opts.tls_required == TLS_NOT_REQUIRED:
        opts.tls_required = TLS_REQUIRED
    if opts.tls_required not in (TLS_NOT_REQUIRED, TLS_REQUIRED_EXCEPT_HTTP, TLS_REQUIRED):
        raise ValueError(f"invalid --tls-required {opts.tls_required}")
    if opts.tls_min_version not in _SSL_VERSIONS:
        raise ValueError(f"invalid --tls-min-version {opts.tls_min_version}")
    if not (opts.tls_cert and opts.tls_key) and opts.tls_required != TLS_NOT_REQUIRED:
        raise ValueError("cannot require TLS client connections without TLS key and cert")
    if opts.auth_http_request_method not in ("get", "post"):
        raise ValueError("--auth-http-request-method must be post or get")


def _min_version(ctx: ssl.SSLContext, version: int) -> None:
    if version == VERSION_SSL30:
        logger.warning("TLS: SSL 3.0 is not supported by this TLS library; using TLS 1.0 as minimum")
    try:
        ctx.minimum_version = _SSL_VERSIONS[version]
    except (ValueError, ssl.SSLError) as exc:  # pragma: no cover - depends on OpenSSL build
        logger.warning("TLS: cannot set minimum version %s - %s", format_tls_min_version(version), exc)


def build_server_context(opts: Options) -> ssl.SSLContext | None:
    """The context of nsqd's TLS (TCP upgrade and HTTPS), or None without cert/key.

    Raises:
        ValueError: ``failed to build TLS config - ...`` (unreadable cert/key/CA).
    """
    if not opts.tls_cert and not opts.tls_key:
        return None
    files = f"--tls-cert {opts.tls_cert}, --tls-key {opts.tls_key}"
    try:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        _min_version(ctx, opts.tls_min_version)
        ctx.load_cert_chain(opts.tls_cert, opts.tls_key)
        files = f"--tls-root-ca-file {opts.tls_root_ca_file}"
        if opts.tls_root_ca_file:
            ctx.load_verify_locations(cafile=opts.tls_root_ca_file)
        else:
            ctx.load_default_certs(ssl.Purpose.CLIENT_AUTH)
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f"failed to build TLS config - {exc} ({files})") from exc
    policy = opts.tls_client_auth_policy
    # without a policy NSQ uses tls.NoClientCert: no certificate is asked for, so one a
    # client offers anyway (self-signed, say) is neither requested nor verified
    ctx.verify_mode = ssl.CERT_REQUIRED if policy in ("require", "require-verify") else ssl.CERT_NONE
    return ctx


def build_client_context(opts: Options) -> ssl.SSLContext:
    """The context nsqd uses as an HTTPS client (the auth server).

    Raises:
        ValueError: ``failed to build client TLS config - ...``.
    """
    try:
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        _min_version(ctx, opts.tls_min_version)
        if opts.tls_root_ca_file:
            ctx.load_verify_locations(cafile=opts.tls_root_ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f"failed to build client TLS config - {exc} (--tls-root-ca-file "
                         f"{opts.tls_root_ca_file})") from exc
    return ctx


# -------------------------------------------------------------------- connection facts
_GO_VERSION_NAMES = {"TLSv1": "TLS1.0", "TLSv1.1": "TLS1.1", "TLSv1.2": "TLS1.2",
                     "TLSv1.3": "TLS1.3"}
# OpenSSL → IANA (Go) names of the TLS 1.2 suites a modern peer negotiates; TLS 1.3
# suites already have their IANA names in OpenSSL
_GO_CIPHER_NAMES = {
    "ECDHE-RSA-AES128-GCM-SHA256": "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "ECDHE-RSA-AES256-GCM-SHA384": "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "ECDHE-ECDSA-AES128-GCM-SHA256": "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384": "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    "ECDHE-RSA-CHACHA20-POLY1305": "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305",
    "ECDHE-ECDSA-CHACHA20-POLY1305": "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305",
    "ECDHE-RSA-AES128-SHA": "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
    "ECDHE-RSA-AES256-SHA": "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
    "AES128-GCM-SHA256": "TLS_RSA_WITH_AES_128_GCM_SHA256",
    "AES256-GCM-SHA384": "TLS_RSA_WITH_AES_256_GCM_SHA384",
}


class TLSInfo:
    """What /stats and the auth server are told about a client's TLS session."""

    __slots__ = ("cipher_suite", "common_name", "negotiated_protocol", "version")

    def __init__(self, ssl_object: trio.SSLStream[trio.abc.Stream]) -> None:
        version = ssl_object.version() or ""
        self.version = _GO_VERSION_NAMES.get(version, f"Unknown {version}")
        cipher = ssl_object.cipher()
        name = cipher[0] if cipher else ""
        self.cipher_suite = _GO_CIPHER_NAMES.get(name, name)
        self.negotiated_protocol = ssl_object.selected_alpn_protocol() or ""
        self.common_name = ""
        cert = ssl_object.getpeercert()
        for rdn in (cert or {}).get("subject", ()):
            for key, value in rdn:
                if key == "commonName":
                    self.common_name = value
                    break
            if self.common_name:
                break
