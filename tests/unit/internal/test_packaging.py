"""Packaging: one version (internal.version) seen by the installed distribution, the
daemons and the client; the client ships its ``py.typed`` marker; the licence is there."""

from __future__ import annotations

import importlib.metadata
import pathlib
import subprocess
import sys
import tomllib

import client
from client.config import USER_AGENT, VERSION
from internal.version import PROJECT_VERSION

ROOT = pathlib.Path(__file__).resolve().parents[3]


def test_installed_distribution_has_the_version_of_internal_version() -> None:
    # the venv holds an editable install made from this pyproject.toml
    assert importlib.metadata.version("trio-nsq") == PROJECT_VERSION


def test_pyproject_reads_the_version_from_internal_version() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in project["project"]
    assert project["project"]["dynamic"] == ["version"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {
        "attr": "internal.version.PROJECT_VERSION"}
    assert "py.typed" in project["tool"]["setuptools"]["package-data"]["client"]


def test_client_and_daemons_report_the_same_version() -> None:
    assert VERSION == PROJECT_VERSION and f"trio-nsq/{PROJECT_VERSION}" == USER_AGENT
    for app in ("nsqd", "nsqlookupd", "nsqadmin"):
        out = subprocess.run([sys.executable, "-m", app, "--version"], capture_output=True,
                             text=True, check=True, timeout=120, cwd=ROOT).stdout
        assert out.startswith(f"{app} v1.3.0 ") and f"trio-nsq/{PROJECT_VERSION})" in out


def test_py_typed_and_license_ship() -> None:
    assert (pathlib.Path(client.__file__).parent / "py.typed").is_file()
    license_text = (ROOT / "LICENSE").read_text()
    assert license_text.startswith("MIT License") and "the trio-nsq authors" in license_text
