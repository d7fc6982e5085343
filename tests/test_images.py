from __future__ import annotations

import hashlib
import io
import random
import struct
import zlib

import pytest
from PIL import Image

from bot.images import ImageRejected, NormalizedImage, is_image_type, normalize_image


def _encode(img: Image.Image, fmt: str, **params: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **params)
    return buf.getvalue()


def _open(result: NormalizedImage) -> Image.Image:
    img = Image.open(io.BytesIO(result.data))
    img.load()
    return img


def _noise(width: int, height: int, seed: int = 0) -> Image.Image:
    return Image.frombytes("RGB", (width, height), random.Random(seed).randbytes(width * height * 3))


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def _png_header_only(width: int, height: int, with_idat: bool = True) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr)
    if with_idat:
        data += _png_chunk(b"IDAT", zlib.compress(b"\x00" * 64))
    return data + _png_chunk(b"IEND", b"")


async def test_png_roundtrip_keeps_png_and_hashes_output() -> None:
    src = Image.new("RGB", (320, 200), (10, 120, 200))
    result = await normalize_image(_encode(src, "PNG"))
    assert result.mime == "image/png"
    assert (result.width, result.height) == (320, 200)
    assert result.sha256 == hashlib.sha256(result.data).hexdigest()
    out = _open(result)
    assert out.format == "PNG" and out.mode == "RGB"
    assert out.getpixel((5, 5)) == (10, 120, 200)


async def test_jpeg_exif_rotation_applied_and_metadata_stripped() -> None:
    src = Image.new("RGB", (200, 100), (200, 30, 30))
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90° clockwise on display
    exif[0x010F] = "CameraMaker"
    result = await normalize_image(_encode(src, "JPEG", exif=exif.tobytes(), quality=95))
    assert (result.width, result.height) == (100, 200)
    out = _open(result)
    assert out.size == (100, 200)
    assert "exif" not in out.info
    assert len(out.getexif()) == 0


async def test_rgba_keeps_alpha() -> None:
    src = Image.new("RGBA", (64, 64), (0, 255, 0, 128))
    result = await normalize_image(_encode(src, "PNG"))
    out = _open(result)
    assert result.mime == "image/png"
    assert out.mode == "RGBA"
    assert out.getpixel((1, 1)) == (0, 255, 0, 128)


async def test_opaque_rgba_becomes_rgb() -> None:
    src = Image.new("RGBA", (32, 32), (9, 8, 7, 255))
    out = _open(await normalize_image(_encode(src, "PNG")))
    assert out.mode == "RGB"


async def test_palette_gif_with_transparency_becomes_rgba() -> None:
    src = Image.new("P", (40, 40), 0)
    src.putpalette([255, 0, 0, 0, 0, 255] + [0] * (256 * 3 - 6))
    src.paste(1, (0, 0, 20, 40))
    result = await normalize_image(_encode(src, "GIF", transparency=1))
    out = _open(result)
    assert result.mime == "image/png"
    assert out.mode == "RGBA"
    assert out.getpixel((30, 10)) == (255, 0, 0, 255)
    assert out.getpixel((5, 10))[3] == 0


async def test_animated_gif_uses_first_frame() -> None:
    frames = [Image.new("RGB", (30, 30), color) for color in ((255, 0, 0), (0, 0, 255), (0, 255, 0))]
    data = _encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    out = _open(await normalize_image(data))
    assert getattr(out, "n_frames", 1) == 1
    assert out.convert("RGB").getpixel((15, 15)) == (255, 0, 0)


async def test_16_bit_grayscale_png_is_scaled_not_clipped() -> None:
    src = Image.new("I;16", (4, 1))
    src.putpixel((0, 0), 65535)
    src.putpixel((1, 0), 32768)
    src.putpixel((2, 0), 0)
    out = _open(await normalize_image(_encode(src, "PNG")))
    assert out.mode == "L"
    assert out.getpixel((0, 0)) == 255
    assert out.getpixel((1, 0)) == 128
    assert out.getpixel((2, 0)) == 0


async def test_cmyk_jpeg_becomes_rgb() -> None:
    src = Image.new("CMYK", (50, 50), (0, 255, 255, 0))
    out = _open(await normalize_image(_encode(src, "JPEG", quality=95)))
    assert out.mode == "RGB"
    r, g, b = out.getpixel((25, 25))
    assert r > 200 and g < 60 and b < 60


