"""Downloading one data file from a list of mirrors, checked before it is kept.

The file lands in its folder only when it arrived whole and its content passed
the IDX checks (and the MD5 when one is given), so a failed or corrupt
download leaves nothing behind.
"""
import http.client
import os
import sys
import urllib.error
import urllib.request

from tqdm import tqdm

from data.idx import DataError, atomic_file, decode, read_file

DOWNLOAD_TIMEOUT = 30  # seconds per connection attempt / read
CHUNK_SIZE = 1 << 16


class Unreachable(DataError):
    """No mirror could even be connected to (no network, DNS failure, timeouts)."""


def download_file(name, folder, mirrors, expected_md5=None, urlopen=None,
                  timeout=DOWNLOAD_TIMEOUT):
    """Fetch <mirror><name>.gz from the first mirror that works into folder; return its path.

    The content is checked (IDX structure, and expected_md5 when given) before the
    file is moved into place, so a failed or corrupt download leaves nothing behind.
    Raises DataError listing each mirror's failure when none works.
    """
    urlopen = urlopen or urllib.request.urlopen
    path = os.path.join(folder, name + ".gz")
    failures, unreachable = [], True
    for mirror in mirrors:
        url = mirror + name + ".gz"
        try:
            _fetch(url, path, expected_md5, urlopen, timeout)
            return path
        except (DataError, OSError, http.client.HTTPException, ValueError) as err:
            failures.append("{}: {}".format(url, _describe(err)))
            unreachable = unreachable and _is_connection_error(err)
    error = Unreachable if unreachable and failures else DataError
    raise error("could not download {}:\n  {}".format(
        name, "\n  ".join(failures) or "no mirrors are configured"))


def _is_connection_error(err):
    """True for failures to reach a server at all (not HTTP errors or bad content)."""
    if isinstance(err, urllib.error.HTTPError):
        return False
    return isinstance(err, (urllib.error.URLError, TimeoutError, ConnectionError))


def _fetch(url, path, expected_md5, urlopen, timeout):
    """Download url into path atomically, after checking its content."""
    with urlopen(url, timeout=timeout) as response, atomic_file(path) as f:
        _copy_with_progress(response, f, os.path.basename(path))
        f.flush()
        decode(read_file(f.name), expected_md5)


def _copy_with_progress(response, f, label):
    """Copy a response body into f in chunks, with a tqdm bar in bytes."""
    length = None
    headers = getattr(response, "headers", None)
    if headers is not None and headers.get("Content-Length"):
        length = int(headers.get("Content-Length"))
    with tqdm(total=length, unit="B", unit_scale=True, unit_divisor=1024,
              desc=label, file=sys.stderr, leave=False) as bar:
        while True:
            chunk = response.read(CHUNK_SIZE)
            if not chunk:
                break
            f.write(chunk)
            bar.update(len(chunk))


def _describe(err):
    """Short text for a download failure."""
    if isinstance(err, urllib.error.HTTPError):
        return "HTTP {} {}".format(err.code, err.reason)
    if isinstance(err, urllib.error.URLError):
        return str(err.reason)
    return str(err) or type(err).__name__
