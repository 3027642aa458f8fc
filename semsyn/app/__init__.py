"""semsyn-app: paint a label map in the browser and watch a model render it.

A page served by the standard library's HTTP server (no web framework): a canvas holding class ids at the
model's size, a palette from the model's label schema, and a render after each stroke. Start it with
``semsyn-app MODEL``, or from Python::

    from semsyn.app import AppServer, Renderer
    with AppServer(Renderer(model)) as app:
        print(app.url)

See docs/app.md.
"""

from semsyn.app.labelmaps import AppInputError
from semsyn.app.renderer import Renderer, RenderRequest
from semsyn.app.server import AppServer

__all__ = ["AppServer", "AppInputError", "Renderer", "RenderRequest"]