async def test_webp_is_accepted() -> None:
    src = Image.new("RGB", (60, 40), (1, 2, 3))
    result = await normalize_image(_encode(src, "WEBP", lossless=True))
    assert (result.width, result.height) == (60, 40)
    assert result.mime == "image/png"


async def test_large_image_downscaled_to_max_side() -> None:
    src = Image.new("RGB", (5000, 3000), (100, 100, 100))
    result = await normalize_image(_encode(src, "PNG"))
    assert (result.width, result.height) == (2048, 1229)
    assert _open(result).size == (2048, 1229)


async def test_large_jpeg_downscaled_with_custom_max_side() -> None:
    src = Image.new("RGB", (4000, 1000), (10, 200, 10))
    result = await normalize_image(_encode(src, "JPEG"), max_side=1000)
    assert (result.width, result.height) == (1000, 250)


async def test_noisy_image_falls_back_to_jpeg_under_budget() -> None:
    src = _noise(900, 700).convert("RGBA")
    limit = 120_000
    result = await normalize_image(_encode(src, "PNG"), max_output_bytes=limit)
    assert result.mime == "image/jpeg"
    assert len(result.data) <= limit
    out = _open(result)
    assert out.format == "JPEG" and out.mode == "RGB"
    assert out.size == (result.width, result.height)


async def test_impossible_budget_is_refused() -> None:
    with pytest.raises(ImageRejected) as err:
        await normalize_image(_encode(_noise(300, 300), "PNG"), max_output_bytes=50)
    assert "too large" in err.value.user_message


def _corrupted_png() -> bytes:
    data = bytearray(_encode(_noise(64, 64), "PNG"))
    middle = len(data) // 2
    data[middle : middle + 16] = bytes(b ^ 0xFF for b in data[middle : middle + 16])
    return bytes(data)


@pytest.mark.parametrize(
    ("data", "phrase"),
    [
        (b"hello, this is a text file\n", "isn't an image"),
        (random.Random(1).randbytes(4096), "isn't an image"),
        (b"%PDF-1.7\n" + b"0" * 100, "isn't an image"),
        (_encode(Image.new("RGB", (8, 8)), "BMP"), "isn't an image"),
        (_corrupted_png(), "damaged"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00garbage" * 20, "damaged"),
    ],
)
async def test_corrupt_and_non_images_refused(data: bytes, phrase: str) -> None:
    with pytest.raises(ImageRejected) as err:
        await normalize_image(data)
    assert phrase in err.value.user_message


async def test_truncated_png_refused() -> None:
    full = _encode(_noise(200, 200), "PNG")
    with pytest.raises(ImageRejected) as err:
        await normalize_image(full[: len(full) // 2])
    assert "damaged or incomplete" in err.value.user_message


async def test_empty_bytes_refused() -> None:
    with pytest.raises(ImageRejected) as err:
        await normalize_image(b"")
    assert "empty" in err.value.user_message


async def test_over_max_input_bytes_refused_before_decoding() -> None:
    # Not an image at all: the size check must fire before any decoding is attempted.
    with pytest.raises(ImageRejected) as err:
        await normalize_image(b"x" * 1001, max_input_bytes=1000)
    assert "too large" in err.value.user_message


@pytest.mark.parametrize("side", [100_000, 9_000])
async def test_pixel_bomb_header_refused_without_decoding(side: int) -> None:
    # The file carries no pixel data for such a size: a "too many pixels" refusal (rather than a
    # "damaged" one) proves the decision came from the header alone.
    data = _png_header_only(side, side)
    with pytest.raises(ImageRejected) as err:
        await normalize_image(data)
    assert "too many pixels" in err.value.user_message


async def test_max_pixels_parameter_is_honoured() -> None:
    with pytest.raises(ImageRejected) as err:
        await normalize_image(_encode(Image.new("RGB", (100, 100)), "PNG"), max_pixels=9_999)
    assert "too many pixels" in err.value.user_message


@pytest.mark.parametrize(
    ("filename", "mime", "expected"),
    [
        ("a.png", "image/png", True),
        ("photo", "image/jpeg", True),
        ("x.webp", None, True),
        ("anim.GIF", "application/octet-stream", True),
        ("pic.jpeg", "", True),
        ("doc.pdf", "application/pdf", False),
        ("a.png", "text/plain", False),
        ("scan.tiff", "image/tiff", False),
        ("notes.txt", None, False),
        ("", None, False),
    ],
)
def test_is_image_type(filename: str, mime: str | None, expected: bool) -> None:
    assert is_image_type(filename, mime) is expected
