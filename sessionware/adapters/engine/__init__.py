"""The provider-neutral interception engine, private to the adapters.

One call's path: ``funnel`` (the hook at the SDK's request method) -> ``call`` (its
request, session, what it sends) -> ``streams`` / ``tee`` (responses read later) ->
``record`` (events), with ``background`` running the bookkeeping off the app's path and
``guard`` keeping bookkeeping failures out of the app. ``funnel``'s docstring is the map.
"""
