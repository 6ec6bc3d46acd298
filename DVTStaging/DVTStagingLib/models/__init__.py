"""Networks and their weights: VDPF (with its ablations), the paper's baselines, configurations, the catalogue.

Importing this package imports no torch: `config` and `catalog` are read by
the Slicer panel, which runs without the model libraries.
"""
