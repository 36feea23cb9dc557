"""The one exception family. A stage turns these into one line on stderr and exit code 2."""


class SegbenchError(Exception):
    """A user-facing mistake: bad params, bad data, missing files. Never a bug of ours."""


class ConfigError(SegbenchError):
    """params.yaml (or an override) names an unknown key, a bad type or an invalid value."""


class DataError(SegbenchError):
    """A dataset on disk is missing, malformed or inconsistent."""


class TrainingError(SegbenchError):
    """Training cannot go on (non-finite loss, device unavailable, ...)."""
