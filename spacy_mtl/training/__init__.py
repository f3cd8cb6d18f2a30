"""What `spacy train` resolves: corpus reader, batchers, schedules, logger."""
