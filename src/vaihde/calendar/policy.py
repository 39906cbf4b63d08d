"""Which calendar sources the service may read. A company file (applied by an admin through the
API or the CLI) names each employee's calendar, and the service fetches it every few minutes; so
the file must not be able to make the service read its own secrets or probe the local network.

Allowed: `https://` (and `webcal://`, which calendar apps hand out for https) addresses, and files
under the settings' `calendar.files_dir`. Plain `http://` only from hosts listed in
`calendar.plain_http_hosts` (for tests and local development; empty by default). Checked when
the company file is validated (`problem`) and again on every fetch (`file_path`, `url_problem`),
where symlinks and `..` are resolved against the real directory.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

WEB_SCHEMES = ("https", "webcal")


@dataclass(frozen=True, slots=True)
class CalendarPolicy:
    files_dir: str = ""  # absolute; "" = no calendar files at all
    plain_http_hosts: frozenset[str] = field(default_factory=frozenset)

    def url_problem(self, url: str) -> str | None:
        """What is wrong with a web address as a calendar source (or a redirect's target)."""
        try:
            parts = urlsplit(url)
            host = (parts.hostname or "").lower()
        except ValueError:
            return "is not a valid address"
        scheme = parts.scheme.lower()
        if scheme == "http":
            if host and host in self.plain_http_hosts:
                return None
            return (
                "must be an https:// address: plain http:// can be read and changed on the way "
                "(calendar.plain_http_hosts in the service settings lists exceptions)"
            )
        if scheme not in WEB_SCHEMES:
            return self._what()
        if not host:
            return "the address has no host"
        return None

    def problem(self, source: str) -> str | None:
        """What is wrong with `source` as written in a company file, or None. Lexical: the file
        need not exist yet (fetching checks it again, symlinks included)."""
        if any(c in source for c in "\0\r\n"):
            return "must be one line"
        if "://" in source:
            if urlsplit(source).scheme.lower() == "file":
                return (
                    "file:// addresses are not used: write the file's name in "
                    f"{self._dir_shown()} instead"
                )
            return self.url_problem(source)
        if ":" in source.split("/", 1)[0]:  # "ftp:x", "C:\\cal.ics": a scheme without //
            return self._what()
        if not self.files_dir:
            return (
                "calendar files are not allowed by the service settings (set calendar.files_dir); "
                "use an https:// address"
            )
        path = PurePosixPath(source)
        if ".." in path.parts:
            return f"must be a file in {self._dir_shown()}: '..' is not allowed"
        if path.is_absolute() and not _inside(path, PurePosixPath(self.files_dir)):
            return f"must be a file in {self._dir_shown()}"
        if not path.name or source.endswith("/"):
            return "must name a file"
        return None

    def resolve(self, source: str) -> str:
        """The source as fetch reads it: addresses as they are, a file name under files_dir."""
        if "://" in source or not self.files_dir:
            return source
        return str(Path(self.files_dir) / source)

    def file_path(self, path: str) -> tuple[Path | None, str | None]:
        """(the real path to open, None) or (None, why not): after symlinks and '..', the
        file must still be inside the real files_dir."""
        if not self.files_dir:
            return None, "calendar files are not allowed (calendar.files_dir is not set)"
        if ".." in PurePosixPath(path).parts:
            return None, f"not in {self.files_dir}: '..' is not allowed"
        real_dir = Path(os.path.realpath(self.files_dir))
        real = Path(os.path.realpath(path))
        if not _inside(real, real_dir):
            return None, f"not in {self.files_dir} (a link out of it?)"
        return real, None

    def _dir_shown(self) -> str:
        return f"calendar.files_dir ({self.files_dir})" if self.files_dir else "calendar.files_dir"

    def _what(self) -> str:
        if self.files_dir:
            return (
                f"must be an https:// address of an ICS calendar, or a file in {self._dir_shown()}"
            )
        return "must be an https:// (or webcal://) address of an ICS calendar"


def _inside(path: PurePosixPath | Path, directory: PurePosixPath | Path) -> bool:
    return path != directory and path.is_relative_to(directory)


NO_FILES = CalendarPolicy()  # https only: for callers that know no settings
