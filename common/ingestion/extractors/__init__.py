"""Format-specific text extractors, one module per format.

`common.ingestion.extract.extract_text` picks one by type and normalises its pages; `headings`
carries section headings (HTML, Markdown, PDF bookmarks or numbered lines) through that.
"""
