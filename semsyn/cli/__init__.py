"""Command-line entry points: semsyn-train, semsyn-synthesize, semsyn-convert, semsyn-push."""
