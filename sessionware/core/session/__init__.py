"""Sessions and events, the ``SessionManager`` facade, and the one-call helpers.

Import from the modules (``sessionware.core.session.manager``...) or from the top-level
``sessionware`` package; this package file stays empty so that the storage layer can
depend on the session models without an import cycle.
"""
