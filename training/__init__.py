"""Training a network on MNIST in resumable runs (used by train_mnist.py).

    run_folder.py   a run's folder: its config, state, history and the errors of a run
    trainer.py      Trainer: the compiled step, epochs, validation, the resumable state
    outputs.py      what each epoch leaves behind: checkpoint, pictures, history, curves
    stopping.py     when to stop (Ctrl-C, a time budget) and the loop over epochs
    schedule.py     the learning rate of every step (--lr, --lr-decay, --lr-floor)
"""
