"""Child-process jobs with progress, cancellation and error reporting."""
