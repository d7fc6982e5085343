"""Turns user-supplied image bytes into something safe and compact to send to Kimi's vision input.

Kimi accepts PNG, JPEG, WebP and GIF as base64 data URLs and the whole request body must stay small, so every
image is decoded defensively, oriented, converted to 8-bit RGB/RGBA/L, downscaled and re-encoded without
metadata.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import logging
import os
from dataclasses import dataclass

from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

log = logging.getLogger(__name__)

SUPPORTED_MIMES = frozenset(
    {"image/png", "image/jpeg", "image/jpg", "image/pjpeg", "image/webp", "image/gif"}
)
_SUPPORTED_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".jpe", ".jfif", ".webp", ".gif"})
# Restricting decoders keeps exotic, less-hardened plugins away from untrusted bytes.
_PIL_FORMATS = ("PNG", "JPEG", "WEBP", "GIF")
_UNSUPPORTED_MESSAGE = "That file isn't an image I can read (supported: PNG, JPEG, WebP, GIF)."
_JPEG_QUALITIES = (90, 82, 72, 60, 48, 36)
_MIN_SIDE = 64


class ImageRejected(Exception):
    """The image cannot be used; `user_message` is safe to show in the chat, `reason` is for logs."""

    def __init__(self, user_message: str, reason: str = "") -> None:
        super().__init__(reason or user_message)
        self.user_message = user_message
        self.reason = reason or user_message


@dataclass(frozen=True)
class NormalizedImage:
    data: bytes
    mime: str
    width: int
    height: int
    sha256: str


def is_image_type(filename: str, mime: str | None) -> bool:
    """Cheap pre-check before downloading: a supported image MIME type, or a supported extension when the
    platform gave no useful MIME type."""
    if mime:
        base = mime.split(";", 1)[0].strip().lower()
        if base in SUPPORTED_MIMES:
            return True
        if base not in ("", "application/octet-stream", "binary/octet-stream"):
            return False
    return os.path.splitext(filename or "")[1].lower() in _SUPPORTED_EXTENSIONS


async def normalize_image(
    data: bytes,
    *,
    max_side: int = 2048,
    max_input_bytes: int = 25_000_000,
    max_output_bytes: int = 4_000_000,
    max_pixels: int = 60_000_000,
) -> NormalizedImage:
    """Validate and re-encode an image. Raises ImageRejected with a user-facing sentence on any refusal."""
    if not data:
        raise ImageRejected("That file is empty, so there is no image to read.", "empty input")
    if len(data) > max_input_bytes:
        raise ImageRejected(
            f"That image is too large ({_mb(len(data))}; the limit is {_mb(max_input_bytes)}).",
            f"input {len(data)} bytes > {max_input_bytes}",
        )
    return await asyncio.to_thread(_normalize_sync, data, max_side, max_output_bytes, max_pixels)


def _mb(n: int) -> str:
    return f"{n / 1_000_000:.1f} MB"


def _normalize_sync(data: bytes, max_side: int, max_output_bytes: int, max_pixels: int) -> NormalizedImage:
    try:
        with Image.open(io.BytesIO(data), formats=_PIL_FORMATS) as src:
            _check_pixels(src.size, max_pixels)
            _draft_jpeg(src, max_side)
            src.load()  # first frame only: Pillow starts animated images at frame 0
            icc = src.info.get("icc_profile")
            img = ImageOps.exif_transpose(src)
            img = _to_standard_mode(img, icc)
    except ImageRejected:
        raise
    except Image.DecompressionBombError as exc:
        raise _too_many_pixels(str(exc)) from exc
    except UnidentifiedImageError as exc:
        raise ImageRejected(_UNSUPPORTED_MESSAGE, f"unidentified: {exc}") from exc
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError) as exc:
        # Pillow signals corrupt and truncated data through a mix of these.
        raise ImageRejected(
            "That image looks damaged or incomplete, so I couldn't read it.", f"decode failed: {exc!r}"
        ) from exc
    img = _downscale(img, max_side)
    img.info = {}  # encoders copy ICC/EXIF/text from info; the model needs none of it
    return _encode(img, max_output_bytes)


def _check_pixels(size: tuple[int, int], max_pixels: int) -> None:
    width, height = size
    pixels = width * height
    # Same threshold at which Pillow would emit DecompressionBombWarning; refusing here avoids mutating
    # the process-wide warnings filter from a worker thread.
    pillow_limit = Image.MAX_IMAGE_PIXELS
    limit = max_pixels if pillow_limit is None else min(max_pixels, pillow_limit)
    if width <= 0 or height <= 0:
        raise ImageRejected("That image looks damaged or incomplete, so I couldn't read it.", "zero size")
    if pixels > limit:
        raise _too_many_pixels(f"{width}x{height} > {limit} pixels")


def _too_many_pixels(reason: str) -> ImageRejected:
    return ImageRejected("That image is too large (too many pixels) for me to process.", reason)


def _draft_jpeg(src: Image.Image, max_side: int) -> None:
    """Let libjpeg decode at a reduced scale when the result is downscaled anyway, saving memory and time."""
    width, height = src.size
    if src.format != "JPEG" or max(width, height) <= max_side:
        return
    scale = max_side / max(width, height)
    src.draft(src.mode, (max(1, round(width * scale)), max(1, round(height * scale))))


def _to_standard_mode(img: Image.Image, icc: bytes | None) -> Image.Image:
    mode = img.mode
    if mode in ("P", "PA"):
        has_alpha = mode == "PA" or "transparency" in img.info
        img = img.convert("RGBA" if has_alpha else "RGB")
    elif mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        # A plain convert("L") clips 16-bit values at 255 instead of scaling them.
        img = img.convert("I").point(lambda v: v / 256).convert("L")
    elif mode == "F":
        img = img.point(lambda v: v * 255).convert("L")
    elif mode == "1":
        img = img.convert("L")
    elif mode in ("LA", "La", "RGBa"):
        img = img.convert("RGBA")
    elif mode in ("L", "RGB") and "transparency" in img.info:
        img = img.convert("RGBA")
    elif mode == "CMYK" or mode not in ("L", "RGB", "RGBA"):
        img = _to_srgb(img, icc, "RGB") if icc else img.convert("RGB")
        icc = None
    if icc and img.mode in ("RGB", "RGBA"):
        img = _to_srgb(img, icc, img.mode)
    if img.mode == "RGBA" and img.getchannel("A").getextrema() == (255, 255):
        img = img.convert("RGB")
    return img


def _to_srgb(img: Image.Image, icc: bytes, out_mode: str) -> Image.Image:
    """Bake an embedded colour profile into sRGB pixels, since the profile itself is stripped on output."""
    try:
        src_profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        converted = ImageCms.profileToProfile(
            img, src_profile, ImageCms.createProfile("sRGB"), outputMode=out_mode
        )
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError) as exc:
        log.debug("colour profile ignored", extra={"error": repr(exc)})
        return img if img.mode == out_mode else img.convert(out_mode)
    return converted if converted is not None else img


def _downscale(img: Image.Image, max_side: int) -> Image.Image:
    width, height = img.size
    if max(width, height) <= max_side:
        return img
    scale = max_side / max(width, height)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return img.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


def _encode(img: Image.Image, max_output_bytes: int) -> NormalizedImage:
    png = _save(img, "PNG", compress_level=6)
    if len(png) <= max_output_bytes:
        return _result(png, "image/png", img)
    flat = _flatten(img)
    while True:
        for quality in _JPEG_QUALITIES:
            jpeg = _save(flat, "JPEG", quality=quality, optimize=True, progressive=False)
            if len(jpeg) <= max_output_bytes:
                return _result(jpeg, "image/jpeg", flat)
        width, height = flat.size
        if min(width, height) <= _MIN_SIDE:
            raise ImageRejected(
                "That image is too large to send even after shrinking it.",
                f"cannot fit under {max_output_bytes} bytes",
            )
        flat = flat.resize(
            (max(1, round(width * 0.7)), max(1, round(height * 0.7))), Image.Resampling.LANCZOS
        )


def _flatten(img: Image.Image) -> Image.Image:
    if img.mode in ("RGB", "L"):
        return img
    rgba = img.convert("RGBA")
    background = Image.new("RGB", rgba.size, (255, 255, 255))
    background.paste(rgba, mask=rgba.getchannel("A"))
    return background


def _save(img: Image.Image, fmt: str, **params: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **params)
    return buf.getvalue()


def _result(data: bytes, mime: str, img: Image.Image) -> NormalizedImage:
    width, height = img.size
    return NormalizedImage(data, mime, width, height, hashlib.sha256(data).hexdigest())
