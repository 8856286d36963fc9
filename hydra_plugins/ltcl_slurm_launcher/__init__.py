"""ltcl's SLURM launcher for Hydra (hydra/launcher=slurm).

Hydra instantiates launcher plugins only from the ``hydra_plugins`` namespace package, so the
class lives here; its checks live in :mod:`ltcl.run.launcher`.
"""
