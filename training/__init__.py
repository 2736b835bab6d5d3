"""Training: turn high-resolution knowledge into low-resolution models (needs torch).

One loop (`loop.py`) that every method plugs into through the one table `methods.py` (a file
per method), the `Recipe` that defines a run (`recipe.py`), the degradations every stage shares
(`degrade.py`: the papers' fixed kernel and random real cameras), our own backbones (`backbones.py`).
"""
