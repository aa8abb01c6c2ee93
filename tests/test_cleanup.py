"""Cleanup on generated pages with real Tesseract OSD and OpenCV."""

from __future__ import annotations

import random

import cv2
import numpy as np
import pytest

from pipeline.config import CleanupProfile
from pipeline.demo import render
from pipeline.imaging import cleanup

LINES = [
    "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM",
    "Độc lập - Tự do - Hạnh phúc",
    "QUYẾT ĐỊNH",
    "Về việc cấp giấy chứng nhận đăng ký hộ kinh doanh cho ông Nguyễn Văn Thưởng,",
    "địa chỉ thường trú tại thôn Đông, xã Uy Nỗ, huyện Đông Anh, thành phố Hà Nội.",
    "Điều 1. Cấp giấy chứng nhận đăng ký hộ kinh doanh với ngành nghề buôn bán",
    "hàng tạp hóa, vốn kinh doanh một trăm năm mươi triệu đồng, kể từ ngày ký.",
    "Điều 2. Chánh Văn phòng Ủy ban nhân dân huyện, Trưởng phòng Tài chính - Kế hoạch",
    "và ông Nguyễn Văn Thưởng chịu trách nhiệm thi hành Quyết định này.",
] * 3


@pytest.fixture(scope="module")
def upright() -> np.ndarray:
    page = render.render_page(LINES, dpi=200, style="serif", rng=random.Random(3))
    return np.asarray(page.convert("RGB"))


def _skewed(image: np.ndarray, degrees: float) -> np.ndarray:
    h, w = image.shape[:2]
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    return cv2.warpAffine(image, matrix, (w, h), borderValue=(255, 255, 255))


