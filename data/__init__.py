"""What goes in and out of the models: data sets and pictures.

    idx.py        the IDX file format of MNIST: read (checked) and write
    download.py   one file from a list of mirrors, checked before it is kept
    mnist.py      MNIST / Fashion-MNIST: find, download, verify and load the splits
    pictures.py   image grids, PNG files and NLL curves

Nothing here imports Theano.
"""
