"""A real server process for the fault tests: ``create_app()`` under uvicorn on 127.0.0.1.

With ``FAULT_PAUSE`` set it stops dead at one point, after writing its pid to ``FAULT_MARKER``, so a test
can SIGKILL it exactly there: ``publish`` (inside the publish transaction, the version row already
updated), ``publish_committed`` (after the commit, before the answer), ``import_chunk`` (inside a layer
import's transaction, after its first chunk is written), ``build_saved`` (a build job's draft committed,
before the job ends). Settings come from the BLUEPRINT_* environment.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import uvicorn


def pause() -> None:
    Path(os.environ["FAULT_MARKER"]).write_text(str(os.getpid()))
    time.sleep(600)  # killed long before this ends


def install(point: str) -> None:
    if point == "publish":
        from blueprint.store import BlueprintStore

        mark = BlueprintStore._mark_layers_used

        def paused_mark(conn: Any, layers: Any) -> None:
            mark(conn, layers)
            pause()

        BlueprintStore._mark_layers_used = staticmethod(paused_mark)  # type: ignore[assignment]
    elif point == "publish_committed":
        from blueprint.store import BlueprintStore

        publish = BlueprintStore.publish

        def paused_publish(self: Any, *args: Any, **kwargs: Any) -> Any:
            summary = publish(self, *args, **kwargs)
            pause()
            return summary

        BlueprintStore.publish = paused_publish  # type: ignore[method-assign]
    elif point == "import_chunk":
        from layers.store import LayerStore

        save_stream = LayerStore.save_stream

        def paused_save(self: Any, stream: Any, by: str = "system", **kwargs: Any) -> Any:
            def first_chunk(read: int, total: int) -> None:
                pause()

            return save_stream(self, stream, by, **{**kwargs, "progress": first_chunk})

        LayerStore.save_stream = paused_save  # type: ignore[method-assign]
    elif point == "build_saved":
        from blueprint.store import BlueprintStore

        save_draft = BlueprintStore.save_draft

        def paused_save_draft(self: Any, *args: Any, **kwargs: Any) -> Any:
            summary = save_draft(self, *args, **kwargs)
            pause()
            return summary

        BlueprintStore.save_draft = paused_save_draft  # type: ignore[method-assign]
    elif point:
        raise SystemExit(f"unknown FAULT_PAUSE {point}")


if __name__ == "__main__":
    install(os.environ.get("FAULT_PAUSE", ""))
    from api.app import create_app
    from runtime.settings import get_settings

    uvicorn.run(create_app(), host="127.0.0.1", port=int(sys.argv[1]), log_level="warning",
                timeout_keep_alive=get_settings().keep_alive_seconds)  # as `blueprint serve`
