"""Real DICOM files for the DICOMweb tests, sent into a Lightbox org.

The files are the ones the pydicom wheel ships (no download). Each call
gives the instances fresh UIDs unless told otherwise, so tests on one
server never see each other's studies."""

from __future__ import annotations

from pathlib import Path

import pydicom
from dicomweb_client.api import DICOMwebClient
from pydicom.uid import generate_uid

from conftest import LightboxServer, Org

TEST_FILES = Path(pydicom.data.__file__).parent / "test_files"
CHARSET_FILES = Path(pydicom.data.__file__).parent / "charset_files"
DICOMDIR_TESTS = TEST_FILES / "dicomdirtests"


def dicomweb(srv: LightboxServer, org: Org) -> DICOMwebClient:
    """dicomweb-client against the org's archive, with its Viewer API key."""
    return DICOMwebClient(url=f"{srv.base_url}/dicomweb", headers={"Authorization": f"Bearer {org.api_key}"})


def read(path: Path | str) -> pydicom.Dataset:
    path = Path(path)
    return pydicom.dcmread(path if path.is_absolute() else TEST_FILES / path)


def renamed(datasets: list[pydicom.Dataset]) -> list[pydicom.Dataset]:
    """The same instances under new UIDs, keeping which share a study or series."""
    new: dict[str, str] = {}

    def uid(old: str) -> str:
        return new.setdefault(old, generate_uid())

    for ds in datasets:
        ds.StudyInstanceUID = uid(ds.StudyInstanceUID)
        ds.SeriesInstanceUID = uid(ds.SeriesInstanceUID)
        ds.SOPInstanceUID = uid(ds.SOPInstanceUID)
        # `"file_meta" in ds` is False in pydicom 3 (it looks for an element).
        if getattr(ds, "file_meta", None) is not None:
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    return datasets


def dicomdir_studies() -> list[pydicom.Dataset]:
    """pydicom's dicomdirtests tree: 2 patients, 6 studies, 13 series, 31 instances."""
    files = sorted(p for p in DICOMDIR_TESTS.rglob("*") if p.is_file() and not p.name.startswith("DICOMDIR") and p.suffix != ".txt"
                   and "TINY_ALPHA" not in p.parts)
    return [pydicom.dcmread(p) for p in files]


def store(srv: LightboxServer, org: Org, datasets: list[pydicom.Dataset], fresh: bool = True) -> list[pydicom.Dataset]:
    """STOWs the datasets into the org (renamed first when `fresh`) and returns them as stored."""
    if fresh:
        datasets = renamed(datasets)
    dicomweb(srv, org).store_instances(datasets)
    return datasets

