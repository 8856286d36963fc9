"""hydra.utils.instantiate with ltcl's own errors unwrapped."""

from __future__ import annotations

from typing import Any

from hydra.errors import InstantiationException
from hydra.utils import instantiate

from ltcl.errors import LtclError


def build(node: Any, **kwargs: Any) -> Any:
    """hydra.utils.instantiate, but an ltcl error raised by the target surfaces as itself.

    Hydra wraps every exception of a target in InstantiationException; ours already name
    the problem and the fix, so they are re-raised unwrapped.
    """
    try:
        return instantiate(node, **kwargs)
    except InstantiationException as error:
        if isinstance(error.__cause__, LtclError):
            raise error.__cause__ from None
        raise
