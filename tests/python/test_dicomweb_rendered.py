"""Rendered images and thumbnails (WADO-RS /rendered, /thumbnail) as a viewer
or a web page sees them: pydicom's real files are STOWed into an org, and
each rendered PNG is compared with dcmtk's `dcmj2pnm` rendering of the same
file and frame (same size, mean difference per channel within one level of 255).
Then what a careless or hostile client sends: another org's key, malformed
UIDs, frames that do not exist, absurd viewports, bad windows, Accept types
Lightbox does not make — each a clear 4xx in the JSON error envelope."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path
from typing import Iterator

import httpx
import numpy as np
import pydicom
import pytest
from PIL import Image

from conftest import LightboxServer, Org
from dicom_data import dicomweb, read, renamed

# name → what it stands for in the tests below
FILES = {
    "cr": "dicomdirtests/77654033/CR1/6154",  # MONOCHROME1, rescale 0.684/200, window 1600/2800
    "mr": "MR_small.dcm",  # MONOCHROME2, signed, window 600/1600
    "mr_be": "MR_small_expb.dcm",  # the same in Explicit VR Big Endian
    "ct": "CT_small.dcm",  # MONOCHROME2, rescale -1024, no window
    "rgb": "SC_rgb_rle.dcm",  # RGB in RLE
    "ybr": "SC_rgb_jpeg_dcmtk.dcm",  # YBR_FULL in JPEG baseline
    "us": "examples_ybr_color.dcm",  # 30 frames, YBR_FULL_422, JPEG baseline
    "palette": "examples_palette.dcm",  # PALETTE COLOR, 16-bit entries
    "dose": "rtdose.dcm",  # 15 frames of 32-bit unsigned, no window
    "j2k": "MR_small_jp2klossless.dcm",  # JPEG 2000: no decoder here
    "sr": "test-SR.dcm",  # no pixel data
}


@pytest.fixture(scope="module")
def archive(server: LightboxServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Org, dict, Path]]:
    """One org holding every file above (fresh UIDs), and a folder with the
    stored copies for dcmj2pnm."""
    org = server.new_org()
    folder = tmp_path_factory.mktemp("rendered")
    stored = {}
    for key, name in FILES.items():
        (ds,) = store(server, org, [read(name)])
        path = folder / f"{key}.dcm"
        ds.save_as(path, enforce_file_format=True)
        stored[key] = ds
    yield org, stored, folder
    org.close()


def store(srv: LightboxServer, org: Org, datasets: list[pydicom.Dataset]) -> list[pydicom.Dataset]:
    """STOWs the datasets under fresh UIDs. (dicom_data.store's renaming
    misses the file meta on pydicom 3, where `"file_meta" in ds` is False.)"""
    datasets = renamed(datasets)
    for ds in datasets:
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    dicomweb(srv, org).store_instances(datasets)
    return datasets


def url(srv: LightboxServer, ds: pydicom.Dataset, level: str = "instance", frame: int | None = None,
        resource: str = "rendered") -> str:
    base = f"{srv.base_url}/dicomweb/studies/{ds.StudyInstanceUID}"
    if level in ("series", "instance"):
        base += f"/series/{ds.SeriesInstanceUID}"
    if level == "instance":
        base += f"/instances/{ds.SOPInstanceUID}"
        if frame is not None:
            base += f"/frames/{frame}"
    return f"{base}/{resource}"


def get(org: Org, address: str, accept: str | None = "image/png", **params) -> httpx.Response:
    headers = {"Authorization": f"Bearer {org.api_key}"}
    if accept is not None:
        headers["Accept"] = accept
    return httpx.get(address, headers=headers, params=params, timeout=60)


def image(response: httpx.Response) -> np.ndarray:
    assert response.status_code == 200, response.text
    img = Image.open(io.BytesIO(response.content))
    img.load()
    return np.asarray(img.convert("RGB") if img.mode not in ("L", "RGB") else img, dtype=np.int16)


def dcmtk(folder: Path, key: str, *options: str) -> np.ndarray:
    """dcmj2pnm's PNG of the stored copy."""
    out = folder / f"{key}{'_'.join(o.strip('+') for o in options)}.png"
    done = subprocess.run(["dcmj2pnm", "+on", *options, str(folder / f"{key}.dcm"), str(out)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return np.asarray(Image.open(out), dtype=np.int16)


def assert_close(ours: np.ndarray, theirs: np.ndarray, levels: float = 1.0) -> None:
    assert ours.shape == theirs.shape, f"{ours.shape} rendered, dcmj2pnm made {theirs.shape}"
    diff = np.abs(ours - theirs)
    per_channel = diff.reshape(-1, 1 if diff.ndim == 2 else diff.shape[-1]).mean(axis=0)
    assert (per_channel <= levels).all(), f"mean difference per channel {per_channel} > {levels}"
    assert ours.std() > 5, "the rendering is (nearly) flat: nothing would show"


# --------------------------------------------------------------------------- photometrics


def test_monochrome1_with_rescale_and_its_window_looks_like_dcmtk(server, archive):
    org, stored, folder = archive
    ours = image(get(org, url(server, stored["cr"])))
    assert ours.ndim == 2, "grey images are grey PNGs"
    assert_close(ours, dcmtk(folder, "cr", "+Wi", "1"))


def test_monochrome2_with_its_window_looks_like_dcmtk(server, archive):
    org, stored, folder = archive
    mr = image(get(org, url(server, stored["mr"])))
    assert_close(mr, dcmtk(folder, "mr", "+Wi", "1"))
    assert np.array_equal(image(get(org, url(server, stored["mr_be"]))), mr), "big endian reads the same"


def test_a_ct_without_a_window_is_shown_min_max_and_windowed_on_request(server, archive):
    org, stored, folder = archive
    assert_close(image(get(org, url(server, stored["ct"]))), dcmtk(folder, "ct", "+Wm"))
    # A soft-tissue window in Hounsfield units: the rescale is applied first.
    windowed = image(get(org, url(server, stored["ct"]), window="40,400"))
    assert_close(windowed, dcmtk(folder, "ct", "+Ww", "40", "400"))
    sigmoid = image(get(org, url(server, stored["ct"]), window="40,400,sigmoid"))
    assert_close(sigmoid, dcmtk(folder, "ct", "+Ww", "40", "400", "+Wfs"))


def test_rgb_ybr_and_palette_colour_look_like_dcmtk(server, archive):
    org, stored, folder = archive
    for key in ("rgb", "ybr", "palette"):
        ours = image(get(org, url(server, stored[key])))
        assert ours.ndim == 3 and ours.shape[2] == 3, f"{key} is a colour PNG"
        assert_close(ours, dcmtk(folder, key))


def test_a_frame_of_a_multiframe_jpeg_looks_like_dcmtk(server, archive):
    org, stored, folder = archive
    ours = image(get(org, url(server, stored["us"], frame=12)))
    assert_close(ours, dcmtk(folder, "us", "+F", "12"))
    first = image(get(org, url(server, stored["us"], frame=1)))
    assert np.abs(first - ours).mean() > 0.5, "frame 12 is not frame 1"
    # The instance itself renders its first frame.
    assert_close(image(get(org, url(server, stored["us"]))), first, levels=0)


def test_a_frame_of_32_bit_data_looks_like_dcmtk(server, archive):
    org, stored, folder = archive
    assert_close(image(get(org, url(server, stored["dose"], frame=3))), dcmtk(folder, "dose", "+Wm", "+F", "3"))


def test_planar_configuration_and_8_bit_palettes_render_like_their_usual_forms(server, org):
    """The same colours stored another way render the same: RGB planes one
    after another (PlanarConfiguration 1) instead of interleaved, and a
    palette with 8-bit entries instead of 16-bit ones."""
    rgb = read(FILES["rgb"])
    planes = read(FILES["rgb"])
    planes.PixelData = np.ascontiguousarray(rgb.pixel_array.transpose(2, 0, 1)).tobytes()
    planes.PlanarConfiguration = 1
    planes.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    palette16 = read(FILES["palette"])
    palette8 = read(FILES["palette"])
    for colour in ("Red", "Green", "Blue"):
        table = np.frombuffer(getattr(palette8, f"{colour}PaletteColorLookupTableData"), dtype="<u2")
        setattr(palette8, f"{colour}PaletteColorLookupTableData", (table >> 8).astype(np.uint8).tobytes())
        descriptor = list(getattr(palette8, f"{colour}PaletteColorLookupTableDescriptor"))
        setattr(palette8, f"{colour}PaletteColorLookupTableDescriptor", [descriptor[0], descriptor[1], 8])
    # One STOW each: renaming maps a shared original UID to one new UID.
    rgb, planes, palette16, palette8 = (store(server, org, [ds])[0] for ds in (rgb, planes, palette16, palette8))
    assert len({ds.SOPInstanceUID for ds in (rgb, planes, palette16, palette8)}) == 4
    interleaved = image(get(org, url(server, rgb)))
    assert np.array_equal(image(get(org, url(server, planes))), interleaved)
    assert interleaved[5, 50].tolist() == [255, 0, 0], "the top band is red"
    assert np.array_equal(image(get(org, url(server, palette8))), image(get(org, url(server, palette16))))


def test_jpeg_is_the_default_and_quality_changes_its_size(server, archive):
    org, stored, _ = archive
    for accept in (None, "*/*", "image/*", 'image/jpeg; q="0.9", image/png; q=0.5', "image/jpeg"):
        response = get(org, url(server, stored["mr"]), accept=accept)
        assert response.status_code == 200, (accept, response.text)
        assert response.headers["content-type"] == "image/jpeg", accept
        assert response.content[:3] == b"\xff\xd8\xff"
    low = get(org, url(server, stored["us"]), accept="image/jpeg", quality="5")
    high = get(org, url(server, stored["us"]), accept="image/jpeg", quality="100")
    assert len(low.content) < len(high.content)
    # A JPEG of the MR is still the MR.
    png = image(get(org, url(server, stored["mr"])))
    jpeg = image(get(org, url(server, stored["mr"]), accept="image/jpeg", quality="95"))
    assert_close(jpeg, png, levels=3)


def test_dicomweb_client_fetches_rendered_instances_and_frames(server, archive):
    """Python's dicomweb-client, as an integrator would call it."""
    org, stored, _ = archive
    client = dicomweb(server, org)
    us = stored["us"]
    png = client.retrieve_instance_rendered(us.StudyInstanceUID, us.SeriesInstanceUID, us.SOPInstanceUID,
                                            media_types=("image/png",), params={"viewport": "160,120"})
    assert Image.open(io.BytesIO(png)).size == (160, 120)
    jpeg = client.retrieve_instance_frames_rendered(us.StudyInstanceUID, us.SeriesInstanceUID, us.SOPInstanceUID,
                                                    frame_numbers=[7], media_types=("image/jpeg",))
    assert jpeg[:3] == b"\xff\xd8\xff" and Image.open(io.BytesIO(jpeg)).size == (320, 240)


# --------------------------------------------------------------------------- viewports, thumbnails


def test_viewports_scale_keeping_the_aspect_and_crop_regions(server, archive):
    org, stored, _ = archive
    wide = image(get(org, url(server, stored["palette"]), viewport="200,200"))
    assert wide.shape[:2] == (88, 200), "800×350 fits 200×200 as 200×88 (height, width)"
    grown = image(get(org, url(server, stored["mr"]), viewport="128,128"))
    assert grown.shape == (128, 128)
    full = image(get(org, url(server, stored["mr"])))
    region = image(get(org, url(server, stored["mr"]), viewport="32,32,16,16,32,32"))
    assert np.array_equal(region, full[16:48, 16:48]), "a region at its own size is a crop"
    flipped = image(get(org, url(server, stored["mr"]), viewport="64,64,0,0,-64,64"))
    assert np.array_equal(flipped, full[:, ::-1]), "a negative width mirrors the image"


def test_series_and_study_thumbnails_are_one_small_cacheable_image(server, archive):
    org, stored, _ = archive
    for level in ("study", "series", "instance"):
        response = get(org, url(server, stored["palette"], level=level, resource="thumbnail"), accept="image/jpeg")
        assert response.status_code == 200, (level, response.text)
        assert response.headers["content-type"] == "image/jpeg"
        assert "private" in response.headers["cache-control"] and "max-age=" in response.headers["cache-control"]
        thumb = Image.open(io.BytesIO(response.content))
        assert thumb.size == (128, 56), f"{level}: 800×350 fits 128×128 as {thumb.size}"
        again = httpx.get(response.url, headers={"Authorization": f"Bearer {org.api_key}", "Accept": "image/jpeg",
                                                  "If-None-Match": response.headers["etag"]}, timeout=30)
        assert again.status_code == 304 and again.content == b""
    # A 16×16 CR stays 16×16; a viewport overrides the thumbnail box.
    small = get(org, url(server, stored["cr"], level="series", resource="thumbnail"))
    assert Image.open(io.BytesIO(small.content)).size == (16, 16)
    big = get(org, url(server, stored["us"], frame=3, resource="thumbnail"), viewport="300,300")
    assert Image.open(io.BytesIO(big.content)).size == (300, 225)


def test_a_series_is_shown_by_its_middle_image(server, org):
    from dicom_data import dicomdir_studies

    ct = [ds for ds in dicomdir_studies() if ds.Modality == "CT" and str(ds.PatientID) == "77654033"]
    assert len(ct) == 4
    ct = store(server, org, ct)
    middle = sorted(ct, key=lambda ds: int(ds.InstanceNumber))[2]
    series = image(get(org, url(server, ct[0], level="series")))
    assert np.array_equal(series, image(get(org, url(server, middle)))), "the middle of four by InstanceNumber"
    assert np.array_equal(image(get(org, url(server, ct[0], level="study"))), series)


# --------------------------------------------------------------------------- tenancy and bad input


def assert_error(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, f"{response.status_code} {response.text}"
    body = response.json()
    assert body["type"] and body["message"], body
    return body


def test_another_orgs_key_gets_404_at_every_level(server, archive, other_org):
    org, stored, _ = archive
    for level in ("study", "series", "instance"):
        for resource in ("rendered", "thumbnail"):
            assert_error(get(other_org, url(server, stored["mr"], level=level, resource=resource)), 404)
    assert_error(get(other_org, url(server, stored["us"], frame=2)), 404)
    # and the owner still sees it
    assert get(org, url(server, stored["mr"], level="study")).status_code == 200


def test_what_does_not_exist_is_404(server, archive):
    org, stored, _ = archive
    mr = stored["mr"]
    wrong_series = f"{server.base_url}/dicomweb/studies/{mr.StudyInstanceUID}/series/1.2.3/instances/{mr.SOPInstanceUID}/rendered"
    assert_error(get(org, wrong_series), 404)
    assert_error(get(org, f"{server.base_url}/dicomweb/studies/1.2.3.4/thumbnail"), 404)
    body = assert_error(get(org, url(server, stored["us"], frame=31)), 404)
    assert "30" in body["message"], "says how many frames there are"
    assert_error(get(org, url(server, mr, frame=2)), 404)


def test_bad_input_is_a_clear_4xx(server, archive):
    org, stored, _ = archive
    mr = stored["mr"]
    base = f"{server.base_url}/dicomweb/studies"
    for bad_uid in ("not-a-uid", "1.2.3." + "4" * 70, "1..2"):
        assert_error(get(org, f"{base}/{bad_uid}/rendered"), 400)
    for frame in ("0", "-1", "1,2", "x"):
        assert_error(get(org, url(server, mr).replace("/rendered", f"/frames/{frame}/rendered")), 400)
    for viewport in ("0,0", "100000,100000", "64", "64,64,0,0,65,10", "64,64,60,60,10,10", "a,b"):
        body = assert_error(get(org, url(server, mr), viewport=viewport), 400)
        assert "viewport" in body["message"]
    for window in ("40", "40,0", "a,b", "40,400,cubic"):
        assert "window" in assert_error(get(org, url(server, mr), window=window), 400)["message"]
    for quality in ("0", "101", "best"):
        assert_error(get(org, url(server, mr), accept="image/jpeg", quality=quality), 400)
    for accept in ("application/pdf", "image/gif", "image/png; q=0", 'multipart/related; type="application/dicom"'):
        body = assert_error(get(org, url(server, mr), accept=accept), 406)
        assert "image/jpeg" in body["message"]


def test_what_cannot_be_rendered_is_422_not_500(server, archive):
    org, stored, _ = archive
    body = assert_error(get(org, url(server, stored["j2k"])), 422)
    assert "1.2.840.10008.1.2.4.90" in body["message"] or "transfer syntax" in body["message"]
    assert_error(get(org, url(server, stored["sr"])), 422)
    # A study whose only instance is a report has no image to show.
    assert_error(get(org, url(server, stored["sr"], level="study", resource="thumbnail")), 404)
