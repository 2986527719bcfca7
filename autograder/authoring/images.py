"""`make images`: run each solutions notebook, save its `# figure:` outputs in images/, embed the previews."""

from __future__ import annotations

from autograder.authoring import notebooks as nbtools
from autograder.authoring.execute import execute


def draw(names: list[str]) -> None:
    """Redraw images/ from the named solutions notebooks and embed the previews in them."""
    nbtools.IMAGES.mkdir(exist_ok=True)
    for name in names:
        path = nbtools.notebook_path(name)
        executed, _ = execute(path)
        for figure, index in nbtools.figure_cells(executed).items():
            png = nbtools.png_output(executed.cells[index])
            if png is None:
                raise SystemExit(f"{name}: the cell marked `# figure: {figure}` displayed no PNG")
            (nbtools.IMAGES / f"{figure}.png").write_bytes(png)
            print(f"wrote images/{figure}.png")
        nb = nbtools.read(path)
        nbtools.attach_previews(nb)
        nbtools.clean(nb)
        nbtools.write(nb, path)

