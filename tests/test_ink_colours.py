"""Coloured ink on a mixed page stays in its colour and sharp, black print stays black.

A synthetic 300 dpi page (black text lines, a red seal with red text over them, a blue
signature) goes through ``compose.page_pdf``; the PDF is rendered by poppler and compared with
the source, both brought to 100 dpi by the same area average. The render is made at 300 dpi
and averaged down rather than made with ``pdftoppm -r 100``: poppler's own downsampling of a
1-bit image mask samples about a third of a pixel off the area grid, so thin strokes (a pen
line is 1.3 px at 100 dpi) would be scored on the renderer's registration, not the archive's
colours. (With ``-r 100`` directly the same page scores about 87 % red, 74 % blue.)
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import cv2
import numpy as np
import pikepdf
import pytest

from pipeline.imaging import compose

DPI = 300
PAPER = (246, 243, 236)
INK = (22, 22, 22)
SEAL = (206, 38, 44)
PEN = (28, 48, 150)


def _multiply(page: np.ndarray, mask: np.ndarray, rgb: tuple[int, int, int]) -> None:
    """Lay ink over the page as a stamp or a pen does: the darker colour wins where inks cross."""
    page *= 1.0 - mask[..., None] * (1.0 - np.asarray(rgb, np.float32) / 255.0)


def _sealed_page(height: int = 1754, width: int = 2480) -> np.ndarray:
    """Half an A4 sheet at 300 dpi: text lines, a signature, and a seal stamped over both."""
    page = np.ones((height, width, 3), np.float32) * np.asarray(PAPER, np.float32)
    text = np.zeros((height, width), np.uint8)
    words = ["CONG", "HOA", "XA", "HOI", "CHU", "NGHIA", "VIET", "NAM", "Doc", "lap", "Tu",
             "do", "Hanh", "phuc", "so", "123", "QD"]
    for row, y in enumerate(range(160, height - 120, 70)):
        x = 150
        for k in range(100):
            word = words[(row * 7 + k * 3) % len(words)]
            if x > width - 300:
                break
            cv2.putText(text, word, (x, y), cv2.FONT_HERSHEY_SIMPLEX, 1.3, 255, 3, cv2.LINE_AA)
            x += cv2.getTextSize(word, cv2.FONT_HERSHEY_SIMPLEX, 1.3, 3)[0][0] + 30
    _multiply(page, text / 255.0, INK)
    signature = np.zeros((height, width), np.uint8)
    t = np.linspace(0, 1, 400)
    xs = 1500 + 600 * t - 40 * np.sin(2 * np.pi * 5 * t)
    ys = 1100 - 60 * np.cos(2 * np.pi * 5 * t) - 80 * t
    cv2.polylines(signature, [np.stack([xs, ys], 1).astype(np.int32)], False, 255, 4,
                  cv2.LINE_AA)
    cv2.line(signature, (1480, 1220), (2150, 1180), 255, 4, cv2.LINE_AA)
    _multiply(page, signature / 255.0 * 0.9, PEN)
    seal = np.zeros((height, width), np.uint8)
    centre = (1550, 1000)
    cv2.circle(seal, centre, 200, 255, 9, cv2.LINE_AA)
    cv2.circle(seal, centre, 132, 255, 4, cv2.LINE_AA)
    for dy, words_in_seal in ((-40, "UY BAN"), (10, "NHAN DAN"), (60, "HUYEN X")):
        cv2.putText(seal, words_in_seal, (centre[0] - 105, centre[1] + dy),
                    cv2.FONT_HERSHEY_SIMPLEX, 1.0, 255, 2, cv2.LINE_AA)
    # a stamp pressed unevenly: strong on the left, pale on the right
    xx = np.arange(width, dtype=np.float32)[None, :]
    pressure = np.clip(0.92 - 0.25 * (xx - centre[0] + 200) / 400, 0.6, 0.92)
    _multiply(page, seal / 255.0 * pressure, SEAL)
    return np.clip(page + 0.5, 0, 255).astype(np.uint8)


def _at_100_dpi(image: np.ndarray, dpi: int) -> np.ndarray:
    return cv2.resize(image, None, fx=100 / dpi, fy=100 / dpi, interpolation=cv2.INTER_AREA)


def _render(pdf: Path) -> np.ndarray:
    out = pdf.with_suffix("")
    subprocess.run(["pdftoppm", "-r", str(DPI), "-png", "-singlefile", str(pdf), str(out)],
                   check=True)
    return cv2.cvtColor(cv2.imread(f"{out}.png"), cv2.COLOR_BGR2RGB)


def _strongly_red(a: np.ndarray) -> np.ndarray:
    a = a.astype(int)
    return (a[..., 0] > 150) & (a[..., 1] < 90) & (a[..., 2] < 90)


def _strongly_blue(a: np.ndarray) -> np.ndarray:
    a = a.astype(int)
    return (a[..., 2] > 120) & (a[..., 0] < 90) & (a[..., 1] < 110)


def _dark(a: np.ndarray) -> np.ndarray:
    return a.astype(int).max(axis=2) < 80


@pytest.fixture(scope="module")
def sealed() -> np.ndarray:
    return _sealed_page()


@pytest.fixture(scope="module")
def archived(sealed: np.ndarray, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ink") / "page.pdf"
    assert compose.page_pdf(sealed, DPI, path) is compose.PageKind.mixed
    return path


def test_red_seal_blue_signature_and_black_print_keep_their_colours(
        sealed: np.ndarray, archived: Path) -> None:
    source = _at_100_dpi(sealed, DPI)
    shown = _at_100_dpi(_render(archived), DPI)
    assert shown.shape == source.shape
    for strongly, least in ((_strongly_red, 0.90), (_strongly_blue, 0.80)):
        wanted = strongly(source)
        assert wanted.sum() > 500
        kept = np.count_nonzero(strongly(shown) & wanted) / np.count_nonzero(wanted)
        assert kept >= least, (strongly.__name__, kept)
    # black print still dark where it was black (the crossings with the seal included)
    black = _dark(source)
    assert np.count_nonzero(shown.max(axis=2)[black] < 100) / np.count_nonzero(black) > 0.95
    assert archived.stat().st_size < 150_000


def test_each_ink_is_a_sharp_stencil_in_its_colour(archived: Path) -> None:
    with pikepdf.open(archived) as pdf:
        page = pdf.pages[0]
        xobjects = page.Resources.XObject
        stencils = sorted(str(name) for name in xobjects if xobjects[name].get("/ImageMask"))
        # one stencil per ink (red, blue) and the black print, all at full resolution, G4
        assert stencils == ["/Fg", "/Ink1", "/Ink2"]
        for name in stencils:
            assert [str(f) for f in xobjects[name].Filter] == ["/CCITTFaxDecode"]
            assert int(xobjects[name].Width) == 2480
        content = page.Contents.read_bytes().decode() if isinstance(
            page.Contents, pikepdf.Stream) else b"".join(
            s.read_bytes() for s in page.Contents).decode()
    fills = [tuple(float(v) for v in line.split()[1:4]) for line in content.splitlines()
             if " rg " in line]
    red, blue = (tuple(round(v * 255) for v in fill) for fill in fills)
    assert red[0] > 150 and max(red[1:]) < 90
    assert blue[2] > 120 and max(blue[:2]) < 90
    # the black print is painted last, over the inks, so a letter crossing the seal stays whole
    assert content.rstrip().endswith("/Fg Do Q")


def test_same_page_same_bytes(sealed: np.ndarray, archived: Path, tmp_path: Path) -> None:
    compose.page_pdf(sealed, DPI, tmp_path / "again.pdf")
    assert (tmp_path / "again.pdf").read_bytes() == archived.read_bytes()


def test_a_grey_page_has_no_inks(sealed: np.ndarray, tmp_path: Path) -> None:
    grey = np.repeat(cv2.cvtColor(sealed, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)
    assert compose.ink_colours(grey, compose._spread(grey), compose.black_print(compose.dropout(grey))) == []
    assert compose.page_pdf(grey, DPI, tmp_path / "g.pdf") is not compose.PageKind.mixed
