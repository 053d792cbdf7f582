"""Reading a file the walker found: size-capped, no blocking on special files, binary or text.

The walker itself reads through the descriptor it checked (see walker.py); these are for callers
that hold only a path (tests, tools), and the decoding every reader shares.
"""

from __future__ import annotations

import codecs
import os
import stat
from pathlib import Path

HEAD_BYTES = 8192

BINARY_EXTENSIONS = frozenset(
    {
        # images
        ".png", ".jpg", ".jpeg", ".gif", ".bmp", ".ico", ".icns", ".tif", ".tiff", ".webp",
        ".avif", ".heic", ".psd", ".xcf", ".raw", ".cr2", ".nef", ".svgz",
        # audio and video
        ".mp3", ".wav", ".ogg", ".oga", ".flac", ".aac", ".m4a", ".opus", ".mid", ".midi",
        ".mp4", ".m4v", ".mkv", ".mov", ".avi", ".webm", ".wmv", ".flv", ".mpg", ".mpeg",
        # archives and packages
        ".zip", ".tar", ".gz", ".tgz", ".bz2", ".tbz2", ".xz", ".txz", ".zst", ".lz", ".lz4",
        ".lzma", ".7z", ".rar", ".jar", ".war", ".ear", ".aar", ".whl", ".egg", ".nupkg",
        ".deb", ".rpm", ".apk", ".ipa", ".dmg", ".iso", ".img", ".msi", ".cab", ".gem",
        # compiled code and objects
        ".exe", ".dll", ".so", ".dylib", ".a", ".lib", ".o", ".obj", ".ko", ".elf", ".bin",
        ".class", ".pyc", ".pyo", ".pyd", ".wasm", ".node", ".beam", ".dex", ".pdb", ".idb",
        ".ilk", ".exp", ".out", ".rlib", ".rmeta", ".gch", ".pch",
        # documents and fonts
        ".pdf", ".doc", ".docx", ".xls", ".xlsx", ".ppt", ".pptx", ".odt", ".ods", ".odp",
        ".epub", ".ttf", ".otf", ".woff", ".woff2", ".eot",
        # data, databases, models
        ".sqlite", ".sqlite3", ".db", ".mdb", ".parquet", ".avro", ".orc", ".feather",
        ".arrow", ".npy", ".npz", ".pkl", ".pickle", ".joblib", ".h5", ".hdf5", ".onnx",
        ".pt", ".pth", ".safetensors", ".ckpt", ".tflite", ".pb", ".tfrecord", ".gguf",
        ".mo", ".swf", ".fla", ".blend", ".fbx", ".glb", ".stl", ".jks", ".keystore", ".p12",
        ".pfx", ".der",
    }
)  # fmt: skip

# Bytes that text files do not contain (besides \t \n \f \r, backspace and ESC).
_CONTROL_BYTES = bytes(b for b in range(32) if b not in (8, 9, 10, 12, 13, 27)) + b"\x7f"
_OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)


def read_source_text(path: Path | str, *, max_bytes: int | None = None) -> str | None:
    """The text of a file, or None when it is gone, not a regular file, too large or binary.

    See ``read_source_bytes`` for the filesystem rules and ``decode_source`` for encodings.
    """
    data = read_source_bytes(path, max_bytes=max_bytes)
    return None if data is None else decode_source(data)


def read_source_bytes(path: Path | str, *, max_bytes: int | None = None) -> bytes | None:
    """The bytes of a regular file, or None when it is gone, not a regular file or too large.

    Never raises for filesystem reasons (files vanish or change between walking and reading)
    and never blocks on a FIFO swapped in after the walk.
    """
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return None
        if max_bytes is not None and info.st_size > max_bytes:
            return None
        limit = max_bytes + 1 if max_bytes is not None else None
        parts: list[bytes] = []
        size = 0
        while True:
            part = os.read(fd, 1 << 20 if limit is None else min(1 << 20, limit - size))
            if not part:
                break
            parts.append(part)
            size += len(part)
            if limit is not None and size >= limit:
                return None  # grew past the limit since it was listed
    except OSError:
        return None
    finally:
        os.close(fd)
    return b"".join(parts)


def decode_source(data: bytes) -> str | None:
    """Bytes to text, or None for binary data.

    * A byte-order mark decides (UTF-8, UTF-16, UTF-32).
    * A NUL byte, or more than 30% control bytes, means binary (as Perl's ``-B`` judges).
    * Valid UTF-8 is decoded as such. UTF-8 with a few stray bytes (at most 1% of the text
      replaced) is decoded with U+FFFD for them. Anything else is a legacy 8-bit encoding and is
      decoded as Latin-1: its ASCII (the code) stays exact, its accents become approximate, which
      beats dropping the file.
    """
    for bom, encoding in (
        (codecs.BOM_UTF32_LE, "utf-32"),
        (codecs.BOM_UTF32_BE, "utf-32"),
        (codecs.BOM_UTF8, "utf-8-sig"),
        (codecs.BOM_UTF16_LE, "utf-16"),
        (codecs.BOM_UTF16_BE, "utf-16"),
    ):
        if data.startswith(bom):
            try:
                text = data.decode(encoding)
            except UnicodeDecodeError:
                return None
            return None if "\x00" in text else text
    if looks_binary(data):
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    text = data.decode("utf-8", "replace")
    if text.count("\ufffd") * 100 <= len(text):
        return text
    return data.decode("latin-1")


def looks_binary(head: bytes) -> bool:
    if not head:
        return False
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return False  # UTF-16 text is full of NUL bytes; decode_source handles it
    if b"\x00" in head:
        return True
    control = len(head) - len(head.translate(None, _CONTROL_BYTES))
    return control * 10 > len(head) * 3
