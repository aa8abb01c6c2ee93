"""Imaging: a page cleaned, composed into its archival PDF page, and read by OCR."""
