"""Work in progress."""


def make_mtl_scorer(*args, **kwargs):  # replaced shortly
    raise NotImplementedError
