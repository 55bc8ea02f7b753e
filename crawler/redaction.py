"""Keep credentials out of log lines: Scrapy prints overridden settings verbatim.

``install`` rewrites every log record through ``pipelines.storage.redact``
(URL user info, AWS credential variables of the environment) and masks the
values of settings whose names say they are secret (``*SECRET*``,
``*PASSWORD*``, ``*TOKEN*``, ``*ACCESS_KEY*``...).
"""

from __future__ import annotations

import logging
import re

from pipelines.storage import redact

SECRET_NAME = re.compile(r"SECRET|PASSWORD|TOKEN|ACCESS_KEY|CREDENTIAL|KEY_ID", re.I)


def secret_values(settings) -> set[str]:
    """Values of the settings whose names mark them as secret."""
    values = set()
    for name, value in settings.items():
        if SECRET_NAME.search(name) and isinstance(value, str) and len(value) >= 4:
            values.add(value)
    return values


def clean_record(record: logging.LogRecord, secrets: set[str]) -> logging.LogRecord:
    """``record`` with its message redacted (formatted once, arguments dropped) when it held a secret."""
    try:
        message = record.getMessage()
    except (TypeError, ValueError):
        return record
    cleaned = redact(message)
    for secret in secrets:
        cleaned = cleaned.replace(secret, "***")
    if cleaned != message:
        record.msg, record.args = cleaned, ()
    return record


def install(settings) -> None:
    """Redact every log record of this process as it is made.

    A record factory rather than a handler filter: Scrapy replaces its root
    handler when a crawler starts, and a filter on the old one would be lost.
    """
    secrets = secret_values(settings)
    make_record = logging.getLogRecordFactory()

    def redacting_factory(*args, **kwargs):
        return clean_record(make_record(*args, **kwargs), secrets)

    logging.setLogRecordFactory(redacting_factory)
