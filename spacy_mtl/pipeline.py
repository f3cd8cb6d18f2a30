"""Work in progress."""


def make_mtl_textcat(*args, **kwargs):  # replaced by the real factory shortly
    raise NotImplementedError
