"""Videos Kimi can watch (reference §4.2): which files are videos, and whether the bytes are one.

The container is checked from its first bytes before anything is sent: a damaged or mislabelled file gets a clear
note instead of an error from Kimi in the middle of the answer.
"""

from __future__ import annotations

from pathlib import PurePath

SUFFIX_MIMES = {
    ".mp4": "video/mp4", ".m4v": "video/mp4", ".mov": "video/quicktime", ".webm": "video/webm",
    ".avi": "video/x-msvideo", ".mpeg": "video/mpeg", ".mpg": "video/mpeg", ".flv": "video/x-flv",
    ".wmv": "video/x-ms-wmv", ".3gp": "video/3gpp", ".3gpp": "video/3gpp",
}
KNOWN_MIMES = frozenset(SUFFIX_MIMES.values())
SUPPORTED = "MP4, MOV, WebM, AVI, MPEG, FLV, WMV and 3GP"
_ISO_BOXES = (b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip")


def is_video_type(filename: str, mime: str | None) -> bool:
    base = (mime or "").split(";", 1)[0].strip().lower()
    if base.startswith("video/"):
        return True
    return base in ("", "application/octet-stream", "binary/octet-stream") and \
        PurePath(filename.lower()).suffix in SUFFIX_MIMES


def video_mime(filename: str, mime: str | None) -> str:
    """The MIME type to declare to Kimi: the platform's when it names a video type Kimi knows, else by suffix."""
    base = (mime or "").split(";", 1)[0].strip().lower()
    if base in KNOWN_MIMES:
        return base
    return SUFFIX_MIMES.get(PurePath(filename.lower()).suffix, "video/mp4")


def looks_like_video(data: bytes) -> bool:
    head = data[:16]
    return (
        head[4:8] in _ISO_BOXES  # MP4, MOV, 3GP (ISO base media)
        or head.startswith(b"\x1a\x45\xdf\xa3")  # WebM / Matroska
        or (head.startswith(b"RIFF") and head[8:11] == b"AVI")
        or head.startswith((b"\x00\x00\x01\xba", b"\x00\x00\x01\xb3"))  # MPEG program / video stream
        or head.startswith(b"FLV")
        or head.startswith(b"\x30\x26\xb2\x75\x8e\x66\xcf\x11")  # ASF (WMV)
    )
