"""Server-rendered pages for regulators, phone first; no CDN, no internet."""
