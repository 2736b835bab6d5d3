"""Training: turn high-resolution knowledge into low-resolution models (needs torch).

One loop (`loop.py`), one file per method (`lr.py`, `hr.py`, `dfd.py`), the degradation that
every stage shares (`degrade.py`), our own backbones (`backbones.py`).
"""
