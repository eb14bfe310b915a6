"""Format-specific text extractors behind `common.extract.extract_text` (one module per format)."""
