"""Everything provider-neutral: sessions, accounting, storage, memory, tools.

``core`` never imports ``adapters``.
"""
