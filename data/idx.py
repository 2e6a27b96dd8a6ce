"""The IDX file format of MNIST: reading (gzip or raw, checked) and writing.

An IDX file is a big-endian header (a magic number whose last byte is the
number of dimensions, then each dimension's size) followed by the uint8
values. Every problem with a file is raised as ``DataError`` naming the file,
what is wrong with it and how to fix it.
"""
import contextlib
import gzip as gzip_lib
import hashlib
import os
import struct
import tempfile
import zlib

import numpy as np

IMAGE_MAGIC = 0x00000803  # unsigned bytes, 3 dimensions
LABEL_MAGIC = 0x00000801  # unsigned bytes, 1 dimension
IMAGE_SIZE = (28, 28)


class DataError(Exception):
    """A data file is missing, unreadable, corrupt or could not be downloaded."""


FIX_HINT = ("Delete the file and run again to download it, or copy a good one in its "
            "place.")


class _BadContent(DataError):
    """The bytes are not a valid IDX file; the caller adds which file it was."""


def read_idx(path, expected_md5=None):
    """Read an IDX file (gzip or raw): (num, 28, 28) uint8 images or (num,) uint8 labels."""
    data = read_file(path)
    try:
        return decode(data, expected_md5)
    except _BadContent as err:
        raise DataError("{}: {}. {}".format(path, err, FIX_HINT)) from None


def write_idx(path, array, gzip=True):
    """Write a (num, 28, 28) or (num,) uint8 array as an IDX file, atomically."""
    array = np.asarray(array)
    if array.dtype != np.uint8:
        raise DataError("cannot write {}: the array is {}, but IDX files here hold "
                        "uint8".format(path, array.dtype))
    if array.ndim not in (1, 3):
        raise DataError("cannot write {}: the array has shape {}; expected (num,) labels "
                        "or (num, 28, 28) images".format(path, array.shape))
    header = struct.pack(">I", 0x0800 | array.ndim)
    header += struct.pack(">{}I".format(array.ndim), *array.shape)
    data = header + np.ascontiguousarray(array).tobytes()
    if gzip:
        data = gzip_lib.compress(data, mtime=0)
    with atomic_file(path) as f:
        f.write(data)


def read_file(path):
    """Return the bytes of the file at path, as stored (maybe gzip)."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise DataError("{}: file not found".format(path)) from None
    except OSError as err:
        raise DataError("{}: cannot read the file ({})".format(
            path, err.strerror or err)) from None


def decode(data, expected_md5=None):
    """Decompress (if gzip), check and return an IDX file's uint8 array."""
    data = _decompress(data)
    array = _parse_idx(data)
    if expected_md5 is not None:
        _check_md5(data, expected_md5)
    return array


def _decompress(data):
    """Return data gunzipped when it is gzip (detected by content), else unchanged."""
    if data[:2] != b"\x1f\x8b":
        return data
    try:
        return gzip_lib.decompress(data)
    except EOFError:
        raise _BadContent("the gzip stream is truncated (an incomplete copy or an "
                          "interrupted download)") from None
    except (OSError, zlib.error) as err:
        raise _BadContent("the gzip data is corrupt ({})".format(err)) from None


def _parse_idx(data):
    """Check an uncompressed IDX file's header and size; return its uint8 array."""
    if len(data) < 4:
        raise _BadContent("only {} bytes, too short to be an IDX file".format(len(data)))
    magic, = struct.unpack(">I", data[:4])
    if magic not in (IMAGE_MAGIC, LABEL_MAGIC):
        raise _BadContent("wrong magic number 0x{:08x} (expected 0x{:08x} for images or "
                          "0x{:08x} for labels): not an MNIST IDX file, or corrupt".format(
                              magic, IMAGE_MAGIC, LABEL_MAGIC))
    ndim = magic & 0xFF
    header_size = 4 + 4 * ndim
    if len(data) < header_size:
        raise _BadContent("truncated inside the IDX header ({} of {} bytes)".format(
            len(data), header_size))
    shape = struct.unpack(">{}I".format(ndim), data[4:header_size])
    if ndim == 3 and shape[1:] != IMAGE_SIZE:
        raise _BadContent("images are {} x {}, expected 28 x 28".format(shape[1], shape[2]))
    expected = header_size + int(np.prod(shape, dtype=np.int64))
    if len(data) != expected:
        problem = "truncated" if len(data) < expected else "too long"
        raise _BadContent("{}: the header ({}) needs {} bytes but the content has {}".format(
            problem, " x ".join(map(str, shape)), expected, len(data)))
    array = np.frombuffer(data, dtype=np.uint8, offset=header_size)
    return array.reshape(shape).copy()


def _check_md5(data, expected_md5):
    """Raise _BadContent when the uncompressed content's MD5 is not expected_md5."""
    found = hashlib.md5(data).hexdigest()
    if found != expected_md5.lower():
        raise _BadContent("checksum mismatch: expected md5 {} of the uncompressed "
                          "content, found {}; the file is corrupt or not the official "
                          "one".format(expected_md5, found))


@contextlib.contextmanager
def atomic_file(path):
    """Yield a binary temp file beside path; on success it replaces path, else vanishes."""
    folder = os.path.dirname(os.path.abspath(path))
    f = tempfile.NamedTemporaryFile(mode="wb", dir=folder, delete=False, suffix=".part",
                                    prefix="." + os.path.basename(path) + ".")
    try:
        with f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(f.name, 0o644)
        os.replace(f.name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(f.name)
        raise
