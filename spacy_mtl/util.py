"""Work in progress."""


def make_minilm_path(*args, **kwargs):  # replaced shortly
    raise NotImplementedError
