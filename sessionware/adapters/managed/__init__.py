"""Managed mode: the wrapper sends a budgeted context and serves the model's memory calls.

``hooks`` plugs into the engine's ``CallHooks`` seam; ``shapes`` puts a built context on
the wire per endpoint; ``streams`` spots and hides memory calls in responses; ``tokens``
counts what the app asked to send.
"""
