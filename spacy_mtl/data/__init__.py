"""Data: file formats and compression (`io`), and tabular files → `.spacy` corpora
(`convert`). Nothing here needs a trained model."""
