"""The web side: the aiohttp app (``app``), the service behind it (``service``),
forms, links, preferences, health and metrics, and the feed files it serves.
"""
