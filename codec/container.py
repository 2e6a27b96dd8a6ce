"""The compressed file: a header, one range code per batch, checksums.

Layout (integers little-endian)::

    MAGIC                8 bytes  b"PXCODEC" + format version (one byte)
    header length        u32
    header               JSON (what the images are, the checkpoint's SHA-256 and
                         settings, the batch layout, the numerics), zlib-compressed
                         with the preset dictionary HEADER_WORDS (a header's usual
                         keys and values: about 300 bytes instead of 700)
    per batch, in order:
        word count       u32
        image digest     8 bytes  the first 8 bytes of SHA-256 over the batch's bins
                                  (and labels): each decoded batch is checked against it
        words            word count x u32, the batch's range code
    file digest          32 bytes SHA-256 of everything before it

The header also holds ``images_sha256`` over all images, checked after the
last batch. The file digest is checked before anything is decoded, so a
truncated or altered file is refused, never decoded into noise.
"""
import hashlib
import json
import struct
import zlib

import numpy

from lib.checkpoint import atomic_write

FORMAT_VERSION = 1
MAGIC = b"PXCODEC" + bytes([FORMAT_VERSION])
DIGEST_BYTES = 8
SUFFIX = ".pxc"


# zlib's preset dictionary for the header: part of the format (a change needs a new
# FORMAT_VERSION). Strings that headers usually hold, so that they cost a few bits.
HEADER_WORDS = ",".join([
    '{"batch_size":', '"images":', '"images_sha256":"', '"information_bits":',
    '"labels":false', '"labels":true', '"model":{"config":{"conditional":"none"',
    '"conditional":"class"', '"condition_map":', '"dim":32', '"input_dim":1', '"input_dim":3',
    '"model":"pixelconv"', '"model":"gated"', '"model":"masked"', '"model":"rowlstm"',
    '"model":"diagbilstm"', '"num_layers":', '"q_levels":2', '"q_levels":4',
    '"path":"pretrained/binarized_diagbilstm.npz"', '"pretrained/pixelconv.npz"',
    '"pretrained/gated_class.npz"', '"sha256":"', '"nll_bits":',
    '"numerics":{"blas":"OpenBLAS 0.3.20  USE64BITINT DYNAMIC_ARCH NO_AFFINITY Haswell Zen '
    'SkylakeX MAX_THREADS=64 (kernels: SkylakeX)"', '"blas_threads":1', '"code_sha256":"',
    '"constriction":"0.5.0"', '"machine":"x86_64"', '"numpy":"1.23.5"',
    '"numpy_simd":"AVX,AVX2,AVX512CD,AVX512F,AVX512_CLX,AVX512_CNL,AVX512_ICL,AVX512_SKX,F16C,'
    'FMA3,POPCNT,SSE,SSE2,SSE3,SSE41,SSE42,SSSE3"', '"precision":24', '"shape":[',
    '"source":{"binarization":"dynamic","binarization_seed":20160101,"count":',
    '"dataset":"binarized-mnist"', '"dataset":"mnist"', '"kind":"test"', '"kind":"npy"',
    '"kind":"png"', '"name":"', '"names":["', '"quantization":"to_targets"',
    '"quantization":"binarized"', '"quantization":"bins"', '"written_by":{"commit":"',
    '"workers":']).encode()


class ContainerError(ValueError):
    """A file that is not a compressed-image file, or is damaged."""


def images_digest(bins, labels=None, size=32):
    """The first ``size`` bytes of SHA-256 over bins (any shape, uint8) and labels."""
    digest = hashlib.sha256()
    bins = numpy.ascontiguousarray(bins, dtype=numpy.uint8)
    digest.update(json.dumps(list(bins.shape)).encode() + bins.tobytes())
    if labels is not None:
        digest.update(b"labels" + numpy.ascontiguousarray(labels, dtype=numpy.uint8).tobytes())
    return digest.digest()[:size]


def pack(header, batches):
    """The file's bytes: ``header`` (a JSON-serialisable dict) and ``batches``, a list
    of (image digest bytes, uint32 words)."""
    packer = zlib.compressobj(9, zdict=HEADER_WORDS)
    compressed = packer.compress(json.dumps(header, sort_keys=True,
                                            separators=(",", ":")).encode()) + packer.flush()
    parts = [MAGIC, struct.pack("<I", len(compressed)), compressed]
    for digest, words in batches:
        words = numpy.asarray(words, dtype="<u4")
        if len(digest) != DIGEST_BYTES:
            raise ValueError("a batch digest has {} bytes, not {}".format(len(digest),
                                                                            DIGEST_BYTES))
        parts += [struct.pack("<I", len(words)), digest, words.tobytes()]
    body = b"".join(parts)
    return body + hashlib.sha256(body).digest()


def save(path, data):
    """Write the file's bytes (from ``pack``) atomically: a temporary file renamed
    into place."""
    atomic_write(path, lambda f: f.write(data))


def unpack(data, name="the file"):
    """(header dict, [(image digest, uint32 words), ...]) of a file's bytes; raises
    ContainerError naming the problem."""
    if len(data) < len(MAGIC) or data[:len(MAGIC) - 1] != MAGIC[:-1]:
        raise ContainerError("{} is not a file written by compress.py encode (it does not "
                             "start with {!r})".format(name, MAGIC[:-1].decode()))
    if data[len(MAGIC) - 1] != FORMAT_VERSION:
        raise ContainerError("{} has format version {}, this compress.py reads version {}: "
                             "decode it with the version of the project that wrote it".format(
                                 name, data[len(MAGIC) - 1], FORMAT_VERSION))
    body, digest = data[:-32], data[-32:]
    if len(data) < len(MAGIC) + 4 + 32 or hashlib.sha256(body).digest() != digest:
        raise ContainerError("{} is damaged (truncated or altered): its SHA-256 checksum "
                             "does not match its contents; nothing was decoded. Use an "
                             "intact copy of the file".format(name))
    offset = len(MAGIC)
    (size,), offset = struct.unpack_from("<I", body, offset), offset + 4
    try:
        unpacker = zlib.decompressobj(zdict=HEADER_WORDS)
        header = json.loads((unpacker.decompress(body[offset:offset + size])
                             + unpacker.flush()).decode())
        if not isinstance(header, dict):
            raise ValueError("not a dict")
    except (zlib.error, ValueError):
        raise ContainerError("{}: its header is unreadable".format(name))
    offset += size
    batches = []
    while offset < len(body):
        if offset + 4 + DIGEST_BYTES > len(body):
            raise ContainerError("{}: a batch record is cut short".format(name))
        (count,) = struct.unpack_from("<I", body, offset)
        start = offset + 4 + DIGEST_BYTES
        if start + 4 * count > len(body):
            raise ContainerError("{}: a batch's code is cut short".format(name))
        batches.append((body[offset + 4:start],
                        numpy.frombuffer(body, dtype="<u4", count=count, offset=start)
                        .astype(numpy.uint32)))
        offset = start + 4 * count
    return header, batches


def read(path):
    """``unpack`` of the file at ``path``; ContainerError when it cannot be read."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as err:
        raise ContainerError("cannot read {}: {}".format(path, err.strerror or err))
    return unpack(data, path)
