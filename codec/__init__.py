"""The lossless codec of compress.py: a model's probabilities driving an entropy coder.

    coder.py      one batch through a cached evaluator and constriction's range coder,
                  the same function encoding and decoding; the fixed-point probabilities
    batches.py    the batch layout, and worker processes that code batches in parallel
    container.py  the file: header, one range code per batch, checksums
    model.py      the checkpoint behind a file: read safely, hashed, its evaluator
    numerics.py   what the probabilities depend on besides the checkpoint (NumPy, its
                  SIMD paths, the BLAS and its threads, the code), recorded and compared
    images.py     the images in and out: MNIST test images, .npy, PNG; quantization
"""
