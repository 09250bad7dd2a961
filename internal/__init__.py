"""Helpers shared by the nsqd, nsqlookupd and nsqadmin daemons.

The modules mirror NSQ's Go ``internal/`` packages: :mod:`internal.http`
(``http_api``), :mod:`internal.options` (go-options), :mod:`internal.logs`
(``lg``), :mod:`internal.version`, :mod:`internal.netaddr`, :mod:`internal.gojson`
(JSON written byte for byte as Go's ``encoding/json``) and :mod:`internal.connlimit` (caps a
listener's connections).
"""

# importing any daemon or the client comes through here first: serve the mypyc-compiled
# hot modules when they are built and match their sources (else everything stays pure)
from ._native import install as _install_native

_install_native()
