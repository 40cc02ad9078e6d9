"""Active learning: slice and case suggestions, agreement-gated proposals."""
