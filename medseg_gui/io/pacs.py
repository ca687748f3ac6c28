"""Talk to a PACS: DICOMweb (QIDO-RS, WADO-RS, STOW-RS) and DIMSE (C-ECHO, C-FIND, C-GET,
C-STORE).

Both clients return plain pydicom datasets or paths and fail with :class:`LoadError` naming the
server and the problem in one line (connection refused, association rejected, a failure status),
so the GUI and the CLI report them like any bad input. Retrieved instances are written into a
folder atomically, named by SOPInstanceUID, ready for :func:`medseg_gui.io.loader.load_volume`.
C-GET is used rather than C-MOVE because it needs no storage SCP reachable from the PACS (no
firewall hole, no AE table entry on the PACS for the workstation's port).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pydicom
from pydicom.dataset import Dataset

from medseg_gui.io.errors import LoadError
from medseg_gui.io.output import atomic_output

FIND = "1.2.840.10008.5.1.4.1.2.2.1"  # Study Root Q/R Information Model - FIND
GET = "1.2.840.10008.5.1.4.1.2.2.3"  # Study Root Q/R Information Model - GET
# Storage classes a retrieve may bring back (CT/MR/PET, enhanced variants, SEG, RTSTRUCT, SR).
RETRIEVE_CLASSES = (
    "1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.5.1.4.1.1.2.1", "1.2.840.10008.5.1.4.1.1.4",
    "1.2.840.10008.5.1.4.1.1.4.1", "1.2.840.10008.5.1.4.1.1.128", "1.2.840.10008.5.1.4.1.1.66.4",
    "1.2.840.10008.5.1.4.1.1.481.3", "1.2.840.10008.5.1.4.1.1.88.33",
    "1.2.840.10008.5.1.4.1.1.7",
)


def _save(ds: Dataset, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{ds.SOPInstanceUID}.dcm"
    with atomic_output(path, overwrite=True) as tmp:
        ds.save_as(tmp, enforce_file_format=True)
    return path


def _datasets(items: Iterable[str | Path | Dataset]) -> list[Dataset]:
    return [i if isinstance(i, Dataset) else pydicom.dcmread(i) for i in items]


class DicomWebClient:
    """QIDO-RS search, WADO-RS retrieve and STOW-RS store against one DICOMweb root URL."""

    def __init__(self, url: str, *, timeout: float = 30.0, headers: dict[str, str] | None = None
                 ) -> None:
        from dicomweb_client.api import DICOMwebClient

        self.url = url.rstrip("/")
        self._client = DICOMwebClient(self.url, timeout=timeout, headers=headers)
        # fail fast: the GUI shows the error and the user retries (the default backs off ~30 s)
        self._client.set_http_retry_params(retry=False)

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # requests/HTTP errors of every kind become one line
            raise LoadError(self.url, f"{what} failed ({type(exc).__name__}: "
                                      f"{str(exc).splitlines()[0][:200] if str(exc) else ''})"
                            ) from exc

    def search_studies(self, **filters: str) -> list[Dataset]:
        """QIDO-RS studies matching ``filters`` (DICOM keywords, e.g. ``PatientID="X"``)."""
        found = self._call("QIDO-RS study search", self._client.search_for_studies,
                           search_filters=filters or None)
        return [Dataset.from_json(d) for d in found]

    def search_series(self, study_uid: str, **filters: str) -> list[Dataset]:
        """QIDO-RS series of one study."""
        found = self._call("QIDO-RS series search", self._client.search_for_series,
                           study_instance_uid=study_uid, search_filters=filters or None)
        return [Dataset.from_json(d) for d in found]

    def retrieve_series(self, study_uid: str, series_uid: str, folder: str | Path) -> list[Path]:
        """WADO-RS: every instance of a series, written into ``folder``."""
        got = self._call("WADO-RS retrieve", self._client.retrieve_series,
                         study_instance_uid=study_uid, series_instance_uid=series_uid)
        return [_save(ds, Path(folder)) for ds in got]

    def store(self, items: Sequence[str | Path | Dataset]) -> Dataset:
        """STOW-RS: store instances (files or datasets); returns the server's response."""
        response: Dataset = self._call("STOW-RS store", self._client.store_instances,
                                       datasets=_datasets(items))
        if response.get("FailedSOPSequence"):
            raise LoadError(self.url, f"STOW-RS refused {len(response.FailedSOPSequence)} "
                                      "instance(s)")
        return response


