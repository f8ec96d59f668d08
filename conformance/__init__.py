"""The conformance run: the SDKs' own test suites, bare and under ``sessionware.instrument()``.

``python -m conformance`` (or ``make conformance``) downloads the source release of each
installed SDK at its installed version, runs its offline test suite bare, then under
``instrument()`` in production behaviour and in strict mode, and compares every test's
outcome. A test that passes bare and not under sessionware is a difference, and the run
fails. ``--fast`` runs the subset CI runs on every submission. See the README's
"Conformance" section.
"""
