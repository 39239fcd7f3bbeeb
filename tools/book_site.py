"""Small fixes to the HTML of the book, loaded from ``_config.yml`` (``sphinx.local_extensions``).

* ``book/_static/book.css`` and ``book.js`` (site-level adjustments of the theme: no second search
  bar at the top; sidebar buttons that work) are added to every page.

* Sphinx 7.4 lists an inline script twice when an extension adds it after the builder started
  (once with ``filename=None``, once with ``''``). sphinx-thebe's inline script declares ``const``
  names, so the second copy is a JavaScript error on every page. Keep the first copy of each script.
"""
from __future__ import annotations

import pathlib



def _dedupe_scripts(app, pagename, templatename, context, doctree):
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, unique = set(), []
    for script in scripts:
        if isinstance(script, str):
            key = (script, ())
        else:  # sphinx.builders.html._assets._JavaScript; the two copies differ in filename None / ""
            key = (script.filename or "", tuple(sorted((k, str(v)) for k, v in script.attributes.items())))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    context["script_files"] = unique


def _add_static(app):
    app.config.html_static_path.append(str(pathlib.Path(app.srcdir) / "book" / "_static"))


def setup(app):
    app.connect("builder-inited", _add_static)
    app.add_css_file("book.css")
    app.add_js_file("book.js")
    app.connect("html-page-context", _dedupe_scripts, priority=900)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