@pytest.mark.parametrize("turned_cw", [0, 90, 180, 270])
def test_each_rotation_is_corrected(upright: np.ndarray, turned_cw: int) -> None:
    scanned = np.rot90(upright, k=-turned_cw // 90)
    result = cleanup.clean_page(scanned, 200, CleanupProfile(deskew=False, despeckle=False))
    assert result.rotation == (360 - turned_cw) % 360
    assert result.orientation_by == "layout"  # settled without Tesseract
    # a grey page (equal channels) comes out as its one channel
    assert np.array_equal(result.image, upright[..., 0])


@pytest.mark.parametrize("shape", [(7, 5), (7, 5, 3), (1, 9), (9, 1, 3), (1, 1)])
@pytest.mark.parametrize("turns", [-1, 0, 1, 2, 3, 4, 5])
def test_quarter_turns_are_numpys_rot90(shape: tuple[int, ...], turns: int) -> None:
    image = np.random.default_rng(turns % 4).integers(0, 256, shape, dtype=np.uint8)
    cropped = image[:, 1:] if shape[1] > 1 else image  # a border's crop is a view, not contiguous
    turned = cleanup.rotate_bound(cropped, turns)
    assert np.array_equal(turned, np.rot90(cropped, k=-turns)) and turned.flags.c_contiguous


@pytest.mark.parametrize("turned_cw", [0, 90, 180, 270])
def test_osd_and_the_layout_agree_on_a_turned_skewed_page(upright: np.ndarray,
                                                           turned_cw: int) -> None:
    scanned = cleanup.to_gray(np.rot90(_skewed(upright, 3.5), k=-turned_cw // 90))
    want = (360 - turned_cw) % 360
    assert cleanup.orientation_from_layout(scanned, 200, max_skew=6) == want
    assert cleanup.orientation_by_osd(scanned, 200).rotate == want


def test_a_page_of_two_lines_is_left_to_tesseract_osd(upright: np.ndarray) -> None:
    sparse = render.render_page(LINES[:2], dpi=200, style="serif", rng=random.Random(3))
    scanned = np.rot90(np.asarray(sparse.convert("RGB")), k=2)
    assert cleanup.orientation_from_layout(cleanup.to_gray(scanned), 200, max_skew=6) is None
    result = cleanup.clean_page(scanned, 200, CleanupProfile(deskew=False))
    assert result.orientation_by in ("osd", "none")


@pytest.mark.parametrize("method", sorted(cleanup.SKEW_METHODS))
@pytest.mark.parametrize("skew", [-4.3, -1.2, 0.6, 2.5])
def test_known_skew_is_found_within_a_third_of_a_degree(upright: np.ndarray, skew: float,
                                                        method: str) -> None:
    found = cleanup.detect_skew(cleanup.to_gray(_skewed(upright, skew)), 200, 6, method)
    assert abs(found - skew) < 0.3


@pytest.mark.parametrize("angle", [-5.0, -1.2, 0.0, 0.3, 4.0])
def test_sheared_row_sums_are_those_of_the_page_turned(upright: np.ndarray, angle: float) -> None:
    """The skew searches sum rows of strips shifted by the turn instead of turning the page:
    the profile must be the turned page's, in the same direction."""
    ink = cleanup._ink(cleanup.to_gray(upright), 200, cleanup.SKEW_DPI)
    sheared = cleanup._Sheared(ink, 5.0)
    fast = sheared.rows(angle)[sheared.margin:sheared.margin + sheared.height]
    turned = cleanup._turned(ink, angle).sum(axis=1, dtype=np.float64)
    same = np.corrcoef(fast, turned)[0, 1]
    assert same > 0.99
    # turned the other way the lines fall elsewhere
    if abs(angle) >= 1:
        assert np.corrcoef(fast, cleanup._turned(ink, -angle).sum(axis=1))[0, 1] < same - 0.05


@pytest.mark.parametrize("angle", [-5.0, -0.5, 0.0, 0.07, 2.3])
def test_strips_moved_in_groups_sum_exactly_as_strips_moved_one_by_one(
        upright: np.ndarray, angle: float) -> None:
    """Moving neighbouring strips of one shift together is a shortcut, not an approximation:
    the profile is bit for bit the strip-by-strip one, so the angles found stay the same."""
    ink = cleanup._ink(cleanup.to_gray(upright), 200, cleanup.SKEW_DPI)
    sheared = cleanup._Sheared(ink, 5.0)
    strips = np.diff(sheared.running, axis=0)
    size = strips.shape[1]
    one_by_one = np.zeros(size)
    shifts = np.rint(-np.sin(np.radians(angle)) * sheared.offsets).astype(int)
    for profile, shift in zip(strips, shifts, strict=True):
        start, stop = max(0, shift), min(size, size + shift)
        one_by_one[start:stop] += profile[start - shift:stop - shift]
    assert np.array_equal(sheared.rows(angle), one_by_one)
    # the room made for the angles searched is enough: the page's rows are those of the most
    # room there can be, not cut off
    widest = cleanup._Sheared(ink, 45.0)
    assert np.array_equal(sheared.rows(angle)[sheared.margin:sheared.margin + sheared.height],
                          widest.rows(angle)[widest.margin:widest.margin + widest.height])
    assert sheared.margin < widest.margin


def test_a_straight_page_is_not_resampled(upright: np.ndarray) -> None:
    assert cleanup.detect_skew(cleanup.to_gray(upright), 200, max_skew=6) == 0.0
    result = cleanup.clean_page(upright, 200, CleanupProfile(orientation=False, despeckle=False,
                                                             flatten_illumination=False))
    assert result.skew == 0.0 and np.array_equal(result.image, upright[..., 0])


def test_deskewed_page_is_level_again(upright: np.ndarray) -> None:
    result = cleanup.clean_page(_skewed(upright, 3.0), 200, CleanupProfile(orientation=False))
    assert abs(result.skew - 3.0) < 0.3
    residual = cleanup.detect_skew(cleanup.to_gray(result.image), 200, max_skew=6)
    assert abs(residual) < 0.3


def test_dark_scanner_border_is_whitened(upright: np.ndarray) -> None:
    scanned = upright.copy()
    scanned[:, :40] = 20
    scanned[-25:, :] = 35
    cleaned, found = cleanup.remove_dark_border(scanned)
    assert found
    assert cleaned[:, :40].min() == 255 and cleaned[-25:, :].min() == 255
    # the text itself is untouched
    assert np.array_equal(cleaned[100:-100, 100:-100], upright[100:-100, 100:-100])


def test_blank_page_reads_upright_and_level() -> None:
    blank = np.full((2339, 1654, 3), 255, np.uint8)
    result = cleanup.clean_page(blank, 200, CleanupProfile())
    assert (result.rotation, result.skew) == (0, 0.0)


def test_despeckle_removes_dust_and_keeps_every_diacritic(upright: np.ndarray) -> None:
    rng = np.random.default_rng(7)
    dusty = upright.copy()
    ys, xs = rng.integers(50, upright.shape[0] - 50, 300), rng.integers(50, upright.shape[1] - 50, 300)
    ink = cleanup.to_gray(upright) < 128
    clear = [(y, x) for y, x in zip(ys, xs, strict=True) if not ink[y - 20:y + 20, x - 20:x + 20].any()]
    for y, x in clear:
        dusty[y:y + 2, x:x + 2] = 0
    cleaned, removed = cleanup.despeckle(dusty, 200)
    assert removed == len(clear) > 50
    # the page's own ink, dots and tone marks included, is exactly what it was
    assert np.array_equal(cleaned, upright)


@pytest.mark.parametrize("channels", [1, 3])
def test_despeckle_clears_a_page_of_more_specks_than_16_bit_labels_can_count(channels: int) -> None:
    """A very noisy page (here 90,000 specks around a block of print) is labelled again with
    32-bit labels when 16-bit ones overflow, and cleaned the same way."""
    page = np.full((1200, 1200), 255, np.uint8)
    page[1::4, 1::4] = 0
    page[500:700, 400:800] = 0  # the print
    reach = max(3, 200 // 12)
    ys, xs = np.mgrid[1:1200:4, 1:1200:4]
    # a speck survives when the print is within its square reach
    near = (np.maximum(np.maximum(500 - ys, ys - 699), 0) <= reach) & (
        np.maximum(np.maximum(400 - xs, xs - 799), 0) <= reach)
    outside = ~((ys >= 500) & (ys < 700) & (xs >= 400) & (xs < 800))
    image = page if channels == 1 else np.repeat(page[..., None], 3, axis=2)
    cleaned, removed = cleanup.despeckle(image, 200)
    assert removed == int((outside & ~near).sum()) > 80_000
    grey = cleaned if channels == 1 else cleaned[..., 0]
    assert (grey[ys[near], xs[near]] == 0).all() and (grey[ys[~near], xs[~near]] == 255).all()
    assert (grey[500:700, 400:800] == 0).all()


def test_uneven_lighting_is_flattened_and_print_stays_black(upright: np.ndarray) -> None:
    h, w = upright.shape[:2]
    shade = np.linspace(0.5, 1.0, w)[None, :, None] * np.linspace(0.8, 1.0, h)[:, None, None]
    shadowed = (upright * shade).astype(np.uint8)
    flat = cleanup.flatten_illumination(shadowed, 200)
    paper = cleanup.to_gray(upright) > 250
    assert cleanup.to_gray(shadowed)[paper].min() < 110  # the shadowed edge before
    assert np.percentile(cleanup.to_gray(flat)[paper], 1) > 240
    ink = cleanup.to_gray(upright) < 60
    assert cleanup.to_gray(flat)[ink].mean() < 60


def test_quality_levels_are_numpys_median_and_percentile_to_the_bit() -> None:
    """The quality flags read the paper's level and the darkest print from a histogram instead
    of numpy's sort: the same values, so no page's flags change."""
    rng = np.random.default_rng(7)
    for trial in range(300):
        size = int(rng.integers(1, 3000))
        low = int(rng.integers(0, 200))
        pixels = rng.integers(low, low + int(rng.integers(1, 56)), size=(1, size), dtype=np.uint8)
        levels = cleanup._Levels(pixels)
        assert levels.median() == float(np.median(pixels)), (trial, size)
        for q in (0.0, 0.5, 37.3, 50.0, 99.5, 100.0):
            assert levels.percentile(q) == float(np.percentile(pixels, q)), (trial, size, q)
