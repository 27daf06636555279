"""The page `dvc plots show` fills: Vega, Vega-Lite and Vega-Embed inlined, so it draws offline.

DVC's own page loads them from a CDN: with no network it shows no chart. This writes DVC's
`plots.html_template` (set in .dvc/config) with them inlined from the pinned `vl-convert-python`
(its `javascript_bundle`), and no `{scripts}` placeholder, so DVC adds no CDN tag. `make venv`
runs `python -m scratchnet.study.plots.offline [.dvc/plots/page.html]`; the file (about 0.9 MB)
is generated, not kept in git.
"""

from __future__ import annotations

import sys
from pathlib import Path

from scratchnet.files import write_text

PAGE = Path(".dvc/plots/page.html")
VEGA_LITE = "6.4"  # compiles to the Vega (6) of the bundle; reads the Vega-Lite 5 specs of DVC and .dvc/plots

PAGE_HTML = """<!DOCTYPE html>
<html>
<head>
    {{refresh_tag}}
    <meta charset="utf-8">
    <title>scratchnet: dvc plots</title>
    <!-- Vega {vega}, Vega-Lite {vega_lite}, Vega-Embed {embed}: from vl-convert-python {package},
         inlined so that the page needs no network -->
    <script type="text/javascript">
{bundle}
    </script>
    <style>
        body {{ font-family: sans-serif; }}
        table {{ border-spacing: 15px; }}
    </style>
</head>
<body>
    {{plot_divs}}
</body>
</html>
"""


def page_html() -> str:
    """The template: DVC replaces `{plot_divs}` (and `{refresh_tag}`) in it."""
    from importlib.metadata import version

    import vl_convert

    bundle = vl_convert.javascript_bundle(
        "window.vegaEmbed = vegaEmbed; window.vega = vega; window.vegaLite = vegaLite;", vl_version=VEGA_LITE
    )
    # Inside a <script> element the text must not close it, nor hold DVC's placeholders.
    for forbidden in ("</script", "{plot_divs}", "{refresh_tag}", "{scripts}"):
        assert forbidden not in bundle, forbidden
    return PAGE_HTML.format(
        bundle=bundle,
        vega=vl_convert.get_vega_version(),
        vega_lite=VEGA_LITE,
        embed=vl_convert.get_vega_embed_version(),
        package=version("vl-convert-python"),
    )


def main() -> None:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else PAGE
    write_text(path, page_html())
    print(f"dvc plots page (Vega inlined, draws offline): {path}")


if __name__ == "__main__":
    main()
