"""The batch layout, and the worker processes that code batches side by side.

Images are cut into consecutive batches of ``batch_size`` (the last one
shorter); all images of a batch advance pixel by pixel together
(``codec.coder.code_batch``), each batch in its own range code. The layout
is part of what the numbers depend on (the products are of batch-sized
matrices), so the file records it and the decoder cuts the same batches.

Batches are independent, so ``workers`` processes code them in parallel, each
with NumPy's BLAS on one thread (``codec.numerics``): the numbers of a batch
do not depend on how many workers there are. Workers ignore Ctrl-C; the main
process stops them.
"""
import multiprocessing
import signal

import numpy
from tqdm import tqdm

from codec import model as models
from codec.coder import Stream, code_batch
from codec.container import DIGEST_BYTES, images_digest
from codec.numerics import use_one_blas_thread


class MismatchError(ValueError):
    """A decoded batch does not match its checksum: the numbers differ from the
    encoder's (exit code 2; nothing is written)."""


def layout(count, batch_size):
    """[(start, stop), ...] of the batches of ``count`` images."""
    return [(s, min(s + batch_size, count)) for s in range(0, count, batch_size)]


_worker = {}   # in each worker process: the model and its evaluator


def _start_worker(model, ignore_ctrl_c):
    if ignore_ctrl_c:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    use_one_blas_thread()
    _worker["model"] = model
    _worker["evaluator"] = models.evaluator(model)


def _encode_batch(job):
    """job (bins (b, h, w, c), labels or None) -> (image digest, words, nll bits,
    information bits)."""
    bins, labels = job
    stream = Stream()
    code_batch(_worker["evaluator"], stream, bins.shape, bins, labels,
               models.conditional(_worker["model"]))
    return (images_digest(bins, labels, DIGEST_BYTES), stream.words(), stream.nll_bits,
            stream.information_bits)


def _decode_batch(job):
    """job (words, shape) -> (bins, labels or None, True when the decoder read all
    of the words)."""
    words, shape = job
    stream = Stream(words)
    try:
        bins, labels = code_batch(_worker["evaluator"], stream, shape,
                                  conditional=models.conditional(_worker["model"]))
    except (ValueError, RuntimeError, OverflowError):
        return None, None, False     # constriction refused the data: a mismatch
    return bins, labels, stream.exhausted()


def _run(model, function, jobs, workers, sizes, desc, progress):
    """``function`` over ``jobs`` in order, in this process or ``workers`` processes,
    with a progress bar counting ``sizes`` (images per job)."""
    bar = tqdm(total=sum(sizes), desc=desc, unit="img", disable=not progress)
    try:
        if workers <= 1 or len(jobs) <= 1:
            _start_worker(model, ignore_ctrl_c=False)
            for job, size in zip(jobs, sizes):
                result = function(job)
                bar.update(size)
                yield result
            return
        context = multiprocessing.get_context("fork")
        with context.Pool(min(workers, len(jobs)), initializer=_start_worker,
                          initargs=(model, True)) as pool:   # leaving it terminates them
            for result, size in zip(pool.imap(function, jobs), sizes):
                bar.update(size)
                yield result
    finally:
        bar.close()


def encode(model, bins, labels, batch_size, workers=1, progress=True):
    """Code bins (num, h, w, c) (and labels (num,) of a class-conditional model)
    in batches: ([(image digest, words), ...], nll bits, information bits)."""
    spans = layout(len(bins), batch_size)
    jobs = [(bins[s:t], None if labels is None else labels[s:t]) for s, t in spans]
    out, nll, info = [], 0.0, 0.0
    for digest, words, batch_nll, batch_info in _run(model, _encode_batch, jobs, workers,
                                                     [t - s for s, t in spans], "encode",
                                                     progress):
        out.append((digest, words))
        nll, info = nll + batch_nll, info + batch_info
    return out, nll, info


def decode(model, batches, shape, batch_size, workers=1, progress=True):
    """The bins (num, h, w, c) and labels (num,) or None of the file's ``batches``
    [(image digest, words), ...]; MismatchError at the first batch that does not
    match its digest."""
    num = shape[0]
    spans = layout(num, batch_size)
    if len(spans) != len(batches):
        raise MismatchError("the file holds {} batches, its header describes {}".format(
            len(batches), len(spans)))
    jobs = [(words, (t - s,) + tuple(shape[1:])) for (s, t), (_, words) in zip(spans, batches)]
    bins = numpy.zeros(shape, dtype=numpy.uint8)
    labels = numpy.zeros(num, dtype=numpy.uint8) if models.conditional(model) else None
    results = _run(model, _decode_batch, jobs, workers, [t - s for s, t in spans], "decode",
                   progress)
    for k, ((s, t), (digest, _), (part, part_labels, exhausted)) in enumerate(
            zip(spans, batches, results)):
        if part is None or not exhausted or images_digest(part, part_labels,
                                                          DIGEST_BYTES) != digest:
            results.close()
            raise MismatchError(
                "batch {} of {} (images {}..{}) does not match its checksum: this "
                "machine's numbers differ from the encoder's. Nothing was written".format(
                    k + 1, len(spans), s, t - 1))
        bins[s:t] = part
        if labels is not None:
            labels[s:t] = part_labels
    results.close()
    return bins, labels
