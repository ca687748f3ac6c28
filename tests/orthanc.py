"""A real Orthanc (with its DICOMweb plugin) on loopback, started and stopped by a test."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

PLUGIN_DIRS = [Path("/usr/share/orthanc/plugins"), Path("/usr/lib/orthanc")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running_orthanc(root: Path) -> Iterator[dict[str, object]]:
    """Start Orthanc with its storage under ``root``; yields ``{"http", "dicomweb", "port"}``
    and stops it on exit. Skips the test when Orthanc or its DICOMweb plugin is missing."""
    exe = shutil.which("Orthanc")
    plugin = next((p for d in PLUGIN_DIRS for p in sorted(d.glob("libOrthancDicomWeb.so*"))),
                  None)
    if exe is None or plugin is None:
        pytest.skip("Orthanc with its DICOMweb plugin is not installed "
                    "(Debian: orthanc orthanc-dicomweb)")
    http, dicom = free_port(), free_port()
    config = {
        "Name": "medseg-test", "StorageDirectory": str(root / "db"),
        "IndexDirectory": str(root / "db"), "HttpPort": http, "DicomPort": dicom,
        "DicomAet": "ORTHANC", "RemoteAccessAllowed": False, "AuthenticationEnabled": False,
        "HttpServerEnabled": True, "DicomServerEnabled": True, "Plugins": [str(plugin)],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
        "DicomAlwaysAllowEcho": True, "DicomAlwaysAllowStore": True,
        "DicomAlwaysAllowFind": True, "DicomAlwaysAllowGet": True,
        "DicomModalities": {"medseg": ["MEDSEG", "127.0.0.1", free_port()]},
        "DicomCheckCalledAet": False,
    }
    cfg = root / "orthanc.json"
    cfg.write_text(json.dumps(config))
    log = open(root / "orthanc.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([exe, str(cfg)], stdout=log, stderr=subprocess.STDOUT)
    import requests

    base = f"http://127.0.0.1:{http}"
    try:
        for _ in range(200):
            try:
                if requests.get(base + "/system", timeout=1).ok:
                    break
            except requests.ConnectionError:
                pass
            if proc.poll() is not None:
                pytest.fail("Orthanc exited: " + (root / "orthanc.log").read_text()[-2000:])
            time.sleep(0.1)
        else:
            pytest.fail("Orthanc did not start in 20 s")
        yield {"http": base, "dicomweb": base + "/dicom-web", "port": dicom}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
