"""The staticContent mimeMap: extension -> Content-Type.

Python's built-in table (not the machine's /etc/mime.types, so every host answers alike) with IIS
10's entries for the common extensions laid over it. An extension with no entry is not served
(404.3), as in IIS. Python source, bytecode and config files are left out on purpose: a
physical_path is often the app's own folder, and IIS likewise refuses its .config / .cs files.
"""

from __future__ import annotations

import mimetypes
import os

# From IIS 10's applicationHost.config <staticContent> defaults, the entries people meet.
_IIS = {
    ".htm": "text/html", ".html": "text/html", ".css": "text/css", ".txt": "text/plain",
    ".js": "application/javascript", ".json": "application/json", ".xml": "text/xml",
    ".csv": "text/csv", ".xsl": "text/xml", ".xslt": "text/xml", ".dtd": "text/xml",
    ".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".jpe": "image/jpeg",
    ".gif": "image/gif", ".bmp": "image/bmp", ".ico": "image/x-icon", ".svg": "image/svg+xml",
    ".svgz": "image/svg+xml", ".tif": "image/tiff", ".tiff": "image/tiff", ".webp": "image/webp",
    ".woff": "font/x-woff", ".woff2": "application/font-woff2", ".ttf": "application/octet-stream",
    ".otf": "font/otf", ".eot": "application/vnd.ms-fontobject",
    ".mp3": "audio/mpeg", ".wav": "audio/wav", ".ogg": "audio/ogg", ".oga": "audio/ogg",
    ".mp4": "video/mp4", ".m4v": "video/mp4", ".webm": "video/webm", ".ogv": "video/ogg",
    ".mpeg": "video/mpeg", ".mpg": "video/mpeg", ".avi": "video/x-msvideo", ".mov": "video/quicktime",
    ".pdf": "application/pdf", ".zip": "application/x-zip-compressed", ".gz": "application/x-gzip",
    ".tar": "application/x-tar", ".tgz": "application/x-compressed", ".7z": "application/x-7z-compressed",
    ".rtf": "application/rtf", ".doc": "application/msword",
    ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ".xls": "application/vnd.ms-excel",
    ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ".ppt": "application/vnd.ms-powerpoint",
    ".pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    ".wasm": "application/wasm", ".map": "application/json", ".manifest": "text/cache-manifest",
    ".appcache": "text/cache-manifest", ".webmanifest": "application/manifest+json",
    ".bin": "application/octet-stream", ".exe": "application/octet-stream",
    ".dll": "application/x-msdownload", ".iso": "application/octet-stream",
    ".rss": "application/rss+xml", ".atom": "application/atom+xml", ".vtt": "text/vtt",
    ".mjs": "application/javascript", ".md": "text/markdown",
}

_REFUSED = {".py", ".pyc", ".pyo", ".pyw", ".pyi", ".pyd", ".so", ".cfg", ".ini", ".toml",
            ".env", ".sh", ".bat", ".ksh", ".csh", ".config"}


def _build() -> dict[str, str]:
    table = dict(mimetypes.MimeTypes(filenames=()).types_map[True])
    table.update(_IIS)
    for ext in _REFUSED:
        table.pop(ext, None)
    return table


MIME_MAP = _build()


def content_type(path: str) -> str | None:
    """The mimeMap entry for `path`'s extension, or None (IIS: 404.3)."""
    ext = os.path.splitext(path)[1].lower()
    if not ext:
        return None
    return MIME_MAP.get(ext)
