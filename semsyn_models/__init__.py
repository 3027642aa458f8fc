"""The built-in zoo: SPADE, CC-FPSE, the multi-scale PatchGAN and the losses.

Registered through the `semsyn.plugins` entry point exactly as a third-party plugin is: importing this
package registers every component. Family files never import each other; shared blocks live in
`layers.py`.
"""

from semsyn_models import layers  # noqa: F401  (registers norms and cond-norms)

for _family in ("spade", "discriminators", "losses", "ccfpse", "posgen", "groupdnet"):
    try:
        __import__(f"semsyn_models.{_family}")
    except ModuleNotFoundError as _exc:  # families land one by one; a missing file is not an error
        if _exc.name != f"semsyn_models.{_family}":
            raise
