"""PyTorch references of the Day 18 ops, one module per op family (see make_reference_outputs.py)."""
