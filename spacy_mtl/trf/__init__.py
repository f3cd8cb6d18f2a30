"""Everything that touches spacy-transformers, torch or thinc internals."""
