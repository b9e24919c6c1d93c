"""The pruning engine: model loading, block surgery, block-by-block evaluation, benchmarks.

Never imports Textual (tests/test_layering.py enforces it).
"""
