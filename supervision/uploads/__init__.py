"""Survey uploads: contractors' files (tus or multipart) kept with their
SHA-256, uploader, time and mine, grouped into surveys (docs/uploads.md)."""
