"""What a scanner and old paper do to a clean page: show-through, skew, rotation, the scanner
bed's dark border, dust, blur, and the grey of aged paper."""

from __future__ import annotations

import random

import cv2
import numpy as np
from PIL import Image

from pipeline.demo.layout import PAGE_W_MM


def degrade(
    img: Image.Image, *, rotation: int, skew: float, rng: random.Random, speckle: bool,
    blur: bool, border: bool, dpi: int | None = None, bleed: Image.Image | None = None,
) -> Image.Image:
    """What the scanner does to a clean page, in that order: with ``bleed`` (the clean reverse
    side of the sheet) the reverse's text shows through the paper, mirrored, light grey and
    diffuse; the page lies ``skew`` degrees askew (positive = counter-clockwise, white lid
    around it), is turned ``rotation`` degrees clockwise (lossless), the bed edge shows as a
    dark band, dust speckles, optics blur. Keeps the mode (L or RGB); ``dpi`` defaults to what
    the image says or A4 width implies."""
    if rotation not in (0, 90, 180, 270):
        raise ValueError(f"rotation must be 0, 90, 180 or 270, not {rotation}")
    if img.mode not in ("L", "RGB"):
        img = img.convert("RGB")
    if dpi is None:
        info_dpi = img.info.get("dpi")
        dpi = round(info_dpi[0]) if info_dpi else round(min(img.size) / (PAGE_W_MM / 25.4))
    np_rng = np.random.default_rng(rng.getrandbits(64))
    arr = np.array(img)
    white = (255, 255, 255) if arr.ndim == 3 else 255
    # Show-through is in the sheet itself, so it turns with the page; it draws from ``rng``
    # only when asked for, which keeps pages without it identical to what they always were.
    if bleed is not None:
        arr = _show_through(arr, bleed, dpi, rng)
    if skew:
        h, w = arr.shape[:2]
        matrix = cv2.getRotationMatrix2D((w / 2, h / 2), skew, 1.0)
        arr = cv2.warpAffine(arr, matrix, (w, h), flags=cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_CONSTANT, borderValue=white)
    if rotation:
        arr = np.ascontiguousarray(np.rot90(arr, k=-(rotation // 90)))
    if border:
        _scanner_border(arr, rng, np_rng)
    if speckle:
        _speckle(arr, dpi, rng, np_rng)
    if blur:
        sigma = rng.uniform(0.35, 0.8) * dpi / 300
        arr = cv2.GaussianBlur(arr, (0, 0), sigma)
    out = Image.fromarray(arr, img.mode)
    out.info["dpi"] = (dpi, dpi)
    return out


def _show_through(
    arr: np.ndarray, reverse: Image.Image, dpi: int, rng: random.Random
) -> np.ndarray:
    h, w = arr.shape[:2]
    back = np.asarray(reverse.convert("L"), dtype=np.float32)
    if back.shape != (h, w):
        back = cv2.resize(back, (w, h), interpolation=cv2.INTER_AREA)
    # Seen through the paper, the reverse reads mirrored left to right; the paper scatters its
    # ink over a fraction of a millimetre and passes only part of it: light grey (about 165-205
    # where the reverse is solid ink, lighter on thin strokes) with soft edges.
    ink = 1.0 - back[:, ::-1] / 255.0
    ink = cv2.GaussianBlur(ink, (0, 0), rng.uniform(0.8, 1.4) * dpi / 300)
    tint = 1.0 - ink * rng.uniform(0.2, 0.35)
    if arr.ndim == 3:
        tint = tint[..., None]
    return np.clip(arr.astype(np.float32) * tint + 0.5, 0, 255).astype(np.uint8)


def _scanner_border(arr: np.ndarray, rng: random.Random, np_rng: np.random.Generator) -> None:
    h, w = arr.shape[:2]
    edges = rng.choice([("right",), ("bottom",), ("left",), ("right", "bottom"), ("left", "top")])
    for edge in edges:
        # A writable view turned so that the band is always the first columns.
        view = {
            "left": arr, "right": arr[:, ::-1],
            "top": arr.swapaxes(0, 1), "bottom": arr[::-1].swapaxes(0, 1),
        }[edge]
        depth = max(2, round((w if edge in ("left", "right") else h) * rng.uniform(0.01, 0.03)))
        band = np_rng.normal(rng.randint(12, 55), 6, size=view.shape[:1] + (depth,))
        band = band.clip(0, 255).astype(np.uint8)
        view[:, :depth] = band[..., None] if view.ndim == 3 else band
        # The page edge casts a short soft shadow rather than a razor edge.
        n = 6
        fade = 0.55 + 0.45 * np.linspace(0.0, 1.0, num=n, dtype=np.float32)[None, :]
        if view.ndim == 3:
            fade = fade[..., None]
        view[:, depth:depth + n] = (view[:, depth:depth + n] * fade).astype(np.uint8)


def _speckle(
    arr: np.ndarray, dpi: int, rng: random.Random, np_rng: np.random.Generator
) -> None:
    h, w = arr.shape[:2]
    area_in2 = (w / dpi) * (h / dpi)
    # Sparse dust: a flatbed shows tens of specks per page, not hundreds.
    dark = int(area_in2 * rng.uniform(0.3, 1.2))
    scale = dpi / 300
    xs = np_rng.integers(0, w, dark)
    ys = np_rng.integers(0, h, dark)
    radii = np.maximum(0, np.round(np_rng.uniform(0.3, 1.6, dark) * scale)).astype(int)
    greys = np_rng.integers(0, 90, dark)
    for x, y, r, g in zip(xs, ys, radii, greys, strict=True):
        colour = (int(g),) * 3 if arr.ndim == 3 else int(g)
        cv2.circle(arr, (int(x), int(y)), int(r), colour, thickness=-1)
    # Salt: single pale pixels, visible only where they hit ink.
    light = int(area_in2 * rng.uniform(20, 60))
    arr[np_rng.integers(0, h, light), np_rng.integers(0, w, light)] = 235



OLD_PAPER = 222


def on_paper(img: Image.Image, paper: int) -> Image.Image:
    """``img`` printed on a sheet of grey ``paper``: the sheet's tone darkens print and paper
    alike."""
    if paper >= 255:
        return img
    tinted = np.asarray(img, np.float32) * (paper / 255) + 0.5
    out = Image.fromarray(tinted.astype(np.uint8), img.mode)
    out.info.update(img.info)
    return out
