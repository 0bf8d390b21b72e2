"""The HTTP edge: aiohttp routes (server), who is calling (auth), errors as problem+json."""
