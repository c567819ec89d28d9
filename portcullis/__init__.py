"""Shared pieces of Portcullis: the error shape, the signed gateway context, migrations,
and the process supervision used by the launcher and the tests alike."""
