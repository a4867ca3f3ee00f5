"""Local stand-ins for the providers and the club app, on loopback; never used in production."""
