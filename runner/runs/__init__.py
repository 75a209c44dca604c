"""The run folder: files written whole or not at all, the summary, the checkpoint, who writes them."""