class DimseClient:
    """C-ECHO, C-FIND, C-GET and C-STORE as ``calling_aet`` towards ``called_aet@host:port``."""

    def __init__(self, host: str, port: int, called_aet: str, calling_aet: str = "MEDSEG", *,
                 timeout: float = 30.0) -> None:
        self.host, self.port = host, int(port)
        self.called_aet, self.calling_aet, self.timeout = called_aet, calling_aet, timeout

    @property
    def where(self) -> str:
        return f"{self.called_aet}@{self.host}:{self.port}"

    def _associate(self, contexts: Sequence[str], *, get_roles: bool = False,
                   handlers: list[Any] | None = None) -> Any:
        from pynetdicom import AE, build_role

        ae = AE(ae_title=self.calling_aet)
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = self.timeout
        for uid in contexts:
            ae.add_requested_context(uid)
        roles: list[Any] = (
            [build_role(uid, scp_role=True) for uid in RETRIEVE_CLASSES] if get_roles else [])
        assoc = ae.associate(self.host, self.port, ae_title=self.called_aet,
                             ext_neg=roles or None, evt_handlers=handlers or None)
        if not assoc.is_established:
            raise LoadError(self.where, "association rejected or the PACS is unreachable")
        return assoc

    def echo(self) -> bool:
        """C-ECHO: whether the PACS answers with Success."""
        assoc = self._associate(["1.2.840.10008.1.1"])
        try:
            status = assoc.send_c_echo()
            return bool(status and status.Status == 0)
        finally:
            assoc.release()

    def find(self, level: str = "STUDY", **keys: str) -> list[Dataset]:
        """C-FIND (Study Root) at ``level``; ``keys`` are matching keys, other fields returned
        are those named with an empty value (e.g. ``StudyDescription=""``)."""
        query = Dataset()
        query.QueryRetrieveLevel = level
        for kw in ("StudyInstanceUID", "PatientID", "PatientName", "StudyDate", "Modality",
                   *(("SeriesInstanceUID", "SeriesDescription") if level != "STUDY" else ())):
            setattr(query, kw, "")
        for kw, value in keys.items():
            setattr(query, kw, value)
        assoc = self._associate([FIND])
        out: list[Dataset] = []
        try:
            for status, ident in assoc.send_c_find(query, FIND):
                if status is None or status.Status not in (0x0000, 0xFF00, 0xFF01):
                    raise LoadError(self.where, f"C-FIND failed (status {_code(status)})")
                if status.Status in (0xFF00, 0xFF01) and ident is not None:
                    out.append(ident)
        finally:
            assoc.release()
        return out

    def get_series(self, study_uid: str, series_uid: str, folder: str | Path) -> list[Path]:
        """C-GET a series; its instances arrive on the same association into ``folder``."""
        from pynetdicom import evt

        saved: list[Path] = []

        def on_store(event: Any) -> int:
            ds = event.dataset
            ds.file_meta = event.file_meta
            saved.append(_save(ds, Path(folder)))
            return 0x0000

        query = Dataset()
        query.QueryRetrieveLevel = "SERIES"
        query.StudyInstanceUID, query.SeriesInstanceUID = study_uid, series_uid
        assoc = self._associate([GET, *RETRIEVE_CLASSES], get_roles=True,
                                handlers=[(evt.EVT_C_STORE, on_store)])
        try:
            for status, _ in assoc.send_c_get(query, GET):
                if status is None or status.Status not in (0x0000, 0xFF00):
                    raise LoadError(self.where, f"C-GET failed (status {_code(status)})")
        finally:
            assoc.release()
        return saved

    def store(self, items: Sequence[str | Path | Dataset]) -> None:
        """C-STORE each instance; any non-success status is an error."""
        dsets = _datasets(items)
        assoc = self._associate(sorted({str(ds.SOPClassUID) for ds in dsets}))
        try:
            for ds in dsets:
                status = assoc.send_c_store(ds)
                if status is None or status.Status != 0:
                    raise LoadError(self.where, f"C-STORE of {ds.SOPInstanceUID} failed "
                                                f"(status {_code(status)})")
        finally:
            assoc.release()


def _code(status: Dataset | None) -> str:
    return "no response" if status is None or "Status" not in status else f"0x{status.Status:04X}"
