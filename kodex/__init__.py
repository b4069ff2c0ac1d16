"""kodex: library regulations and GDPR retention as executable, cited rules.

The repository keeps its top-level folders (rules/, retention/, api/, audit/, store/); this package maps each
of them in as a subpackage (kodex/rules -> ../rules, …), so the installed code is importable only as
`kodex.…` and never as a generic top-level `api` or `rules`. The README's architecture section maps the
packages and the imports each may make.
"""
