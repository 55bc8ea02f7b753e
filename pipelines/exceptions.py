"""The archive's exceptions: one base, each also the builtin it resembles."""


class ArchiveError(Exception):
    """Base of every error raised by the archive pipelines."""


class BadArchiveURI(ArchiveError, ValueError):
    """ARCHIVE_URI cannot be used: unknown scheme, missing path or bucket."""


class ArchiveConfigError(ArchiveError, ValueError):
    """A setting has a value the archive refuses, found at start-up."""


class SchemaMismatch(ArchiveError, TypeError):
    """Rows or a file do not match the dataset's schema."""


class PublishError(ArchiveError, OSError):
    """A closed file could not be published to the archive."""
