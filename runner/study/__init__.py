"""Studies: a lecture's claim as a file, its runs with seed repeats, measures, a verdict from the data."""
