"""``host:port`` parsing and joining with the semantics of Go's ``net`` package."""

from __future__ import annotations

__all__ = ["join_host_port", "split_host_port"]


def split_host_port(addr: str) -> tuple[str, int]:
    """Split ``"host:port"`` into its host and numeric port.

    Accepts ``"0.0.0.0:4150"``, ``"[::1]:4150"`` and ``":4150"`` (empty host,
    meaning every interface), like Go's ``net.SplitHostPort``.

    Args:
        addr: The address to split.

    Returns:
        ``(host, port)``; an IPv6 host is returned without brackets.

    Raises:
        ValueError: If the address has no port, stray brackets or colons, or
            a port that is not an integer in ``0..65535``.
    """
    if addr.startswith("["):
        end = addr.find("]")
        if end < 0:
            raise ValueError(f"missing ']' in address {addr!r}")
        host = addr[1:end]
        rest = addr[end + 1 :]
        if not rest.startswith(":"):
            raise ValueError(f"missing port in address {addr!r}")
        port_s = rest[1:]
    else:
        host, sep, port_s = addr.rpartition(":")
        if not sep:
            raise ValueError(f"missing port in address {addr!r}")
        if ":" in host:
            raise ValueError(f"too many colons in address {addr!r}")
        if "[" in host or "]" in host:
            raise ValueError(f"unexpected bracket in address {addr!r}")
    if not port_s.isascii() or not port_s.isdigit():
        raise ValueError(f"invalid port {port_s!r} in address {addr!r}")
    port = int(port_s)
    if port > 65535:
        raise ValueError(f"port out of range in address {addr!r}")
    return host, port


def join_host_port(host: str, port: int | str) -> str:
    """Join a host and port, bracketing IPv6 literals (``[::1]:4150``).

    Args:
        host: Host name or IP literal (brackets optional for IPv6).
        port: Port number.

    Returns:
        The combined ``host:port`` string.
    """
    if ":" in host and not host.startswith("["):
        return f"[{host}]:{port}"
    return f"{host}:{port}"
